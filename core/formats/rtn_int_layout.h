// The arithmetic and bit layout of the "rtn_int" format (round-to-nearest
// int4/int8 in compressed-tensors pack-quantized layout), shared by the
// scalar reference (core/formats/rtn_int.cc) and the CUDA kernel
// (kernels/cuda/rtn_int.cu). Every function here is QUANTD_HD so that host
// and device compute the same bits: both sides call these functions instead
// of repeating the formulas. (The kernel computes the codes through
// CodeParams/RoundedBits below and divides with a hoisted reciprocal plus
// exact corrections, kernels/cuda/rtn_int_device.cuh; both give exactly
// what QuantizeValue and DivRn give, which the tests check.)
//
// Per group of elements x (one group = `group_size` consecutive elements of a
// row, or the whole row per channel), in float32:
//   symmetric:  s = absmax / ((qmax - qmin) / 2)       (absmax / 7.5, / 127.5)
//               zp = 0
//   asymmetric: mn = min(min(x), 0), mx = max(max(x), 0)
//               s  = (mx - mn) / (qmax - qmin)          ((mx - mn) / 15)
//   s is then rounded (to nearest even) to the scale dtype; that stored
//   value S is used for everything below, so decoding q * S is consistent:
//     s == 0 (an all-zero group, or one whose scale underflows float32)
//        -> S = kZeroGroupScale (1.0): every code is then the zero point and
//           decodes to exactly 0;
//     S below the dtype's smallest normal (e.g. F16 2^-14) -> that smallest
//        normal (codes get coarser but never saturate);
//     S infinite (F16 scales of weights beyond ~491000, or an asymmetric
//        F32 range that overflows) -> the dtype's largest finite value.
//   asymmetric: zp = rne(clamp(qmin - mn / S, qmin, qmax)) as an integer
//   q = clamp(rne(x / S) + zp, qmin, qmax), qmin/qmax = -8/7 (int4),
//       -128/127 (int8); rne = round half to even; x / S is the correctly
//       rounded IEEE quotient (no approximate reciprocal).
//   decode: (q - zp) * S in float32 (for a group whose absmax is within 7%
//   of FLT_MAX, -8 * S overflows to -inf, as in compressed-tensors).
//
// Packing (compressed-tensors "pack-quantized", see
// docs/research/compressed_tensors_format.md §1.1-1.2): a code is stored as
// u = q + 2^(bits-1) in `bits` bits; pf = 32 / bits codes share an int32
// word, code i at bits [bits*i, bits*i + bits). weight_packed packs pf
// consecutive columns of a row; weight_zero_point packs the zero points of pf
// consecutive rows of one group column. Padding codes are raw 0.
#ifndef QUANTD_CORE_FORMATS_RTN_INT_LAYOUT_H_
#define QUANTD_CORE_FORMATS_RTN_INT_LAYOUT_H_

#include <stdint.h>

#include "core/tensor/float_bits.h"
#include "core/util/hostdevice.h"

#if !defined(__CUDA_ARCH__)
#include <math.h>
#endif

namespace quantd {
namespace rtn {

// The dtype a scale is stored in (the weight's dtype in compressed-tensors).
enum class ScaleType : uint8_t { kF32 = 0, kF16 = 1, kBF16 = 2 };

// Scale of a group that is entirely zero.
constexpr float kZeroGroupScale = 1.0f;

QUANTD_HD constexpr int PackFactor(int bits) { return 32 / bits; }
QUANTD_HD constexpr int QMin(int bits) { return -(1 << (bits - 1)); }
QUANTD_HD constexpr int QMax(int bits) { return (1 << (bits - 1)) - 1; }
// Added to a signed code to store it unsigned (8 for int4, 128 for int8).
QUANTD_HD constexpr int CodeOffset(int bits) { return 1 << (bits - 1); }
QUANTD_HD constexpr uint32_t CodeMask(int bits) { return (1u << bits) - 1u; }

static_assert(PackFactor(4) == 8 && PackFactor(8) == 4, "codes per int32 word");
static_assert(QMin(4) == -8 && QMax(4) == 7 && QMin(8) == -128 && QMax(8) == 127, "code ranges");
static_assert(CodeOffset(4) == 8 && CodeOffset(8) == 128, "compressed-tensors offsets");

// Word holding unsigned code `u` (already offset) at slot `i` of its word.
QUANTD_HD uint32_t PlaceCode(uint32_t u, int bits, int i) {
  return (u & CodeMask(bits)) << (bits * i);
}
// Signed code at slot `i` of `word`.
QUANTD_HD int ExtractCode(uint32_t word, int bits, int i) {
  return static_cast<int>((word >> (bits * i)) & CodeMask(bits)) - CodeOffset(bits);
}

// IEEE round-to-nearest division on both sides (nvcc might otherwise be
// told to approximate; __fdiv_rn is never approximated).
QUANTD_HD float DivRn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

// Round half to even of |v| <= 2^22. The host adds and subtracts 1.5 * 2^23
// (exact IEEE arithmetic in the default rounding mode; vectorises, unlike a
// call to nearbyintf), the device uses rintf; both equal nearbyintf(v).
QUANTD_HD float RoundHalfEvenSmall(float v) {
#if defined(__CUDA_ARCH__)
  return rintf(v);
#else
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  return (v + kMagic) - kMagic;
#endif
}

// v clamped to [lo, hi]; v is never NaN here (for which the two
// formulations would differ).
QUANTD_HD float ClampF(float v, float lo, float hi) {
#if defined(__CUDA_ARCH__)
  return fminf(fmaxf(v, lo), hi);  // FMNMX, not compare-and-select
#else
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
#endif
}

// The stored form of a scale: its float32 value and its bits in the scale
// dtype (low 16 bits for F16/BF16).
struct StoredScale {
  float value;
  uint32_t bits;
};

// Rounds a raw (non-negative, non-NaN, possibly infinite) scale to `t` with
// the fallbacks described at the top of this file.
QUANTD_HD StoredScale StoreScale(float raw, ScaleType t) {
  if (!(raw > 0.0f)) raw = kZeroGroupScale;
  StoredScale s;
  switch (t) {
    case ScaleType::kF16: {
      uint32_t h = FloatToF16(raw);
      if (h < 0x0400u) h = 0x0400u;   // zero or subnormal: 2^-14
      if (h >= 0x7c00u) h = 0x7bffu;  // inf: 65504
      s.bits = h;
      s.value = F16ToFloat(static_cast<uint16_t>(h));
      break;
    }
    case ScaleType::kBF16: {
      uint32_t h = FloatToBf16(raw);
      if (h < 0x0080u) h = 0x0080u;   // zero or subnormal: 2^-126
      if (h >= 0x7f80u) h = 0x7f7fu;  // inf: 3.39e38
      s.bits = h;
      s.value = Bf16ToFloat(static_cast<uint16_t>(h));
      break;
    }
    default: {
      uint32_t u = FloatToBits(raw);
      if (u < 0x00800000u) u = 0x00800000u;   // subnormal: 2^-126
      if (u >= 0x7f800000u) u = 0x7f7fffffu;  // inf: FLT_MAX
      s.bits = u;
      s.value = BitsToFloat(u);
      break;
    }
  }
  return s;
}

struct GroupParams {
  StoredScale scale;
  int zero_point;  // 0 when symmetric
};

// absmax >= 0 finite.
QUANTD_HD GroupParams SymmetricParams(float absmax, int bits, ScaleType t) {
  const float half_range = static_cast<float>(QMax(bits) - QMin(bits)) * 0.5f;  // 7.5, 127.5
  GroupParams g;
  g.scale = StoreScale(DivRn(absmax, half_range), t);
  g.zero_point = 0;
  return g;
}

// mn <= 0 <= mx, finite.
QUANTD_HD GroupParams AsymmetricParams(float mn, float mx, int bits, ScaleType t) {
  const float qmin = static_cast<float>(QMin(bits));
  const float qmax = static_cast<float>(QMax(bits));
  GroupParams g;
  g.scale = StoreScale(DivRn(mx - mn, qmax - qmin), t);
  const float zp = ClampF(qmin - DivRn(mn, g.scale.value), qmin, qmax);
  g.zero_point = static_cast<int>(RoundHalfEvenSmall(zp));
  return g;
}

// The signed code of x (finite) with stored scale `scale` and zero point
// `zero_point` (as float), clamped to [qmin, qmax] given as floats.
// Clamping x / S to +-1024 first changes nothing (|zp| <= 128) and keeps
// RoundHalfEvenSmall in its domain.
QUANTD_HD int QuantizeValue(float x, float scale, float zero_point, float qmin, float qmax) {
  const float v = ClampF(DivRn(x, scale), -1024.0f, 1024.0f);
  const float q = ClampF(RoundHalfEvenSmall(v) + zero_point, qmin, qmax);
  return static_cast<int>(q);
}

// The same codes in the form the CUDA kernel computes them (float selects,
// float-to-int conversions and integer clamps cost instructions there):
// because the clamp bounds are integers, clamping the quotient v = x / S to
// [qmin - zp, qmax - zp] before rounding equals rounding and then clamping
// (and makes the +-1024 clamp unnecessary); adding 1.5 * 2^23 to a value of
// magnitude <= 2^22 rounds it half to even to an integer held in the low
// mantissa bits: the sum's bits are kCodeBitsBase + rne(v). The zero point
// and offset are added after the rounding (adding an odd integer first
// would flip the ties). tests/core/rtn_int_test.cc checks the equality
// with QuantizeValue.
constexpr uint32_t kCodeBitsBase = 0x4B400000u;  // bits of 1.5 * 2^23

struct CodeParams {
  float lo, hi;    // qmin - zp, qmax - zp
  uint32_t shift;  // zp + offset: code = rne(clamped v) + shift
};

QUANTD_HD CodeParams MakeCodeParams(int zero_point, int bits) {
  CodeParams c;
  c.lo = static_cast<float>(QMin(bits) - zero_point);
  c.hi = static_cast<float>(QMax(bits) - zero_point);
  c.shift = static_cast<uint32_t>(zero_point + CodeOffset(bits));
  return c;
}

// kCodeBitsBase + rne(v clamped to [lo, hi]) for a quotient v (not NaN).
QUANTD_HD uint32_t RoundedBits(float v, const CodeParams& c) {
  return FloatToBits(ClampF(v, c.lo, c.hi) + 12582912.0f);
}

// QuantizeValue(x, scale, zp, qmin, qmax) + CodeOffset(bits) for v = x / scale.
QUANTD_HD uint32_t CodeOfQuotient(float v, const CodeParams& c) {
  return RoundedBits(v, c) - kCodeBitsBase + c.shift;
}

}  // namespace rtn
}  // namespace quantd

#endif  // QUANTD_CORE_FORMATS_RTN_INT_LAYOUT_H_
