// The CPU backend of the model runtime: a CausalLM (core/runtime/causal_lm.h)
// executing a LoadedModel (core/runtime/model_loader.h) on a thread pool.
//
// Numerics: float32 activations and accumulation throughout; weights are
// read in their stored dtype (BF16/F16 widened to float32 inside the
// matrix product, never copied whole); RMSNorm, RoPE (rotate_half
// convention, inverse frequencies as transformers computes them, incl.
// llama3 / linear scaling), causal GQA attention with a float32 softmax
// (and per-layer sliding windows), SwiGLU MLP, lm_head computed only for
// the positions that are streamed to the sink. The logits of one sequence
// do not depend on the other sequences of a batch (bit for bit), nor on
// whether they are computed in one pass or, in Generate, token by token
// with the key/value cache.
#ifndef QUANTD_KERNELS_CPU_LLAMA_CPU_H_
#define QUANTD_KERNELS_CPU_LLAMA_CPU_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "core/runtime/causal_lm.h"
#include "core/runtime/llama_config.h"
#include "core/runtime/llama_weights.h"

namespace quantd {

// A CPU CausalLM over `model`, which must outlive it. `threads` workers
// (the calling thread included; 0 = hardware concurrency). device() is
// "cpu"; max_context() is max_position_embeddings. Forward and Generate may
// be called from several threads; calls are serialised.
// Generate returns the new tokens including the stop token that ended it,
// if any, and ends early at max_context(). INVALID_ARGUMENT when `model` is
// null or its weights do not match its config (a matrix missing or of the
// wrong shape or dtype, a norm or bias of the wrong length).
absl::StatusOr<std::unique_ptr<CausalLM>> MakeCpuLlama(const LoadedModel* model, int threads);

// Activation memory a Forward of `batch` sequences of `seq_len` tokens
// needs (bytes), for the scheduler's declaration (weights: EstimateMemory).
int64_t CpuLlamaScratchBytes(const LlamaConfig& config, int64_t batch, int64_t seq_len);

}  // namespace quantd

#endif  // QUANTD_KERNELS_CPU_LLAMA_CPU_H_
