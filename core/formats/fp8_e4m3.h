// FP8 E4M3 ("float8_e4m3fn", safetensors "F8_E4M3") conversions, shared by
// host and device code so that references and kernels round identically.
//
// The encoding (OCP FP8 E4M3, the "fn" variant: finite, no infinities):
//   bit 7 sign, bits 6..3 exponent e (bias 7), bits 2..0 mantissa m.
//   e == 0:        subnormal, (-1)^s * m * 2^-9        (0, 2^-9 .. 7 * 2^-9)
//   1 <= e <= 15:  normal, (-1)^s * (1 + m / 8) * 2^(e - 7)
//   e == 15, m == 7 (0x7f, 0xff): NaN, the only non-finite codes.
// Largest finite magnitude 448 (0x7e), smallest normal 2^-6 (0x08), smallest
// subnormal 2^-9 (0x01). Both zeros (0x00, 0x80) exist.
//
// FloatToE4m3 rounds to nearest, ties to even, and saturates: every finite
// float (and +-Inf) becomes a finite code, magnitudes above 448 becoming
// +-448 (0x7e / 0xfe); only NaN gives a NaN code (0x7f with the input's
// sign). That is PTX's cvt.rn.satfinite. PyTorch's .to(float8_e4m3fn) rounds
// the same way but gives NaN above 464; compressed-tensors clamps to +-448
// before that cast, where the two agree. E4m3ToFloat is exact.
//
// Both use integer operations plus one float addition (whose IEEE
// round-to-nearest does the subnormal rounding), never the CUDA conversion
// intrinsics, so host and device give the same bits. FloatToE4m3 is
// branch-free (both paths computed, one selected) so that it vectorises on
// the host and does not diverge on the device.
#ifndef QUANTD_CORE_FORMATS_FP8_E4M3_H_
#define QUANTD_CORE_FORMATS_FP8_E4M3_H_

#include <stdint.h>

#include "core/tensor/float_bits.h"
#include "core/util/hostdevice.h"

namespace quantd {
namespace e4m3 {

// Largest finite magnitude and its code.
constexpr float kMax = 448.0f;
constexpr uint8_t kMaxCode = 0x7e;
// The NaN code with the sign bit clear.
constexpr uint8_t kNanCode = 0x7f;
// Smallest normal and smallest subnormal magnitudes.
constexpr float kMinNormal = 0.015625f;        // 2^-6, code 0x08
constexpr float kMinSubnormal = 0.001953125f;  // 2^-9, code 0x01

// float32 bits of 2^-6: smaller magnitudes take the subnormal path (which
// may round up to 2^-6 itself, code 0x08).
constexpr int32_t kMinNormalBits = 0x3c800000;
// float32 bits of 2^14, whose ulp is 2^-9 (one E4M3 subnormal step).
constexpr int32_t kSubnormalMagicBits = 0x46800000;
constexpr float kSubnormalMagic = 16384.0f;
// (127 - 7) << 3: a float32's exponent-and-top-3-mantissa-bits field minus
// this is the E4M3 exponent-and-mantissa field.
constexpr int32_t kRebias = 960;

// float -> E4M3 bits, round to nearest even, saturating (see top of file).
QUANTD_HD uint8_t FloatToE4m3(float f) {
  const uint32_t u = FloatToBits(f);
  const uint32_t sign = (u >> 24) & 0x80u;
  const uint32_t abs = u & 0x7fffffffu;
  // |f| < 2^-6: adding 2^14 rounds |f| to a multiple of 2^-9 (ties to
  // even), leaving that multiple (0..8) in the sum's low mantissa bits.
  const int32_t subnormal =
      static_cast<int32_t>(FloatToBits(BitsToFloat(abs) + kSubnormalMagic)) - kSubnormalMagicBits;
  // Otherwise round the mantissa at bit 20 (keeping 3 bits), ties to even;
  // a carry moves into the exponent as it should. Magnitudes past 464 and
  // infinity give fields above 0x7e (0x7f would be NaN): saturate.
  const int32_t field = static_cast<int32_t>((abs + 0x7ffffu + ((abs >> 20) & 1u)) >> 20) - kRebias;
  const int32_t normal = field < kMaxCode ? field : kMaxCode;
  int32_t code = static_cast<int32_t>(abs) < kMinNormalBits ? subnormal : normal;
  code = abs > 0x7f800000u ? kNanCode : code;
  return static_cast<uint8_t>(sign | static_cast<uint32_t>(code));
}

// E4M3 bits -> float, exact (0x7f/0xff give a quiet NaN with that sign).
QUANTD_HD float E4m3ToFloat(uint8_t b) {
  const uint32_t sign = static_cast<uint32_t>(b & 0x80u) << 24;
  const uint32_t em = b & 0x7fu;
  if (em == kNanCode) return BitsToFloat(sign | 0x7fc00000u);
  if (em < 0x08u) {
    // Subnormal: m * 2^-9, exact (a normal float32).
    return BitsToFloat(FloatToBits(static_cast<float>(em) * kMinSubnormal) | sign);
  }
  return BitsToFloat(sign | ((em + static_cast<uint32_t>(kRebias)) << 20));
}

}  // namespace e4m3
}  // namespace quantd

#endif  // QUANTD_CORE_FORMATS_FP8_E4M3_H_
