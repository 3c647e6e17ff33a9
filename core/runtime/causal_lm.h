// A causal language model that evaluate jobs run: weights loaded from a
// model folder or GGUF file (core/runtime/model_loader.h), executed by a
// backend in kernels/ (CPU threads or CUDA).
#ifndef QUANTD_CORE_RUNTIME_CAUSAL_LM_H_
#define QUANTD_CORE_RUNTIME_CAUSAL_LM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/util/cancel.h"

namespace quantd {

// Receives the logits of a forward pass, one position at a time, so a
// 128k-entry vocabulary over thousands of positions never sits in memory
// at once. `logits` holds vocab_size float32 values, valid during the call.
class LogitsSink {
 public:
  virtual ~LogitsSink() = default;
  // Sequence `seq` of the batch, position `pos` (0-based) within it.
  virtual absl::Status Consume(int seq, int pos, const float* logits) = 0;
};

struct ForwardStats {
  double seconds = 0;
  int64_t tokens = 0;
  // Peak device memory the backend used (0 on CPU), bytes.
  int64_t peak_device_bytes = 0;
};

class CausalLM {
 public:
  virtual ~CausalLM() = default;

  // "cpu" or "cuda:0".
  virtual std::string device() const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t max_context() const = 0;

  // Runs the sequences of `batch` (each of the same length T <= max_context,
  // starting at position 0, no cache) and streams the logits of positions
  // [from_pos, T) of each to `sink`. INVALID_ARGUMENT for token ids outside
  // the vocabulary or ragged/overlong batches, RESOURCE_EXHAUSTED when
  // device memory runs out, CANCELLED between layers.
  virtual absl::Status Forward(const std::vector<std::vector<int32_t>>& batch, int from_pos,
                               LogitsSink* sink, const CancelToken& cancel) = 0;

  // Greedy decoding of up to `max_new` tokens after `prompt` (stops at any
  // of `stop_ids`); returns the new tokens.
  virtual absl::StatusOr<std::vector<int32_t>> Generate(const std::vector<int32_t>& prompt,
                                                        int max_new,
                                                        const std::vector<int32_t>& stop_ids,
                                                        const CancelToken& cancel) = 0;

  // Returns and resets the stats.
  virtual ForwardStats TakeStats() = 0;
};

}  // namespace quantd

#endif  // QUANTD_CORE_RUNTIME_CAUSAL_LM_H_
