// Causal attention for the CUDA Llama runtime (see llama_cuda_ops.h).
//
// FlashAttention: one block of 4 warps per (64 queries, head, sequence);
// each warp owns 16 query rows. Q is loaded once into registers as mma
// A-fragments. Key/value tiles of 64 rows are copied with cp.async into a
// double buffer (tile j + 1 loads while tile j is computed). Per tile:
//   S = Q K^T      mma.sync m16n8k16 bf16 -> f32, K fragments via ldmatrix
//   online softmax in the log2 domain (row max across the quad of lanes
//                  that share a row; row sums kept per lane, reduced once)
//   O += P V       P re-packed from the S accumulators as bf16 A-fragments
//                  (the accumulator layout of two n8 tiles is the A layout
//                  of one k16 step), V fragments via ldmatrix.trans.
// Shared-memory rows are padded by 16 bytes so the 8 row addresses of an
// ldmatrix fall into distinct banks. Blocks run heaviest (last query tile)
// first so the causal triangle does not leave a tail.
//
// SimpleAttention: CUDA cores, one block of 4 warps per (query, head);
// warp w takes keys w, w + 4, ...; each lane holds head_dim / 32 elements;
// the four partial softmax states are merged at the end.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/llama_cuda_ops.h"

namespace quantd {
namespace llama_cuda {
namespace {

constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float Exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ uint32_t SmemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte asynchronous copy global -> shared; zero-fills when !valid.
__device__ __forceinline__ void CpAsync16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SmemAddr(dst)), "l"(src),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void CpAsyncWaitAll() {
  asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}

// Shared-memory addresses are passed as 32-bit byte addresses so that
// compile-time offsets fold into the instructions.
__device__ __forceinline__ void Ldmatrix4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void Ldmatrix4Trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// c += a * b, m16n8k16, bf16 inputs, f32 accumulators.
__device__ __forceinline__ void Mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t PackBf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

constexpr int kBr = 64;  // queries per block
constexpr int kBc = 64;  // keys per tile
constexpr int kWarps = kBr / 16;
constexpr int kFlashThreads = kWarps * 32;

template <int D>
constexpr int kRowStride = D + 8;  // elements; +16 bytes against bank conflicts

// Two K and two V buffers; Q is staged in the second K buffer, which is
// free until the second tile is loaded.
template <int D>
constexpr size_t FlashSmemBytes() {
  static_assert(kBr == kBc, "Q staging assumes a Q tile fits a K buffer");
  return sizeof(uint16_t) * 4 * kBc * kRowStride<D>;
}

// Copies rows [row0, row0 + rows) (those < limit; zeros beyond) of a
// head-slice of width D into shared memory.
template <int D>
__device__ __forceinline__ void LoadTile(uint16_t* dst, const uint16_t* base, int64_t row_stride,
                                         int row0, int rows, int limit) {
  constexpr int kChunks = D / 8;
  for (int c = threadIdx.x; c < rows * kChunks; c += kFlashThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const bool valid = row0 + r < limit;
    const uint16_t* src = valid ? base + int64_t{row0 + r} * row_stride + col : base;
    CpAsync16(dst + r * kRowStride<D> + col, src, valid);
  }
}

// Blocks per SM the register budget is cut for: three fit the shared
// memory (about 70 KB each at head_dim 128), but three cap registers at 168
// and spill at head_dim 96 and 128 (ptxas, sm_90: 28 bytes at 96), so two
// there.
template <int D>
constexpr int kMinBlocks = D >= 96 ? 2 : 3;

template <int D>
__global__ void __launch_bounds__(kFlashThreads, kMinBlocks<D>) FlashKernel(AttentionArgs a) {
  constexpr int kS = kRowStride<D>;
  extern __shared__ __align__(16) uint16_t smem[];
  uint16_t* s_k = smem;  // 2 buffers
  uint16_t* s_v = s_k + 2 * kBc * kS;
  uint16_t* s_q = s_k + kBc * kS;  // = K buffer 1

  // Grid (heads, batch, query tiles), the tiles in the slowest dimension
  // and reversed: the longest rows of the causal triangle start first
  // everywhere, and heads sharing a K/V head run side by side (L2 reuse).
  const int q_tile = gridDim.z - 1 - blockIdx.z;
  const int h = blockIdx.x, b = blockIdx.y;
  const int kvh = h / (a.heads / a.kv_heads);
  const int q0 = q_tile * kBr;
  const int offset = a.kv_len - a.q_len;  // position of query 0
  const int k_end = min(a.kv_len, q0 + kBr + offset);
  const int n_tiles = (k_end + kBc - 1) / kBc;
  // With a window, tiles wholly before the first query's window are skipped.
  const int first_key = a.window > 0 ? max(0, q0 + offset - a.window + 1) : 0;
  const int j0 = first_key / kBc;

  const uint16_t* q_base = a.q + b * a.q_seq + int64_t{h} * D;
  const uint16_t* k_base = a.k + b * a.k_seq + int64_t{kvh} * D;
  const uint16_t* v_base = a.v + b * a.v_seq + int64_t{kvh} * D;

  LoadTile<D>(s_q, q_base, a.q_row, q0, kBr, a.q_len);
  LoadTile<D>(s_k, k_base, a.k_row, j0 * kBc, kBc, a.kv_len);
  LoadTile<D>(s_v, v_base, a.v_row, j0 * kBc, kBc, a.kv_len);
  CpAsyncCommit();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  // Byte addresses of this lane's ldmatrix rows: A (Q) fragments take rows
  // lane % 16 and column half lane / 16; K (B, non-transposed) takes key
  // lane % 8 + 8 * (lane / 16) and column half (lane / 8) % 2; V
  // (transposed) takes key lane % 16 and column half lane / 16.
  constexpr uint32_t kRowBytes = kS * 2;
  constexpr uint32_t kTileBytes = kBc * kRowBytes;
  const uint32_t k_smem = SmemAddr(s_k), v_smem = SmemAddr(s_v);
  const uint32_t q_lane = SmemAddr(s_q) + (warp * 16 + lane % 16) * kRowBytes + (lane / 16) * 16;
  const uint32_t k_lane = (lane % 8 + (lane / 16) * 8) * kRowBytes + ((lane / 8) % 2) * 16;
  const uint32_t v_lane = (lane % 16) * kRowBytes + (lane / 16) * 16;
  const float scale_log2 = a.scale * kLog2e;
  // Query positions of the two rows this lane holds.
  const int pos_a = q0 + warp * 16 + g + offset;
  const int pos_b = pos_a + 8;
  const int warp_min_pos = q0 + warp * 16 + offset;
  // Keys below lo_a / lo_b are outside the rows' windows.
  const int lo_a = a.window > 0 ? pos_a - a.window + 1 : 0;
  const int lo_b = a.window > 0 ? pos_b - a.window + 1 : 0;
  const int warp_max_lo = a.window > 0 ? warp_min_pos + 15 - a.window + 1 : 0;

  uint32_t qf[D / 16][4];
  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;

  for (int j = j0; j < n_tiles; ++j) {
    const int buf = (j - j0) & 1;
    CpAsyncWaitAll();
    __syncthreads();
    if (j == j0) {
#pragma unroll
      for (int kc = 0; kc < D / 16; ++kc) Ldmatrix4(qf[kc], q_lane + kc * 32);
      __syncthreads();  // every warp holds its Q before the next tile overwrites it
    }
    if (j + 1 < n_tiles) {
      const int nb = buf ^ 1;
      LoadTile<D>(s_k + nb * kBc * kS, k_base, a.k_row, (j + 1) * kBc, kBc, a.kv_len);
      LoadTile<D>(s_v + nb * kBc * kS, v_base, a.v_row, (j + 1) * kBc, kBc, a.kv_len);
      CpAsyncCommit();
    }
    const uint32_t k_addr = k_smem + buf * kTileBytes + k_lane;
    const uint32_t v_addr = v_smem + buf * kTileBytes + v_lane;

    float s[kBc / 8][4];
#pragma unroll
    for (int i = 0; i < kBc / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
    for (int kc = 0; kc < D / 16; ++kc) {
#pragma unroll
      for (int np = 0; np < kBc / 16; ++np) {
        uint32_t kf[4];
        Ldmatrix4(kf, k_addr + np * 16 * kRowBytes + kc * 32);
        Mma(s[2 * np], qf[kc], kf[0], kf[1]);
        Mma(s[2 * np + 1], qf[kc], kf[2], kf[3]);
      }
    }

    const int key0 = j * kBc;
    if (key0 + kBc - 1 > warp_min_pos || key0 + kBc > a.kv_len || key0 < warp_max_lo) {
#pragma unroll
      for (int nt = 0; nt < kBc / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = key0 + nt * 8 + 2 * t + (e & 1);
          const int pos = e < 2 ? pos_a : pos_b;
          const int lo = e < 2 ? lo_a : lo_b;
          if (key > pos || key < lo || key >= a.kv_len) s[nt][e] = -INFINITY;
        }
      }
    }

    float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < kBc / 8; ++nt) {
      mx_a = fmaxf(mx_a, fmaxf(s[nt][0], s[nt][1]));
      mx_b = fmaxf(mx_b, fmaxf(s[nt][2], s[nt][3]));
    }
#pragma unroll
    for (int sh = 1; sh <= 2; sh <<= 1) {
      mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, sh));
      mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, sh));
    }
    const float new_a = fmaxf(m_a, mx_a * scale_log2);
    const float new_b = fmaxf(m_b, mx_b * scale_log2);
    // A row with nothing visible yet keeps max -inf: subtract 0 instead.
    const float use_a = new_a == -INFINITY ? 0.0f : new_a;
    const float use_b = new_b == -INFINITY ? 0.0f : new_b;
    const float corr_a = Exp2(m_a - use_a), corr_b = Exp2(m_b - use_b);
    m_a = new_a;
    m_b = new_b;
    l_a *= corr_a;
    l_b *= corr_b;
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      o[i][0] *= corr_a;
      o[i][1] *= corr_a;
      o[i][2] *= corr_b;
      o[i][3] *= corr_b;
    }
    uint32_t pk[kBc / 8][2];
#pragma unroll
    for (int nt = 0; nt < kBc / 8; ++nt) {
      const float p0 = Exp2(__fmaf_rn(s[nt][0], scale_log2, -use_a));
      const float p1 = Exp2(__fmaf_rn(s[nt][1], scale_log2, -use_a));
      const float p2 = Exp2(__fmaf_rn(s[nt][2], scale_log2, -use_b));
      const float p3 = Exp2(__fmaf_rn(s[nt][3], scale_log2, -use_b));
      l_a += p0 + p1;
      l_b += p2 + p3;
      pk[nt][0] = PackBf16x2(p0, p1);
      pk[nt][1] = PackBf16x2(p2, p3);
    }

#pragma unroll
    for (int kc = 0; kc < kBc / 16; ++kc) {
      const uint32_t pa[4] = {pk[2 * kc][0], pk[2 * kc][1], pk[2 * kc + 1][0], pk[2 * kc + 1][1]};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t vf[4];
        Ldmatrix4Trans(vf, v_addr + kc * 16 * kRowBytes + dp * 32);
        Mma(o[2 * dp], pa, vf[0], vf[1]);
        Mma(o[2 * dp + 1], pa, vf[2], vf[3]);
      }
    }
  }

#pragma unroll
  for (int sh = 1; sh <= 2; sh <<= 1) {
    l_a += __shfl_xor_sync(0xffffffffu, l_a, sh);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, sh);
  }
  const float inv_a = l_a > 0.0f ? __frcp_rn(l_a) : 0.0f;
  const float inv_b = l_b > 0.0f ? __frcp_rn(l_b) : 0.0f;
  // Stage the warp's 16 output rows in s_q (once every warp is done with
  // the last K/V tile), then write 16-byte chunks.
  __syncthreads();
  uint16_t* s_o = s_q + warp * 16 * kS;
#pragma unroll
  for (int nt = 0; nt < D / 8; ++nt) {
    const int col = nt * 8 + 2 * t;
    *reinterpret_cast<uint32_t*>(s_o + g * kS + col) =
        PackBf16x2(o[nt][0] * inv_a, o[nt][1] * inv_a);
    *reinterpret_cast<uint32_t*>(s_o + (g + 8) * kS + col) =
        PackBf16x2(o[nt][2] * inv_b, o[nt][3] * inv_b);
  }
  __syncwarp();
  uint16_t* o_base = a.o + b * a.o_seq + int64_t{h} * D;
  constexpr int kChunks = D / 8;
  for (int c = lane; c < 16 * kChunks; c += 32) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const int qi = q0 + warp * 16 + r;
    if (qi < a.q_len) {
      *reinterpret_cast<uint4*>(o_base + int64_t{qi} * a.o_row + col) =
          *reinterpret_cast<const uint4*>(s_o + r * kS + col);
    }
  }
}

template <int D>
cudaError_t LaunchFlash(const AttentionArgs& a, cudaStream_t stream) {
  constexpr size_t kSmem = FlashSmemBytes<D>();
  // The attribute is per function and device; setting it each time is cheap.
  cudaError_t e =
      cudaFuncSetAttribute(FlashKernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (e != cudaSuccess) return e;
  const int tiles = (a.q_len + kBr - 1) / kBr;
  if (tiles > 65535) return cudaErrorInvalidValue;
  const dim3 grid(a.heads, a.batch, tiles);
  FlashKernel<D><<<grid, kFlashThreads, kSmem, stream>>>(a);
  return cudaGetLastError();
}

constexpr int kSimpleWarps = 4;

// kPer: elements per lane (head_dim <= 32 * kPer); lane holds d = lane + 32 e.
template <int kPer>
__global__ void __launch_bounds__(kSimpleWarps * 32) SimpleKernel(AttentionArgs a) {
  __shared__ float s_m[kSimpleWarps], s_l[kSimpleWarps];
  __shared__ float s_o[kSimpleWarps][32 * kPer];
  const int qi = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int kvh = h / (a.heads / a.kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int D = a.head_dim;
  const int pos = a.kv_len - a.q_len + qi;
  const uint16_t* qp = a.q + b * a.q_seq + int64_t{qi} * a.q_row + int64_t{h} * D;
  const uint16_t* kp = a.k + b * a.k_seq + int64_t{kvh} * D;
  const uint16_t* vp = a.v + b * a.v_seq + int64_t{kvh} * D;
  const __nv_bfloat16* q16 = reinterpret_cast<const __nv_bfloat16*>(qp);
  const float scale_log2 = a.scale * kLog2e;
  float q[kPer], acc[kPer];
#pragma unroll
  for (int e = 0; e < kPer; ++e) {
    const int d = lane + 32 * e;
    q[e] = d < D ? __bfloat162float(q16[d]) * scale_log2 : 0.0f;
    acc[e] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  const int first = a.window > 0 ? max(0, pos - a.window + 1) : 0;
  for (int key = first + warp; key <= pos && key < a.kv_len; key += kSimpleWarps) {
    const __nv_bfloat16* k16 = reinterpret_cast<const __nv_bfloat16*>(kp + int64_t{key} * a.k_row);
    float dot = 0.0f;
#pragma unroll
    for (int e = 0; e < kPer; ++e) {
      const int d = lane + 32 * e;
      if (d < D) dot = __fmaf_rn(q[e], __bfloat162float(k16[d]), dot);
    }
#pragma unroll
    for (int sh = 16; sh > 0; sh >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, sh);
    const float nm = fmaxf(m, dot);
    const float corr = Exp2(m - nm), p = Exp2(dot - nm);
    m = nm;
    l = __fmaf_rn(l, corr, p);
    const __nv_bfloat16* v16 = reinterpret_cast<const __nv_bfloat16*>(vp + int64_t{key} * a.v_row);
#pragma unroll
    for (int e = 0; e < kPer; ++e) {
      const int d = lane + 32 * e;
      const float v = d < D ? __bfloat162float(v16[d]) : 0.0f;
      acc[e] = __fmaf_rn(acc[e], corr, p * v);
    }
  }
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
#pragma unroll
  for (int e = 0; e < kPer; ++e) s_o[warp][lane + 32 * e] = acc[e];
  __syncthreads();
  if (warp != 0) return;
  float gm = -INFINITY;
  for (int w = 0; w < kSimpleWarps; ++w) gm = fmaxf(gm, s_m[w]);
  float gl = 0.0f, f[kSimpleWarps];
  for (int w = 0; w < kSimpleWarps; ++w) {
    f[w] = s_m[w] == -INFINITY ? 0.0f : Exp2(s_m[w] - gm);
    gl = __fmaf_rn(s_l[w], f[w], gl);
  }
  const float inv = gl > 0.0f ? __frcp_rn(gl) : 0.0f;
  __nv_bfloat16* op =
      reinterpret_cast<__nv_bfloat16*>(a.o + b * a.o_seq + int64_t{qi} * a.o_row + int64_t{h} * D);
#pragma unroll
  for (int e = 0; e < kPer; ++e) {
    const int d = lane + 32 * e;
    if (d >= D) continue;
    float v = 0.0f;
    for (int w = 0; w < kSimpleWarps; ++w) v = __fmaf_rn(s_o[w][d], f[w], v);
    op[d] = __float2bfloat16_rn(v * inv);
  }
}

template <int kPer>
cudaError_t LaunchSimple(const AttentionArgs& a, cudaStream_t stream) {
  const dim3 grid(a.q_len, a.heads, a.batch);
  SimpleKernel<kPer><<<grid, kSimpleWarps * 32, 0, stream>>>(a);
  return cudaGetLastError();
}

bool ValidShape(const AttentionArgs& a) {
  return a.batch > 0 && a.heads > 0 && a.kv_heads > 0 && a.heads % a.kv_heads == 0 && a.q_len > 0 &&
         a.kv_len >= a.q_len && a.batch <= 65535 && a.heads <= 65535;
}

}  // namespace

bool FlashAttentionSupports(int head_dim) {
  return head_dim == 32 || head_dim == 64 || head_dim == 96 || head_dim == 128;
}

cudaError_t FlashAttention(const AttentionArgs& a, cudaStream_t stream) {
  if (!ValidShape(a)) return cudaErrorInvalidValue;
  switch (a.head_dim) {
    case 32:
      return LaunchFlash<32>(a, stream);
    case 64:
      return LaunchFlash<64>(a, stream);
    case 96:
      return LaunchFlash<96>(a, stream);
    case 128:
      return LaunchFlash<128>(a, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t SimpleAttention(const AttentionArgs& a, cudaStream_t stream) {
  if (!ValidShape(a) || a.head_dim <= 0 || a.head_dim > 256 || a.q_len > 0x7fffffff) {
    return cudaErrorInvalidValue;
  }
  if (a.head_dim <= 32) return LaunchSimple<1>(a, stream);
  if (a.head_dim <= 64) return LaunchSimple<2>(a, stream);
  if (a.head_dim <= 128) return LaunchSimple<4>(a, stream);
  return LaunchSimple<8>(a, stream);
}

}  // namespace llama_cuda
}  // namespace quantd
