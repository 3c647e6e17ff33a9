// The multi-threaded CPU path's inner loops for the "fp8" format
// (core/formats/fp8.cc): source types, the magnitude and non-finite scans,
// and the vectorised quantization of a run of elements. Internal to fp8.cc;
// a header only to keep that file small. Every function here gives exactly
// fp8::QuantizeValue's bytes (tests/core/fp8_test.cc).
#ifndef QUANTD_CORE_FORMATS_FP8_CPU_H_
#define QUANTD_CORE_FORMATS_FP8_CPU_H_

#include <cstdint>
#include <cstring>

#include "core/formats/fp8.h"
#include "core/formats/fp8_e4m3.h"
#include "core/tensor/float_bits.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "fp8 stores 8 code bytes at a time in little-endian order"
#endif

namespace quantd {
namespace fp8_cpu {

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

// Index of the first non-finite element of x[0, n), or -1.
template <class Src>
int64_t FirstNonFinite(const typename Src::Bits* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (static_cast<typename Src::Signed>(x[i] & Src::kMagMask) >= Src::kNonFinite) return i;
  }
  return -1;
}

// The vectorised path (gcc -O2 does not vectorise the scalar loop), written
// with GCC/Clang vector extensions plus SSE2 intrinsics (baseline on x86-64)
// for min/max, widening and narrowing. Lane by lane it performs exactly the
// IEEE operations of fp8::QuantizeValue on finite inputs: x / S, ClampF as
// max-then-min (MAXPS(lo, v) is lo > v ? lo : v; MINPS(hi, v) is
// hi < v ? hi : v), and e4m3::FloatToE4m3's integer steps and selects (its
// NaN select is not needed: quotients of finite values are never NaN). The
// tests compare its bytes with a per-element FloatToE4m3(x / S).
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

// (sign | code) of 4 finite quotients, one per lane (e4m3::FloatToE4m3).
inline I4 E4m3Codes4(F4 v) {
  const U4 u = reinterpret_cast<U4>(v);
  const I4 sign = reinterpret_cast<I4>((u >> 24) & 0x80u);
  const U4 abs = u & 0x7fffffffu;
  const I4 subnormal = reinterpret_cast<I4>(reinterpret_cast<F4>(abs) + e4m3::kSubnormalMagic) -
                       e4m3::kSubnormalMagicBits;
  const I4 field =
      reinterpret_cast<I4>((abs + 0x7ffffu + ((abs >> 20) & 1u)) >> 20) - e4m3::kRebias;
  const I4 saturate = field >= e4m3::kMaxCode;  // all ones where the field saturates
  const I4 normal = (saturate & e4m3::kMaxCode) | (~saturate & field);
  const I4 is_sub = reinterpret_cast<I4>(abs) < e4m3::kMinNormalBits;
  return sign | (is_sub & subnormal) | (~is_sub & normal);
}

// Bytes of 8 codes, code i in byte i.
inline uint64_t CodeBytes8(I4 a, I4 b) {
#if defined(__SSE2__)
  const __m128i w = _mm_packs_epi32(reinterpret_cast<__m128i>(a), reinterpret_cast<__m128i>(b));
  return static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_packus_epi16(w, w)));
#else
  uint64_t v = 0;
  for (int i = 0; i < 4; ++i) {
    v |= static_cast<uint64_t>(a[i] & 0xff) << (8 * i);
    v |= static_cast<uint64_t>(b[i] & 0xff) << (8 * i + 32);
  }
  return v;
#endif
}

// Codes of x[0, n) (finite) with stored scale `scale`: fp8::QuantizeValue
// per element, 8 at a time where it can.
template <class Src>
void QuantizeRun(const typename Src::Bits* __restrict x, int64_t n, float scale,
                 uint8_t* __restrict out) {
  const F4 s = F4{} + scale, lo = F4{} - e4m3::kMax, hi = F4{} + e4m3::kMax;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const Lanes8 l = Load8<Src>(x + i);
    const uint64_t bytes =
        CodeBytes8(E4m3Codes4(Clamp4(l.lo / s, lo, hi)), E4m3Codes4(Clamp4(l.hi / s, lo, hi)));
    std::memcpy(out + i, &bytes, 8);  // little-endian: byte i = code i
  }
  for (; i < n; ++i) out[i] = fp8::QuantizeValue(Src::ToFloat(x[i]), scale);
}

}  // namespace fp8_cpu
}  // namespace quantd

#endif  // QUANTD_CORE_FORMATS_FP8_CPU_H_
