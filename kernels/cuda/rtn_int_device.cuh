// Device helpers of the rtn_int kernels (kernels/cuda/rtn_int.cu): loading
// 8-element vectors, group statistics, and quantizing with the functions of
// core/formats/rtn_int_layout.h. Included by rtn_int.cu only.
#ifndef QUANTD_KERNELS_CUDA_RTN_INT_DEVICE_CUH_
#define QUANTD_KERNELS_CUDA_RTN_INT_DEVICE_CUH_

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/formats/rtn_int_layout.h"

namespace quantd {
namespace rtn_device {

constexpr int kBlock = 256;
constexpr int kWarps = kBlock / 32;
constexpr uint32_t kNonFinite = 0x7f800000u;  // float32 magnitudes >= this: Inf or NaN

enum class Src { kF32, kF16, kBF16 };

// Kernel arguments, passed by value.
struct Args {
  int64_t rows, cols, group_size, groups;
  int team_shift;  // team kernel: log2(threads per group)
  int vec_shift;   // team kernel: log2(8-element vectors per group)
  rtn::ScaleType scale_type;
  const void* input;
  uint32_t* packed;
  void* scales;
  uint32_t* zero_points;  // nullptr when symmetric
  unsigned long long* first_bad;
};

// ---------------------------------------------------------------------------
// Loading

// The raw bits of 8 consecutive elements.
template <Src kSrc>
struct RawVec {
  uint4 v[kSrc == Src::kF32 ? 2 : 1];
};

// Raw elements 8 * vec .. 8 * vec + 7 of the input (16-byte loads).
template <Src kSrc>
__device__ __forceinline__ RawVec<kSrc> LoadRaw(const void* in, int64_t vec) {
  RawVec<kSrc> r;
  if constexpr (kSrc == Src::kF32) {
    r.v[0] = __ldg(reinterpret_cast<const uint4*>(in) + 2 * vec);
    r.v[1] = __ldg(reinterpret_cast<const uint4*>(in) + 2 * vec + 1);
  } else {
    r.v[0] = __ldg(reinterpret_cast<const uint4*>(in) + vec);
  }
  return r;
}

template <Src kSrc>
__device__ __forceinline__ float HalfBitsToFloat(uint32_t h) {
  if constexpr (kSrc == Src::kBF16) {
    return __uint_as_float(h << 16);
  } else {
    return __half2float(__ushort_as_half(static_cast<unsigned short>(h)));
  }
}

// The raw elements as float32 (exact conversions).
template <Src kSrc>
__device__ __forceinline__ void Convert8(const RawVec<kSrc>& r, float (&x)[8]) {
  if constexpr (kSrc == Src::kF32) {
    const uint32_t w[8] = {r.v[0].x, r.v[0].y, r.v[0].z, r.v[0].w,
                           r.v[1].x, r.v[1].y, r.v[1].z, r.v[1].w};
#pragma unroll
    for (int j = 0; j < 8; ++j) x[j] = __uint_as_float(w[j]);
  } else {
    const uint32_t w[4] = {r.v[0].x, r.v[0].y, r.v[0].z, r.v[0].w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if constexpr (kSrc == Src::kBF16) {
        x[2 * j] = __uint_as_float(w[j] << 16);
        x[2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
      } else {
        x[2 * j] = HalfBitsToFloat<kSrc>(w[j] & 0xffffu);
        x[2 * j + 1] = HalfBitsToFloat<kSrc>(w[j] >> 16);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Group statistics

// Order-preserving key of float32 bits (-0 < +0); its own inverse.
__device__ __forceinline__ int32_t Key(uint32_t u) {
  const int32_t s = static_cast<int32_t>(u);
  return s ^ ((s >> 31) & 0x7fffffff);
}

struct Stats {
  uint32_t mag = 0;  // largest magnitude (float32 bits, sign cleared)
  int32_t lo = 0;    // key of min(min(x), +0)
  int32_t hi = 0;    // key of max(max(x), +0)
};

// Folds 8 float32 values into `s`. A group holds a non-finite value exactly
// when its reduced magnitude is >= kNonFinite (Inf and NaN magnitudes are
// the largest); FirstNonFinite then finds it.
template <bool kSym>
__device__ __forceinline__ void Accumulate(const float (&x)[8], Stats& s) {
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const uint32_t u = __float_as_uint(x[j]);
    s.mag = max(s.mag, u & 0x7fffffffu);
    if constexpr (!kSym) {
      s.lo = min(s.lo, Key(u));
      s.hi = max(s.hi, Key(u));
    }
  }
}

// Reductions on raw 16-bit pairs (BF16, F16): two elements per 32-bit word
// with SIMD-in-a-word min/max, about one instruction per element.
// Magnitudes and keys order as their float32 conversions do (those are exact
// and monotone), so Finish() gives the Stats Accumulate would.
struct PairStats {
  uint32_t mag = 0;  // per half: largest magnitude bits
  uint32_t lo = 0;   // per half: smallest key (signed 16-bit), from +0
  uint32_t hi = 0;   // per half: largest key
};

template <bool kSym>
__device__ __forceinline__ void AccumulatePairs(const uint4& v, PairStats& p) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    if constexpr (kSym) {
      p.mag = __vmaxu2(p.mag, w[j] & 0x7fff7fffu);
    } else {
      // Per half: s ^ (s < 0 ? 0x7fff : 0), the 16-bit form of Key(). PRMT
      // with sign-replicating selectors (0x9, 0xb: bytes 1 and 3) spreads
      // each half's sign over the half.
      uint32_t sign;
      asm("prmt.b32 %0, %1, 0, 0xbb99;" : "=r"(sign) : "r"(w[j]));
      const uint32_t key = w[j] ^ (sign & 0x7fff7fffu);
      p.lo = __vmins2(p.lo, key);
      p.hi = __vmaxs2(p.hi, key);
    }
  }
}

template <Src kSrc, bool kSym>
__device__ __forceinline__ Stats Finish(const PairStats& p) {
  Stats s;
  if constexpr (kSym) {
    s.mag = __float_as_uint(HalfBitsToFloat<kSrc>(max(p.mag & 0xffffu, p.mag >> 16)));
  } else {
    const auto half = [](uint32_t w, int i) {
      return static_cast<int32_t>(static_cast<int16_t>(w >> (16 * i)));
    };
    // The 16-bit key is its own inverse: back to raw bits, then a float key.
    const auto raw = [](int32_t k16) {
      return static_cast<uint32_t>(k16 ^ ((k16 >> 15) & 0x7fff)) & 0xffffu;
    };
    const uint32_t lo = raw(min(half(p.lo, 0), half(p.lo, 1)));
    const uint32_t hi = raw(max(half(p.hi, 0), half(p.hi, 1)));
    s.lo = Key(__float_as_uint(HalfBitsToFloat<kSrc>(lo)));
    s.hi = Key(__float_as_uint(HalfBitsToFloat<kSrc>(hi)));
    // The largest magnitude is that of the smallest or the largest value
    // (both include +0), Inf and NaN among them.
    s.mag = __float_as_uint(HalfBitsToFloat<kSrc>(max(lo & 0x7fffu, hi & 0x7fffu)));
  }
  return s;
}

// Index of the first non-finite of 8 values, or 8.
__device__ __forceinline__ int FirstNonFinite(const float (&x)[8]) {
  int bad = 8;
#pragma unroll
  for (int j = 7; j >= 0; --j) {
    if ((__float_as_uint(x[j]) & 0x7fffffffu) >= kNonFinite) bad = j;
  }
  return bad;
}

template <bool kSym>
__device__ __forceinline__ void ShuffleCombine(Stats& s, int offset) {
  s.mag = max(s.mag, __shfl_xor_sync(0xffffffffu, s.mag, offset));
  if constexpr (!kSym) {
    s.lo = min(s.lo, __shfl_xor_sync(0xffffffffu, s.lo, offset));
    s.hi = max(s.hi, __shfl_xor_sync(0xffffffffu, s.hi, offset));
  }
}

template <int kBits, bool kSym>
__device__ __forceinline__ rtn::GroupParams Params(const Stats& s, rtn::ScaleType t) {
  if constexpr (kSym) {
    return rtn::SymmetricParams(__uint_as_float(s.mag), kBits, t);
  } else {
    return rtn::AsymmetricParams(__uint_as_float(static_cast<uint32_t>(Key(s.lo))),
                                 __uint_as_float(static_cast<uint32_t>(Key(s.hi))), kBits, t);
  }
}

// Writes the scale (and zero point) of group g of `row`.
template <int kBits, bool kSym>
__device__ __forceinline__ void StoreGroup(const Args& a, int64_t row, int64_t g,
                                           const rtn::GroupParams& gp) {
  const int64_t i = row * a.groups + g;
  if (a.scale_type == rtn::ScaleType::kF32) {
    static_cast<uint32_t*>(a.scales)[i] = gp.scale.bits;
  } else {
    static_cast<uint16_t*>(a.scales)[i] = static_cast<uint16_t>(gp.scale.bits);
  }
  if constexpr (!kSym) {
    constexpr int kPf = rtn::PackFactor(kBits);
    atomicOr(a.zero_points + (row / kPf) * a.groups + g,
             rtn::PlaceCode(static_cast<uint32_t>(gp.zero_point + rtn::CodeOffset(kBits)), kBits,
                            static_cast<int>(row % kPf)));
  }
}

// ---------------------------------------------------------------------------
// Quantizing

// One group's constants for quantizing its elements.
//
// The quotient x / S must be the IEEE round-to-nearest one, as on the host.
// __fdiv_rn recomputes the reciprocal of S (a quarter-rate MUFU.RCP and a
// refinement) for every element; here it is hoisted: y = RN(1/S) (correctly
// rounded), q0 = RN(x*y) (within 1.5 ulps of x/S), one remainder correction
// q1 = RN(q0 + RN(x - S*q0)*y) (within an ulp), and RN(q1 + (x - S*q1)*y),
// which is RN(x/S) by Markstein's theorem when y is correctly rounded, q1
// within an ulp and the remainder x - S*q1 exact. The remainder is exact
// under FMA when it is a multiple of 2^-149: true for S >= 2^-100 and |q1|
// >= 1/4, and smaller quotients are far from the half-integers where
// rounding turns, so their code (rne 0) is right regardless. Stored scales
// are in [2^-100, 2^100] except at the clamps (2^-126, FLT_MAX): outside
// it the kernel calls __fdiv_rn. x*y cannot overflow: |x / S| <= ~15
// unless S was clamped down to the F16 maximum (then |x / S| < 2^113).
struct Quantizer {
  float s, y;
  bool fast;
  rtn::CodeParams code;
  uint32_t fix;  // added to the sum of RoundedBits << (bits * j) of a word
};

template <int kBits>
__device__ __forceinline__ Quantizer MakeQuantizer(const rtn::GroupParams& gp) {
  Quantizer q;
  q.s = gp.scale.value;
  q.y = __frcp_rn(q.s);
  q.fast = q.s >= 0x1p-100f && q.s <= 0x1p100f;
  q.code = rtn::MakeCodeParams(gp.zero_point, kBits);
  // Code j of a word is RoundedBits_j - kCodeBitsBase + shift: the sum of
  // the shifted RoundedBits needs (shift - base) times 0x11111111
  // (0x01010101 for int8) added, modulo 2^32.
  q.fix = (q.code.shift - rtn::kCodeBitsBase) * (kBits == 4 ? 0x11111111u : 0x01010101u);
  return q;
}

template <bool kFast>
__device__ __forceinline__ float Quotient(const Quantizer& q, float x) {
  if constexpr (kFast) {
    const float q0 = __fmul_rn(x, q.y);
    const float q1 = __fmaf_rn(__fmaf_rn(-q.s, q0, x), q.y, q0);
    return __fmaf_rn(__fmaf_rn(-q.s, q1, x), q.y, q1);
  } else {
    return __fdiv_rn(x, q.s);
  }
}

// The packed word(s) of 8 values: .x (int4), or .x and .y (int8).
template <int kBits, bool kFast>
__device__ __forceinline__ uint2 Pack8(const float (&x)[8], const Quantizer& q) {
  uint32_t w[2] = {q.fix, q.fix};
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const uint32_t bits = rtn::RoundedBits(Quotient<kFast>(q, x[j]), q.code);
    if constexpr (kBits == 4) {
      w[0] += bits << (4 * j);
    } else {
      w[j / 4] += bits << (8 * (j % 4));
    }
  }
  return make_uint2(w[0], w[1]);
}

}  // namespace rtn_device
}  // namespace quantd

#endif  // QUANTD_KERNELS_CUDA_RTN_INT_DEVICE_CUH_
