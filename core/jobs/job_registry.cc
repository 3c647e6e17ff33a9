#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/jobs/evaluate_job.h"
#include "core/jobs/job_handler.h"
#include "core/jobs/quantize_job.h"

namespace quantd {

v1::JobKind KindOf(const v1::JobSpec& spec) {
  switch (spec.spec_case()) {
    case v1::JobSpec::kQuantize:
      return v1::JOB_KIND_QUANTIZE;
    case v1::JobSpec::kEvaluate:
      return v1::JOB_KIND_EVALUATE;
    default:
      return v1::JOB_KIND_UNSPECIFIED;
  }
}

absl::Status DebugStepDelay(const JobEnv& env, const CancelToken& cancel) {
  const absl::Time end = absl::Now() + env.debug_step_delay;
  while (absl::Now() < end) {
    if (cancel.cancelled()) return cancel.Check();
    absl::SleepFor(std::min(absl::Milliseconds(20), end - absl::Now()));
  }
  return cancel.Check();
}

absl::StatusOr<const JobHandler*> FindHandler(v1::JobKind kind) {
  switch (kind) {
    case v1::JOB_KIND_QUANTIZE:
      return &QuantizeJobHandler();
    case v1::JOB_KIND_EVALUATE:
      return &EvaluateJobHandler();
    default:
      return absl::InvalidArgumentError("the job spec names no kind (quantize or evaluate)");
  }
}

}  // namespace quantd
