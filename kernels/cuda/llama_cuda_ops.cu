// Element-wise and row-wise kernels of the CUDA Llama runtime (see
// llama_cuda_ops.h). All are memory-bound: 16-byte accesses where rows
// allow, one block per row for the reductions.
//
// The library builds with --fmad=false (kernels/CMakeLists.txt), so the few
// multiply-adds that matter are written as __fmaf_rn.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <cstdint>

#include "core/tensor/float_bits.h"
#include "kernels/cuda/llama_cuda_ops.h"

namespace quantd {
namespace llama_cuda {
namespace {

constexpr int kThreads = 256;

int GridFor(int64_t n, int threads, int64_t cap = 65535LL * 16) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks > cap) blocks = cap;
  return static_cast<int>(blocks < 1 ? 1 : blocks);
}

__device__ __forceinline__ float LoadSrc(const void* src, SrcType t, int64_t i) {
  switch (t) {
    case SrcType::kBF16:
      return Bf16ToFloat(static_cast<const uint16_t*>(src)[i]);
    case SrcType::kF16:
      return F16ToFloat(static_cast<const uint16_t*>(src)[i]);
    default:
      return static_cast<const float*>(src)[i];
  }
}

__global__ void ToBf16Kernel(const void* src, SrcType t, int64_t n, uint16_t* dst) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    dst[i] = t == SrcType::kBF16 ? static_cast<const uint16_t*>(src)[i]
                                 : FloatToBf16(LoadSrc(src, t, i));
  }
}

__global__ void ToF32Kernel(const void* src, SrcType t, int64_t n, float* dst) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    dst[i] = LoadSrc(src, t, i);
  }
}

// One block per row; each thread moves 8 bfloat16 (16 bytes) at a time.
__global__ void EmbedKernel(const int32_t* tokens, const uint16_t* table, int hidden, float* out) {
  const int64_t r = blockIdx.x;
  const uint16_t* src = table + int64_t{tokens[r]} * hidden;
  float* dst = out + r * hidden;
  for (int c = threadIdx.x * 8; c < hidden; c += blockDim.x * 8) {
    const uint4 raw = *reinterpret_cast<const uint4*>(src + c);
    const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
    float4 lo, hi;
    lo.x = BitsToFloat(w[0] << 16);
    lo.y = BitsToFloat(w[0] & 0xffff0000u);
    lo.z = BitsToFloat(w[1] << 16);
    lo.w = BitsToFloat(w[1] & 0xffff0000u);
    hi.x = BitsToFloat(w[2] << 16);
    hi.y = BitsToFloat(w[2] & 0xffff0000u);
    hi.z = BitsToFloat(w[3] << 16);
    hi.w = BitsToFloat(w[3] & 0xffff0000u);
    *reinterpret_cast<float4*>(dst + c) = lo;
    *reinterpret_cast<float4*>(dst + c + 4) = hi;
  }
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every
// thread gets the result.
__device__ float BlockSum(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = blockDim.x / 32;
  v = lane < warps ? scratch[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ uint32_t PackBf16(float a, float b) {
  return static_cast<uint32_t>(FloatToBf16(a)) | (static_cast<uint32_t>(FloatToBf16(b)) << 16);
}

__global__ void RmsNormKernel(const float* x, RowMap map, int hidden, const float* w, float eps,
                              uint16_t* y) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const int64_t in_row = (r / map.per_seq) * map.seq_stride + map.offset + r % map.per_seq;
  const float4* xr = reinterpret_cast<const float4*>(x + in_row * hidden);
  const int n4 = hidden / 4;
  float ss = 0.0f;
  for (int c = threadIdx.x; c < n4; c += blockDim.x) {
    const float4 v = xr[c];
    ss = __fmaf_rn(v.x, v.x, ss);
    ss = __fmaf_rn(v.y, v.y, ss);
    ss = __fmaf_rn(v.z, v.z, ss);
    ss = __fmaf_rn(v.w, v.w, ss);
  }
  ss = BlockSum(ss, scratch);
  const float inv = rsqrtf(ss / static_cast<float>(hidden) + eps);
  const float4* w4 = reinterpret_cast<const float4*>(w);
  uint2* yr = reinterpret_cast<uint2*>(y + r * hidden);
  for (int c = threadIdx.x; c < n4; c += blockDim.x) {
    const float4 v = xr[c];
    const float4 g = w4[c];
    yr[c] = make_uint2(PackBf16(v.x * inv * g.x, v.y * inv * g.y),
                       PackBf16(v.z * inv * g.z, v.w * inv * g.w));
  }
}

__global__ void RopeTableKernel(const float* inv_freq, int half, int positions, float scaling,
                                float2* cs) {
  const int64_t n = int64_t{positions} * half;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int p = static_cast<int>(i / half);
    const float angle = static_cast<float>(p) * inv_freq[i % half];
    float s, c;
    sincosf(angle, &s, &c);  // the accurate version: angles reach thousands of radians
    cs[i] = make_float2(c * scaling, s * scaling);
  }
}

// One block per token. Work item = (head, pair index i even): elements i,
// i + 1 of the first half and their partners in the second half.
__global__ void RopeKernel(RopeArgs a) {
  const int64_t r = blockIdx.x;
  uint16_t* row = a.qkv + r * a.ld;
  const int half = a.head_dim / 2;
  const int pos = a.pos0 + static_cast<int>(r % a.seq_len);
  const float2* cs = a.cos_sin + int64_t{pos} * half;
  const int rot_heads = a.heads + a.kv_heads;
  const int items = rot_heads * (half / 2);
  for (int it = threadIdx.x; it < items; it += blockDim.x) {
    const int h = it / (half / 2);
    const int i = (it % (half / 2)) * 2;
    const int c1 = h * a.head_dim + i, c2 = c1 + half;
    uint32_t* p1 = reinterpret_cast<uint32_t*>(row + c1);
    uint32_t* p2 = reinterpret_cast<uint32_t*>(row + c2);
    const uint32_t w1 = *p1, w2 = *p2;
    float x1a = BitsToFloat(w1 << 16), x1b = BitsToFloat(w1 & 0xffff0000u);
    float x2a = BitsToFloat(w2 << 16), x2b = BitsToFloat(w2 & 0xffff0000u);
    if (a.bias != nullptr) {
      x1a += a.bias[c1];
      x1b += a.bias[c1 + 1];
      x2a += a.bias[c2];
      x2b += a.bias[c2 + 1];
    }
    const float2 ca = cs[i], cb = cs[i + 1];
    *p1 = PackBf16(x1a * ca.x - x2a * ca.y, x1b * cb.x - x2b * cb.y);
    *p2 = PackBf16(x2a * ca.x + x1a * ca.y, x2b * cb.x + x1b * cb.y);
  }
  if (a.bias != nullptr) {
    const int v0 = rot_heads * a.head_dim;
    const int nv = a.kv_heads * a.head_dim;
    for (int c = threadIdx.x; c < nv; c += blockDim.x) {
      row[v0 + c] = FloatToBf16(Bf16ToFloat(row[v0 + c]) + a.bias[v0 + c]);
    }
  }
}

__global__ void SwiGluKernel(uint16_t* gu, int64_t rows, int inter, int64_t ld, const float* bias) {
  const int vecs = inter / 8;
  const int64_t n = rows * vecs;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / vecs;
    const int c = static_cast<int>(i % vecs) * 8;
    uint4* gp = reinterpret_cast<uint4*>(gu + r * ld + c);
    const uint4 graw = *gp;
    const uint4 uraw = *reinterpret_cast<const uint4*>(gu + r * ld + inter + c);
    const uint32_t g[4] = {graw.x, graw.y, graw.z, graw.w};
    const uint32_t u[4] = {uraw.x, uraw.y, uraw.z, uraw.w};
    uint32_t out[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      float g0 = BitsToFloat(g[k] << 16), g1 = BitsToFloat(g[k] & 0xffff0000u);
      float u0 = BitsToFloat(u[k] << 16), u1 = BitsToFloat(u[k] & 0xffff0000u);
      if (bias != nullptr) {
        g0 += bias[c + 2 * k];
        g1 += bias[c + 2 * k + 1];
        u0 += bias[inter + c + 2 * k];
        u1 += bias[inter + c + 2 * k + 1];
      }
      // silu(g) = g / (1 + e^-g); e^-g = inf for very negative g gives -0.
      const float s0 = g0 * __frcp_rn(1.0f + __expf(-g0));
      const float s1 = g1 * __frcp_rn(1.0f + __expf(-g1));
      out[k] = PackBf16(s0 * u0, s1 * u1);
    }
    *gp = make_uint4(out[0], out[1], out[2], out[3]);
  }
}

__global__ void AddBiasKernel(float* x, int64_t rows, int cols, const float* bias) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    x[i] += bias[i % cols];
  }
}

// Running log-sum-exp state of a part of a row: max m, sum s of exp(x - m),
// first index of the max, and whether a NaN was seen.
struct Lse {
  float m;
  float s;
  int idx;
  int nan;
};

__device__ __forceinline__ void Add(Lse& a, float x, int i) {
  if (x != x) {
    a.nan = 1;
  } else if (x > a.m) {
    a.s = a.s * __expf(a.m - x) + 1.0f;  // exp(-inf) = 0 on the first element
    a.m = x;
    a.idx = i;
  } else if (x != -INFINITY) {
    a.s += __expf(x - a.m);
  }
}

__device__ __forceinline__ Lse Merge(const Lse& a, const Lse& b) {
  Lse r;
  r.nan = a.nan | b.nan;
  if (b.m > a.m || (b.m == a.m && b.idx < a.idx)) {
    r.m = b.m;
    r.idx = b.idx;
  } else {
    r.m = a.m;
    r.idx = a.idx;
  }
  const float sa = a.m == -INFINITY ? 0.0f : a.s * __expf(a.m - r.m);
  const float sb = b.m == -INFINITY ? 0.0f : b.s * __expf(b.m - r.m);
  r.s = sa + sb;
  return r;
}

__device__ __forceinline__ Lse ShuffleMerge(Lse a, int offset) {
  Lse b;
  b.m = __shfl_xor_sync(0xffffffffu, a.m, offset);
  b.s = __shfl_xor_sync(0xffffffffu, a.s, offset);
  b.idx = __shfl_xor_sync(0xffffffffu, a.idx, offset);
  b.nan = __shfl_xor_sync(0xffffffffu, a.nan, offset);
  return Merge(a, b);
}

constexpr int kLseThreads = 512;

__global__ void __launch_bounds__(kLseThreads)
    LogSoftmaxKernel(const float* logits, int vocab, int64_t ld, const int32_t* targets,
                     float* target_logprob, int32_t* argmax) {
  __shared__ Lse parts[kLseThreads / 32];
  const int64_t r = blockIdx.x;
  const float* row = logits + r * ld;
  Lse st{-INFINITY, 0.0f, 0x7fffffff, 0};
  if ((ld & 3) == 0) {
    const int n4 = vocab / 4;
    const float4* row4 = reinterpret_cast<const float4*>(row);
    for (int c = threadIdx.x; c < n4; c += blockDim.x) {
      const float4 v = row4[c];
      Add(st, v.x, 4 * c);
      Add(st, v.y, 4 * c + 1);
      Add(st, v.z, 4 * c + 2);
      Add(st, v.w, 4 * c + 3);
    }
    for (int c = n4 * 4 + threadIdx.x; c < vocab; c += blockDim.x) Add(st, row[c], c);
  } else {
    for (int c = threadIdx.x; c < vocab; c += blockDim.x) Add(st, row[c], c);
  }
  for (int o = 16; o > 0; o >>= 1) st = ShuffleMerge(st, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) parts[warp] = st;
  __syncthreads();
  if (warp != 0) return;
  st = lane < static_cast<int>(blockDim.x / 32) ? parts[lane] : Lse{-INFINITY, 0.0f, 0x7fffffff, 0};
  for (int o = 16; o > 0; o >>= 1) st = ShuffleMerge(st, o);
  if (lane != 0) return;
  if (argmax != nullptr) argmax[r] = st.idx < vocab ? st.idx : 0;
  if (target_logprob != nullptr) {
    const int t = targets != nullptr ? targets[r] : -1;
    float lp = NAN;
    if (!st.nan && t >= 0 && t < vocab) lp = (row[t] - st.m) - logf(st.s);
    target_logprob[r] = lp;
  }
}

}  // namespace

cudaError_t ConvertToBf16(const void* src, SrcType type, int64_t n, uint16_t* dst,
                          cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  ToBf16Kernel<<<GridFor(n, kThreads), kThreads, 0, stream>>>(src, type, n, dst);
  return cudaGetLastError();
}

cudaError_t ConvertToF32(const void* src, SrcType type, int64_t n, float* dst,
                         cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  ToF32Kernel<<<GridFor(n, kThreads), kThreads, 0, stream>>>(src, type, n, dst);
  return cudaGetLastError();
}

cudaError_t EmbedTokens(const int32_t* tokens, int64_t rows, const uint16_t* table, int hidden,
                        float* out, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (hidden % 8 != 0 || rows > 0x7fffffff) return cudaErrorInvalidValue;
  const int threads = hidden / 8 >= 256 ? 256 : ((hidden / 8 + 31) / 32) * 32;
  EmbedKernel<<<static_cast<unsigned>(rows), threads, 0, stream>>>(tokens, table, hidden, out);
  return cudaGetLastError();
}

cudaError_t RmsNorm(const float* x, RowMap map, int64_t rows, int hidden, const float* w, float eps,
                    uint16_t* y, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (hidden % 4 != 0 || rows > 0x7fffffff) return cudaErrorInvalidValue;
  const int threads = hidden / 4 >= 1024 ? 1024 : ((hidden / 4 + 31) / 32) * 32;
  RmsNormKernel<<<static_cast<unsigned>(rows), threads, 0, stream>>>(x, map, hidden, w, eps, y);
  return cudaGetLastError();
}

cudaError_t RopeTable(const float* inv_freq, int half, int positions, float attention_scaling,
                      float2* cos_sin, cudaStream_t stream) {
  const int64_t n = int64_t{positions} * half;
  if (n <= 0) return cudaSuccess;
  RopeTableKernel<<<GridFor(n, kThreads), kThreads, 0, stream>>>(inv_freq, half, positions,
                                                                 attention_scaling, cos_sin);
  return cudaGetLastError();
}

cudaError_t ApplyRope(const RopeArgs& a, cudaStream_t stream) {
  if (a.tokens <= 0) return cudaSuccess;
  if (a.head_dim % 4 != 0 || a.ld % 2 != 0 || a.seq_len <= 0 || a.tokens > 0x7fffffff) {
    return cudaErrorInvalidValue;
  }
  RopeKernel<<<static_cast<unsigned>(a.tokens), 128, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t SwiGluInPlace(uint16_t* gu, int64_t rows, int inter, int64_t ld, const float* bias,
                          cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (inter % 8 != 0 || ld % 8 != 0 || ld < 2 * int64_t{inter}) return cudaErrorInvalidValue;
  SwiGluKernel<<<GridFor(rows * (inter / 8), kThreads), kThreads, 0, stream>>>(gu, rows, inter, ld,
                                                                               bias);
  return cudaGetLastError();
}

cudaError_t AddBias(float* x, int64_t rows, int cols, const float* bias, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  AddBiasKernel<<<GridFor(rows * cols, kThreads), kThreads, 0, stream>>>(x, rows, cols, bias);
  return cudaGetLastError();
}

cudaError_t LogSoftmaxStats(const float* logits, int64_t rows, int vocab, int64_t ld,
                            const int32_t* targets, float* target_logprob, int32_t* argmax,
                            cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (vocab <= 0 || ld < vocab || rows > 0x7fffffff) return cudaErrorInvalidValue;
  LogSoftmaxKernel<<<static_cast<unsigned>(rows), kLseThreads, 0, stream>>>(
      logits, vocab, ld, targets, target_logprob, argmax);
  return cudaGetLastError();
}

}  // namespace llama_cuda
}  // namespace quantd
