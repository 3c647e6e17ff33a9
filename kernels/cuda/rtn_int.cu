#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/formats/rtn_int.h"
#include "core/formats/rtn_int_layout.h"
#include "kernels/cuda/rtn_int.cuh"
#include "kernels/cuda/rtn_int_device.cuh"

namespace quantd {
namespace {

using rtn_device::Accumulate;
using rtn_device::AccumulatePairs;
using rtn_device::Args;
using rtn_device::Convert8;
using rtn_device::Finish;
using rtn_device::FirstNonFinite;
using rtn_device::kBlock;
using rtn_device::kNonFinite;
using rtn_device::kWarps;
using rtn_device::LoadRaw;
using rtn_device::MakeQuantizer;
using rtn_device::Pack8;
using rtn_device::PairStats;
using rtn_device::Params;
using rtn_device::Quantizer;
using rtn_device::RawVec;
using rtn_device::ShuffleCombine;
using rtn_device::Src;
using rtn_device::Stats;
using rtn_device::StoreGroup;

// ---------------------------------------------------------------------------
// Kernels

// 8-element vectors one team-kernel thread owns at most: kept raw in
// registers between the reducing and the quantizing pass.
template <Src kSrc>
constexpr int kTeamVecs = kSrc == Src::kF32 ? 4 : 8;

// log2 of the team size T of TeamKernel for groups of `group_size`: T =
// max(1, group_size / 8 / kTeamVecs), so each thread holds V = group_size /
// 8 / T <= kTeamVecs vectors.
template <Src kSrc>
int TeamShiftFor(int64_t group_size) {
  int shift = 0;
  while ((int64_t{8} * kTeamVecs<kSrc> << shift) < group_size) ++shift;
  return shift;
}

// Stores the packed units (one word per vector for int4, two for int8) of a
// thread that holds vectors first_vec + T * k, k < V.
template <int kV, int kBits>
__device__ __forceinline__ void StoreUnits(const Args& a, uint2 (&u)[kV], int64_t first_vec,
                                           int team_shift, int vecs_per_thread, int lane) {
  constexpr int kWordsPerVec = kBits == 4 ? 1 : 2;
  if (team_shift == 1 && vecs_per_thread == kV) {
    // Teams of two: exchange half the units with the partner (lane ^ 1) so
    // that each thread holds kV consecutive units, then store them 16 bytes
    // at a time. Thread 0 holds units 0, 2, ..; thread 1 units 1, 3, ..
    // Thread 0 wants units 0 .. kV - 1, thread 1 units kV .. 2 kV - 1.
    // Only the pair takes part: other lanes of the warp may have left.
    const unsigned pair = 3u << (threadIdx.x & 30);
    uint2 got[kV / 2];
#pragma unroll
    for (int r = 0; r < kV / 2; ++r) {
      const uint2 give = lane == 0 ? u[kV / 2 + r] : u[r];
      got[r].x = __shfl_xor_sync(pair, give.x, 1);
      if constexpr (kBits == 8) got[r].y = __shfl_xor_sync(pair, give.y, 1);
    }
    uint2 mine[kV];
#pragma unroll
    for (int p = 0; p < kV; ++p) {
      if (lane == 0) {
        mine[p] = p % 2 == 0 ? u[p / 2] : got[p / 2];
      } else {
        mine[p] = p % 2 == 0 ? got[p / 2] : u[kV / 2 + p / 2];
      }
    }
    uint32_t w[kV * kWordsPerVec];
#pragma unroll
    for (int p = 0; p < kV; ++p) {
      w[p * kWordsPerVec] = mine[p].x;
      if constexpr (kBits == 8) w[p * kWordsPerVec + 1] = mine[p].y;
    }
    // The pair's first vector is first_vec - lane; this thread's units start
    // kV vectors later for lane 1.
    uint4* out = reinterpret_cast<uint4*>(a.packed + (first_vec - lane + lane * kV) * kWordsPerVec);
#pragma unroll
    for (int i = 0; i < kV * kWordsPerVec / 4; ++i) {
      __stcs(out + i, make_uint4(w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]));
    }
    return;
  }
  // Otherwise one store per unit (contiguous per thread when T == 1).
#pragma unroll
  for (int k = 0; k < kV; ++k) {
    if (k < vecs_per_thread) {
      const int64_t v = first_vec + (static_cast<int64_t>(k) << team_shift);
      if constexpr (kBits == 4) {
        __stcs(a.packed + v, u[k].x);
      } else {
        __stcs(reinterpret_cast<uint2*>(a.packed) + v, u[k]);
      }
    }
  }
}

// Groups of 8..256 elements (G / 8 a power of two): each group is owned by
// a team of T adjacent threads (TeamShiftFor), thread j of the team holding
// the V = G / 8 / T vectors j, j + T, ... so that each load instruction of
// a warp reads whole sectors (T >= 2). All loads are issued before any
// arithmetic; the group's parameters (a division, a reciprocal) are
// computed once per thread; teams of two swap half their words so that
// each thread stores 16-byte runs.
template <Src kSrc, int kBits, bool kSym>
__global__ void __launch_bounds__(kBlock) TeamKernel(Args a) {
  constexpr int kV = kTeamVecs<kSrc>;
  const int team_shift = a.team_shift;
  const int vecs_per_thread = (1 << a.vec_shift) >> team_shift;  // V
  const int64_t total_groups = a.rows * a.groups;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x;
  const int64_t group = t >> team_shift;  // over the chunk
  const int lane = static_cast<int>(t & ((1 << team_shift) - 1));
  const bool active = group < total_groups;
  const int64_t first_vec = (group << a.vec_shift) + lane;  // then stride T
  RawVec<kSrc> raw[kV];
#pragma unroll
  for (int k = 0; k < kV; ++k) {
    if (active && k < vecs_per_thread) {
      raw[k] = LoadRaw<kSrc>(a.input, first_vec + (static_cast<int64_t>(k) << team_shift));
    }
  }
  Stats s;
  if constexpr (kSrc == Src::kF32) {
#pragma unroll
    for (int k = 0; k < kV; ++k) {
      if (active && k < vecs_per_thread) {
        float x[8];
        Convert8<kSrc>(raw[k], x);
        Accumulate<kSym>(x, s);
      }
    }
  } else {
    PairStats p;
#pragma unroll
    for (int k = 0; k < kV; ++k) {
      if (active && k < vecs_per_thread) AccumulatePairs<kSym>(raw[k].v[0], p);
    }
    s = Finish<kSrc, kSym>(p);
  }
  // Every lane takes part in the shuffles; teams never straddle a warp.
  for (int offset = (1 << team_shift) >> 1; offset > 0; offset >>= 1) {
    ShuffleCombine<kSym>(s, offset);
  }
  // A team is inactive or non-finite as a whole, so the exchange in
  // StoreUnits sees its partner.
  if (!active) return;
  if (s.mag >= kNonFinite) {
#pragma unroll
    for (int k = 0; k < kV; ++k) {
      float x[8];
      Convert8<kSrc>(raw[k], x);
      const int bad = k < vecs_per_thread ? FirstNonFinite(x) : 8;
      if (bad < 8) {
        const int64_t v = first_vec + (static_cast<int64_t>(k) << team_shift);
        atomicMin(a.first_bad, static_cast<unsigned long long>(8 * v + bad));
      }
    }
    return;
  }
  const int64_t row =
      total_groups <= 0xffffffffll
          ? static_cast<int64_t>(static_cast<uint32_t>(group) / static_cast<uint32_t>(a.groups))
          : group / a.groups;
  const int64_t g = group - row * a.groups;
  const rtn::GroupParams gp = Params<kBits, kSym>(s, a.scale_type);
  if (lane == 0) StoreGroup<kBits, kSym>(a, row, g, gp);
  const Quantizer q = MakeQuantizer<kBits>(gp);
  uint2 u[kV];
  if (q.fast) {
#pragma unroll
    for (int k = 0; k < kV; ++k) {
      if (k < vecs_per_thread) {
        float x[8];
        Convert8<kSrc>(raw[k], x);
        u[k] = Pack8<kBits, true>(x, q);
      }
    }
  } else {
#pragma unroll
    for (int k = 0; k < kV; ++k) {
      if (k < vecs_per_thread) {
        float x[8];
        Convert8<kSrc>(raw[k], x);
        u[k] = Pack8<kBits, false>(x, q);
      }
    }
  }
  StoreUnits<kV, kBits>(a, u, first_vec, team_shift, vecs_per_thread, lane);
}

// Raw vectors a block-kernel thread keeps in registers between its passes.
template <Src kSrc>
constexpr int kBlockCachedVecs = kSrc == Src::kF32 ? 4 : 8;

// Quantizes vector i of the block's group (cached or read again) and stores
// its word(s); consecutive threads write consecutive words.
template <Src kSrc, int kBits, bool kFast>
__device__ __forceinline__ void BlockQuantizeStore(const Args& a, const float (&x)[8],
                                                   const Quantizer& q, int64_t row,
                                                   int64_t vec_in_row) {
  const uint2 w = Pack8<kBits, kFast>(x, q);
  if constexpr (kBits == 4) {
    __stcs(a.packed + row * (a.cols >> 3) + vec_in_row, w.x);
  } else {
    __stcs(reinterpret_cast<uint2*>(a.packed + row * (a.cols >> 2)) + vec_in_row, w);
  }
}

template <Src kSrc, int kBits, bool kFast>
__device__ __forceinline__ void BlockQuantize(const Args& a,
                                              const RawVec<kSrc> (&cache)[kBlockCachedVecs<kSrc>],
                                              const Quantizer& q, int64_t row, int64_t first_vec,
                                              int64_t first_row_vec, int64_t vecs) {
#pragma unroll
  for (int k = 0; k < kBlockCachedVecs<kSrc>; ++k) {
    const int64_t i = threadIdx.x + k * kBlock;
    if (i < vecs) {
      float x[8];
      Convert8<kSrc>(cache[k], x);
      BlockQuantizeStore<kSrc, kBits, kFast>(a, x, q, row, first_row_vec + i);
    }
  }
  for (int64_t i = threadIdx.x + kBlockCachedVecs<kSrc> * kBlock; i < vecs; i += kBlock) {
    float x[8];
    Convert8<kSrc>(LoadRaw<kSrc>(a.input, first_vec + i), x);
    BlockQuantizeStore<kSrc, kBits, kFast>(a, x, q, row, first_row_vec + i);
  }
}

// Any group size that is a multiple of 8 (per channel): one block per
// (row, group). The first kBlockCachedVecs vectors of each thread stay in
// registers between the reducing and the quantizing pass; the rest (groups
// over 16384 elements) are read again.
template <Src kSrc, int kBits, bool kSym>
__global__ void __launch_bounds__(kBlock) BlockKernel(Args a) {
  __shared__ Stats warp_stats[kWarps];
  const int64_t row = blockIdx.x / a.groups;
  const int64_t g = blockIdx.x - row * a.groups;
  const int64_t vecs = a.group_size >> 3;
  const int64_t first_vec = (row * a.cols + g * a.group_size) >> 3;  // in the whole chunk
  const int64_t first_row_vec = (g * a.group_size) >> 3;             // in the row
  Stats s;
  RawVec<kSrc> cache[kBlockCachedVecs<kSrc>];
#pragma unroll
  for (int k = 0; k < kBlockCachedVecs<kSrc>; ++k) {
    const int64_t i = threadIdx.x + k * kBlock;
    if (i < vecs) cache[k] = LoadRaw<kSrc>(a.input, first_vec + i);
  }
#pragma unroll
  for (int k = 0; k < kBlockCachedVecs<kSrc>; ++k) {
    const int64_t i = threadIdx.x + k * kBlock;
    if (i < vecs) {
      float x[8];
      Convert8<kSrc>(cache[k], x);
      Accumulate<kSym>(x, s);
    }
  }
  for (int64_t i = threadIdx.x + kBlockCachedVecs<kSrc> * kBlock; i < vecs; i += kBlock) {
    float x[8];
    Convert8<kSrc>(LoadRaw<kSrc>(a.input, first_vec + i), x);
    Accumulate<kSym>(x, s);
  }
  for (int offset = 16; offset > 0; offset >>= 1) ShuffleCombine<kSym>(s, offset);
  if ((threadIdx.x & 31) == 0) warp_stats[threadIdx.x >> 5] = s;
  __syncthreads();
  s = warp_stats[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) {
    s.mag = max(s.mag, warp_stats[w].mag);
    s.lo = min(s.lo, warp_stats[w].lo);
    s.hi = max(s.hi, warp_stats[w].hi);
  }
  if (s.mag >= kNonFinite) {  // the same for every thread: find the first
    for (int64_t i = threadIdx.x; i < vecs; i += kBlock) {
      float x[8];
      Convert8<kSrc>(LoadRaw<kSrc>(a.input, first_vec + i), x);
      const int j = FirstNonFinite(x);
      if (j < 8) {
        atomicMin(a.first_bad, static_cast<unsigned long long>(8 * (first_vec + i) + j));
        break;
      }
    }
    return;
  }
  const rtn::GroupParams gp = Params<kBits, kSym>(s, a.scale_type);
  if (threadIdx.x == 0) StoreGroup<kBits, kSym>(a, row, g, gp);
  const Quantizer q = MakeQuantizer<kBits>(gp);
  if (q.fast) {
    BlockQuantize<kSrc, kBits, true>(a, cache, q, row, first_vec, first_row_vec, vecs);
  } else {
    BlockQuantize<kSrc, kBits, false>(a, cache, q, row, first_vec, first_row_vec, vecs);
  }
}

// Whether TeamKernel handles the group size (8, 16, ..., 256).
bool TeamKernelHandles(int64_t group_size) {
  for (int shift = 0; shift <= 5; ++shift) {
    if (group_size == (int64_t{8} << shift)) return true;
  }
  return false;
}

template <Src kSrc, int kBits, bool kSym>
cudaError_t LaunchTyped(const Args& a, cudaStream_t stream) {
  if (TeamKernelHandles(a.group_size)) {
    Args ta = a;
    ta.team_shift = TeamShiftFor<kSrc>(a.group_size);
    ta.vec_shift = 0;
    while ((int64_t{8} << ta.vec_shift) < a.group_size) ++ta.vec_shift;
    const int64_t threads = (a.rows * a.groups) << ta.team_shift;
    const int64_t blocks = (threads + kBlock - 1) / kBlock;
    if (blocks > 0x7fffffffll) return cudaErrorInvalidConfiguration;
    TeamKernel<kSrc, kBits, kSym><<<static_cast<unsigned>(blocks), kBlock, 0, stream>>>(ta);
  } else {
    const int64_t blocks = a.rows * a.groups;
    if (blocks > 0x7fffffffll) return cudaErrorInvalidConfiguration;
    BlockKernel<kSrc, kBits, kSym><<<static_cast<unsigned>(blocks), kBlock, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

template <Src kSrc>
cudaError_t LaunchSrc(const Args& a, int bits, bool symmetric, cudaStream_t stream) {
  if (bits == 4) {
    return symmetric ? LaunchTyped<kSrc, 4, true>(a, stream)
                     : LaunchTyped<kSrc, 4, false>(a, stream);
  }
  if (bits == 8 && symmetric) return LaunchTyped<kSrc, 8, true>(a, stream);
  return cudaErrorInvalidValue;  // asymmetric int8: rejected by Check()
}

class RtnIntKernel final : public DeviceKernel {
 public:
  bool Supports(const FormatParams& p, int64_t cols, DType source) const override {
    if (!IsFloatWeightType(source) || !RtnScaleType(p.scale_dtype).ok()) return false;
    if ((p.bits != 4 && p.bits != 8) || (p.bits == 8 && !p.symmetric)) return false;
    return RtnGroupSize(p, cols) % 8 == 0;
  }

  std::vector<DevicePartPlan> Plan(const FormatParams& p,
                                   const EncodedWeight& shapes) const override {
    std::vector<DevicePartPlan> plan;
    for (const EncodedPart& part : shapes.parts) {
      DevicePartPlan d;
      if (part.suffix == kPackedSuffix || part.suffix == kScaleSuffix) {
        d.rows_per_index = 1;
      } else if (part.suffix == kZeroPointSuffix) {
        d.rows_per_index = rtn::PackFactor(p.bits);
        d.zero_before_launch = true;
      }
      plan.push_back(d);
    }
    return plan;
  }

  void FillHostParts(const FormatParams& p, int64_t rows, int64_t cols,
                     EncodedWeight* e) const override {
    if (Tensor* shape = e->Find(kShapeSuffix)) {
      shape->as<int64_t>()[0] = rows;
      shape->as<int64_t>()[1] = cols;
    }
  }

  cudaError_t Launch(const DeviceEncodeArgs& d) const override {
    const FormatParams& p = *d.params;
    absl::StatusOr<rtn::ScaleType> st = RtnScaleType(p.scale_dtype);
    // Parts in Allocate() order: packed, scale, shape[, zero point].
    if (!st.ok() || d.parts.size() < 3 || (!p.symmetric && d.parts.size() < 4)) {
      return cudaErrorInvalidValue;
    }
    Args a;
    a.rows = d.rows;
    a.cols = d.cols;
    a.group_size = RtnGroupSize(p, d.cols);
    a.groups = d.cols / a.group_size;
    a.team_shift = 0;  // set per source type by LaunchTyped
    a.vec_shift = 0;
    a.scale_type = *st;
    a.input = d.input;
    a.packed = static_cast<uint32_t*>(d.parts[0]);
    a.scales = d.parts[1];
    a.zero_points = p.symmetric ? nullptr : static_cast<uint32_t*>(d.parts[3]);
    a.first_bad = d.first_bad;
    if (a.rows == 0) return cudaSuccess;
    switch (d.source) {
      case DType::kF32:
        return LaunchSrc<Src::kF32>(a, p.bits, p.symmetric, d.stream);
      case DType::kF16:
        return LaunchSrc<Src::kF16>(a, p.bits, p.symmetric, d.stream);
      case DType::kBF16:
        return LaunchSrc<Src::kBF16>(a, p.bits, p.symmetric, d.stream);
      default:
        return cudaErrorInvalidValue;
    }
  }
};

}  // namespace

const DeviceKernel& RtnIntDeviceKernel() {
  static const RtnIntKernel* kernel = new RtnIntKernel();
  return *kernel;
}

}  // namespace quantd
