// The evaluate job kind: perplexity, KL divergence and agreement of a model
// against a reference.
#ifndef QUANTD_CORE_JOBS_EVALUATE_JOB_H_
#define QUANTD_CORE_JOBS_EVALUATE_JOB_H_

#include "core/jobs/job_handler.h"

namespace quantd {

const JobHandler& EvaluateJobHandler();

}  // namespace quantd

#endif  // QUANTD_CORE_JOBS_EVALUATE_JOB_H_
