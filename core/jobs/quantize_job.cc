#include "core/jobs/quantize_job.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/model/hf_model.h"
#include "core/pipeline/gguf_quantize.h"
#include "core/pipeline/hf_quantize.h"
#include "core/pipeline/tensor_selection.h"
#include "core/quant/gguf_method.h"
#include "core/quant/method_registry.h"
#include "core/util/paths.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace {

// Everything Plan() and Run() derive from a spec.
struct Prepared {
  std::unique_ptr<HfModel> model;
  Selection selection;
  HfQuantizeRequest request;
  // Method "gguf": one .gguf file instead of a folder.
  std::unique_ptr<GgufQuantizeRequest> gguf;
};

absl::StatusOr<std::unique_ptr<Prepared>> Prepare(const v1::QuantizeSpec& spec, const JobEnv& env) {
  if (spec.model().empty()) return absl::InvalidArgumentError("quantize.model is required");
  if (spec.output().empty()) return absl::InvalidArgumentError("quantize.output is required");
  if (spec.method().empty()) return absl::InvalidArgumentError("quantize.method is required");
  ASSIGN_OR_RETURN(const QuantMethod* method, FindMethodForSpec(spec));
  ASSIGN_OR_RETURN(MethodPlan plan, method->Resolve(WithoutLayout(spec)));
  ASSIGN_OR_RETURN(std::filesystem::path model_dir,
                   ResolveUnderRoot(env.model_root, spec.model(), PathMode::kMustExist));
  const bool gguf = IsGgufMethod(*method);
  const std::string output_name = gguf ? GgufOutputName(spec.output()) : spec.output();
  ASSIGN_OR_RETURN(std::filesystem::path output,
                   ResolveUnderRoot(env.output_root, output_name, PathMode::kMayNotExist));
  std::error_code ec;
  if (std::filesystem::exists(output, ec) && !spec.overwrite()) {
    return absl::AlreadyExistsError(
        absl::StrCat("output \"", output_name, "\" already exists; set overwrite to replace it"));
  }
  auto p = std::make_unique<Prepared>();
  ASSIGN_OR_RETURN(p->model, HfModel::Open(model_dir));
  if (gguf) {
    ASSIGN_OR_RETURN(
        GgufQuantizeRequest req,
        PrepareGgufQuantize(spec, method, plan, *p->model, output, output_name, env.model_root));
    p->gguf = std::make_unique<GgufQuantizeRequest>(std::move(req));
    return p;
  }
  ASSIGN_OR_RETURN(p->selection, SelectTensors(*p->model, spec));
  p->request.spec = &spec;
  p->request.method = method;
  p->request.plan = plan;
  p->request.model = p->model.get();
  p->request.selection = &p->selection;
  p->request.output = output;
  p->request.output_name = spec.output();
  RETURN_IF_ERROR(CheckEncodable(p->request));
  return p;
}

class QuantizeHandler : public JobHandler {
 public:
  v1::JobKind kind() const override { return v1::JOB_KIND_QUANTIZE; }

  absl::StatusOr<JobPlan> Plan(const v1::JobSpec& spec, const JobEnv& env) const override {
    ASSIGN_OR_RETURN(std::unique_ptr<Prepared> p, Prepare(spec.quantize(), env));
    JobPlan plan;
    plan.memory_bytes = p->gguf ? EstimateGgufMemory(*p->gguf) : EstimateMemory(p->request);
    plan.gpu_capable = true;
    plan.method = spec.quantize().method();
    return plan;
  }

  absl::StatusOr<v1::JobResult> Run(const v1::JobSpec& spec, const RunContext& ctx) const override {
    v1::Progress p;
    p.set_stage("reading");
    p.set_message("opening " + spec.quantize().model());
    ctx.progress->Report(p);
    ASSIGN_OR_RETURN(std::unique_ptr<Prepared> prep, Prepare(spec.quantize(), *ctx.env));
    if (prep->gguf) return RunGgufQuantize(*prep->gguf, ctx);
    return RunHfQuantize(prep->request, ctx);
  }
};

}  // namespace

const JobHandler& QuantizeJobHandler() {
  static const QuantizeHandler* h = new QuantizeHandler();
  return *h;
}

}  // namespace quantd
