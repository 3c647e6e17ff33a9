// Which tensors of a model a quantize job encodes: the 2-D Linear weights of
// the decoder layers ("*.layers.N.*.weight" or "*.h.N.*.weight"), plus
// lm_head when asked. Embeddings, norms, biases and everything else stay as
// they are, as do modules matching the spec's keep_modules.
#ifndef QUANTD_CORE_PIPELINE_TENSOR_SELECTION_H_
#define QUANTD_CORE_PIPELINE_TENSOR_SELECTION_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/hf_model.h"
#include "quantd/v1/quantd.pb.h"

namespace quantd {

struct TensorChoice {
  const ModelTensor* tensor = nullptr;
  bool quantize = false;
  // For quantized weights: the module name (tensor name minus ".weight").
  std::string module;
};

struct Selection {
  std::vector<TensorChoice> tensors;  // model order
  // Linear modules left unquantized (for the output's ignore list), sorted.
  std::vector<std::string> ignored_linear;
};

// INVALID_ARGUMENT for a keep_modules entry that is not a valid regular
// expression, or when nothing would be quantized.
absl::StatusOr<Selection> SelectTensors(const HfModel& model, const v1::QuantizeSpec& spec);

}  // namespace quantd

#endif  // QUANTD_CORE_PIPELINE_TENSOR_SELECTION_H_
