// The job manager: admission (plan, idempotency, queue limit), the durable
// store, the scheduler and one thread per worker. Every change to a job goes
// through here under one lock, is stored with its event, then published to
// watchers. No gRPC types: service.cc translates.
#ifndef QUANTD_SERVER_JOB_MANAGER_H_
#define QUANTD_SERVER_JOB_MANAGER_H_

#include <condition_variable>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/jobs/job_handler.h"
#include "core/quant/encoder.h"
#include "core/sched/scheduler.h"
#include "core/store/job_store.h"
#include "core/util/cancel.h"
#include "quantd/v1/quantd.pb.h"
#include "server/event_hub.h"
#include "server/metrics.h"

namespace quantd {

struct WorkerConfig {
  // "cpu0", "gpu0", ...
  std::string id;
  v1::DeviceInfo device;
  bool gpu = false;
  // CUDA device index of a GPU worker.
  int cuda_device = -1;
  // Memory the worker offers jobs.
  int64_t memory_bytes = 0;
  std::unique_ptr<WeightEncoder> encoder;
};

struct ManagerOptions {
  int max_queued_jobs = 1000;
  int max_attempts = 3;
  // Least time between two stored progress events of one job.
  absl::Duration progress_interval = absl::Milliseconds(250);
};

class JobManager {
 public:
  JobManager(std::unique_ptr<JobStore> store, JobEnv env, std::vector<WorkerConfig> workers,
             ManagerOptions options, EventHub* hub, ServerMetrics* metrics);
  ~JobManager();

  // Requeues (or fails, past max_attempts) jobs that were running when the
  // server stopped, re-plans queued ones and starts the workers.
  absl::Status Start();

  // Stops admitting jobs (UNAVAILABLE) and starting queued ones; waits up to
  // `grace` for running jobs, then stops the rest and stores them as queued
  // so the next start runs them again. Joins the worker threads.
  void Drain(absl::Duration grace);

  // Admits a job: INVALID_ARGUMENT / NOT_FOUND / ALREADY_EXISTS from the
  // job's plan, RESOURCE_EXHAUSTED when the queue is full or no worker has
  // the memory, UNAVAILABLE while draining. A request_id seen before returns
  // that job (ALREADY_EXISTS if its spec differs).
  absl::StatusOr<v1::Job> Create(const v1::CreateJobRequest& request);
  absl::StatusOr<v1::Job> Get(const std::string& id);
  absl::StatusOr<JobPage> List(const JobFilter& filter, int page_size,
                               const std::string& page_token);
  // A queued job is cancelled at once; a running one is told to stop and
  // reaches CANCELLED within seconds. FAILED_PRECONDITION when final.
  absl::StatusOr<v1::Job> Cancel(const std::string& id);
  // FAILED_PRECONDITION unless final.
  absl::Status Delete(const std::string& id);
  absl::StatusOr<std::vector<v1::JobEvent>> EventsAfter(const std::string& id, int64_t after_seq,
                                                        int limit);

  std::vector<v1::Worker> Workers();
  v1::Capabilities Capabilities();
  EventHub* hub() { return hub_; }

  // For /metrics.
  size_t queue_depth();
  size_t running();

 private:
  struct Worker {
    WorkerConfig config;
    std::thread thread;
    std::string job_id;  // assigned or running; empty when idle
    int64_t completed = 0;
  };
  struct Active {
    v1::Job job;
    std::unique_ptr<CancelToken> cancel;
    bool requeue_on_stop = false;
    absl::Time last_progress_store = absl::InfinitePast();
    absl::Time started = absl::InfinitePast();
  };
  class Progress;

  void WorkerLoop(size_t index);
  absl::StatusOr<v1::JobResult> RunJob(Worker* w, const std::string& id, const v1::JobSpec& spec,
                                       v1::JobKind kind, const CancelToken* cancel);
  // Stores `job` with an event and publishes it. Requires mu_.
  absl::Status Commit(v1::Job* job, v1::JobEvent::Type type) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Finish(Active* a, absl::StatusOr<v1::JobResult> result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Dispatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<WorkerSlot> Slots() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<PendingJob> PlanPending(const v1::Job& job, uint64_t order);

  std::unique_ptr<JobStore> store_;
  const JobEnv env_;
  const ManagerOptions options_;
  EventHub* const hub_;
  ServerMetrics* const metrics_;

  absl::Mutex mu_;
  std::vector<std::unique_ptr<Worker>> workers_ ABSL_GUARDED_BY(mu_);
  Scheduler scheduler_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Active> active_ ABSL_GUARDED_BY(mu_);  // queued and running
  uint64_t next_order_ ABSL_GUARDED_BY(mu_) = 0;
  bool accepting_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex create_mu_;  // serialises admission (idempotency check + insert)
};

}  // namespace quantd

#endif  // QUANTD_SERVER_JOB_MANAGER_H_
