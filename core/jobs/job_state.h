// Names and predicates of job states and kinds, shared by server and client.
#ifndef QUANTD_CORE_JOBS_JOB_STATE_H_
#define QUANTD_CORE_JOBS_JOB_STATE_H_

#include <string>

#include "quantd/v1/quantd.pb.h"

namespace quantd {

// SUCCEEDED, FAILED or CANCELLED.
inline bool IsFinalState(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_CANCELLED;
}

// "queued", "running", "succeeded", "failed", "cancelled" ("unknown" else).
std::string StateName(v1::JobState s);

// "quantize", "evaluate" ("unknown" else).
std::string KindName(v1::JobKind k);

}  // namespace quantd

#endif  // QUANTD_CORE_JOBS_JOB_STATE_H_
