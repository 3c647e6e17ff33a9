// The CUDA backend of the model runtime: a Llama-family model
// (core/runtime/llama_config.h) executed on one GPU in BF16 with float32
// accumulation. Declared for every build; without CUDA, MakeCudaLlama
// returns UNAVAILABLE (kernels/llama_cuda_stub.cc).
//
// Weights are uploaded once as BF16 (F32/F16 sources rounded to nearest
// even; norms and biases stay float32), with q/k/v fused into one matrix
// and gate/up into another. A forward pass over B sequences of T tokens:
//   embedding gather -> float32 residual stream [B*T, hidden]
//   per layer: RMSNorm -> BF16; QKV GEMM (cuBLAS, BF16 in, FP32 compute);
//     bias + RoPE in place; flash attention (tensor cores, online softmax,
//     causal, GQA, sliding window) -> BF16; O GEMM accumulating into the
//     float32 residual (beta = 1: the residual add is the GEMM epilogue);
//     RMSNorm; gate|up GEMM; SwiGLU in place; down GEMM into the residual.
//   final RMSNorm of positions >= from_pos; lm_head GEMM in chunks, float32
//   logits.
// Kernels: kernels/cuda/llama_cuda_ops.h.
#ifndef QUANTD_KERNELS_CUDA_LLAMA_CUDA_H_
#define QUANTD_KERNELS_CUDA_LLAMA_CUDA_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/runtime/causal_lm.h"
#include "core/runtime/llama_config.h"
#include "core/runtime/llama_weights.h"
#include "core/util/cancel.h"

namespace quantd {

struct CudaLlamaOptions {
  // Tokens (sequences x length) one pass over the layers keeps activations
  // for. A larger batch runs as several passes of whole sequences (at
  // least one sequence a pass). 16384 = 8 sequences of 2048.
  int64_t max_batch_tokens = 16384;
  // Device bytes of float32 logits one lm_head GEMM of ForwardLogProbs
  // produces (its rows = bytes / (vocab * 4), at least 1).
  int64_t logits_chunk_bytes = int64_t{1} << 30;
  // Positions per chunk that Forward copies to the host for the LogitsSink
  // (two pinned buffers of this many rows of vocab floats).
  int stream_chunk_rows = 128;
  // Longest sequence accepted; 0 = the config's max_position_embeddings.
  int max_context = 0;
};

// A CausalLM on CUDA with a fast path for perplexity.
class CudaLlama : public CausalLM {
 public:
  // Runs the sequences of `batch` as Forward does (same checks and errors)
  // and, instead of streaming logits, computes on the device for each
  // sequence s and position p in [from_pos, T), i = p - from_pos:
  //   (*target_logprob)[s * (T - from_pos) + i] =
  //       log_softmax(logits(s, p))[targets[s][i]]
  //   (*argmax)[s * (T - from_pos) + i] = first index of the largest logit
  // targets[s] must have T - from_pos entries (the token that follows
  // position p, usually batch[s][p + 1], is the caller's choice); a
  // negative target gives NaN, as does a row with a NaN logit. Either
  // output may be null. Only these 8 bytes a position leave the device.
  // INVALID_ARGUMENT for mismatched target counts or targets >= vocab.
  // Perplexity = exp(-mean(target_logprob)).
  virtual absl::Status ForwardLogProbs(const std::vector<std::vector<int32_t>>& batch, int from_pos,
                                       const std::vector<std::vector<int32_t>>& targets,
                                       std::vector<float>* target_logprob,
                                       std::vector<int32_t>* argmax, const CancelToken& cancel) = 0;
};

// Uploads `model` (which need only live for this call) to CUDA device
// `device`. The returned object is a CudaLlama (dynamic_cast for
// ForwardLogProbs); calls are serialised. Forward: logits float32, computed
// from BF16 weights and activations with float32 accumulation, so expect
// ~1e-2 normalised difference from a float32 backend. Generate: greedy,
// with a BF16 KV cache on the device; a stop token ends generation and is
// included in the result. Errors: UNAVAILABLE without CUDA or device;
// UNIMPLEMENTED for shapes the kernels lack (hidden, q/kv widths or
// intermediate not multiples of 8, head_dim not a multiple of 4 or
// > 256); INVALID_ARGUMENT for weights whose shapes or dtypes do not match
// the config; RESOURCE_EXHAUSTED when the weights do not fit (and from
// Forward / ForwardLogProbs / Generate when their activations do not; the
// object stays usable); INTERNAL for other CUDA
// or cuBLAS errors.
absl::StatusOr<std::unique_ptr<CausalLM>> MakeCudaLlama(const LoadedModel* model, int device,
                                                        const CudaLlamaOptions& options);

// Device bytes MakeCudaLlama plus Forward / ForwardLogProbs over `batch`
// sequences of `seq_len` tokens use at most: BF16 weights, float32 norms
// and biases, the activations of one pass (see max_batch_tokens), one
// logits chunk, cuBLAS's workspace and an allowance for the CUDA context.
// Pure arithmetic, available in every build.
int64_t EstimateCudaMemory(const LlamaConfig& config, int batch, int seq_len,
                           const CudaLlamaOptions& options = {});

}  // namespace quantd

#endif  // QUANTD_KERNELS_CUDA_LLAMA_CUDA_H_
