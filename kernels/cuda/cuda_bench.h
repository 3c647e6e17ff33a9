// Device timings for benchmarks (bench/rtn_bench.cc): CUDA builds only.
#ifndef QUANTD_KERNELS_CUDA_CUDA_BENCH_H_
#define QUANTD_KERNELS_CUDA_CUDA_BENCH_H_

#include <cstddef>

#include "absl/status/statusor.h"
#include "core/formats/format.h"

namespace quantd {

// Device-to-device cudaMemcpy bandwidth on `device` for a buffer of `bytes`,
// counting bytes read plus bytes written, in GB/s (1e9): the median of
// `iters` copies after one warm-up, timed with CUDA events. Errors of
// CudaStatus.
absl::StatusOr<double> MeasureCopyBandwidth(int device, size_t bytes, int iters);

struct KernelTiming {
  double median_ms = 0;     // one launch of the format's device kernel
  size_t input_bytes = 0;   // bytes of w
  size_t output_bytes = 0;  // bytes of the device-written parts
};

// Times the device kernel of `f` on `w` already in device memory (uploaded
// once; outputs left on the device): median of `iters` launches after
// `warmup`, each timed with CUDA events. UNIMPLEMENTED when `f` has no
// device kernel for `p`; the errors of Check and CudaStatus.
absl::StatusOr<KernelTiming> MeasureKernel(int device, const WeightFormat& f, const FormatParams& p,
                                           const TensorView& w, int warmup, int iters);

}  // namespace quantd

#endif  // QUANTD_KERNELS_CUDA_CUDA_BENCH_H_
