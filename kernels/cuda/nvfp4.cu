#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/formats/nvfp4.h"
#include "core/formats/nvfp4_layout.h"
#include "kernels/cuda/nvfp4.cuh"

namespace quantd {
namespace {

using nvfp4::kBlockSize;
using nvfp4::Layout;

constexpr int kThreads = 256;

enum class Src { kF32, kF16, kBF16 };

// Kernel arguments, passed by value.
struct Args {
  int64_t blocks;  // 16-element blocks in the chunk
  float global;    // the stored tensor scale (G or G2)
  // ModelOpt: the block-scale divisor RN(6 G2) and its reciprocal
  // (nvfp4::BlockScaleCode); unused for compressed-tensors.
  float div, div_reciprocal;
  const void* input;
  uint2* packed;    // 8 bytes per block
  uint8_t* scales;  // 1 byte per block
  unsigned long long* first_bad;
};

// The raw bits of one block: 2 (16-bit sources) or 4 (F32) 16-byte vectors.
template <Src kSrc>
struct RawBlock {
  static constexpr int kVecs = kSrc == Src::kF32 ? 4 : 2;
  uint4 v[kVecs];
};

template <Src kSrc>
__device__ __forceinline__ RawBlock<kSrc> LoadBlock(const void* in, int64_t k) {
  RawBlock<kSrc> r;
  const uint4* p = reinterpret_cast<const uint4*>(in) + k * RawBlock<kSrc>::kVecs;
#pragma unroll
  for (int i = 0; i < RawBlock<kSrc>::kVecs; ++i) r.v[i] = __ldcs(p + i);  // read once
  return r;
}

// Word i (of 16-bit pairs, or of float32 bits) of a block.
template <Src kSrc>
__device__ __forceinline__ uint32_t Word(const RawBlock<kSrc>& r, int i) {
  const uint4& v = r.v[i / 4];
  switch (i % 4) {
    case 0:
      return v.x;
    case 1:
      return v.y;
    case 2:
      return v.z;
    default:
      return v.w;
  }
}

// The 16 elements as float32 (exact conversions).
template <Src kSrc>
__device__ __forceinline__ void ToFloats(const RawBlock<kSrc>& r, float (&x)[kBlockSize]) {
#pragma unroll
  for (int i = 0; i < (kSrc == Src::kF32 ? 16 : 8); ++i) {
    const uint32_t w = Word<kSrc>(r, i);
    if constexpr (kSrc == Src::kF32) {
      x[i] = __uint_as_float(w);
    } else if constexpr (kSrc == Src::kBF16) {
      x[2 * i] = __uint_as_float(w << 16);
      x[2 * i + 1] = __uint_as_float(w & 0xffff0000u);
    } else {
      x[2 * i] = __half2float(__ushort_as_half(static_cast<unsigned short>(w & 0xffffu)));
      x[2 * i + 1] = __half2float(__ushort_as_half(static_cast<unsigned short>(w >> 16)));
    }
  }
}

// The largest magnitude of the block in the source's own bits (magnitudes
// order as the values do) and whether it is Inf or NaN.
template <Src kSrc>
__device__ __forceinline__ uint32_t MaxMagnitudeBits(const RawBlock<kSrc>& r) {
  uint32_t m = 0;
  if constexpr (kSrc == Src::kF32) {
#pragma unroll
    for (int i = 0; i < 16; ++i) m = max(m, Word<kSrc>(r, i) & 0x7fffffffu);
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) m = __vmaxu2(m, Word<kSrc>(r, i) & 0x7fff7fffu);
    m = max(m & 0xffffu, m >> 16);
  }
  return m;
}

template <Src kSrc>
__device__ __forceinline__ bool NonFiniteBits(uint32_t m) {
  if constexpr (kSrc == Src::kF32) return m >= 0x7f800000u;
  if constexpr (kSrc == Src::kBF16) return m >= 0x7f80u;
  return m >= 0x7c00u;
}

template <Src kSrc>
__device__ __forceinline__ float MagnitudeToFloat(uint32_t m) {
  if constexpr (kSrc == Src::kF32) return __uint_as_float(m);
  if constexpr (kSrc == Src::kBF16) return __uint_as_float(m << 16);
  return __half2float(__ushort_as_half(static_cast<unsigned short>(m)));
}

// ---------------------------------------------------------------------------
// Element codes by thresholds on |x|
//
// The reference's element code is E2M1MagnitudeRef(RN(|x| / d)), the count
// of the grid midpoints t_i (.25, .75, 1.25, 1.75, 2.5, 3.5, 5) that
// RN(|x| / d) passes (> for .25, 1.25, 2.5, 5; >= for the others). As RN
// is monotone, each test is |x| >= X_i for one float X_i per (d, i):
//   RN(q) >= t (t's float32 significand even, as for every t_i) iff
//     q >= t - ulp/2 (the midpoint below t; a tie goes to t, the even one);
//   RN(q) > t iff q > t + ulp/2 (a tie at the midpoint above goes to t).
// With m_i those midpoints (25 significant bits) m_i * d is exact in
// double, so X_i = the smallest float >= m_i * d (> for the strict ones).
// A CTA computes the 7 thresholds of each of the 128 scale codes once;
// an element then costs three compares and four selects instead of an
// exact division and the rounding to the E2M1 grid.
// tests/kernels/nvfp4_kernels_test.cc runs a host twin of this construction
// against nvfp4::EncodeElement on every BF16 value for every scale code,
// both layouts and tensor scales from 0 to FLT_MAX; its GPU tests compare
// the kernel with the reference.

__constant__ double kMidpoints[7] = {0.25 + 0x1p-26, 0.75 - 0x1p-25, 1.25 + 0x1p-24, 1.75 - 0x1p-24,
                                     2.5 + 0x1p-23,  3.5 - 0x1p-23,  5.0 + 0x1p-22};

// Thresholds X_0..X_3 in .x..w of the first float4, X_4..X_6 in the second.
struct Thresholds {
  float4 lo, hi;
};

// The thresholds of every scale code (0x7f, NaN, never occurs: E4M3
// conversion saturates), filled by each CTA in shared memory.
template <Layout kLayout>
__device__ __forceinline__ void FillThresholdTable(Thresholds* table, float global) {
  for (uint32_t c = threadIdx.x; c < 128; c += kThreads) {
    const double d = nvfp4::BlockDivisor(c, global, kLayout);
    float x[8];
#pragma unroll
    for (int i = 0; i < 7; ++i) {
      const double v = __dmul_rn(kMidpoints[i], d);  // exact
      float f = __double2float_ru(v);                // smallest float >= v
      if (i % 2 == 0 && static_cast<double>(f) == v) f = __uint_as_float(__float_as_uint(f) + 1);
      x[i] = f;
    }
    table[c].lo = make_float4(x[0], x[1], x[2], x[3]);
    table[c].hi = make_float4(x[4], x[5], x[6], 0.0f);
  }
}

// Codes of the 16 elements packed as the format stores them (element e at
// bits 4e of the little-endian 8 bytes): a binary search over the
// thresholds; sign 8 for x < 0 (not for -0.0).
__device__ __forceinline__ uint2 PackCodes(const float (&x)[kBlockSize], Thresholds t) {
  uint32_t w[2] = {0, 0};
#pragma unroll
  for (int e = 0; e < kBlockSize; ++e) {
    const float ax = fabsf(x[e]);
    const bool p2 = ax >= t.lo.w;  // code >= 4
    const bool p1 = ax >= (p2 ? t.hi.y : t.lo.y);
    const bool p0 = ax >= (p2 ? (p1 ? t.hi.z : t.hi.x) : (p1 ? t.lo.z : t.lo.x));
    const uint32_t code =
        (p2 ? 4u : 0u) + (p1 ? 2u : 0u) + (p0 ? 1u : 0u) + (x[e] < 0.0f ? 8u : 0u);
    w[e / 8] += code << (4 * (e % 8));
  }
  return make_uint2(w[0], w[1]);
}

// Blocks per thread and group: all their loads are issued together (and,
// in a CTA's first group, before it builds its threshold table).
constexpr int kBlocksPerThread = 4;

// Encodes block k (loaded as `raw`).
template <Src kSrc, Layout kLayout>
__device__ __forceinline__ void EncodeBlock(const Args& a, const Thresholds* table,
                                            const RawBlock<kSrc>& raw, int64_t k) {
  float x[kBlockSize];
  ToFloats<kSrc>(raw, x);
  const uint32_t mbits = MaxMagnitudeBits<kSrc>(raw);
  if (NonFiniteBits<kSrc>(mbits)) {
    int bad = kBlockSize;
#pragma unroll
    for (int e = kBlockSize - 1; e >= 0; --e) {
      if (!isfinite(x[e])) bad = e;
    }
    atomicMin(a.first_bad, static_cast<unsigned long long>(k * kBlockSize + bad));
    return;
  }
  const float b = MagnitudeToFloat<kSrc>(mbits);
  const uint32_t code = nvfp4::BlockScaleCode(b, a.global, a.div, a.div_reciprocal, kLayout);
  a.scales[k] = static_cast<uint8_t>(code);
  // Two 16-byte shared loads into registers (a reference would let the
  // compiler load a threshold per element).
  const Thresholds t{table[code].lo, table[code].hi};
  __stcs(a.packed + k, PackCodes(x, t));
}

// Thread t of a CTA encodes, per group g of kThreads * kBlocksPerThread
// blocks, blocks g * kThreads * kBlocksPerThread + t + i * kThreads,
// i < kBlocksPerThread (a warp's load instructions each cover 32 adjacent
// blocks). CTAs stride over the groups (a grid of the CTAs that fit on the
// device at once), so each builds its threshold table once, overlapped with
// its first group's loads.
template <Src kSrc, Layout kLayout>
__global__ void __launch_bounds__(kThreads) EncodeBlocksKernel(Args a) {
  __shared__ Thresholds table[128];
  constexpr int64_t kPerCta = int64_t{kThreads} * kBlocksPerThread;
  const int64_t groups = (a.blocks + kPerCta - 1) / kPerCta;
  for (int64_t g = blockIdx.x; g < groups; g += gridDim.x) {
    const int64_t first = g * kPerCta + threadIdx.x;
    RawBlock<kSrc> raw[kBlocksPerThread];
#pragma unroll
    for (int i = 0; i < kBlocksPerThread; ++i) {
      const int64_t k = first + i * kThreads;
      if (k < a.blocks) raw[i] = LoadBlock<kSrc>(a.input, k);
    }
    if (g == blockIdx.x) {
      FillThresholdTable<kLayout>(table, a.global);
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < kBlocksPerThread; ++i) {
      const int64_t k = first + i * kThreads;
      if (k < a.blocks) EncodeBlock<kSrc, kLayout>(a, table, raw[i], k);
    }
  }
}

// The CTAs of `kernel` that fit on the current device at once.
template <typename Kernel>
int64_t ResidentCtas(Kernel kernel) {
  int device = 0, sms = 0, per_sm = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0);
  return int64_t{std::max(1, sms)} * std::max(1, per_sm);
}

template <Src kSrc>
cudaError_t LaunchSrc(const Args& a, Layout layout, cudaStream_t stream) {
  constexpr int64_t kPerCta = int64_t{kThreads} * kBlocksPerThread;
  const int64_t groups = (a.blocks + kPerCta - 1) / kPerCta;
  if (layout == Layout::kModelOpt) {
    static const int64_t resident = ResidentCtas(EncodeBlocksKernel<kSrc, Layout::kModelOpt>);
    EncodeBlocksKernel<kSrc, Layout::kModelOpt>
        <<<static_cast<unsigned>(std::min(groups, resident)), kThreads, 0, stream>>>(a);
  } else {
    static const int64_t resident =
        ResidentCtas(EncodeBlocksKernel<kSrc, Layout::kCompressedTensors>);
    EncodeBlocksKernel<kSrc, Layout::kCompressedTensors>
        <<<static_cast<unsigned>(std::min(groups, resident)), kThreads, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

class Nvfp4DeviceKernelImpl final : public DeviceKernel {
 public:
  bool Supports(const FormatParams& p, int64_t cols, DType source) const override {
    return IsFloatWeightType(source) && cols % kBlockSize == 0 && Nvfp4GlobalScale(p).ok();
  }

  std::vector<DevicePartPlan> Plan(const FormatParams& p,
                                   const EncodedWeight& shapes) const override {
    // Allocate() order: packed, block scales (per row), tensor scale (host).
    std::vector<DevicePartPlan> plan(shapes.parts.size());
    for (size_t i = 0; i < plan.size() && i < 2; ++i) plan[i].rows_per_index = 1;
    return plan;
  }

  void FillHostParts(const FormatParams& p, int64_t rows, int64_t cols,
                     EncodedWeight* e) const override {
    absl::StatusOr<nvfp4::Layout> layout = Nvfp4LayoutOf(p);
    absl::StatusOr<float> global = Nvfp4GlobalScale(p);
    if (!layout.ok() || !global.ok()) return;  // Supports() rules these out
    if (Tensor* t = e->Find(Nvfp4Parts(*layout).global)) *t->as<float>() = *global;
  }

  cudaError_t Launch(const DeviceEncodeArgs& d) const override {
    const FormatParams& p = *d.params;
    absl::StatusOr<nvfp4::Layout> layout = Nvfp4LayoutOf(p);
    absl::StatusOr<float> global = Nvfp4GlobalScale(p);
    if (!layout.ok() || !global.ok() || d.parts.size() < 2 || d.cols % kBlockSize != 0) {
      return cudaErrorInvalidValue;
    }
    Args a;
    a.blocks = d.rows * (d.cols / kBlockSize);
    a.global = *global;
    a.div = nvfp4::MulRn(nvfp4::kE2M1Max, a.global);
    a.div_reciprocal = nvfp4::DivRn(1.0f, a.div);
    a.input = d.input;
    a.packed = static_cast<uint2*>(d.parts[0]);
    a.scales = static_cast<uint8_t*>(d.parts[1]);
    a.first_bad = d.first_bad;
    if (a.blocks == 0) return cudaSuccess;
    switch (d.source) {
      case DType::kF32:
        return LaunchSrc<Src::kF32>(a, *layout, d.stream);
      case DType::kF16:
        return LaunchSrc<Src::kF16>(a, *layout, d.stream);
      case DType::kBF16:
        return LaunchSrc<Src::kBF16>(a, *layout, d.stream);
      default:
        return cudaErrorInvalidValue;
    }
  }
};

}  // namespace

const DeviceKernel& Nvfp4DeviceKernel() {
  static const Nvfp4DeviceKernelImpl* kernel = new Nvfp4DeviceKernelImpl();
  return *kernel;
}

}  // namespace quantd
