// The hardware E4M3 conversion the fp8 kernel uses (device code only).
#ifndef QUANTD_KERNELS_CUDA_FP8_CVT_CUH_
#define QUANTD_KERNELS_CUDA_FP8_CVT_CUH_

#include <cstdint>

#include "core/formats/fp8_e4m3.h"

namespace quantd {

// E4M3 codes of two floats (lo in the low byte): the hardware conversion,
// round to nearest even, saturating to +-448 (Inf too), NaN -> 0x7f. It
// equals e4m3::FloatToE4m3 on every non-NaN float32 (checked over all of
// them on the device by CountE4m3CvtMismatches) in one instruction instead
// of ~15 integer operations per element, which kept the kernels from
// memory speed.
// Before sm_89 (no FP8 conversions) the integer form is used.
__device__ __forceinline__ uint32_t CvtE4m3x2(float lo, float hi) {
#if __CUDA_ARCH__ >= 890
  unsigned short h;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(h) : "f"(hi), "f"(lo));
  return h;
#else
  return e4m3::FloatToE4m3(lo) | (static_cast<uint32_t>(e4m3::FloatToE4m3(hi)) << 8);
#endif
}

}  // namespace quantd

#endif  // QUANTD_KERNELS_CUDA_FP8_CVT_CUH_
