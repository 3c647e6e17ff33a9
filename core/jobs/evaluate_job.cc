#include "core/jobs/evaluate_job.h"

#include "absl/strings/str_cat.h"
#include "core/util/paths.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace {

// Evaluation (perplexity, KL divergence, top-1 agreement) needs a model
// runtime that quantd does not have yet: the spec is checked and the job is
// accepted, and running it fails with UNIMPLEMENTED rather than reporting a
// number nobody measured.
class EvaluateHandler : public JobHandler {
 public:
  v1::JobKind kind() const override { return v1::JOB_KIND_EVALUATE; }

  absl::StatusOr<JobPlan> Plan(const v1::JobSpec& spec, const JobEnv& env) const override {
    const v1::EvaluateSpec& e = spec.evaluate();
    if (e.model().empty()) return absl::InvalidArgumentError("evaluate.model is required");
    RETURN_IF_ERROR(ResolveUnderRoot(env.model_root, e.model(), PathMode::kMustExist).status());
    if (!e.reference().empty()) {
      RETURN_IF_ERROR(
          ResolveUnderRoot(env.model_root, e.reference(), PathMode::kMustExist).status());
    }
    if (!e.dataset().empty()) {
      RETURN_IF_ERROR(ResolveUnderRoot(env.model_root, e.dataset(), PathMode::kMustExist).status());
    }
    if (!e.protocol().empty() && e.protocol() != "llama" && e.protocol() != "gptq") {
      return absl::InvalidArgumentError(
          absl::StrCat("evaluate.protocol \"", e.protocol(), "\" is not one of llama, gptq"));
    }
    JobPlan plan;
    plan.memory_bytes = 0;
    plan.gpu_capable = false;
    plan.method = "evaluate";
    return plan;
  }

  absl::StatusOr<v1::JobResult> Run(const v1::JobSpec& spec, const RunContext& ctx) const override {
    return absl::UnimplementedError(
        "evaluate jobs are accepted but this quantd has no model runtime yet");
  }
};

}  // namespace

const JobHandler& EvaluateJobHandler() {
  static const EvaluateHandler* h = new EvaluateHandler();
  return *h;
}

}  // namespace quantd
