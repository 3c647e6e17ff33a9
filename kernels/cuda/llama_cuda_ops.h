// The device operations of the CUDA Llama runtime (kernels/cuda/llama_cuda.h),
// callable from plain C++ so tests can compare each with a host reference.
//
// Conventions: bfloat16 tensors are passed as uint16_t bit patterns; all
// tensors are row-major with the strides given in elements; every launcher
// enqueues on `stream` and returns the launch error (cudaGetLastError), not
// the kernel's outcome. Float math is float32 throughout; bfloat16 outputs
// are rounded to nearest even once, at the end.
#ifndef QUANTD_KERNELS_CUDA_LLAMA_CUDA_OPS_H_
#define QUANTD_KERNELS_CUDA_LLAMA_CUDA_OPS_H_

#include <cuda_runtime_api.h>

#include <cstdint>

namespace quantd {
namespace llama_cuda {

// Source element types the conversion kernels read.
enum class SrcType : int { kBF16 = 0, kF16 = 1, kF32 = 2 };

// dst[i] = bf16(src[i]) for i < n.
cudaError_t ConvertToBf16(const void* src, SrcType type, int64_t n, uint16_t* dst,
                          cudaStream_t stream);
// dst[i] = float(src[i]) for i < n.
cudaError_t ConvertToF32(const void* src, SrcType type, int64_t n, float* dst, cudaStream_t stream);

// out[r, :] = float(table[tokens[r], :]) for r < rows. Token ids must have
// been validated (0 <= id < vocab) by the caller. hidden % 8 == 0.
cudaError_t EmbedTokens(const int32_t* tokens, int64_t rows, const uint16_t* table, int hidden,
                        float* out, cudaStream_t stream);

// Which input row feeds output row r of RmsNorm:
//   (r / per_seq) * seq_stride + offset + r % per_seq.
// Identity(rows) maps every row to itself; the final norm uses it to pick
// positions [from_pos, T) of each sequence of length T.
struct RowMap {
  int64_t per_seq = 1;
  int64_t seq_stride = 1;
  int64_t offset = 0;
  static RowMap Identity() { return RowMap{int64_t{1} << 62, 0, 0}; }
};

// y[r, :] = bf16(x[m(r), :] * rsqrt(mean(x[m(r), :]^2) + eps) * w) for
// r < rows; x float32 with row stride `hidden`. hidden % 4 == 0.
cudaError_t RmsNorm(const float* x, RowMap map, int64_t rows, int hidden, const float* w, float eps,
                    uint16_t* y, cudaStream_t stream);

// cos_sin[p * half + i] = (cos(p * inv_freq[i]), sin(...)) * attention_scaling
// for p < positions, i < half = head_dim / 2; the angle is the float32
// product, as Hugging Face computes it.
cudaError_t RopeTable(const float* inv_freq, int half, int positions, float attention_scaling,
                      float2* cos_sin, cudaStream_t stream);

// In place on a fused projection output qkv[tokens, ld] whose columns are
// [q heads | k heads | v heads], each head `head_dim` wide: adds `bias`
// (float32, nullable, length (heads + 2 * kv_heads) * head_dim) and rotates
// the q and k heads of token r (position pos0 + r % seq_len) with Hugging
// Face's rotate_half convention:
//   x1' = x1 * cos - x2 * sin,  x2' = x2 * cos + x1 * sin
// where x1, x2 are the first and second half of the head. head_dim % 4 == 0.
struct RopeArgs {
  uint16_t* qkv = nullptr;
  int64_t tokens = 0;
  int64_t ld = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;
  int seq_len = 1;
  int pos0 = 0;
  const float* bias = nullptr;
  const float2* cos_sin = nullptr;  // RopeTable, covering pos0 + seq_len positions
};
cudaError_t ApplyRope(const RopeArgs& a, cudaStream_t stream);

// In place: gu[r, j] = bf16(silu(g) * u) with g = gu[r, j] + bias[j],
// u = gu[r, inter + j] + bias[inter + j] for j < inter, rows of stride
// ld >= 2 * inter (gate columns first, then up); `bias` (float32, 2 * inter)
// is nullable. The result is read back with stride ld. inter % 8 == 0,
// ld % 8 == 0.
cudaError_t SwiGluInPlace(uint16_t* gu, int64_t rows, int inter, int64_t ld, const float* bias,
                          cudaStream_t stream);

// x[r, c] += bias[c] for r < rows, c < cols (float32).
cudaError_t AddBias(float* x, int64_t rows, int cols, const float* bias, cudaStream_t stream);

// Causal attention of `batch` sequences: query i of a sequence sits at
// position p = kv_len - q_len + i and sees keys j with p - window < j <= p
// (window 0: all of 0 .. p; Mistral's and Qwen2's sliding window). Query head h
// uses key/value head h / (heads / kv_heads). Output row i of each sequence
// is o[i, h * head_dim + d], bfloat16. Softmax in float32 with scale
// `scale` (usually 1 / sqrt(head_dim)).
struct AttentionArgs {
  const uint16_t* q = nullptr;
  const uint16_t* k = nullptr;
  const uint16_t* v = nullptr;
  uint16_t* o = nullptr;
  // Elements between consecutive tokens, and between sequences.
  int64_t q_row = 0, k_row = 0, v_row = 0, o_row = 0;
  int64_t q_seq = 0, k_seq = 0, v_seq = 0, o_seq = 0;
  int batch = 1, heads = 1, kv_heads = 1, head_dim = 0;
  int q_len = 0, kv_len = 0;
  int window = 0;
  float scale = 1.0f;
};

// A flash-attention kernel on the tensor cores (mma.sync m16n8k16 BF16 with
// float32 accumulation): tiles of 64 queries against double-buffered tiles
// of 64 keys in shared memory, online softmax, never the whole score matrix.
// Probabilities are rounded to bfloat16 before the P.V product. head_dim in
// {32, 64, 96, 128}; cudaErrorInvalidValue otherwise.
cudaError_t FlashAttention(const AttentionArgs& a, cudaStream_t stream);
bool FlashAttentionSupports(int head_dim);

// The same function on CUDA cores, one block per (query, head): for decode
// steps (q_len 1) and head sizes FlashAttention lacks. head_dim % 2 == 0,
// head_dim <= 256.
cudaError_t SimpleAttention(const AttentionArgs& a, cudaStream_t stream);

// Per row r < rows of logits (float32, row stride ld >= vocab): the
// log-softmax of token targets[r] (NaN when targets is null, the target is
// outside [0, vocab) or the row holds a NaN) into target_logprob[r]
// (nullable), and the first index of the largest logit into argmax[r]
// (nullable).
cudaError_t LogSoftmaxStats(const float* logits, int64_t rows, int vocab, int64_t ld,
                            const int32_t* targets, float* target_logprob, int32_t* argmax,
                            cudaStream_t stream);

}  // namespace llama_cuda
}  // namespace quantd

#endif  // QUANTD_KERNELS_CUDA_LLAMA_CUDA_OPS_H_
