// CountE4m3CvtMismatches (kernels/cuda/fp8.cuh): the fp8 kernel's hardware
// conversion against e4m3::FloatToE4m3 on every float32.
#include <cuda_runtime.h>

#include <cstdint>

#include "core/formats/fp8_e4m3.h"
#include "core/util/status_macros.h"
#include "kernels/cuda/cuda_encoder.h"
#include "kernels/cuda/fp8.cuh"
#include "kernels/cuda/fp8_cvt.cuh"

namespace quantd {
namespace {

// Counts the float32 bit patterns u (NaNs skipped) whose CvtE4m3x2 code
// differs from e4m3::FloatToE4m3, each pattern in both lanes (the other
// lane holding pattern ~u).
__global__ void CvtMismatchKernel(unsigned long long* mismatches) {
  unsigned long long n = 0;
  const uint32_t stride = gridDim.x * blockDim.x;
  for (uint64_t i = blockIdx.x * blockDim.x + threadIdx.x; i <= 0xffffffffull; i += stride) {
    const uint32_t u = static_cast<uint32_t>(i);
    const float a = __uint_as_float(u), b = __uint_as_float(~u);
    const uint32_t h = CvtE4m3x2(a, b);
    if ((u & 0x7fffffffu) <= 0x7f800000u && (h & 0xffu) != e4m3::FloatToE4m3(a)) ++n;
    if ((~u & 0x7fffffffu) <= 0x7f800000u && (h >> 8) != e4m3::FloatToE4m3(b)) ++n;
  }
  if (n != 0) atomicAdd(mismatches, n);
}

}  // namespace

absl::StatusOr<uint64_t> CountE4m3CvtMismatches() {
  unsigned long long* d = nullptr;
  RETURN_IF_ERROR(CudaStatus(cudaMalloc(&d, sizeof(*d)), "cudaMalloc"));
  unsigned long long n = 0;
  cudaError_t e = cudaMemset(d, 0, sizeof(*d));
  if (e == cudaSuccess) {
    CvtMismatchKernel<<<1024, 256>>>(d);
    e = cudaGetLastError();
  }
  if (e == cudaSuccess) e = cudaMemcpy(&n, d, sizeof(n), cudaMemcpyDeviceToHost);
  cudaFree(d);
  RETURN_IF_ERROR(CudaStatus(e, "e4m3 conversion check"));
  return static_cast<uint64_t>(n);
}

}  // namespace quantd
