// The arithmetic of bitsandbytes' LLM.int8() weight quantization
// ("bnb_int8"), shared by the scalar reference (core/formats/bnb_int8.cc)
// and the CUDA kernel (kernels/cuda/bnb_int8.cu). Sources:
// docs/research/bitsandbytes_format.md §6.
//
// bitsandbytes quantizes a Linear8bitLt weight in Int8Params._quantize:
// the weight is first cast to float16 (round to nearest even; bfloat16 and
// float32 values beyond 65504 would become inf: quantd rejects them), then
// kInt8VectorQuant (built with --use_fast_math) does per row:
//   absmax = max |h|                      (SCB, stored as float32)
//   scale  = __fdividef(127, absmax)      (127 * approximate 1 / absmax)
//   q      = __float2int_rn(h * scale)    (round half to even)
// Here the reciprocal is correctly rounded (IEEE 1 / absmax) and the
// product 127 * (1 / absmax) is rounded as __fdividef rounds it; the
// hardware reciprocal may be one ulp off, which can move a code by one only
// when h * scale lies within about an ulp of a half-integer. An all-zero
// row has absmax 0, scale inf, 0 * inf = NaN, and __float2int_rn(NaN) is 0:
// every code 0 and SCB 0. float16 values are never float32 subnormals, so
// --use_fast_math's flushing changes nothing here.
#ifndef QUANTD_CORE_FORMATS_BNB_INT8_LAYOUT_H_
#define QUANTD_CORE_FORMATS_BNB_INT8_LAYOUT_H_

#include <stdint.h>

#include "core/tensor/float_bits.h"
#include "core/util/hostdevice.h"

#if !defined(__CUDA_ARCH__)
#include <math.h>
#endif

namespace quantd {
namespace bnb_int8 {

// The row's multiplier 127 / absmax as __fdividef forms it (+inf for 0).
QUANTD_HD float RowScale(float absmax) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(127.0f, __frcp_rn(absmax));
#else
  return 127.0f * (1.0f / absmax);
#endif
}

// The code of float16 value h (as float) in a row whose scale is `scale`:
// round half to even of h * scale; NaN (0 * inf) gives 0. |h| <= absmax
// keeps the result within [-127, 127]; the clamp only guards that bound.
QUANTD_HD int8_t Code(float h, float scale) {
#if defined(__CUDA_ARCH__)
  const float v = __fmul_rn(h, scale);
  if (v != v) return 0;
  return static_cast<int8_t>(fminf(fmaxf(rintf(v), -127.0f), 127.0f));
#else
  const float v = h * scale;
  if (v != v) return 0;
  float q = nearbyintf(v);
  q = q < -127.0f ? -127.0f : q;
  q = q > 127.0f ? 127.0f : q;
  return static_cast<int8_t>(q);
#endif
}

// A source value rounded to float16 and back to float32, and whether it is
// finite in float16 (values of magnitude >= 65520 round to inf).
QUANTD_HD float RoundToF16(float x, bool* finite) {
  const uint16_t h = FloatToF16(x);
  *finite = (h & 0x7c00u) != 0x7c00u;
  return F16ToFloat(h);
}

}  // namespace bnb_int8
}  // namespace quantd

#endif  // QUANTD_CORE_FORMATS_BNB_INT8_LAYOUT_H_
