// A whole evaluation: load the models, tokenize the dataset, score the
// chunks (core/eval/evaluator.h), sample a greedy generation from each
// model, and summarize everything into an EvaluateResult. The evaluate job
// (core/jobs/evaluate_job.cc) resolves names and plans memory; this runs.
#ifndef QUANTD_CORE_EVAL_EVALUATION_H_
#define QUANTD_CORE_EVAL_EVALUATION_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/eval/runtime_factory.h"
#include "core/util/cancel.h"
#include "quantd/v1/quantd.pb.h"

namespace quantd {

struct EvalModelRef {
  std::string name;  // as the spec names it
  std::string role;  // "reference", "model", "candidate"
  std::filesystem::path path;
};

struct EvaluationInputs {
  // Reference first when there is one.
  std::vector<EvalModelRef> models;
  bool has_reference = false;
  std::filesystem::path dataset;
  std::string dataset_name;
  // A model folder with tokenizer files.
  std::filesystem::path tokenizer_dir;
  std::string tokenizer_name;
};

// Bytes of a model's weight files: the *.safetensors files of a folder, or
// the GGUF file itself. NOT_FOUND / INTERNAL from the file system.
absl::StatusOr<int64_t> WeightBytesOnDisk(const std::filesystem::path& model);

// Peak resident set of this process (VmHWM), bytes; 0 when unknown.
int64_t ProcessPeakRss();

struct EvaluationHooks {
  // (stage, fraction 0..1, step, total steps, message)
  std::function<void(const std::string&, double, int64_t, int64_t, const std::string&)> progress;
  // Threads for model loading (0: all).
  int load_threads = 0;
};

// Runs the evaluation `spec` asks for on `device` ("cpu", "cuda:N").
// Errors: those of the loader, the tokenizer and the backends; CANCELLED
// when `cancel` fires (between models, batches and layers).
absl::StatusOr<v1::EvaluateResult> RunEvaluation(
    const v1::EvaluateSpec& spec, const EvaluationInputs& inputs, const CausalLMFactory& factory,
    const std::string& device, const EvaluationHooks& hooks, const CancelToken& cancel);

// The comparison table as JSON: {"protocol": {...}, "reference": name,
// "columns": [...], "rows": [{column: value}, ...]}, one row per model in
// result order. Columns: model, role, format, size_bytes,
// bits_per_weight, compression_ratio, perplexity, perplexity_stderr,
// perplexity_diff, perplexity_diff_stderr, kl_mean, kl_median, kl_p99,
// top1_agreement, tokens_per_second, peak_gpu_bytes, generation. Values
// that do not apply (no reference) are null.
std::string ComparisonTableJson(const v1::EvaluateResult& result);

}  // namespace quantd

#endif  // QUANTD_CORE_EVAL_EVALUATION_H_
