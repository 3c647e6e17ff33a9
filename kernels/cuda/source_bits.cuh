// Device helpers shared by the nvfp4 and bnb4 kernels: 16 consecutive
// source elements (F32, F16 or BF16) kept as the raw bits they were loaded
// as, their largest magnitude found on those bits, and their exact float32
// values.
#ifndef QUANTD_KERNELS_CUDA_SOURCE_BITS_CUH_
#define QUANTD_KERNELS_CUDA_SOURCE_BITS_CUH_

#include <cuda_fp16.h>
#include <stdint.h>

namespace quantd {
namespace source_bits {

enum class Src { kF32, kF16, kBF16 };

// 16 elements: 16-bit sources two to a word (element 2k in the low half),
// F32 one to a word.
template <Src S>
struct Raw16 {
  static constexpr int kWords = S == Src::kF32 ? 16 : 8;
  uint32_t w[kWords];
};

template <Src S>
__device__ __forceinline__ Raw16<S> ZeroRaw16() {
  Raw16<S> r;
#pragma unroll
  for (int i = 0; i < Raw16<S>::kWords; ++i) r.w[i] = 0;
  return r;
}

// Elements [first, first + 16) of `in` (first a multiple of 16) by 16-byte
// streaming loads (read once).
template <Src S, typename Index>
__device__ __forceinline__ Raw16<S> LoadRaw16(const void* in, Index first) {
  constexpr int kPerVector = S == Src::kF32 ? 4 : 8;  // elements per 16 bytes
  const uint4* p = static_cast<const uint4*>(in) + first / kPerVector;
  Raw16<S> r;
#pragma unroll
  for (int v = 0; v < Raw16<S>::kWords / 4; ++v) {
    const uint4 u = __ldcs(p + v);
    r.w[4 * v] = u.x, r.w[4 * v + 1] = u.y, r.w[4 * v + 2] = u.z, r.w[4 * v + 3] = u.w;
  }
  return r;
}

// Element i as float32 (exact).
template <Src S>
__device__ __forceinline__ float Element(const Raw16<S>& r, int i) {
  if constexpr (S == Src::kF32) {
    return __uint_as_float(r.w[i]);
  } else if constexpr (S == Src::kBF16) {
    return __uint_as_float(i % 2 == 0 ? r.w[i / 2] << 16 : r.w[i / 2] & 0xffff0000u);
  } else {
    const uint32_t h = i % 2 == 0 ? r.w[i / 2] & 0xffffu : r.w[i / 2] >> 16;
    return __half2float(__ushort_as_half(static_cast<unsigned short>(h)));
  }
}

// The largest magnitude among the elements in the source's own bits
// (non-negative floats order as their bits do; NaN above Inf): two 16-bit
// lanes per integer max for 16-bit sources.
template <Src S>
__device__ __forceinline__ uint32_t MaxMagnitudeBits(const Raw16<S>& r) {
  uint32_t m = 0;
  if constexpr (S == Src::kF32) {
#pragma unroll
    for (int i = 0; i < Raw16<S>::kWords; ++i) m = max(m, r.w[i] & 0x7fffffffu);
  } else {
#pragma unroll
    for (int i = 0; i < Raw16<S>::kWords; ++i) m = __vmaxu2(m, r.w[i] & 0x7fff7fffu);
    m = max(m & 0xffffu, m >> 16);
  }
  return m;
}

// Whether a magnitude from MaxMagnitudeBits is Inf or NaN.
template <Src S>
__device__ __forceinline__ bool NonFiniteBits(uint32_t m) {
  if constexpr (S == Src::kF32) return m >= 0x7f800000u;
  if constexpr (S == Src::kBF16) return m >= 0x7f80u;
  return m >= 0x7c00u;
}

// A magnitude from MaxMagnitudeBits as float32 (exact).
template <Src S>
__device__ __forceinline__ float MagnitudeToFloat(uint32_t m) {
  if constexpr (S == Src::kF32) return __uint_as_float(m);
  if constexpr (S == Src::kBF16) return __uint_as_float(m << 16);
  return __half2float(__ushort_as_half(static_cast<unsigned short>(m)));
}

}  // namespace source_bits
}  // namespace quantd

#endif  // QUANTD_KERNELS_CUDA_SOURCE_BITS_CUH_
