// Builds the worker list at start: one worker per usable CUDA device (as
// --gpus selects) and --cpu-workers CPU workers.
#ifndef QUANTD_SERVER_WORKERS_H_
#define QUANTD_SERVER_WORKERS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "server/config.h"
#include "server/job_manager.h"

namespace quantd {

// INVALID_ARGUMENT for a malformed --gpus or a device index that does not
// exist; FAILED_PRECONDITION when the result has no worker at all.
absl::StatusOr<std::vector<WorkerConfig>> MakeWorkers(const ServerConfig& config);

}  // namespace quantd

#endif  // QUANTD_SERVER_WORKERS_H_
