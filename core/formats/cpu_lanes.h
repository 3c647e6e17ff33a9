// Vector building blocks of the multi-threaded CPU encoders (rtn_int.cc,
// fp8_cpu.h): the float source types (raw bits, an exact float32
// conversion, magnitudes compared as signed integers so that reductions
// vectorise), the largest-magnitude scan, and 8-lane loads and a clamp
// written with GCC/Clang vector extensions plus SSE2 (baseline on x86-64).
// Every operation is exact or an IEEE operation lane by lane, so encoders
// built on them give their scalar references' bytes.
#ifndef QUANTD_CORE_FORMATS_CPU_LANES_H_
#define QUANTD_CORE_FORMATS_CPU_LANES_H_

#include <cstdint>
#include <cstring>

#include "core/tensor/float_bits.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace quantd {
namespace cpu_lanes {

// Float source types: raw bits, their magnitude (sign cleared) compared as
// a signed integer of the source's width (so that the reductions
// vectorise; magnitudes order as the floats do, Inf and NaN largest), and
// an exact conversion to float32.
struct Bf16Src {
  using Bits = uint16_t;
  using Signed = int16_t;
  static constexpr Signed kMagMask = 0x7fff;
  static constexpr Signed kNonFinite = 0x7f80;  // magnitudes >= this: Inf or NaN
  static float ToFloat(Bits b) { return Bf16ToFloat(b); }
};

// IEEE binary16 -> float32, exact and branch-free: subnormals are integers
// times 2^-24.
inline float F16ToFloatFast(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t em = h & 0x7fffu;
  uint32_t bits = (em << 13) + 0x38000000u;  // rebias 15 -> 127
  bits += em >= 0x7c00u ? 0x38000000u : 0u;  // Inf/NaN -> exponent 255
  const float sub = static_cast<float>(static_cast<int32_t>(em)) * 5.9604644775390625e-08f;
  const float f = em < 0x0400u ? sub : BitsToFloat(bits);
  return BitsToFloat(FloatToBits(f) | sign);
}

struct F16Src {
  using Bits = uint16_t;
  using Signed = int16_t;
  static constexpr Signed kMagMask = 0x7fff;
  static constexpr Signed kNonFinite = 0x7c00;
  static float ToFloat(Bits b) { return F16ToFloatFast(b); }
};

struct F32Src {
  using Bits = uint32_t;
  using Signed = int32_t;
  static constexpr Signed kMagMask = 0x7fffffff;
  static constexpr Signed kNonFinite = 0x7f800000;
  static float ToFloat(Bits b) { return BitsToFloat(b); }
};

// The largest magnitude of x[0, n) (raw bits, sign cleared).
template <class Src>
typename Src::Signed MaxMagnitude(const typename Src::Bits* __restrict x, int64_t n) {
  using S = typename Src::Signed;
  S m = 0;
  for (int64_t i = 0; i < n; ++i) {
    const S a = static_cast<S>(x[i] & Src::kMagMask);
    m = a > m ? a : m;
  }
  return m;
}

typedef float F4 __attribute__((vector_size(16)));
typedef int32_t I4 __attribute__((vector_size(16)));
typedef uint32_t U4 __attribute__((vector_size(16)));

struct Lanes8 {
  F4 lo, hi;  // values 0..3 and 4..7
};

template <class Src>
inline Lanes8 Load8(const typename Src::Bits* x);

template <>
inline Lanes8 Load8<Bf16Src>(const uint16_t* x) {
#if defined(__SSE2__)
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x));
  const __m128i zero = _mm_setzero_si128();
  return {reinterpret_cast<F4>(_mm_unpacklo_epi16(zero, v)),
          reinterpret_cast<F4>(_mm_unpackhi_epi16(zero, v))};
#else
  const U4 a = {x[0], x[1], x[2], x[3]}, b = {x[4], x[5], x[6], x[7]};
  return {reinterpret_cast<F4>(a << 16), reinterpret_cast<F4>(b << 16)};
#endif
}

inline F4 F16ToFloat4(U4 h) {  // F16ToFloatFast, lane-wise
  const U4 sign = (h & 0x8000u) << 16;
  const I4 em = reinterpret_cast<I4>(h & 0x7fffu);
  const I4 special = em >= 0x7c00;  // all ones where Inf/NaN
  const I4 bits = (em << 13) + 0x38000000 + (special & 0x38000000);
  const F4 sub = __builtin_convertvector(em, F4) * 5.9604644775390625e-08f;
  const I4 is_sub = em < 0x0400;
  const I4 f = (is_sub & reinterpret_cast<I4>(sub)) | (~is_sub & bits);
  return reinterpret_cast<F4>(reinterpret_cast<U4>(f) | sign);
}

template <>
inline Lanes8 Load8<F16Src>(const uint16_t* x) {
  const U4 a = {x[0], x[1], x[2], x[3]}, b = {x[4], x[5], x[6], x[7]};
  return {F16ToFloat4(a), F16ToFloat4(b)};
}

template <>
inline Lanes8 Load8<F32Src>(const uint32_t* x) {
  Lanes8 l;
  std::memcpy(&l.lo, x, sizeof(F4));
  std::memcpy(&l.hi, x + 4, sizeof(F4));
  return l;
}

inline F4 Clamp4(F4 v, F4 lo, F4 hi) {
#if defined(__SSE2__)
  return reinterpret_cast<F4>(
      _mm_min_ps(reinterpret_cast<__m128>(hi),
                 _mm_max_ps(reinterpret_cast<__m128>(lo), reinterpret_cast<__m128>(v))));
#else
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
#endif
}

}  // namespace cpu_lanes
}  // namespace quantd

#endif  // QUANTD_CORE_FORMATS_CPU_LANES_H_
