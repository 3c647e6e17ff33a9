// Placement of queued jobs onto workers: priority first, then creation order;
// a job runs on an idle worker of a kind it accepts whose memory holds what
// the job declared. A job that fits no idle worker waits while lower jobs
// fill workers it cannot use; it is not starved, because each job needs one
// worker and the first worker that frees up goes to the highest waiting job
// it fits. Not thread-safe: the owner locks.
#ifndef QUANTD_CORE_SCHED_SCHEDULER_H_
#define QUANTD_CORE_SCHED_SCHEDULER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "quantd/v1/quantd.pb.h"

namespace quantd {

struct WorkerSlot {
  std::string id;
  bool gpu = false;
  // Memory a job may use on this worker (device memory for a GPU).
  int64_t memory_bytes = 0;
  bool busy = false;
};

struct PendingJob {
  std::string job_id;
  int32_t priority = 0;
  // Creation order: smaller runs first among equal priorities.
  uint64_t order = 0;
  int64_t memory_bytes = 0;
  v1::DevicePreference device = v1::DEVICE_PREFERENCE_AUTO;
  // False for work with no GPU path: it runs on CPU workers only.
  bool gpu_capable = true;
};

// True when worker `w` is of a kind `job` accepts and its memory suffices.
bool Fits(const PendingJob& job, const WorkerSlot& w);

// OK when some worker of `workers` could ever run `job`; otherwise
// RESOURCE_EXHAUSTED (too much memory) or INVALID_ARGUMENT (no worker of the
// requested kind), with the numbers.
absl::Status CheckPlaceable(const PendingJob& job, const std::vector<WorkerSlot>& workers);

struct Assignment {
  PendingJob job;
  size_t worker = 0;  // index into the workers given to Next()
};

class Scheduler {
 public:
  void Push(PendingJob job);
  // Removes a queued job; false when it is not queued.
  bool Erase(const std::string& job_id);
  size_t size() const { return queue_.size(); }
  bool empty() const { return queue_.empty(); }

  // Takes the next job to start and the idle worker to start it on (GPU
  // workers before CPU workers for jobs that accept both), or nothing.
  std::optional<Assignment> Next(const std::vector<WorkerSlot>& workers);

 private:
  std::vector<PendingJob> queue_;  // sorted: priority desc, order asc
};

}  // namespace quantd

#endif  // QUANTD_CORE_SCHED_SCHEDULER_H_
