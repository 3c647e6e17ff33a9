// Throughput of the nvfp4 encoders on a random BF16 matrix (default
// 4096 x 14336, an MLP projection of an 8B model), in both layouts:
//   reference  EncodeRef on one thread, GB/s of BF16 input
//   cpu        the CPU path on all threads, GB/s of BF16 input
// and, when a CUDA device is present:
//   copy       cudaMemcpy device-to-device bandwidth (read + write bytes)
//   kernel     the device kernel alone: (input + output bytes) / time,
//              CUDA events, median of 20 after warm-up, and its fraction
//              of the copy bandwidth
//   e2e        CudaEncoder::Encode from pageable host memory and back
// Bytes counted for the kernel: the input once plus every part the kernel
// writes (codes and scales); a scale the host fills (the tensor scale) is
// not counted. Per-tensor scales need tensor_amax (FormatParams), which the
// pipeline computes beforehand over the fused group with the encoder's
// AbsMax (on the CPU, also in CudaEncoder): that separate pass is not in
// the kernel time; its time on this matrix is printed on its own line.
// Usage: nvfp4_bench [rows cols]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "core/formats/nvfp4.h"
#include "core/tensor/float_bits.h"
#include "kernels/devices.h"
#include "kernels/encoders.h"

#if QUANTD_HAVE_CUDA
#include "kernels/cuda/cuda_bench.h"
#include "kernels/cuda/cuda_encoder.h"
#endif

namespace quantd {
namespace {

using bench::MedianSeconds;
using bench::SameBytes;
using bench::Seconds;

int Run(int64_t rows, int64_t cols) {
  Tensor w = Tensor::Allocate(DType::kBF16, {rows, cols});
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (int64_t i = 0; i < w.numel(); ++i) w.as<uint16_t>()[i] = FloatToBf16(normal(rng));
  const double in_gb = static_cast<double>(w.nbytes()) / 1e9;
  std::unique_ptr<WeightEncoder> cpu = MakeCpuEncoder(0);
  const float amax = cpu->AbsMax(w.view());
  const std::vector<GpuInfo> gpus = ListCudaDevices();
  std::printf("nvfp4_bench: %lld x %lld BF16 (%.1f MB), %u CPU threads, %s\n",
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
  std::printf("%-22s %10s %10s %12s %12s %8s %10s %s\n", "encoding", "ref GB/s", "cpu GB/s",
              "kernel GB/s", "kernel ms", "of copy", "e2e ms", "gpu==cpu");
  CancelToken cancel;
  for (const char* layout : {kNvfp4LayoutCompressedTensors, kNvfp4LayoutModelOpt}) {
    FormatParams p;
    p.bits = 4;
    p.group_size = 16;
    p.tensor_amax = amax;
    p.extra[kNvfp4LayoutKey] = layout;
    EncodedWeight ref;
    const double t_ref = MedianSeconds(1, [&] {
      absl::StatusOr<EncodedWeight> e = EncodeRef(Nvfp4Format(), p, w.view());
      if (e.ok()) ref = *std::move(e);
      return e.ok();
    });
    bool cpu_same = true;
    const double t_cpu = MedianSeconds(3, [&] {
      absl::StatusOr<EncodedWeight> e = cpu->Encode(Nvfp4Format(), p, w.view(), cancel);
      cpu_same = cpu_same && e.ok() && SameBytes(ref, *e);
      return e.ok();
    });
    std::printf("nvfp4 %-16s %10.2f %10.2f", layout, in_gb / t_ref, in_gb / t_cpu);
#if QUANTD_HAVE_CUDA
    if (gpu != nullptr) {
      absl::StatusOr<KernelTiming> k = MeasureKernel(0, Nvfp4Format(), p, w.view(), 3, 20);
      bool gpu_same = true;
      const double t_e2e = MedianSeconds(5, [&] {
        absl::StatusOr<EncodedWeight> e = gpu->Encode(Nvfp4Format(), p, w.view(), cancel);
        gpu_same = gpu_same && e.ok() && gpu->last_ran_on_device() && SameBytes(ref, *e);
        return e.ok();
      });
      if (k.ok()) {
        const double gbps =
            static_cast<double>(k->input_bytes + k->output_bytes) / (k->median_ms * 1e-3) / 1e9;
        std::printf(" %12.0f %12.3f %7.0f%% %10.2f %s", gbps, k->median_ms,
                    100.0 * gbps / copy_gbps, t_e2e * 1e3, gpu_same ? "yes" : "NO");
      } else {
        std::printf("  kernel: %s", k.status().ToString().c_str());
      }
    }
#endif
    std::printf("%s\n", cpu_same ? "" : "  (cpu output differs from reference!)");
  }
  const double t_amax = MedianSeconds(3, [&] { return cpu->AbsMax(w.view()) >= 0.0f; });
  std::printf(
      "tensor_amax pass (%s; CPU AbsMax, all threads, not in kernel time): %.2f ms, "
      "%.2f GB/s\n",
      "nvfp4", t_amax * 1e3, in_gb / t_amax);
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
  if (rows < 1 || cols < 16 || cols % 16 != 0) {
    std::fprintf(stderr, "usage: %s [rows cols]  (cols a multiple of 16)\n", argv[0]);
    return 2;
  }
  return quantd::Run(rows, cols);
}
