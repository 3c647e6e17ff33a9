// Bit-exact conversions between float32 and the 16-bit float types, shared by
// host and device code so that reference and kernels round identically.
#ifndef QUANTD_CORE_TENSOR_FLOAT_BITS_H_
#define QUANTD_CORE_TENSOR_FLOAT_BITS_H_

#include <stdint.h>
#include <string.h>

#include "core/util/hostdevice.h"

namespace quantd {

QUANTD_HD uint32_t FloatToBits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
#endif
}

QUANTD_HD float BitsToFloat(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  memcpy(&f, &u, 4);
  return f;
#endif
}

// bfloat16 -> float32 is exact.
QUANTD_HD float Bf16ToFloat(uint16_t h) { return BitsToFloat(static_cast<uint32_t>(h) << 16); }

// float32 -> bfloat16, round to nearest even; NaN stays a (quiet) NaN.
QUANTD_HD uint16_t FloatToBf16(float f) {
  uint32_t u = FloatToBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// IEEE binary16 -> float32 is exact (subnormals included).
QUANTD_HD float F16ToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1fu) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal: normalise.
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    bits = sign | ((112u - e) << 23) | ((mant & 0x3ffu) << 13);
  }
  return BitsToFloat(bits);
}

// float32 -> IEEE binary16, round to nearest even, overflow to infinity.
QUANTD_HD uint16_t FloatToF16(float f) {
#if !defined(__CUDA_ARCH__) && defined(__x86_64__) && !defined(__FMA__)
  // x86-64 host without FMA (nothing below can be contracted): the same
  // result without branches (ggml's legacy quantizers convert two scales
  // per 32 elements). |f| * 2^112 * 2^-110 is |f| * 4, or infinity past
  // binary16's range; adding the power of two `bias` (2^13 binary16 ulps
  // above |f|'s exponent, at least the subnormal threshold's) makes the
  // float32 add round |f| to binary16's grid, nearest even, and leaves the
  // binary16 exponent and significand in the sum's low bits.
  const uint32_t w = FloatToBits(f);
  const uint32_t twice = w + w;  // sign shifted out
  float base = (BitsToFloat(FloatToBits(f) & 0x7fffffffu) * BitsToFloat(0x77800000u)) *
               BitsToFloat(0x08800000u);
  uint32_t bias = twice & 0xff000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = BitsToFloat((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = FloatToBits(base);
  const uint32_t magnitude = ((bits >> 13) & 0x7c00u) + (bits & 0x0fffu);
  return static_cast<uint16_t>(((w & 0x80000000u) >> 16) |
                               (twice > 0xff000000u ? 0x7e00u : magnitude));
#else
  const uint32_t u = FloatToBits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: inf
  if (abs < 0x38800000u) {
    // Result is subnormal or zero: scale so that one f16 subnormal ulp is 1.
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // < 2^-25 rounds to 0
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;  // 14..24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = abs - 0x38000000u;  // rebias exponent 127 -> 15 (in place)
  r += 0xfffu + ((r >> 13) & 1u);
  return static_cast<uint16_t>(sign | (r >> 13));
#endif
}

}  // namespace quantd

#endif  // QUANTD_CORE_TENSOR_FLOAT_BITS_H_
