#include <algorithm>
#include <atomic>
#include <limits>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/util/status_macros.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/encoders.h"

namespace quantd {
namespace {

// Input bytes per chunk: big enough to amortise the claim, small enough to
// balance the threads and to check cancellation often.
constexpr int64_t kChunkBytes = 1 << 20;

class CpuEncoder final : public WeightEncoder {
 public:
  explicit CpuEncoder(int threads) : pool_(threads) {}

  std::string device() const override { return "cpu"; }

  absl::StatusOr<EncodedWeight> Encode(const WeightFormat& f, const FormatParams& p,
                                       const TensorView& w, const CancelToken& cancel) override {
    RETURN_IF_ERROR(cancel.Check());
    const absl::Time start = absl::Now();
    if (w.shape.size() != 2) {
      return absl::InvalidArgumentError("weight must be 2-D, got " + ShapeString(w.shape));
    }
    const int64_t rows = w.shape[0], cols = w.shape[1];
    RETURN_IF_ERROR(f.Check(p, rows, cols));
    EncodedWeight out = f.Allocate(p, rows, cols, w.dtype);
    const int64_t gran = std::max<int64_t>(1, f.RowGranularity(p));
    const int64_t row_bytes = std::max<int64_t>(1, cols * static_cast<int64_t>(DTypeSize(w.dtype)));
    int64_t chunk_rows = std::max<int64_t>(1, kChunkBytes / row_bytes);
    // At least ~4 chunks per thread when the weight is large enough.
    chunk_rows = std::min(chunk_rows, std::max<int64_t>(1, rows / (4 * pool_.size())));
    chunk_rows = (chunk_rows + gran - 1) / gran * gran;
    const int64_t chunks = (rows + chunk_rows - 1) / chunk_rows;

    std::mutex mu;
    absl::Status first_error;
    int64_t first_error_chunk = std::numeric_limits<int64_t>::max();
    std::atomic<int64_t> stop_after{std::numeric_limits<int64_t>::max()};
    std::atomic<bool> cancelled{false};
    pool_.ParallelFor(chunks, [&](int64_t c) {
      // Chunks after a failed one are skipped; earlier ones still run so
      // that the error reported is the first in row order, as the
      // reference's would be.
      if (c > stop_after.load(std::memory_order_relaxed)) return;
      if (cancel.cancelled()) {
        cancelled.store(true, std::memory_order_relaxed);
        return;
      }
      const int64_t r0 = c * chunk_rows, r1 = std::min(rows, r0 + chunk_rows);
      absl::Status s = f.EncodeRowsRef(p, w, r0, r1, &out);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (c < first_error_chunk) {
          first_error_chunk = c;
          first_error = std::move(s);
          stop_after.store(c, std::memory_order_relaxed);
        }
      }
    });
    if (cancelled.load()) return absl::CancelledError("job cancelled");
    if (!first_error.ok()) return first_error;
    RETURN_IF_ERROR(f.FinalizeRef(p, rows, cols, &out));
    out.scratch.clear();
    timings_.host += absl::ToDoubleSeconds(absl::Now() - start);
    return out;
  }

  float AbsMax(const TensorView& w) override {
    const int64_t n = w.numel();
    const int64_t chunk = std::max<int64_t>(1 << 16, n / (8 * pool_.size()) + 1);
    const int64_t chunks = (n + chunk - 1) / chunk;
    std::vector<float> partial(chunks, 0.0f);
    pool_.ParallelFor(chunks, [&](int64_t c) {
      TensorView part = w;
      const int64_t begin = c * chunk, len = std::min(n, begin + chunk) - begin;
      part.data = w.data + begin * DTypeSize(w.dtype);
      part.shape = {len};
      part.nbytes = len * DTypeSize(w.dtype);
      partial[c] = AbsMaxRef(part);
    });
    float m = 0.0f;
    for (float v : partial) m = std::max(m, v);
    return m;
  }

  EncoderTimings TakeTimings() override { return std::exchange(timings_, EncoderTimings{}); }

 private:
  ThreadPool pool_;
  EncoderTimings timings_;
};

}  // namespace

std::unique_ptr<WeightEncoder> MakeCpuEncoder(int threads) {
  return std::make_unique<CpuEncoder>(threads);
}

}  // namespace quantd
