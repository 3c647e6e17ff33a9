#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "core/formats/fp8.h"
#include "core/formats/fp8_e4m3.h"
#include "core/formats/fp8_layout.h"
#include "kernels/cuda/fp8.cuh"
#include "kernels/cuda/fp8_cvt.cuh"

namespace quantd {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr uint32_t kNonFinite = 0x7f800000u;  // float32 magnitudes >= this: Inf or NaN

enum class Src { kF32, kF16, kBF16 };

__device__ __forceinline__ int64_t MinI64(int64_t a, int64_t b) { return a < b ? a : b; }

// Kernel arguments, passed by value. Rows are chunk-relative.
struct Args {
  int64_t rows, cols;
  int64_t block_cols;  // block strategy: blocks across a row
  fp8::ScaleType scale_type;
  float tensor_scale;  // tensor strategy: the stored scale
  const void* input;
  uint8_t* codes;
  void* scales;  // channel: one per row; block: [strips, block_cols]
  unsigned long long* first_bad;
};

// ---------------------------------------------------------------------------
// 8-element vectors

// The raw bits of 8 consecutive elements.
template <Src kSrc>
struct RawVec {
  uint4 v[kSrc == Src::kF32 ? 2 : 1];
};

// Raw elements 8 * vec .. 8 * vec + 7 of `in` (16-byte loads).
template <Src kSrc>
__device__ __forceinline__ RawVec<kSrc> LoadRaw(const void* in, int64_t vec) {
  RawVec<kSrc> r;
  if constexpr (kSrc == Src::kF32) {
    r.v[0] = __ldcs(reinterpret_cast<const uint4*>(in) + 2 * vec);
    r.v[1] = __ldcs(reinterpret_cast<const uint4*>(in) + 2 * vec + 1);
  } else {
    r.v[0] = __ldcs(reinterpret_cast<const uint4*>(in) + vec);
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

// The elements as float32 (exact conversions).
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

// Largest magnitude of the 8 elements as float32 bits (Inf and NaN give
// values >= kNonFinite). 16-bit sources reduce raw bit pairs first (their
// magnitudes order as the float32 conversions do).
template <Src kSrc>
__device__ __forceinline__ uint32_t MaxMagnitude8(const RawVec<kSrc>& r) {
  if constexpr (kSrc == Src::kF32) {
    float x[8];
    Convert8<kSrc>(r, x);
    uint32_t m = 0;
#pragma unroll
    for (int j = 0; j < 8; ++j) m = max(m, __float_as_uint(x[j]) & 0x7fffffffu);
    return m;
  } else {
    const uint32_t p = __vmaxu2(__vmaxu2(r.v[0].x & 0x7fff7fffu, r.v[0].y & 0x7fff7fffu),
                                __vmaxu2(r.v[0].z & 0x7fff7fffu, r.v[0].w & 0x7fff7fffu));
    return __float_as_uint(HalfBitsToFloat<kSrc>(max(p & 0xffffu, p >> 16)));
  }
}

// Index (0..7) of the first non-finite element, or 8.
template <Src kSrc>
__device__ __forceinline__ int FirstNonFinite8(const RawVec<kSrc>& r) {
  float x[8];
  Convert8<kSrc>(r, x);
  int bad = 8;
#pragma unroll
  for (int j = 7; j >= 0; --j) {
    if ((__float_as_uint(x[j]) & 0x7fffffffu) >= kNonFinite) bad = j;
  }
  return bad;
}

// Codes of the 8 elements, code j in byte j of the pair.
template <Src kSrc, bool kFast>
__device__ __forceinline__ uint2 Quantize8(const RawVec<kSrc>& r, const fp8::Divider& d) {
  float x[8];
  Convert8<kSrc>(r, x);
  uint32_t h[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    h[j] = CvtE4m3x2(fp8::Quotient<kFast>(d, x[2 * j]), fp8::Quotient<kFast>(d, x[2 * j + 1]));
  }
  return make_uint2(h[0] | (h[1] << 16), h[2] | (h[3] << 16));
}

__device__ __forceinline__ void StoreCodes(const Args& a, int64_t vec, uint2 w) {
  __stcs(reinterpret_cast<uint2*>(a.codes) + vec, w);
}

// Reports the first non-finite element of vector `vec` (if any).
template <Src kSrc>
__device__ __forceinline__ void ReportNonFinite(const Args& a, const RawVec<kSrc>& r, int64_t vec) {
  const int bad = FirstNonFinite8<kSrc>(r);
  if (bad < 8) atomicMin(a.first_bad, static_cast<unsigned long long>(8 * vec + bad));
}

// max over the thread block of `m` (every thread gets it).
__device__ __forceinline__ uint32_t BlockMax(uint32_t m) {
  __shared__ uint32_t warp_max[kWarps];
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    m = max(m, __shfl_xor_sync(0xffffffffu, m, offset));
  }
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = m;
  __syncthreads();
  m = warp_max[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) m = max(m, warp_max[w]);
  return m;
}

__device__ __forceinline__ void StoreScale(const Args& a, int64_t index, uint32_t bits) {
  if (a.scale_type == fp8::ScaleType::kF32) {
    static_cast<uint32_t*>(a.scales)[index] = bits;
  } else {
    static_cast<uint16_t*>(a.scales)[index] = static_cast<uint16_t>(bits);
  }
}

// ---------------------------------------------------------------------------
// Kernels

// Vectors per thread of the tensor kernel, all loads issued first.
constexpr int kTensorVecs = 4;

template <Src kSrc, bool kFast>
__global__ void __launch_bounds__(kThreads) TensorKernel(Args a, int64_t vecs) {
  const fp8::Divider d = fp8::MakeDivider(a.tensor_scale);
  const int64_t first = static_cast<int64_t>(blockIdx.x) * (kThreads * kTensorVecs) + threadIdx.x;
  RawVec<kSrc> r[kTensorVecs];
#pragma unroll
  for (int k = 0; k < kTensorVecs; ++k) {
    const int64_t v = first + k * kThreads;
    if (v < vecs) r[k] = LoadRaw<kSrc>(a.input, v);
  }
#pragma unroll
  for (int k = 0; k < kTensorVecs; ++k) {
    const int64_t v = first + k * kThreads;
    if (v >= vecs) continue;
    if (MaxMagnitude8<kSrc>(r[k]) >= kNonFinite) {
      ReportNonFinite<kSrc>(a, r[k], v);
    } else {
      StoreCodes(a, v, Quantize8<kSrc, kFast>(r[k], d));
    }
  }
}

// Row vectors a channel-kernel thread keeps in registers between passes.
constexpr int kChannelCachedVecs = 8;

template <Src kSrc, bool kFast>
__device__ __forceinline__ void ChannelQuantize(const Args& a,
                                                const RawVec<kSrc> (&cache)[kChannelCachedVecs],
                                                const fp8::Divider& d, int64_t first_vec,
                                                int64_t vecs) {
#pragma unroll
  for (int k = 0; k < kChannelCachedVecs; ++k) {
    const int64_t i = threadIdx.x + k * kThreads;
    if (i < vecs) StoreCodes(a, first_vec + i, Quantize8<kSrc, kFast>(cache[k], d));
  }
  for (int64_t i = threadIdx.x + kChannelCachedVecs * kThreads; i < vecs; i += kThreads) {
    StoreCodes(a, first_vec + i, Quantize8<kSrc, kFast>(LoadRaw<kSrc>(a.input, first_vec + i), d));
  }
}

template <Src kSrc>
__global__ void __launch_bounds__(kThreads) ChannelKernel(Args a) {
  const int64_t row = blockIdx.x;
  const int64_t vecs = a.cols >> 3;
  const int64_t first_vec = row * vecs;
  RawVec<kSrc> cache[kChannelCachedVecs];
  uint32_t m = 0;
#pragma unroll
  for (int k = 0; k < kChannelCachedVecs; ++k) {
    const int64_t i = threadIdx.x + k * kThreads;
    if (i < vecs) cache[k] = LoadRaw<kSrc>(a.input, first_vec + i);
  }
#pragma unroll
  for (int k = 0; k < kChannelCachedVecs; ++k) {
    if (threadIdx.x + k * kThreads < vecs) m = max(m, MaxMagnitude8<kSrc>(cache[k]));
  }
  for (int64_t i = threadIdx.x + kChannelCachedVecs * kThreads; i < vecs; i += kThreads) {
    m = max(m, MaxMagnitude8<kSrc>(LoadRaw<kSrc>(a.input, first_vec + i)));
  }
  m = BlockMax(m);
  if (m >= kNonFinite) {
#pragma unroll
    for (int k = 0; k < kChannelCachedVecs; ++k) {
      const int64_t i = threadIdx.x + k * kThreads;
      if (i < vecs) ReportNonFinite<kSrc>(a, cache[k], first_vec + i);
    }
    for (int64_t i = threadIdx.x + kChannelCachedVecs * kThreads; i < vecs; i += kThreads) {
      ReportNonFinite<kSrc>(a, LoadRaw<kSrc>(a.input, first_vec + i), first_vec + i);
    }
    return;
  }
  const fp8::StoredScale s = fp8::ScaleForAmax(__uint_as_float(m), a.scale_type);
  if (threadIdx.x == 0) StoreScale(a, row, s.bits);
  const fp8::Divider d = fp8::MakeDivider(s.value);
  if (d.fast) {
    ChannelQuantize<kSrc, true>(a, cache, d, first_vec, vecs);
  } else {
    ChannelQuantize<kSrc, false>(a, cache, d, first_vec, vecs);
  }
}

// A block-kernel thread owns column vector (threadIdx.x % 16) of rows
// (threadIdx.x / 16) + 16 k, k < 8: each row's 16 vectors (256 bytes of
// BF16) are read by 16 adjacent threads.
constexpr int kBlockVecsPerRow = static_cast<int>(fp8::kBlockCols / 8);                   // 16
constexpr int kBlockRowStride = kThreads / kBlockVecsPerRow;                              // 16
constexpr int kBlockRowsPerThread = static_cast<int>(fp8::kBlockRows) / kBlockRowStride;  // 8
static_assert(kBlockVecsPerRow * kBlockRowStride == kThreads, "one thread per vector column");
static_assert(kBlockRowsPerThread * kBlockRowStride == fp8::kBlockRows, "rows covered");

template <Src kSrc, bool kFast>
__device__ __forceinline__ void BlockQuantize(const Args& a,
                                              const RawVec<kSrc> (&cache)[kBlockRowsPerThread],
                                              const fp8::Divider& d, int64_t row0, int64_t vec_col,
                                              int64_t rows_here, bool active) {
  const int64_t row_vecs = a.cols >> 3;
#pragma unroll
  for (int k = 0; k < kBlockRowsPerThread; ++k) {
    const int64_t r = threadIdx.x / kBlockVecsPerRow + k * kBlockRowStride;
    if (active && r < rows_here) {
      StoreCodes(a, (row0 + r) * row_vecs + vec_col, Quantize8<kSrc, kFast>(cache[k], d));
    }
  }
}

template <Src kSrc>
__global__ void __launch_bounds__(kThreads) BlockKernel(Args a) {
  const int64_t strip = blockIdx.y, bc = blockIdx.x;
  const int64_t row0 = strip * fp8::kBlockRows;
  const int64_t rows_here = MinI64(fp8::kBlockRows, a.rows - row0);
  const int64_t width_vecs = MinI64(fp8::kBlockCols, a.cols - bc * fp8::kBlockCols) >> 3;
  const int lane_vec = threadIdx.x % kBlockVecsPerRow;
  const bool active = lane_vec < width_vecs;
  const int64_t row_vecs = a.cols >> 3;
  const int64_t vec_col = bc * kBlockVecsPerRow + lane_vec;
  RawVec<kSrc> cache[kBlockRowsPerThread];
  uint32_t m = 0;
#pragma unroll
  for (int k = 0; k < kBlockRowsPerThread; ++k) {
    const int64_t r = threadIdx.x / kBlockVecsPerRow + k * kBlockRowStride;
    if (active && r < rows_here) cache[k] = LoadRaw<kSrc>(a.input, (row0 + r) * row_vecs + vec_col);
  }
#pragma unroll
  for (int k = 0; k < kBlockRowsPerThread; ++k) {
    const int64_t r = threadIdx.x / kBlockVecsPerRow + k * kBlockRowStride;
    if (active && r < rows_here) m = max(m, MaxMagnitude8<kSrc>(cache[k]));
  }
  m = BlockMax(m);
  if (m >= kNonFinite) {
#pragma unroll
    for (int k = 0; k < kBlockRowsPerThread; ++k) {
      const int64_t r = threadIdx.x / kBlockVecsPerRow + k * kBlockRowStride;
      if (active && r < rows_here) {
        ReportNonFinite<kSrc>(a, cache[k], (row0 + r) * row_vecs + vec_col);
      }
    }
    return;
  }
  const fp8::StoredScale s = fp8::ScaleForAmax(__uint_as_float(m), a.scale_type);
  if (threadIdx.x == 0) StoreScale(a, strip * a.block_cols + bc, s.bits);
  const fp8::Divider d = fp8::MakeDivider(s.value);
  if (d.fast) {
    BlockQuantize<kSrc, true>(a, cache, d, row0, vec_col, rows_here, active);
  } else {
    BlockQuantize<kSrc, false>(a, cache, d, row0, vec_col, rows_here, active);
  }
}

// ---------------------------------------------------------------------------
// Launching

template <Src kSrc>
cudaError_t LaunchSrc(const Args& a, fp8::Strategy strategy, cudaStream_t stream) {
  switch (strategy) {
    case fp8::Strategy::kTensor: {
      const int64_t vecs = (a.rows * a.cols) >> 3;
      const int64_t blocks = (vecs + kThreads * kTensorVecs - 1) / (kThreads * kTensorVecs);
      if (blocks > 0x7fffffffll) return cudaErrorInvalidConfiguration;
      if (fp8::MakeDivider(a.tensor_scale).fast) {
        TensorKernel<kSrc, true><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(a, vecs);
      } else {
        TensorKernel<kSrc, false><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(a, vecs);
      }
      break;
    }
    case fp8::Strategy::kChannel:
      if (a.rows > 0x7fffffffll) return cudaErrorInvalidConfiguration;
      ChannelKernel<kSrc><<<static_cast<unsigned>(a.rows), kThreads, 0, stream>>>(a);
      break;
    case fp8::Strategy::kBlock: {
      const int64_t strips = (a.rows + fp8::kBlockRows - 1) / fp8::kBlockRows;
      if (strips > 65535 || a.block_cols > 0x7fffffffll) return cudaErrorInvalidConfiguration;
      const dim3 grid(static_cast<unsigned>(a.block_cols), static_cast<unsigned>(strips));
      BlockKernel<kSrc><<<grid, kThreads, 0, stream>>>(a);
      break;
    }
  }
  return cudaGetLastError();
}

class Fp8Kernel final : public DeviceKernel {
 public:
  bool Supports(const FormatParams& p, int64_t cols, DType source) const override {
    if (!IsFloatWeightType(source) || !Fp8ScaleType(p.scale_dtype).ok()) return false;
    absl::StatusOr<fp8::Strategy> s = Fp8StrategyOf(p);
    if (!s.ok() || cols % 8 != 0) return false;
    // Unset or non-finite amax: the CPU path reports the error.
    return *s != fp8::Strategy::kTensor || (p.tensor_amax >= 0.0f && std::isfinite(p.tensor_amax));
  }

  std::vector<DevicePartPlan> Plan(const FormatParams& p,
                                   const EncodedWeight& shapes) const override {
    const fp8::Strategy s = Fp8StrategyOf(p).value_or(fp8::Strategy::kChannel);
    std::vector<DevicePartPlan> plan;
    for (const EncodedPart& part : shapes.parts) {
      DevicePartPlan d;
      if (part.suffix == kFp8WeightSuffix) {
        d.rows_per_index = 1;
      } else if (part.suffix == kFp8ScaleSuffix) {
        d.rows_per_index = s == fp8::Strategy::kChannel ? 1
                           : s == fp8::Strategy::kBlock ? fp8::kBlockRows
                                                        : 0;  // tensor: FillHostParts
      }
      plan.push_back(d);
    }
    return plan;
  }

  void FillHostParts(const FormatParams& p, int64_t rows, int64_t cols,
                     EncodedWeight* e) const override {
    absl::StatusOr<fp8::ScaleType> st = Fp8ScaleType(p.scale_dtype);
    Tensor* scale = e->Find(kFp8ScaleSuffix);
    if (!st.ok() || scale == nullptr || !NeedsTensorScale(p)) return;
    const uint32_t bits = fp8::ScaleForAmax(p.tensor_amax, *st).bits;
    if (*st == fp8::ScaleType::kF32) {
      scale->as<uint32_t>()[0] = bits;
    } else {
      scale->as<uint16_t>()[0] = static_cast<uint16_t>(bits);
    }
  }

  cudaError_t Launch(const DeviceEncodeArgs& d) const override {
    const FormatParams& p = *d.params;
    absl::StatusOr<fp8::ScaleType> st = Fp8ScaleType(p.scale_dtype);
    absl::StatusOr<fp8::Strategy> strategy = Fp8StrategyOf(p);
    // Parts in Allocate() order: weight, weight_scale.
    if (!st.ok() || !strategy.ok() || d.parts.size() < 2 || d.cols % 8 != 0) {
      return cudaErrorInvalidValue;
    }
    Args a;
    a.rows = d.rows;
    a.cols = d.cols;
    a.block_cols = (d.cols + fp8::kBlockCols - 1) / fp8::kBlockCols;
    a.scale_type = *st;
    a.tensor_scale = NeedsTensorScale(p) ? fp8::ScaleForAmax(p.tensor_amax, *st).value : 1.0f;
    a.input = d.input;
    a.codes = static_cast<uint8_t*>(d.parts[0]);
    a.scales = d.parts[1];
    a.first_bad = d.first_bad;
    if (a.rows == 0) return cudaSuccess;
    switch (d.source) {
      case DType::kF32:
        return LaunchSrc<Src::kF32>(a, *strategy, d.stream);
      case DType::kF16:
        return LaunchSrc<Src::kF16>(a, *strategy, d.stream);
      case DType::kBF16:
        return LaunchSrc<Src::kBF16>(a, *strategy, d.stream);
      default:
        return cudaErrorInvalidValue;
    }
  }

 private:
  static bool NeedsTensorScale(const FormatParams& p) {
    absl::StatusOr<fp8::Strategy> s = Fp8StrategyOf(p);
    return s.ok() && *s == fp8::Strategy::kTensor;
  }
};

}  // namespace

const DeviceKernel& Fp8DeviceKernel() {
  static const Fp8Kernel* kernel = new Fp8Kernel();
  return *kernel;
}

}  // namespace quantd
