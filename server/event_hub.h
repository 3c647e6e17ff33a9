// Fan-out of job events to watchers: the job manager publishes each event
// right after storing it, in sequence order; every WatchJob stream of that
// job queues it. A stream reads older events from the store once, after it
// subscribed, so it misses nothing. A timer thread gives every watcher a
// heartbeat tick.
#ifndef QUANTD_SERVER_EVENT_HUB_H_
#define QUANTD_SERVER_EVENT_HUB_H_

#include <map>
#include <set>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "quantd/v1/quantd.pb.h"

namespace quantd {

class EventListener {
 public:
  virtual ~EventListener() = default;
  // A new event of the job was stored. Called from the publisher's thread,
  // in sequence order, with the hub's lock held: must not call back into the
  // hub and must not block.
  virtual void OnNewEvent(const v1::JobEvent& event) = 0;
  // Called every heartbeat period, with the hub's lock held.
  virtual void OnHeartbeat() = 0;
};

class EventHub {
 public:
  EventHub() = default;
  ~EventHub();

  void Subscribe(const std::string& job_id, EventListener* l);
  // After this returns no callback of `l` runs or will run.
  void Unsubscribe(const std::string& job_id, EventListener* l);
  void Publish(const v1::JobEvent& event);

  // Starts the heartbeat thread.
  void Start(absl::Duration period);
  void Stop();

  size_t watchers() const;

 private:
  void HeartbeatLoop(absl::Duration period);

  mutable absl::Mutex mu_;
  std::map<std::string, std::set<EventListener*>> listeners_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread heartbeat_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_EVENT_HUB_H_
