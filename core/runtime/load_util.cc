#include "core/runtime/load_util.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>

#include "core/tensor/float_bits.h"

namespace quantd {

int LoaderThreads(const LoadOptions& options) {
  if (options.threads > 0) return options.threads;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

absl::Status ParallelForStatus(int64_t n, int threads, const CancelToken* cancel,
                               const std::function<absl::Status(int64_t)>& fn) {
  if (n <= 0) return absl::OkStatus();
  if (threads <= 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int workers = static_cast<int>(std::min<int64_t>(threads, n));
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  int64_t error_index = n;
  absl::Status error;
  auto run = [&] {
    while (!failed.load(std::memory_order_relaxed)) {
      if (cancel != nullptr && cancel->cancelled()) {
        std::lock_guard<std::mutex> lock(mu);
        if (error.ok()) error = cancel->Check();
        failed = true;
        return;
      }
      const int64_t i = next.fetch_add(1);
      if (i >= n) return;
      absl::Status s = fn(i);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (i < error_index) {
          error_index = i;
          error = std::move(s);
        }
        failed = true;
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (int w = 1; w < workers; ++w) pool.emplace_back(run);
  run();
  for (std::thread& t : pool) t.join();
  return error;
}

WeightMatrix StoreDequantized(const std::vector<float>& values, int64_t rows, int64_t cols,
                              DequantDType want) {
  const int64_t n = rows * cols;
  bool bf16 = want == DequantDType::kBF16;
  if (want == DequantDType::kAuto) {
    bf16 = true;
    for (int64_t i = 0; i < n && bf16; ++i) {
      const uint32_t bits = FloatToBits(values[i]);
      bf16 = (bits & 0xffffu) == 0;
    }
  }
  if (!bf16) {
    Tensor t = Tensor::Allocate(DType::kF32, {rows, cols});
    std::memcpy(t.data(), values.data(), static_cast<size_t>(n) * sizeof(float));
    return WeightMatrix::Own(std::move(t));
  }
  Tensor t = Tensor::Allocate(DType::kBF16, {rows, cols});
  uint16_t* out = t.as<uint16_t>();
  for (int64_t i = 0; i < n; ++i) out[i] = FloatToBf16(values[i]);
  return WeightMatrix::Own(std::move(t));
}

}  // namespace quantd
