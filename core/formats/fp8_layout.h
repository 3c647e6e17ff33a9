// The arithmetic of the "fp8" format (FP8 E4M3 weights, compressed-tensors
// float-quantized layout), shared by the scalar reference
// (core/formats/fp8.cc) and the CUDA kernel (kernels/cuda/fp8.cu). Every
// function is QUANTD_HD; both sides call them instead of repeating formulas.
//
// Per group (the whole tensor, a row, or a 128 x 128 block), in float32:
//   amax = max |x| over the group (for the tensor strategy: the amax the
//          pipeline computed over the tensor or its fused group)
//   s    = amax / 448, the correctly rounded IEEE quotient, then rounded
//          (to nearest even) to the scale dtype; that stored value S is used
//          for everything below:
//     amax == 0 (an all-zero group)      -> S = ZeroGroupScale(dtype), the
//          dtype's machine epsilon (BF16 2^-7, F16 2^-10, F32 2^-23), the
//          value compressed-tensors substitutes for zero scales; every
//          code is then 0 and decodes to exactly 0;
//     amax > 0 but s rounds to 0 in the dtype (F16 scales of groups below
//          ~1.3e-5, F32 below ~6e-43) -> the dtype's smallest positive
//          (subnormal) value, so that tiny groups keep their values
//          (compressed-tensors would substitute epsilon and zero them);
//     s beyond the dtype's range (F16 scales of F32 weights above ~2.9e7)
//          -> the dtype's largest finite value (codes then saturate).
//   q = E4M3_rne(clamp(x / S, -448, 448)), x / S the correctly rounded IEEE
//       quotient (DivRn), E4M3_rne = e4m3::FloatToE4m3. Because
//       FloatToE4m3 saturates, the clamp changes nothing for non-NaN
//       quotients: CodeOfQuotient skips it (tests/core/fp8_test.cc checks
//       the equality).
//   decode: E4M3ToFloat(q) * S in float32 (exact: 4 x 11 significant bits).
//
// compressed-tensors computes x / S in the weight's dtype when the scale is
// stored in it (BF16 x / BF16 S rounds the quotient to BF16 before the FP8
// cast): its codes can differ from ours by one step where that double
// rounding lands on an FP8 tie. Ours are the correctly rounded ones; see
// docs/research/fp8_format.md.
#ifndef QUANTD_CORE_FORMATS_FP8_LAYOUT_H_
#define QUANTD_CORE_FORMATS_FP8_LAYOUT_H_

#include <stdint.h>

#include "core/formats/fp8_e4m3.h"
#include "core/tensor/float_bits.h"
#include "core/util/hostdevice.h"

#if !defined(__CUDA_ARCH__)
#include <math.h>
#endif

namespace quantd {
namespace fp8 {

// How weights share a scale.
enum class Strategy : uint8_t {
  kTensor = 0,   // one scale for the tensor (from FormatParams::tensor_amax)
  kChannel = 1,  // one scale per row (output channel)
  kBlock = 2,    // one scale per kBlockRows x kBlockCols block
};

// compressed-tensors' block_structure [128, 128] (DeepSeek-V3 style).
constexpr int64_t kBlockRows = 128;
constexpr int64_t kBlockCols = 128;

// The dtype scales are stored in.
enum class ScaleType : uint8_t { kF32 = 0, kF16 = 1, kBF16 = 2 };

// IEEE round-to-nearest division on both sides (__fdiv_rn is never
// approximated, whatever nvcc is told).
QUANTD_HD float DivRn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

// v clamped to [lo, hi]; v is never NaN here.
QUANTD_HD float ClampF(float v, float lo, float hi) {
#if defined(__CUDA_ARCH__)
  return fminf(fmaxf(v, lo), hi);
#else
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
#endif
}

// The scale of an all-zero group: the scale dtype's machine epsilon.
QUANTD_HD float ZeroGroupScale(ScaleType t) {
  switch (t) {
    case ScaleType::kF16:
      return 0.0009765625f;  // 2^-10
    case ScaleType::kBF16:
      return 0.0078125f;  // 2^-7
    default:
      return 1.1920928955078125e-07f;  // 2^-23
  }
}

// A scale as stored: its float32 value and its bits in the scale dtype
// (low 16 bits for F16/BF16).
struct StoredScale {
  float value;
  uint32_t bits;
};

// The stored scale of a group whose largest magnitude is `amax` (finite,
// >= 0), with the fallbacks described at the top of this file.
QUANTD_HD StoredScale ScaleForAmax(float amax, ScaleType t) {
  const bool zero_group = !(amax > 0.0f);
  const float raw = zero_group ? ZeroGroupScale(t) : DivRn(amax, e4m3::kMax);
  StoredScale s;
  switch (t) {
    case ScaleType::kF16: {
      uint32_t h = FloatToF16(raw);
      if (h == 0u) h = 0x0001u;       // underflow: 2^-24
      if (h >= 0x7c00u) h = 0x7bffu;  // overflow: 65504
      s.bits = h;
      s.value = F16ToFloat(static_cast<uint16_t>(h));
      break;
    }
    case ScaleType::kBF16: {
      uint32_t h = FloatToBf16(raw);
      if (h == 0u) h = 0x0001u;       // underflow: 2^-133
      if (h >= 0x7f80u) h = 0x7f7fu;  // overflow (amax infinite): 3.39e38
      s.bits = h;
      s.value = Bf16ToFloat(static_cast<uint16_t>(h));
      break;
    }
    default: {
      uint32_t u = FloatToBits(raw);
      if (u == 0u) u = 0x00000001u;           // underflow: 2^-149
      if (u >= 0x7f800000u) u = 0x7f7fffffu;  // overflow (amax infinite): FLT_MAX
      s.bits = u;
      s.value = BitsToFloat(u);
      break;
    }
  }
  return s;
}

// The code of a quotient v = x / S (not NaN): FloatToE4m3, which saturates
// exactly as clamping to +-448 first would.
QUANTD_HD uint8_t CodeOfQuotient(float v) { return e4m3::FloatToE4m3(v); }

// The code of x (finite) with stored scale `scale`: the format's definition.
QUANTD_HD uint8_t QuantizeValue(float x, float scale) {
  return CodeOfQuotient(ClampF(DivRn(x, scale), -e4m3::kMax, e4m3::kMax));
}

// The decoded value of code q with stored scale `scale`.
QUANTD_HD float DecodeValue(uint8_t q, float scale) { return e4m3::E4m3ToFloat(q) * scale; }

// ---------------------------------------------------------------------------
// The division as the CUDA kernel computes it (host-callable so that tests
// can check it against DivRn).
//
// __fdiv_rn recomputes a reciprocal (a quarter-rate MUFU.RCP plus a slow-path
// check) for every element. The kernel hoists it: y = RN(1/S), q0 = RN(x*y),
// q1 = RN(q0 + RN(x - S*q0)*y), and RN(q1 + RN(x - S*q1)*y), which equals
// RN(x/S) (Markstein) when y is correctly rounded, q1 within an ulp of x/S
// and the remainder x - S*q1 exact under FMA. The remainder is exact when
// no product bit falls below 2^-149: exponent(S) + exponent(x/S) >= -103,
// true for S >= 2^-80 and |x/S| >= 2^-23. Smaller quotients all lie far
// below the first rounding boundary of E4M3 (2^-10), so their code (a
// signed zero; the sign of the approximation is always that of x) is right
// regardless. For S above 2^100 (y near the subnormals) or below 2^-80 the
// divider falls back to DivRn. x*y cannot overflow: |x / S| stays below
// 2^113 even for scales clamped to the F16 maximum.
struct Divider {
  float s, y;
  bool fast;
};

QUANTD_HD float RcpRn(float s) {
#if defined(__CUDA_ARCH__)
  return __frcp_rn(s);
#else
  return 1.0f / s;
#endif
}

QUANTD_HD float MulRn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

QUANTD_HD float FmaRn(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return fmaf(a, b, c);
#endif
}

constexpr float kFastDivMinScale = 0x1p-80f;
constexpr float kFastDivMaxScale = 0x1p100f;

QUANTD_HD Divider MakeDivider(float s) {
  Divider d;
  d.s = s;
  d.y = RcpRn(s);
  d.fast = s >= kFastDivMinScale && s <= kFastDivMaxScale;
  return d;
}

// x / S, correctly rounded as DivRn's: the hoisted form, or DivRn itself
// when d.fast is false. kFast selects the form at compile time for callers
// that branch once per group.
template <bool kFast>
QUANTD_HD float Quotient(const Divider& d, float x) {
  if (kFast) {
    const float q0 = MulRn(x, d.y);
    const float q1 = FmaRn(FmaRn(-d.s, q0, x), d.y, q0);
    return FmaRn(FmaRn(-d.s, q1, x), d.y, q1);
  }
  return DivRn(x, d.s);
}

}  // namespace fp8
}  // namespace quantd

#endif  // QUANTD_CORE_FORMATS_FP8_LAYOUT_H_
