// One WatchJob stream: the job's current state (or every event after
// after_seq) first, then each new event as the job manager publishes it,
// heartbeats while nothing happens, and OK once an event with a final state
// was written. One write in flight at a time; Finish exactly once.
#ifndef QUANTD_SERVER_WATCH_REACTOR_H_
#define QUANTD_SERVER_WATCH_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "quantd/v1/quantd.pb.h"
#include "server/event_hub.h"
#include "server/job_manager.h"
#include "server/metrics.h"

namespace quantd {

class WatchReactor : public grpc::ServerWriteReactor<v1::WatchJobResponse>, public EventListener {
 public:
  WatchReactor(JobManager* manager, ServerMetrics* metrics, std::string job_id, int64_t after_seq);

  // Subscribes and reads the backlog; runs on the executor, once.
  void Begin();

  void OnNewEvent(const v1::JobEvent& event) override;
  void OnHeartbeat() override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  void Start();
  void Pump() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishOnce(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops a reference; the last one (after OnDone) unsubscribes and deletes.
  void Release();

  JobManager* const manager_;
  ServerMetrics* const metrics_;
  const std::string job_id_;
  const int64_t after_seq_;

  absl::Mutex mu_;
  int refs_ ABSL_GUARDED_BY(mu_) = 2;        // Begin() and OnDone()
  bool ready_ ABSL_GUARDED_BY(mu_) = false;  // backlog read
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool final_written_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finish_after_write_ ABSL_GUARDED_BY(mu_);
  int64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, v1::JobEvent> pending_ ABSL_GUARDED_BY(mu_);
  v1::WatchJobResponse out_ ABSL_GUARDED_BY(mu_);
};

}  // namespace quantd

#endif  // QUANTD_SERVER_WATCH_REACTOR_H_
