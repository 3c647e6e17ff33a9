// The multi-threaded CPU path's inner loops for the "fp8" format
// (core/formats/fp8.cc): source types, the magnitude and non-finite scans,
// and the vectorised quantization of a run of elements. Internal to fp8.cc;
// a header only to keep that file small. Every function here gives exactly
// fp8::QuantizeValue's bytes (tests/core/fp8_test.cc).
#ifndef QUANTD_CORE_FORMATS_FP8_CPU_H_
#define QUANTD_CORE_FORMATS_FP8_CPU_H_

#include <cstdint>
#include <cstring>

#include "core/formats/cpu_lanes.h"
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

using cpu_lanes::Bf16Src;
using cpu_lanes::Clamp4;
using cpu_lanes::F16Src;
using cpu_lanes::F32Src;
using cpu_lanes::F4;
using cpu_lanes::I4;
using cpu_lanes::Lanes8;
using cpu_lanes::Load8;
using cpu_lanes::MaxMagnitude;
using cpu_lanes::U4;

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
