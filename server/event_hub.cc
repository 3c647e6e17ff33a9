#include "server/event_hub.h"

namespace quantd {

EventHub::~EventHub() { Stop(); }

void EventHub::Subscribe(const std::string& job_id, EventListener* l) {
  absl::MutexLock lock(&mu_);
  listeners_[job_id].insert(l);
}

void EventHub::Unsubscribe(const std::string& job_id, EventListener* l) {
  absl::MutexLock lock(&mu_);
  auto it = listeners_.find(job_id);
  if (it == listeners_.end()) return;
  it->second.erase(l);
  if (it->second.empty()) listeners_.erase(it);
}

void EventHub::Publish(const v1::JobEvent& event) {
  absl::MutexLock lock(&mu_);
  auto it = listeners_.find(event.job().id());
  if (it == listeners_.end()) return;
  for (EventListener* l : it->second) l->OnNewEvent(event);
}

void EventHub::Start(absl::Duration period) {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = false;
  }
  heartbeat_ = std::thread([this, period] { HeartbeatLoop(period); });
}

void EventHub::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (heartbeat_.joinable()) heartbeat_.join();
}

size_t EventHub::watchers() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, set] : listeners_) n += set.size();
  return n;
}

void EventHub::HeartbeatLoop(absl::Duration period) {
  absl::MutexLock lock(&mu_);
  while (true) {
    const bool stop = mu_.AwaitWithTimeout(absl::Condition(&stopping_), period);
    if (stop) return;
    for (auto& [id, set] : listeners_) {
      for (EventListener* l : set) l->OnHeartbeat();
    }
  }
}

}  // namespace quantd
