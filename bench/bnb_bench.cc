// Throughput of the bitsandbytes encoders (nf4 / fp4 blockwise, LLM.int8) on
// a random BF16 matrix (default 4096 x 14336, an MLP projection of an 8B
// model):
//   reference  EncodeRef on one thread, GB/s of BF16 input
//   cpu        the CPU path on all threads, GB/s of BF16 input
// and, when a CUDA device is present:
//   copy       cudaMemcpy device-to-device bandwidth (read + write bytes),
//              measured in the same run
//   kernel     the device kernel alone: (input + output bytes) / time,
//              CUDA events, median of 20 after warm-up, and its fraction
//              of the copy bandwidth (target: >= 80%)
//   e2e        CudaEncoder::Encode from pageable host memory and back
//              (chunked, double-buffered; host work such as double
//              quantization included), median of 5
//   gpu==ref   the encoder ran the device kernel and its output equals
//              the reference bit for bit
// Usage: bnb_bench [rows cols]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/bench_util.h"
#include "core/formats/bnb4.h"
#include "core/formats/bnb_int8.h"
#include "core/tensor/float_bits.h"
#include "kernels/devices.h"
#include "kernels/encoders.h"

#if QUANTD_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda/bnb4.cuh"
#include "kernels/cuda/cuda_bench.h"
#include "kernels/cuda/cuda_encoder.h"
#endif

namespace quantd {
namespace {

using bench::MedianSeconds;
using bench::SameBytes;
using bench::Seconds;

struct Encoding {
  std::string label;
  const WeightFormat* format;
  FormatParams params;
};

FormatParams Bnb4(const char* type, bool dq) {
  FormatParams p;
  p.group_size = 64;
  p.extra["quant_type"] = type;
  p.extra["double_quant"] = dq ? "1" : "0";
  return p;
}

#if QUANTD_HAVE_CUDA
// Median milliseconds of the bnb4 kernel alone on `w` (uploaded once), and
// the bytes it moves (input + codes + absmax). Negative on a CUDA error.
double TimeBnb4Kernel(const FormatParams& p, const Tensor& w, size_t* bytes) {
  absl::StatusOr<Bnb4Dims> d = MakeBnb4Dims(p, w.shape()[0], w.shape()[1]);
  if (!d.ok()) return -1;
  void *in = nullptr, *packed = nullptr, *absmax = nullptr, *bad = nullptr;
  const size_t absmax_bytes = static_cast<size_t>(d->blocks) * sizeof(float);
  *bytes = w.nbytes() + static_cast<size_t>(d->packed_bytes) + absmax_bytes;
  double ms = -1;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  if (cudaMalloc(&in, w.nbytes()) == cudaSuccess &&
      cudaMalloc(&packed, static_cast<size_t>(d->packed_bytes)) == cudaSuccess &&
      cudaMalloc(&absmax, absmax_bytes) == cudaSuccess &&
      cudaMalloc(&bad, sizeof(unsigned long long)) == cudaSuccess &&
      cudaMemcpy(in, w.data(), w.nbytes(), cudaMemcpyHostToDevice) == cudaSuccess &&
      cudaEventCreate(&e0) == cudaSuccess && cudaEventCreate(&e1) == cudaSuccess) {
    Bnb4DeviceArgs a;
    a.input = in;
    a.source = w.dtype();
    a.numel = w.numel();
    a.blocksize = static_cast<int>(d->blocksize);
    a.type = d->type;
    a.packed = static_cast<uint8_t*>(packed);
    a.absmax = static_cast<float*>(absmax);
    a.first_bad = static_cast<unsigned long long*>(bad);
    std::vector<float> t;
    bool ok = true;
    for (int i = 0; i < 23 && ok; ++i) {
      ok = cudaMemset(bad, 0xff, sizeof(unsigned long long)) == cudaSuccess &&
           cudaEventRecord(e0) == cudaSuccess && LaunchBnb4(a) == cudaSuccess &&
           cudaEventRecord(e1) == cudaSuccess && cudaEventSynchronize(e1) == cudaSuccess;
      float one = 0;
      if (ok && i >= 3 && cudaEventElapsedTime(&one, e0, e1) == cudaSuccess) t.push_back(one);
    }
    if (ok && !t.empty()) {
      std::sort(t.begin(), t.end());
      ms = t[t.size() / 2];
    }
  }
  if (e0 != nullptr) cudaEventDestroy(e0);
  if (e1 != nullptr) cudaEventDestroy(e1);
  for (void* ptr : {in, packed, absmax, bad}) {
    if (ptr != nullptr) cudaFree(ptr);
  }
  return ms;
}
#endif

int Run(int64_t rows, int64_t cols) {
  Tensor w = Tensor::Allocate(DType::kBF16, {rows, cols});
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (int64_t i = 0; i < w.numel(); ++i) w.as<uint16_t>()[i] = FloatToBf16(normal(rng));
  const double in_gb = static_cast<double>(w.nbytes()) / 1e9;
  std::unique_ptr<WeightEncoder> cpu = MakeCpuEncoder(0);
  const std::vector<GpuInfo> gpus = ListCudaDevices();
  std::printf("bnb_bench: %lld x %lld BF16 (%.1f MB), %u CPU threads, %s\n",
              static_cast<long long>(rows), static_cast<long long>(cols), in_gb * 1e3,
              std::thread::hardware_concurrency(),
              gpus.empty() ? "no CUDA device" : gpus[0].name.c_str());
#if QUANTD_HAVE_CUDA
  double copy_gbps = 0;
  std::unique_ptr<CudaEncoder> gpu;
  if (!gpus.empty()) {
    absl::StatusOr<double> c = MeasureCopyBandwidth(0, w.nbytes(), 20);
    if (c.ok()) copy_gbps = *c;
    std::printf("device-to-device copy: %.0f GB/s (read + write)\n", copy_gbps);
    absl::StatusOr<std::unique_ptr<CudaEncoder>> g = CudaEncoder::Create({});
    if (g.ok()) gpu = *std::move(g);
  }
#endif
  std::printf("%-14s %10s %10s %12s %12s %8s %10s %s\n", "encoding", "ref GB/s", "cpu GB/s",
              "kernel GB/s", "kernel ms", "of copy", "e2e ms", "gpu==ref");
  const Encoding encodings[] = {
      {"nf4-b64", &Bnb4Format(), Bnb4("nf4", false)},
      {"fp4-b64", &Bnb4Format(), Bnb4("fp4", false)},
      {"nf4-b64-dq", &Bnb4Format(), Bnb4("nf4", true)},
      {"int8-bnb", &BnbInt8Format(), FormatParams{}},
  };
  CancelToken cancel;
  for (const Encoding& enc : encodings) {
    EncodedWeight ref;
    const double t_ref = MedianSeconds(1, [&] {
      absl::StatusOr<EncodedWeight> e = EncodeRef(*enc.format, enc.params, w.view());
      if (e.ok()) ref = *std::move(e);
      return e.ok();
    });
    bool cpu_same = true;
    const double t_cpu = MedianSeconds(3, [&] {
      absl::StatusOr<EncodedWeight> e = cpu->Encode(*enc.format, enc.params, w.view(), cancel);
      cpu_same = cpu_same && e.ok() && SameBytes(ref, *e);
      return e.ok();
    });
    std::printf("%-14s %10.2f %10.2f", enc.label.c_str(), in_gb / t_ref, in_gb / t_cpu);
#if QUANTD_HAVE_CUDA
    if (gpu != nullptr) {
      const bool is_bnb4 = enc.format == &Bnb4Format();
      double ms = -1;
      size_t bytes = 0;
      if (is_bnb4) {
        ms = TimeBnb4Kernel(enc.params, w, &bytes);
      } else {
        absl::StatusOr<KernelTiming> k = MeasureKernel(0, *enc.format, enc.params, w.view(), 3, 20);
        if (k.ok()) {
          ms = k->median_ms;
          bytes = k->input_bytes + k->output_bytes;
        }
      }
      bool gpu_same = true;
      const double t_e2e = MedianSeconds(5, [&] {
        absl::StatusOr<EncodedWeight> e = gpu->Encode(*enc.format, enc.params, w.view(), cancel);
        gpu_same = gpu_same && e.ok() && gpu->last_ran_on_device() && SameBytes(ref, *e);
        return e.ok();
      });
      if (ms > 0) {
        const double gbps = static_cast<double>(bytes) / (ms * 1e-3) / 1e9;
        std::printf(" %12.0f %12.3f %7.0f%% %10.2f %s", gbps, ms, 100.0 * gbps / copy_gbps,
                    t_e2e * 1e3, gpu_same ? "yes" : "NO");
      } else {
        std::printf("  kernel: failed");
      }
    }
#endif
    std::printf("%s\n", cpu_same ? "" : "  (cpu output differs from reference!)");
  }
  return 0;
}

}  // namespace
}  // namespace quantd

int main(int argc, char** argv) {
  int64_t rows = 4096, cols = 14336;
  if (argc == 3) {
    rows = std::atoll(argv[1]);
    cols = std::atoll(argv[2]);
  }
  if (rows < 1 || cols < 8 || cols % 8 != 0) {
    std::fprintf(stderr, "usage: %s [rows cols]  (cols a multiple of 8)\n", argv[0]);
    return 2;
  }
  return quantd::Run(rows, cols);
}
