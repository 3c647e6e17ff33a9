// The quantize pipeline for Hugging Face folder outputs: reads a model
// folder, encodes the selected weights on the worker's encoder, and writes a
// complete folder (safetensors shards, config.json with the method's
// quantization_config, tokenizer and other files copied unchanged) under a
// temporary name that is renamed into place only when everything is written.
#ifndef QUANTD_CORE_PIPELINE_HF_QUANTIZE_H_
#define QUANTD_CORE_PIPELINE_HF_QUANTIZE_H_

#include <cstdint>
#include <filesystem>

#include "absl/status/statusor.h"
#include "core/jobs/job_handler.h"
#include "core/model/hf_model.h"
#include "core/pipeline/tensor_selection.h"
#include "core/quant/method.h"
#include "quantd/v1/quantd.pb.h"

namespace quantd {

// Shards larger than this are split (as transformers' max_shard_size).
inline constexpr uint64_t kMaxShardBytes = 5'000'000'000ull;

struct HfQuantizeRequest {
  const v1::QuantizeSpec* spec = nullptr;
  const QuantMethod* method = nullptr;
  MethodPlan plan;
  const HfModel* model = nullptr;
  const Selection* selection = nullptr;
  std::filesystem::path output;  // resolved target folder
  // Output name relative to the output root, for the result.
  std::string output_name;
};

// Checks every selected weight against the method's format (shape, group
// size): INVALID_ARGUMENT naming the first tensor that cannot be encoded.
absl::Status CheckEncodable(const HfQuantizeRequest& req);

// Peak working memory of the pipeline: the largest weight and its encoding,
// twice (one tensor is encoded while the previous one is written).
int64_t EstimateMemory(const HfQuantizeRequest& req);

// Runs the pipeline. Errors: CANCELLED, INVALID_ARGUMENT (NaN/Inf weights,
// naming the tensor), ALREADY_EXISTS (output appeared meanwhile),
// RESOURCE_EXHAUSTED (disk full, device memory), INTERNAL.
absl::StatusOr<v1::JobResult> RunHfQuantize(const HfQuantizeRequest& req, const RunContext& ctx);

}  // namespace quantd

#endif  // QUANTD_CORE_PIPELINE_HF_QUANTIZE_H_
