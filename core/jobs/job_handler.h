// A job kind (quantize, evaluate): how its spec is checked and planned at
// submission, and how it runs on a worker. One file pair per kind in
// core/jobs/, one line in job_registry.cc.
#ifndef QUANTD_CORE_JOBS_JOB_HANDLER_H_
#define QUANTD_CORE_JOBS_JOB_HANDLER_H_

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/quant/encoder.h"
#include "core/util/cancel.h"
#include "quantd/v1/quantd.pb.h"

namespace quantd {

class CausalLMFactory;  // core/eval/runtime_factory.h

// The server's configured roots; every name in a spec is relative to one.
struct JobEnv {
  std::filesystem::path model_root;
  std::filesystem::path output_root;
  // A testing aid (quantd --debug-step-delay-ms): pipelines pause this long
  // after each step, so progress, cancellation and restarts can be watched
  // on tiny models. Zero in production.
  absl::Duration debug_step_delay = absl::ZeroDuration();
  // The model runtime evaluate jobs run on (the server builds it from
  // kernels/); null where there is none, and evaluate jobs are refused.
  const CausalLMFactory* runtime = nullptr;
};

// Sleeps for env.debug_step_delay in slices, returning CANCELLED early when
// `cancel` fires.
absl::Status DebugStepDelay(const JobEnv& env, const CancelToken& cancel);

// What the scheduler needs to know about a job before it runs.
struct JobPlan {
  // Peak memory the job needs on the worker's device (GPU memory on a GPU
  // worker, host memory on a CPU worker).
  int64_t memory_bytes = 0;
  // False when the job has no GPU path.
  bool gpu_capable = true;
  // Label for metrics, e.g. the method ("int4").
  std::string method;
};

// Receives progress; the job manager adds the ETA, throttles and stores it.
class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  virtual void Report(const v1::Progress& progress) = 0;
};

struct RunContext {
  const JobEnv* env = nullptr;
  std::string job_id;
  // The worker's device.
  WeightEncoder* encoder = nullptr;
  ProgressSink* progress = nullptr;
  const CancelToken* cancel = nullptr;
};

class JobHandler {
 public:
  virtual ~JobHandler() = default;
  virtual v1::JobKind kind() const = 0;

  // Checks `spec` against the roots and plans it. INVALID_ARGUMENT for a bad
  // spec or path, NOT_FOUND for a missing model, ALREADY_EXISTS for an
  // existing output the spec does not allow to replace.
  virtual absl::StatusOr<JobPlan> Plan(const v1::JobSpec& spec, const JobEnv& env) const = 0;

  // Runs the job. Outputs appear complete or not at all. CANCELLED when
  // ctx.cancel fired; other errors as the pipeline reports them.
  virtual absl::StatusOr<v1::JobResult> Run(const v1::JobSpec& spec,
                                            const RunContext& ctx) const = 0;
};

// The kind a spec asks for (UNSPECIFIED when the oneof is empty).
v1::JobKind KindOf(const v1::JobSpec& spec);

// INVALID_ARGUMENT for a spec without a known kind.
absl::StatusOr<const JobHandler*> FindHandler(v1::JobKind kind);

}  // namespace quantd

#endif  // QUANTD_CORE_JOBS_JOB_HANDLER_H_
