// Sizes of the CUDA Llama runtime's device buffers, shared by
// EstimateCudaMemory (every build) and the allocator (CUDA builds), so the
// estimate is the allocation. Plain C++, header only.
#ifndef QUANTD_KERNELS_CUDA_LLAMA_CUDA_PLAN_H_
#define QUANTD_KERNELS_CUDA_LLAMA_CUDA_PLAN_H_

#include <algorithm>
#include <cstdint>

#include "core/runtime/llama_config.h"
#include "kernels/cuda/llama_cuda.h"

namespace quantd {
namespace llama_cuda {

// cuBLAS's workspace (32 MiB: what cuBLAS asks for on Hopper).
inline constexpr int64_t kCublasWorkspaceBytes = int64_t{32} << 20;
// The CUDA context, module images and allocator slack.
inline constexpr int64_t kContextAllowanceBytes = int64_t{640} << 20;

struct Dims {
  int64_t hidden, q_dim, kv_dim, qkv_dim, inter, vocab, head_dim, layers;
  // Row stride of the float32 logits buffer: vocab rounded up to 8 floats.
  int64_t ld_vocab;

  explicit Dims(const LlamaConfig& c)
      : hidden(c.hidden_size),
        q_dim(c.q_dim()),
        kv_dim(c.kv_dim()),
        qkv_dim(c.q_dim() + 2 * c.kv_dim()),
        inter(c.intermediate_size),
        vocab(c.vocab_size),
        head_dim(c.head_dim),
        layers(c.num_layers),
        ld_vocab((c.vocab_size + 7) / 8 * 8) {}
};

// BF16 matrices (embedding, fused qkv, o, fused gate|up, down, lm_head
// unless tied) and float32 vectors (norms, biases, RoPE frequencies).
inline int64_t WeightBytes(const LlamaConfig& c) {
  const Dims d(c);
  const int64_t per_layer = d.qkv_dim * d.hidden + d.hidden * d.q_dim + 3 * d.inter * d.hidden;
  int64_t bf16 = d.vocab * d.hidden * (c.tie_word_embeddings ? 1 : 2) + d.layers * per_layer;
  int64_t f32 = d.layers * 2 * d.hidden + d.hidden + d.head_dim / 2;
  if (c.qkv_bias) f32 += d.layers * d.qkv_dim;
  if (c.o_bias) f32 += d.layers * d.hidden;
  if (c.mlp_bias) f32 += d.layers * (2 * d.inter + d.hidden);
  return 2 * bf16 + 4 * f32;
}

// Token rows of one pass over the layers for `batch` sequences of
// `seq_len`: whole sequences, at least one.
inline int64_t PassRows(int64_t batch, int64_t seq_len, const CudaLlamaOptions& o) {
  if (batch <= 0 || seq_len <= 0) return 0;
  const int64_t seqs = std::max<int64_t>(1, std::min(batch, o.max_batch_tokens / seq_len));
  return seqs * seq_len;
}

// Activation bytes for `rows` token rows: token ids, the float32 residual,
// one BF16 buffer for norm outputs and attention outputs, one for the qkv
// and then the gate|up projections, and the per-row targets / log-probs /
// argmax.
inline int64_t ActivationBytes(const LlamaConfig& c, int64_t rows) {
  const Dims d(c);
  return rows * (4 + 4 * d.hidden + 2 * std::max(d.hidden, d.q_dim) +
                 2 * std::max(d.qkv_dim, 2 * d.inter) + 12);
}

// Rows of one float32 logits chunk on the device.
inline int64_t LogitRows(const LlamaConfig& c, int64_t rows, const CudaLlamaOptions& o) {
  const Dims d(c);
  const int64_t by_bytes = std::max<int64_t>(1, o.logits_chunk_bytes / (d.ld_vocab * 4));
  return std::max<int64_t>(1, std::min(rows, std::max<int64_t>(by_bytes, o.stream_chunk_rows)));
}

// RoPE (cos, sin) table for `positions` positions.
inline int64_t RopeTableBytes(const LlamaConfig& c, int64_t positions) {
  return positions * (c.head_dim / 2) * 8;
}

}  // namespace llama_cuda
}  // namespace quantd

#endif  // QUANTD_KERNELS_CUDA_LLAMA_CUDA_PLAN_H_
