// The arithmetic and bit layout of the "nvfp4" format, shared by the scalar
// reference (core/formats/nvfp4.cc) and the CUDA kernel
// (kernels/cuda/nvfp4.cu); docs/research/nvfp4_format.md cites the sources.
// Every function is QUANTD_HD so that host and device compute the same bits.
//
// A weight [rows, cols] (cols % 16 == 0) is split into blocks of 16
// consecutive elements of a row. Per tensor, from A = max(tensor_amax,
// kMinTensorAmax) (tensor_amax = max |x| over the tensor or its fused group),
// all in float32 with IEEE round-to-nearest-even (RN):
//   compressed-tensors: G  = RN(2688 / A)          stored as weight_global_scale
//   ModelOpt:           G2 = RN(A / 2688)          stored as weight_scale_2
// Per block, from its largest magnitude b:
//   compressed-tensors: s = RN(RN(b / 6) * G); S = E4M3(s);
//                       S == 0 -> 0.125 (compressed-tensors' eps for FP8
//                       scales); d = RN(S / G)
//   ModelOpt:           s = RN(b / RN(6 * G2)); s == 0 -> 1.0;
//                       s = max(s, 2^-9); S = E4M3(s); d = RN(S * G2)
//   E4M3 = float8_e4m3fn, round to nearest even, saturating at 448 (the
//   tools clamp to 448 before casting; for a correct tensor_amax s <= 448
//   up to rounding anyway).
// Per element x of the block: a = RN(|x| / d) (correctly rounded IEEE
// division), code = magnitude | sign with
//   magnitude = index of RNE(a) on the E2M1 grid {0, .5, 1, 1.5, 2, 3, 4, 6}
//               saturating at 6; ties go to the even code, as both tools'
//               threshold tables do: a <= .25 -> 0, < .75 -> .5, <= 1.25 ->
//               1, < 1.75 -> 1.5, <= 2.5 -> 2, < 3.5 -> 3, <= 5 -> 4, else 6
//   sign      = 8 when x < 0 (a negative x whose magnitude rounds to 0 is
//               stored as -0, code 8, as both tools do; -0.0 gives code 0)
// Decode: RN(value(code) * d) in float32, as both tools dequantize.
//
// Packing: byte j of a row holds element 2j in its low nibble and 2j + 1 in
// its high nibble (compressed-tensors pack_fp4_to_uint8, ModelOpt
// NVFP4QTensor.quantize); block scales are E4M3 bytes, one per block, row
// major.
#ifndef QUANTD_CORE_FORMATS_NVFP4_LAYOUT_H_
#define QUANTD_CORE_FORMATS_NVFP4_LAYOUT_H_

#include <stdint.h>

#include "core/formats/fp8_e4m3.h"
#include "core/tensor/float_bits.h"
#include "core/util/hostdevice.h"

#if !defined(__CUDA_ARCH__)
#include <math.h>
#endif

namespace quantd {
namespace nvfp4 {

// Which tool's tensor names and global-scale convention.
enum class Layout : uint8_t { kCompressedTensors = 0, kModelOpt = 1 };

constexpr int kBlockSize = 16;
constexpr float kE2M1Max = 6.0f;
constexpr float kE4M3Max = 448.0f;
constexpr float kGlobalRange = 2688.0f;  // kE2M1Max * kE4M3Max
// tensor_amax below this (zero tensors included) is raised to it, so that
// both global scales stay finite and normal (compressed-tensors would divide
// by zero, ModelOpt by a zero weight_scale_2).
constexpr float kMinTensorAmax = 0x1p-100f;
// E4M3 codes.
constexpr uint32_t kE4M3MaxCode = e4m3::kMaxCode;  // 448
constexpr uint32_t kCtZeroScaleCode = 0x20;        // 0.125
constexpr float kModelOptZeroBlockScale = 1.0f;
constexpr float kModelOptMinBlockScale = 0x1p-9f;  // the smallest E4M3 subnormal

static_assert(kGlobalRange == kE2M1Max * kE4M3Max, "6 * 448");
static_assert(kE4M3Max == e4m3::kMax, "E4M3 range");

// ---------------------------------------------------------------------------
// Conversions

// RN division and multiplication that nvcc never contracts or approximates.
QUANTD_HD float DivRn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

QUANTD_HD float MulRn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

// E4M3 conversions: core/formats/fp8_e4m3.h (round to nearest even,
// saturating at 448, exact decoding).
QUANTD_HD uint32_t FloatToE4M3(float v) { return e4m3::FloatToE4m3(v); }
QUANTD_HD float E4M3ToFloat(uint32_t code) { return e4m3::E4m3ToFloat(static_cast<uint8_t>(code)); }

// E2M1 code (sign in bit 3) -> float32.
QUANTD_HD float E2M1ToFloat(uint32_t code) {
  const uint32_t m = code & 7u;
  // 0, .5, 1, 1.5 are m / 2; 2, 3, 4, 6 are (2 + (m & 1)) << ((m >> 1) - 2).
  const float mag =
      m < 4 ? static_cast<float>(m) * 0.5f : static_cast<float>((2u + (m & 1u)) << ((m >> 1) - 2));
  return (code & 8u) ? -mag : mag;
}

// The E2M1 magnitude code of a >= 0 (or +Inf): the definition, as a table
// of thresholds (strict where the lower neighbour is the even code).
QUANTD_HD uint32_t E2M1MagnitudeRef(float a) {
  return static_cast<uint32_t>(a > 0.25f) + static_cast<uint32_t>(a >= 0.75f) +
         static_cast<uint32_t>(a > 1.25f) + static_cast<uint32_t>(a >= 1.75f) +
         static_cast<uint32_t>(a > 2.5f) + static_cast<uint32_t>(a >= 3.5f) +
         static_cast<uint32_t>(a > 5.0f);
}

// The same code in the kernel's form, as the low bits of a float:
// kE2M1Biased + code. The code is concave and piecewise linear in a, with
// slope 2 below 2 (grid step .5), 1 on [2, 4) and 1/2 from 4 (steps 1 and
// 2), so it is the least of rne(2a), rne(a) + 2, rne(a / 2) + 4 and 7; each
// rne(c a) + k is the low bits of one fma c a + (kE2M1Biased + k) (c a is
// exact; sums in [2^23, 2^24) round to integers, half to even, and k even
// keeps the tie parity). Three FMAs and three min on the FP pipes instead of
// compares and selects. tests/core/nvfp4_test.cc checks it against
// E2M1MagnitudeRef; every float in [0, 1e30] was checked once offline.
constexpr float kE2M1Biased = 12582912.0f;  // 1.5 * 2^23
constexpr uint32_t kE2M1BiasedBits = 0x4b400000u;

QUANTD_HD float E2M1MagnitudeBiased(float a) {
#if defined(__CUDA_ARCH__)
  const float l1 = __fmaf_rn(a, 2.0f, kE2M1Biased);
  const float l2 = __fadd_rn(a, kE2M1Biased + 2.0f);
  const float l3 = __fmaf_rn(a, 0.5f, kE2M1Biased + 4.0f);
#else
  // 2a and a / 2 are exact: contraction changes nothing.
  const float l1 = a * 2.0f + kE2M1Biased;
  const float l2 = a + (kE2M1Biased + 2.0f);
  const float l3 = a * 0.5f + (kE2M1Biased + 4.0f);
#endif
  return fminf(fminf(l1, l2), fminf(l3, kE2M1Biased + 7.0f));
}

QUANTD_HD uint32_t E2M1Magnitude(float a) {
  return FloatToBits(E2M1MagnitudeBiased(a)) - kE2M1BiasedBits;
}

// ---------------------------------------------------------------------------
// Scales

// The stored per-tensor scale: G (compressed-tensors) or G2 (ModelOpt), for
// tensor_amax >= 0 and finite.
QUANTD_HD float GlobalScale(float tensor_amax, Layout layout) {
  const float a = tensor_amax > kMinTensorAmax ? tensor_amax : kMinTensorAmax;
  return layout == Layout::kCompressedTensors ? DivRn(kGlobalRange, a) : DivRn(a, kGlobalRange);
}

// A block's scale: its E4M3 code and the divisor d of its elements.
struct BlockScale {
  uint32_t code;
  float divisor;
};

// For a block whose largest magnitude is b (finite, >= 0) and the stored
// global scale `global` (GlobalScale()).
QUANTD_HD BlockScale MakeBlockScale(float b, float global, Layout layout) {
  BlockScale s;
  if (layout == Layout::kCompressedTensors) {
    s.code = FloatToE4M3(MulRn(DivRn(b, kE2M1Max), global));
    if (s.code == 0) s.code = kCtZeroScaleCode;
    s.divisor = DivRn(E4M3ToFloat(s.code), global);
  } else {
    float raw = DivRn(b, MulRn(kE2M1Max, global));
    if (raw == 0.0f) raw = kModelOptZeroBlockScale;
    if (raw < kModelOptMinBlockScale) raw = kModelOptMinBlockScale;
    s.code = FloatToE4M3(raw);
    s.divisor = MulRn(E4M3ToFloat(s.code), global);
  }
  return s;
}

// The divisor of a block from its stored scale code (decoding).
QUANTD_HD float BlockDivisor(uint32_t code, float global, Layout layout) {
  const float s = E4M3ToFloat(code);
  return layout == Layout::kCompressedTensors ? DivRn(s, global) : MulRn(s, global);
}

// The 4-bit code of x in a block with divisor d (the reference form).
QUANTD_HD uint32_t EncodeElement(float x, float d) {
  const float a = DivRn(fabsf(x), d);
  return E2M1MagnitudeRef(a) | (x < 0.0f ? 8u : 0u);
}

// ---------------------------------------------------------------------------
// The kernel's quotients

// RN(a / d) without a division, for a >= 0 finite, d > 0 with a normal
// reciprocal and y = RN(1 / d) (y = 0 forces the division): q0 = RN(a y)
// (within 1.5 ulps), q1 = RN(q0 + r0 y) (within an ulp), q = RN(q1 + r1 y)
// with FMA remainders r = a - d q; by Markstein's theorem q = RN(a / d)
// when y is correctly rounded, no quotient is subnormal or overflows
// (2^-125 <= q0 <= 2^125) and the remainders are exact: a remainder of a
// faithful quotient is representable unless it underflows, i.e. when the
// unit of d q, 2^(e_d + e_q - 46), is >= 2^-149, which a >= 2^-102 ensures
// (e_a <= e_d + e_q + 1). Elsewhere it divides. tests/core/nvfp4_test.cc
// compares it with DivRn.
QUANTD_HD float FmaRn(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return fmaf(a, b, c);
#endif
}

QUANTD_HD float DivRnByReciprocal(float a, float d, float y) {
  const float q0 = MulRn(a, y);
  if (a >= 0x1p-102f && q0 >= 0x1p-125f && q0 <= 0x1p125f) {
    const float q1 = FmaRn(FmaRn(-d, q0, a), y, q0);
    return FmaRn(FmaRn(-d, q1, a), y, q1);
  }
  return DivRn(a, d);
}

// The element quotients of a block with divisor d, in the kernel's form: for
// blocks where Fast() holds, FastQuotient(|x|) is the same sequence without
// the range test: d >= 2^-100 makes the remainders exact for every quotient
// >= 2^-3, smaller ones (code 0 either way) may be off by an ulp, and
// b <= 8 d keeps them <= 8 (1 + 2^-22).
struct Quotient {
  float d, y;
};

QUANTD_HD Quotient MakeQuotient(float d) {
  Quotient q;
  q.d = d;
  q.y = DivRn(1.0f, d);
  return q;
}

QUANTD_HD bool Fast(const Quotient& q, float block_amax) {
  return q.d >= 0x1p-100f && q.d <= 0x1p100f && block_amax <= 8.0f * q.d;
}

QUANTD_HD float FastQuotient(float ax, const Quotient& q) {
  const float q0 = MulRn(ax, q.y);
  const float q1 = FmaRn(FmaRn(-q.d, q0, ax), q.y, q0);
  return FmaRn(FmaRn(-q.d, q1, ax), q.y, q1);
}

// The block scale in the kernel's form: MakeBlockScale's code with the
// divisions by 6 (compressed-tensors) and by RN(6 G2) (ModelOpt, `div` with
// `div_reciprocal` = RN(1 / div)) done by DivRnByReciprocal.
constexpr float kRcp6 = 0.16666667163372039795f;  // RN(1 / 6)

QUANTD_HD uint32_t BlockScaleCode(float b, float global, float div, float div_reciprocal,
                                  Layout layout) {
  if (layout == Layout::kCompressedTensors) {
    const uint32_t code = FloatToE4M3(MulRn(DivRnByReciprocal(b, kE2M1Max, kRcp6), global));
    return code == 0 ? kCtZeroScaleCode : code;
  }
  float raw = DivRnByReciprocal(b, div, div_reciprocal);
  if (raw == 0.0f) raw = kModelOptZeroBlockScale;
  if (raw < kModelOptMinBlockScale) raw = kModelOptMinBlockScale;
  return FloatToE4M3(raw);
}

}  // namespace nvfp4
}  // namespace quantd

#endif  // QUANTD_CORE_FORMATS_NVFP4_LAYOUT_H_
