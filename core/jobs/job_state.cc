#include "core/jobs/job_state.h"

namespace quantd {

std::string StateName(v1::JobState s) {
  switch (s) {
    case v1::JOB_STATE_QUEUED:
      return "queued";
    case v1::JOB_STATE_RUNNING:
      return "running";
    case v1::JOB_STATE_SUCCEEDED:
      return "succeeded";
    case v1::JOB_STATE_FAILED:
      return "failed";
    case v1::JOB_STATE_CANCELLED:
      return "cancelled";
    default:
      return "unknown";
  }
}

std::string KindName(v1::JobKind k) {
  switch (k) {
    case v1::JOB_KIND_QUANTIZE:
      return "quantize";
    case v1::JOB_KIND_EVALUATE:
      return "evaluate";
    default:
      return "unknown";
  }
}

}  // namespace quantd
