// The quantize job kind: a model folder in, a quantized folder out.
#ifndef QUANTD_CORE_JOBS_QUANTIZE_JOB_H_
#define QUANTD_CORE_JOBS_QUANTIZE_JOB_H_

#include "core/jobs/job_handler.h"

namespace quantd {

const JobHandler& QuantizeJobHandler();

}  // namespace quantd

#endif  // QUANTD_CORE_JOBS_QUANTIZE_JOB_H_
