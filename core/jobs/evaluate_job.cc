#include "core/jobs/evaluate_job.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/eval/evaluation.h"
#include "core/eval/protocol.h"
#include "core/eval/runtime_factory.h"
#include "core/runtime/model_loader.h"
#include "core/util/paths.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;

constexpr const char kOutputPrefix[] = "output:";

// A model name: relative to the model root, or to the output root with the
// "output:" prefix.
absl::StatusOr<fs::path> ResolveModel(const JobEnv& env, const std::string& name) {
  if (absl::StartsWith(name, kOutputPrefix)) {
    return ResolveUnderRoot(env.output_root, name.substr(sizeof(kOutputPrefix) - 1),
                            PathMode::kMustExist);
  }
  return ResolveUnderRoot(env.model_root, name, PathMode::kMustExist);
}

bool HasTokenizer(const fs::path& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) &&
         (fs::exists(dir / "tokenizer.json", ec) || fs::exists(dir / "tokenizer.model", ec));
}

struct Prepared {
  EvaluationInputs inputs;
  std::vector<ModelInspection> inspections;  // parallel to inputs.models
};

absl::StatusOr<Prepared> Prepare(const v1::EvaluateSpec& e, const JobEnv& env) {
  if (e.model().empty()) return absl::InvalidArgumentError("evaluate.model is required");
  if (e.dataset().empty()) {
    return absl::InvalidArgumentError(
        "evaluate.dataset (a text file under the model root) is "
        "required");
  }
  if (!e.candidates().empty() && e.reference().empty()) {
    return absl::InvalidArgumentError("evaluate.candidates need a reference to compare with");
  }
  if (!e.protocol().empty() && e.protocol() != "llama" && e.protocol() != "gptq") {
    return absl::InvalidArgumentError(
        absl::StrCat("evaluate.protocol \"", e.protocol(), "\" is not one of llama, gptq"));
  }
  if (e.generate_tokens() < 0 || e.batch_size() < 0 || e.context() < 0 || e.max_tokens() < 0) {
    return absl::InvalidArgumentError(
        "evaluate: generate_tokens, batch_size, context and max_tokens must not be negative");
  }
  Prepared p;
  EvaluationInputs& in = p.inputs;
  if (!e.reference().empty()) {
    in.has_reference = true;
    in.models.push_back({e.reference(), "reference", {}});
  }
  in.models.push_back({e.model(), "model", {}});
  for (const std::string& c : e.candidates()) in.models.push_back({c, "candidate", {}});
  for (EvalModelRef& m : in.models) {
    ASSIGN_OR_RETURN(m.path, ResolveModel(env, m.name));
    ASSIGN_OR_RETURN(ModelInspection insp, InspectModel(m.path, LoadOptions{}));
    p.inspections.push_back(std::move(insp));
  }
  ASSIGN_OR_RETURN(in.dataset, ResolveUnderRoot(env.model_root, e.dataset(), PathMode::kMustExist));
  in.dataset_name = e.dataset();
  auto tok = e.options().find("tokenizer");
  if (tok != e.options().end()) {
    ASSIGN_OR_RETURN(in.tokenizer_dir, ResolveModel(env, tok->second));
    in.tokenizer_name = tok->second;
  } else {
    for (const EvalModelRef& m : in.models) {
      if (HasTokenizer(m.path)) {
        in.tokenizer_dir = m.path;
        in.tokenizer_name = m.name;
        break;
      }
    }
  }
  if (!HasTokenizer(in.tokenizer_dir)) {
    return absl::InvalidArgumentError(
        "no tokenizer: no model folder has tokenizer.json or tokenizer.model (GGUF files need "
        "a reference folder or options.tokenizer naming one)");
  }
  for (const ModelInspection& insp : p.inspections) {
    const int max_pos = static_cast<int>(insp.config.max_position_embeddings);
    const int ctx = e.context() > 0 ? e.context() : DefaultContext(e.protocol());
    if (max_pos > 0 && ctx > max_pos) {
      return absl::InvalidArgumentError(
          absl::StrCat("evaluate.context ", ctx, " exceeds a model's maximum context ", max_pos));
    }
    if (in.has_reference && insp.config.vocab_size != p.inspections.front().config.vocab_size) {
      return absl::InvalidArgumentError(
          "the models' vocabulary sizes differ: KL divergence needs one vocabulary");
    }
  }
  return p;
}

class EvaluateHandler : public JobHandler {
 public:
  v1::JobKind kind() const override { return v1::JOB_KIND_EVALUATE; }

  absl::StatusOr<JobPlan> Plan(const v1::JobSpec& spec, const JobEnv& env) const override {
    if (env.runtime == nullptr) {
      return absl::FailedPreconditionError("this server has no model runtime for evaluate jobs");
    }
    const v1::EvaluateSpec& e = spec.evaluate();
    ASSIGN_OR_RETURN(Prepared p, Prepare(e, env));
    // Declared memory: every model is resident at once. On a CPU worker the
    // weights as loaded plus activations; on a GPU worker the uploaded
    // weights and activations. Plus the reference's log-probs of one batch.
    const int ctx = e.context() > 0 ? e.context() : DefaultContext(e.protocol());
    const int gpu_batch = e.batch_size() > 0 ? e.batch_size() : std::max(1, 16384 / ctx);
    const int cpu_batch = e.batch_size() > 0 ? e.batch_size() : 1;
    int64_t cpu = 0, gpu = 0;
    for (const ModelInspection& insp : p.inspections) {
      cpu += insp.resident_bytes + env.runtime->EstimateBytes(insp.config, false, cpu_batch, ctx);
      gpu += env.runtime->EstimateBytes(insp.config, true, gpu_batch, ctx);
    }
    // Host logits of one batch, and the reference's log-probs.
    const int64_t vocab = p.inspections.front().config.vocab_size;
    cpu += (p.inputs.has_reference ? 2 : 1) * int64_t{cpu_batch} * ctx * vocab * 4;
    JobPlan plan;
    switch (spec.device()) {
      case v1::DEVICE_PREFERENCE_CPU:
        plan.memory_bytes = cpu;
        break;
      case v1::DEVICE_PREFERENCE_GPU:
        plan.memory_bytes = gpu;
        break;
      default:
        plan.memory_bytes = std::max(cpu, gpu);
    }
    plan.gpu_capable = true;
    plan.method = "evaluate";
    return plan;
  }

  absl::StatusOr<v1::JobResult> Run(const v1::JobSpec& spec, const RunContext& ctx) const override {
    const JobEnv& env = *ctx.env;
    if (env.runtime == nullptr) {
      return absl::FailedPreconditionError("this server has no model runtime for evaluate jobs");
    }
    const v1::EvaluateSpec& e = spec.evaluate();
    ASSIGN_OR_RETURN(Prepared p, Prepare(e, env));
    const std::string device = ctx.encoder != nullptr ? ctx.encoder->device() : "cpu";
    EvaluationHooks hooks;
    hooks.progress = [&](const std::string& stage, double fraction, int64_t step, int64_t total,
                         const std::string& message) {
      v1::Progress pr;
      pr.set_stage(stage);
      pr.set_fraction(fraction);
      pr.set_step(step);
      pr.set_total_steps(total);
      pr.set_message(message);
      ctx.progress->Report(pr);
      // The testing aid: pause after each step so a run can be watched.
      if (stage == "scoring" && step > 0) (void)DebugStepDelay(env, *ctx.cancel);
    };
    ASSIGN_OR_RETURN(v1::EvaluateResult eval,
                     RunEvaluation(e, p.inputs, *env.runtime, device, hooks, *ctx.cancel));
    v1::JobResult result;
    result.set_details_json(ComparisonTableJson(eval));
    const v1::ModelEvaluation* model = nullptr;
    for (const v1::ModelEvaluation& m : eval.models()) {
      if (m.role() == "model") model = &m;
    }
    if (model != nullptr) {
      (*result.mutable_metrics())["perplexity"] = model->perplexity();
      (*result.mutable_metrics())["perplexity_stderr"] = model->perplexity_stderr();
      (*result.mutable_metrics())["bits_per_weight"] = model->bits_per_weight();
      (*result.mutable_metrics())["tokens_per_second"] = model->tokens_per_second();
      if (model->compared()) {
        (*result.mutable_metrics())["kl_mean"] = model->kl_mean();
        (*result.mutable_metrics())["top1_agreement"] = model->top1_agreement();
      }
      result.set_quantized_size_bytes(model->size_bytes());
      if (eval.models(0).role() == "reference") {
        result.set_original_size_bytes(eval.models(0).size_bytes());
        result.set_compression_ratio(model->compression_ratio());
      }
    }
    (*result.mutable_metrics())["seconds"] = eval.seconds();
    (*result.mutable_metrics())["peak_host_bytes"] = static_cast<double>(eval.peak_host_bytes());
    (*result.mutable_parameters())["protocol"] = eval.protocol().name();
    (*result.mutable_parameters())["context"] = absl::StrCat(eval.protocol().context());
    (*result.mutable_parameters())["add_bos"] = eval.protocol().add_bos() ? "true" : "false";
    (*result.mutable_parameters())["max_tokens"] = absl::StrCat(eval.protocol().max_tokens());
    (*result.mutable_parameters())["dataset"] = eval.protocol().dataset();
    *result.mutable_evaluation() = std::move(eval);
    return result;
  }
};

}  // namespace

const JobHandler& EvaluateJobHandler() {
  static const EvaluateHandler* h = new EvaluateHandler();
  return *h;
}

}  // namespace quantd
