// The quantize pipeline for GGUF outputs (method "gguf"): reads a Hugging
// Face model folder and writes ONE llama.cpp GGUF file, atomically, under
// the output root: metadata (architecture, hyper-parameters, tokenizer, chat
// template), then every tensor in the type llama-quantize's mix gives it
// (core/gguf/gguf_mix.h), encoded on the worker's encoder with the "ggml"
// format (Q/K rows permuted first for the llama architecture), the next
// tensor encoded while the previous one is written.
#ifndef QUANTD_CORE_PIPELINE_GGUF_QUANTIZE_H_
#define QUANTD_CORE_PIPELINE_GGUF_QUANTIZE_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/gguf/gguf_mix.h"
#include "core/gguf/gguf_tokenizer.h"
#include "core/gguf/hf_to_gguf.h"
#include "core/gguf/imatrix.h"
#include "core/jobs/job_handler.h"
#include "core/model/hf_model.h"
#include "core/quant/method.h"
#include "quantd/v1/quantd.pb.h"

namespace quantd {

// The output name of a GGUF job: `name`, with ".gguf" appended unless it
// already ends so (case-sensitive).
std::string GgufOutputName(const std::string& name);

// Everything a GGUF job derives from its spec before running.
struct GgufQuantizeRequest {
  const v1::QuantizeSpec* spec = nullptr;
  const QuantMethod* method = nullptr;
  MethodPlan plan;
  const HfModel* model = nullptr;
  std::filesystem::path output;  // resolved target file
  std::string output_name;       // relative to the output root, ends ".gguf"

  const GgufArch* arch = nullptr;
  GgufHparams hparams;
  GgufVocab vocab;
  GgufFileType file_type;
  std::string override_spec;
  std::vector<GgufTypeOverride> overrides;
  std::optional<ImportanceMatrix> imatrix;
  std::string imatrix_name;               // as given, relative to the model root
  std::vector<GgufTensorSource> tensors;  // file order
  std::vector<GgufMixChoice> types;       // per tensor
};

// Resolves and checks everything: the architecture, config.json, the
// tensors, the tokenizer, the file type and overrides (from
// plan.params.extra: "gguf_type", "override", "imatrix"), the importance
// matrix (resolved under `model_root`), every tensor's type against the
// "ggml" format. INVALID_ARGUMENT naming what is wrong (an unsupported
// architecture lists the supported ones; an imatrix entry whose length is
// not the tensor's row length names both); NOT_FOUND for a missing imatrix.
absl::StatusOr<GgufQuantizeRequest> PrepareGgufQuantize(
    const v1::QuantizeSpec& spec, const QuantMethod* method, const MethodPlan& plan,
    const HfModel& model, const std::filesystem::path& output, const std::string& output_name,
    const std::filesystem::path& model_root);

// Peak working memory: for the two tensors in flight, the source bytes, a
// permuted copy and the encoding, plus slack.
int64_t EstimateGgufMemory(const GgufQuantizeRequest& req);

// Runs the pipeline. Errors: CANCELLED, INVALID_ARGUMENT (NaN/Inf weights,
// naming the tensor), ALREADY_EXISTS (output appeared meanwhile),
// RESOURCE_EXHAUSTED (disk full, device memory), INTERNAL.
absl::StatusOr<v1::JobResult> RunGgufQuantize(const GgufQuantizeRequest& req,
                                              const RunContext& ctx);

}  // namespace quantd

#endif  // QUANTD_CORE_PIPELINE_GGUF_QUANTIZE_H_
