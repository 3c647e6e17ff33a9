// The helper arithmetic of ggml's quantizers (ggml/src/ggml-quants.c:
// nearest_int, the float/int conversions as x86-64 does them, fp16,
// get_scale_min_k4), transcribed with the same operations in the same
// order, all in float32, so that they give ggml's bits; the scale searches
// built on them are in ggml_quants_search.h. Shared by the host reference (ggml_quants_*.cc) and
// the CUDA kernels (kernels/cuda/ggml_*.cu), hence QUANTD_HD.
//
// Bit-exactness rests on IEEE float32 arithmetic without contraction into
// FMA: the host sources say so with a pragma (kQuantdNoContract below),
// nvcc builds with --fmad=false --prec-div=true --prec-sqrt=true. ggml's
// reference is ggml-base compiled by gcc for x86-64 (no FMA in the baseline
// ISA); where C leaves conversions undefined (a float out of int range),
// the functions here reproduce what x86-64 does, documented per function.
#ifndef QUANTD_CORE_GGUF_GGML_QUANTS_MATH_H_
#define QUANTD_CORE_GGUF_GGML_QUANTS_MATH_H_

#include <stdint.h>
#include <string.h>

#include "core/gguf/ggml_blocks.h"
#include "core/tensor/float_bits.h"
#include "core/util/hostdevice.h"

#if !defined(__CUDA_ARCH__)
#include <math.h>
#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif
#endif

namespace quantd {
namespace ggml {

// ggml's GROUP_MAX_EPS: groups whose largest magnitude is below it are zero.
constexpr float kGroupMaxEps = 1e-15f;

QUANTD_HD int MaxI(int a, int b) { return a > b ? a : b; }
QUANTD_HD int MinI(int a, int b) { return a < b ? a : b; }

// GGML_FP32_TO_FP16 (IEEE round to nearest even; ggml's and ours agree on
// every float32, tests/core/ggml_quants_test.cc checks all of them when
// ggml is at hand) and GGML_FP16_TO_FP32 (exact).
// A NaN scale (a sum of squares that overflowed, as an all +-3e38 row
// with an importance matrix gives) is x86-64's default NaN 0xffc00000 on
// the host, whose sign the half keeps (0xfe00); CUDA's NaN results are
// positive, so the device writes the host's bits.
QUANTD_HD Half ToHalf(float f) {
#if defined(__CUDA_ARCH__)
  if (f != f) return 0xfe00u;
#endif
  return FloatToF16(f);
}
QUANTD_HD float FromHalf(Half h) { return F16ToFloat(h); }

QUANTD_HD float AbsF(float v) { return fabsf(v); }
QUANTD_HD float SqrtF(float v) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(v);
#else
  return sqrtf(v);
#endif
}

// nearest_int: adds 1.5 * 2^23 and reads the low mantissa bits, which is
// round-half-even for |v| <= 2^22 and a fixed bit pattern beyond. A NaN
// argument gives 0: on x86-64 a NaN made by arithmetic is the default NaN
// 0xffc00000 whose low 23 bits are 0x400000 (the inputs are never NaN), so
// the host needs no test (and one in these hot loops costs time); the device
// makes 0x7fffffff instead, so NaN is tested there explicitly.
QUANTD_HD int NearestInt(float fval) {
#if defined(__CUDA_ARCH__)
  if (fval != fval) return 0;
#endif
  const float val = fval + 12582912.f;
  const int32_t i = static_cast<int32_t>(FloatToBits(val));
  return (i & 0x007fffff) - 0x00400000;
}

// (int32_t)v as x86-64's cvttss2si computes it: truncation toward zero, and
// 0x80000000 for NaN or a value outside the int32 range (C leaves that
// undefined; gcc emits cvttss2si for conversions to int, int8_t and
// uint8_t, keeping the low byte for the narrow ones).
QUANTD_HD int32_t TruncToInt32X86(float v) {
#if !defined(__CUDA_ARCH__) && (defined(__x86_64__) || defined(_M_X64))
  return _mm_cvtt_ss2si(_mm_set_ss(v));  // the instruction itself, no branch
#else
  if (!(v > -2147483904.0f && v < 2147483648.0f)) return INT32_MIN;  // also NaN
#if defined(__CUDA_ARCH__)
  return __float2int_rz(v);
#else
  return static_cast<int32_t>(v);
#endif
#endif
}
// (int8_t)v and (uint8_t)v of a float on x86-64. On an x86-64 host the
// conversion is written as ggml writes it (the out-of-range case is what
// cvttss2si and its vector form cvttps2dq both give, 0x80000000), so that
// the compiler vectorizes the loops as it does ggml's.
#if !defined(__CUDA_ARCH__) && (defined(__x86_64__) || defined(_M_X64))
QUANTD_HD int32_t TruncToInt32X86Raw(float v) { return static_cast<int32_t>(v); }
#else
QUANTD_HD int32_t TruncToInt32X86Raw(float v) { return TruncToInt32X86(v); }
#endif
QUANTD_HD int TruncToInt8X86(float v) { return static_cast<int8_t>(TruncToInt32X86Raw(v)); }
QUANTD_HD int TruncToUint8X86(float v) { return static_cast<uint8_t>(TruncToInt32X86Raw(v)); }

// (int8_t)roundf(v) on x86-64 (round half away from zero, then cvttss2si's
// low byte), without the libm call: i = trunc(v) and the remainder v - i,
// which is exact for every float (|v| >= 2^23 is already an integer, and
// below that i and v share the float grid), decides the step away from
// zero. Where cvttss2si gives 0x80000000 (NaN, |v| >= 2^31) roundf's
// result converts to the same value, so no step is taken. Branch-free so
// the block loop vectorizes (Q8_0 spent a third of its time in roundf).
QUANTD_HD int RoundToInt8X86(float v) {
#if defined(__CUDA_ARCH__)
  return TruncToInt8X86(roundf(v));
#else
  const int32_t i = TruncToInt32X86Raw(v);
  const float r = v - static_cast<float>(i);
  const uint32_t step = static_cast<uint32_t>((r >= 0.5f) - (r <= -0.5f));
  const uint32_t u = static_cast<uint32_t>(i) + (i == INT32_MIN ? 0u : step);
  return static_cast<int8_t>(static_cast<uint8_t>(u));
#endif
}

// get_scale_min_k4: 6-bit scale and min j (0..7) of a Q4_K/Q5_K block.
QUANTD_HD void GetScaleMinK4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

// The inverse: stores 6-bit ls and lm as scale/min j of `scales` (which
// must be zero before j = 0..7 are stored in order, as ggml does).
QUANTD_HD void PutScaleMinK4(int j, uint8_t ls, uint8_t lm, uint8_t* scales) {
  if (j < 4) {
    scales[j] = ls;
    scales[j + 4] = lm;
  } else {
    scales[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
    scales[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
    scales[j - 0] |= static_cast<uint8_t>((lm >> 4) << 6);
  }
}

// sum of x[i]^2, i < n, in order (ggml's sum_x2 / sumx2 loops).
QUANTD_HD float SumSquares(const float* x, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}

}  // namespace ggml
}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_GGML_QUANTS_MATH_H_
