// How evaluate jobs obtain a model runtime without core/ depending on
// kernels/: the server builds a CausalLMFactory from the backends in
// kernels/ (CPU threads, CUDA) and hands it to the job through JobEnv, as
// it hands each worker its WeightEncoder.
#ifndef QUANTD_CORE_EVAL_RUNTIME_FACTORY_H_
#define QUANTD_CORE_EVAL_RUNTIME_FACTORY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/runtime/causal_lm.h"
#include "core/runtime/llama_config.h"
#include "core/runtime/llama_weights.h"
#include "core/util/cancel.h"

namespace quantd {

class CausalLMFactory {
 public:
  virtual ~CausalLMFactory() = default;

  // A CausalLM over `model` on `device` ("cpu" or "cuda:N", a worker's
  // WeightEncoder::device()). `model` must outlive the result (a GPU backend
  // may not need it after this call). UNAVAILABLE when this server has no
  // such device; the backend's errors otherwise.
  virtual absl::StatusOr<std::unique_ptr<CausalLM>> Make(const LoadedModel* model,
                                                         const std::string& device) const = 0;

  // Memory on `device` the runtime needs for `config` running `batch`
  // sequences of `seq_len` tokens, weights excluded on the CPU (the loader
  // accounts for them) and included on a GPU (they are uploaded).
  virtual int64_t EstimateBytes(const LlamaConfig& config, bool gpu, int batch,
                                int seq_len) const = 0;

  // A fast path for perplexity where the backend has one (CUDA): for each
  // sequence s and position p in [from_pos, T), i = p - from_pos,
  // (*logprob)[s * (T - from_pos) + i] = log_softmax(logits(s, p))[targets[s][i]]
  // and (*argmax)[...] its first largest logit. UNIMPLEMENTED when `lm`
  // has no such path (callers then use Forward); the backend's errors
  // otherwise.
  virtual absl::Status ForwardLogProbs(CausalLM* lm, const std::vector<std::vector<int32_t>>& batch,
                                       int from_pos,
                                       const std::vector<std::vector<int32_t>>& targets,
                                       std::vector<float>* logprob, std::vector<int32_t>* argmax,
                                       const CancelToken& cancel) const {
    return absl::UnimplementedError("no log-prob fast path");
  }
};

}  // namespace quantd

#endif  // QUANTD_CORE_EVAL_RUNTIME_FACTORY_H_
