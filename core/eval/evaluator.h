// Runs models over the chunks of a perplexity protocol and scores every
// scored position: negative log-likelihood and argmax for each model, KL
// divergence and top-1 agreement against a reference when there is one.
//
// Chunks are processed in batches; within a batch the reference runs first
// and its log-softmax rows are kept (batch x scored positions x vocab
// floats) while the other models run, so no model's logits over the whole
// dataset are ever stored. Without a reference, a backend's log-prob fast
// path (CausalLMFactory::ForwardLogProbs) is used when it has one.
#ifndef QUANTD_CORE_EVAL_EVALUATOR_H_
#define QUANTD_CORE_EVAL_EVALUATOR_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "core/eval/metrics.h"
#include "core/eval/protocol.h"
#include "core/eval/runtime_factory.h"
#include "core/runtime/causal_lm.h"
#include "core/util/cancel.h"

namespace quantd {

struct EvalRunOptions {
  // Chunks per forward pass (>= 1).
  int batch = 1;
  // True when models[0] is the reference the others are compared with.
  bool has_reference = false;
  // May be null (no fast path).
  const CausalLMFactory* factory = nullptr;
  // Called after each batch with the chunks done so far (of the total).
  std::function<void(int64_t done, int64_t total)> on_chunks;
};

struct ModelRunStats {
  double forward_seconds = 0;
  int64_t forward_tokens = 0;
  int64_t peak_device_bytes = 0;
};

// Scores `models` (models[0] the reference when options.has_reference) on
// `chunks` under `plan`. scores/stats get one entry per model; scores[i].nll
// has chunks.size() * plan.scored_per_chunk() entries in chunk order.
// INVALID_ARGUMENT when the models' vocabularies differ with a reference or
// a token is outside a vocabulary; CANCELLED between batches and inside
// forward passes; the backends' errors otherwise.
absl::Status ScoreChunks(const ChunkPlan& plan, const std::vector<std::vector<int32_t>>& chunks,
                         const std::vector<CausalLM*>& models, const EvalRunOptions& options,
                         const CancelToken& cancel, std::vector<TokenScores>* scores,
                         std::vector<ModelRunStats>* stats);

}  // namespace quantd

#endif  // QUANTD_CORE_EVAL_EVALUATOR_H_
