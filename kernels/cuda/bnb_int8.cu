#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/formats/bnb_int8.h"
#include "core/formats/bnb_int8_layout.h"
#include "kernels/cuda/bnb_int8.cuh"

namespace quantd {
namespace {

enum class Src { kF32, kF16, kBF16 };

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// 8-element vectors a thread keeps raw between its two passes.
constexpr int kCachedVecs = 8;

template <Src S>
struct RawVec {
  // 16-bit sources: one uint4; float32: two float4.
  uint4 v[S == Src::kF32 ? 2 : 1];
};

template <Src S>
__device__ __forceinline__ RawVec<S> LoadVec(const void* row, int64_t vec) {
  RawVec<S> r;
  if constexpr (S == Src::kF32) {
    const uint4* p = static_cast<const uint4*>(row) + 2 * vec;
    r.v[0] = __ldcs(p);
    r.v[1] = __ldcs(p + 1);
  } else {
    r.v[0] = __ldcs(static_cast<const uint4*>(row) + vec);
  }
  return r;
}

// The 8 values rounded to float16 (as float32), as Int8Params casts the
// weight: cvt.rn.f16.f32 rounds to nearest even and overflows to inf.
template <Src S>
__device__ __forceinline__ void ToHalfValues(const RawVec<S>& r, float (&h)[8]) {
  if constexpr (S == Src::kF32) {
    const uint32_t w[8] = {r.v[0].x, r.v[0].y, r.v[0].z, r.v[0].w,
                           r.v[1].x, r.v[1].y, r.v[1].z, r.v[1].w};
#pragma unroll
    for (int i = 0; i < 8; ++i) h[i] = __half2float(__float2half_rn(__uint_as_float(w[i])));
  } else {
    const uint32_t w[4] = {r.v[0].x, r.v[0].y, r.v[0].z, r.v[0].w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const unsigned short lo = static_cast<unsigned short>(w[k] & 0xffffu);
      const unsigned short hi = static_cast<unsigned short>(w[k] >> 16);
      if constexpr (S == Src::kF16) {
        h[2 * k] = __half2float(__ushort_as_half(lo));
        h[2 * k + 1] = __half2float(__ushort_as_half(hi));
      } else {
        h[2 * k] = __half2float(__float2half_rn(__uint_as_float(static_cast<uint32_t>(lo) << 16)));
        h[2 * k + 1] = __half2float(__float2half_rn(__uint_as_float(w[k] & 0xffff0000u)));
      }
    }
  }
}

// Folds |h| into the running max; returns false if some h is not finite.
__device__ __forceinline__ bool Accumulate(const float (&h)[8], float& m) {
  bool finite = true;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    finite &= fabsf(h[i]) <= 65504.0f;  // false for inf and NaN
    m = fmaxf(m, fabsf(h[i]));
  }
  return finite;
}

__device__ __forceinline__ void ReportFirstBad(const float (&h)[8], int64_t index,
                                               unsigned long long* first_bad) {
  for (int i = 0; i < 8; ++i) {
    if (!(fabsf(h[i]) <= 65504.0f)) {
      atomicMin(first_bad, static_cast<unsigned long long>(index + i));
      return;
    }
  }
}

__device__ __forceinline__ uint2 Pack8(const float (&h)[8], float scale) {
  uint32_t w[2] = {0, 0};
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const uint32_t b = static_cast<uint8_t>(bnb_int8::Code(h[i], scale));
    w[i / 4] |= b << (8 * (i % 4));
  }
  return make_uint2(w[0], w[1]);
}

struct Args {
  const void* input;  // [rows, cols] of the chunk
  int64_t cols;
  int8_t* codes;  // [rows, cols]
  float* scb;     // [rows]
  unsigned long long* first_bad;
};

template <Src S>
__global__ void __launch_bounds__(kThreads) BnbInt8Kernel(Args a) {
  __shared__ float warp_max[kWarps];
  __shared__ float row_max;
  const int64_t row = blockIdx.x;
  const int64_t vecs = a.cols / 8;
  const size_t row_bytes = static_cast<size_t>(a.cols) * (S == Src::kF32 ? 4 : 2);
  const void* in = static_cast<const uint8_t*>(a.input) + row * row_bytes;
  RawVec<S> cache[kCachedVecs];
#pragma unroll
  for (int k = 0; k < kCachedVecs; ++k) {
    const int64_t i = threadIdx.x + k * kThreads;
    if (i < vecs) cache[k] = LoadVec<S>(in, i);
  }
  float m = 0.0f;
  bool finite = true;
#pragma unroll
  for (int k = 0; k < kCachedVecs; ++k) {
    const int64_t i = threadIdx.x + k * kThreads;
    if (i < vecs) {
      float h[8];
      ToHalfValues<S>(cache[k], h);
      if (!Accumulate(h, m)) {
        finite = false;
        ReportFirstBad(h, row * a.cols + 8 * i, a.first_bad);
      }
    }
  }
  for (int64_t i = threadIdx.x + kCachedVecs * kThreads; i < vecs; i += kThreads) {
    float h[8];
    ToHalfValues<S>(LoadVec<S>(in, i), h);
    if (!Accumulate(h, m)) {
      finite = false;
      ReportFirstBad(h, row * a.cols + 8 * i, a.first_bad);
    }
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
  }
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    float r = warp_max[0];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) r = fmaxf(r, warp_max[w]);
    row_max = r;
    a.scb[row] = r;
  }
  __syncthreads();
  if (!finite) return;  // the encoder reports the error; outputs are dropped
  const float scale = bnb_int8::RowScale(row_max);
  uint2* out = reinterpret_cast<uint2*>(a.codes + row * a.cols);
#pragma unroll
  for (int k = 0; k < kCachedVecs; ++k) {
    const int64_t i = threadIdx.x + k * kThreads;
    if (i < vecs) {
      float h[8];
      ToHalfValues<S>(cache[k], h);
      __stcs(out + i, Pack8(h, scale));
    }
  }
  for (int64_t i = threadIdx.x + kCachedVecs * kThreads; i < vecs; i += kThreads) {
    float h[8];
    ToHalfValues<S>(LoadVec<S>(in, i), h);
    __stcs(out + i, Pack8(h, scale));
  }
}

class BnbInt8Registered final : public DeviceKernel {
 public:
  bool Supports(const FormatParams& p, int64_t cols, DType source) const override {
    return IsFloatWeightType(source) && cols % 8 == 0 && p.extra.empty();
  }

  std::vector<DevicePartPlan> Plan(const FormatParams& p,
                                   const EncodedWeight& shapes) const override {
    std::vector<DevicePartPlan> plan;
    for (const EncodedPart& part : shapes.parts) {
      DevicePartPlan d;
      if (part.suffix == kBnbInt8WeightSuffix || part.suffix == kBnbInt8ScbSuffix) {
        d.rows_per_index = 1;
      }
      plan.push_back(d);
    }
    return plan;
  }

  void FillHostParts(const FormatParams& p, int64_t rows, int64_t cols,
                     EncodedWeight* e) const override {
    if (Tensor* f = e->Find(kBnbInt8FormatSuffix)) f->data()[0] = 0;  // "row"
  }

  cudaError_t Launch(const DeviceEncodeArgs& d) const override {
    // Parts in Allocate() order: weight, SCB, weight_format.
    if (d.parts.size() < 2 || d.cols % 8 != 0) return cudaErrorInvalidValue;
    if (d.rows == 0) return cudaSuccess;
    if (d.rows > 0x7fffffffll) return cudaErrorInvalidConfiguration;
    Args a;
    a.input = d.input;
    a.cols = d.cols;
    a.codes = static_cast<int8_t*>(d.parts[0]);
    a.scb = static_cast<float*>(d.parts[1]);
    a.first_bad = d.first_bad;
    const unsigned blocks = static_cast<unsigned>(d.rows);
    switch (d.source) {
      case DType::kF32:
        BnbInt8Kernel<Src::kF32><<<blocks, kThreads, 0, d.stream>>>(a);
        break;
      case DType::kF16:
        BnbInt8Kernel<Src::kF16><<<blocks, kThreads, 0, d.stream>>>(a);
        break;
      case DType::kBF16:
        BnbInt8Kernel<Src::kBF16><<<blocks, kThreads, 0, d.stream>>>(a);
        break;
      default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
  }
};

}  // namespace

const DeviceKernel& BnbInt8DeviceKernel() {
  static const BnbInt8Registered* kernel = new BnbInt8Registered();
  return *kernel;
}

}  // namespace quantd
