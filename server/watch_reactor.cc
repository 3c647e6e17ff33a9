#include "server/watch_reactor.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/jobs/job_state.h"
#include "core/util/proto_time.h"
#include "server/service.h"

namespace quantd {
namespace {

std::string CodeName(const grpc::Status& s) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code()));
}

// Events read at once when a stream starts; a job has far fewer.
constexpr int kMaxBacklog = 1'000'000;

}  // namespace

WatchReactor::WatchReactor(JobManager* manager, ServerMetrics* metrics, std::string job_id,
                           int64_t after_seq)
    : manager_(manager), metrics_(metrics), job_id_(std::move(job_id)), after_seq_(after_seq) {}

void WatchReactor::Begin() {
  Start();
  Release();
}

void WatchReactor::Start() {
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
  }
  absl::StatusOr<v1::Job> job = manager_->Get(job_id_);
  if (!job.ok() || after_seq_ < 0) {
    absl::MutexLock lock(&mu_);
    FinishOnce(job.ok() ? grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                       "after_seq must not be negative")
                        : ToGrpcStatus(job.status()));
    return;
  }
  // Subscribe before reading the backlog: an event stored meanwhile arrives
  // by both ways and is kept once.
  manager_->hub()->Subscribe(job_id_, this);
  const int64_t after =
      after_seq_ > 0 ? after_seq_ : std::max<int64_t>(0, job->last_event_seq() - 1);
  absl::StatusOr<std::vector<v1::JobEvent>> backlog =
      manager_->EventsAfter(job_id_, after, kMaxBacklog);
  absl::MutexLock lock(&mu_);
  if (!backlog.ok()) {
    FinishOnce(ToGrpcStatus(backlog.status()));
    return;
  }
  next_seq_ = after + 1;
  for (v1::JobEvent& ev : *backlog) pending_.emplace(ev.seq(), std::move(ev));
  ready_ = true;
  if (pending_.empty() && IsFinalState(job->state()) && after >= job->last_event_seq()) {
    // Resumed after the final event: nothing more will come.
    FinishOnce(grpc::Status::OK);
    return;
  }
  Pump();
}

void WatchReactor::Pump() {
  if (!ready_ || writing_ || finished_) return;
  if (final_written_) {
    FinishOnce(grpc::Status::OK);
    return;
  }
  while (!pending_.empty() && pending_.begin()->first < next_seq_) pending_.erase(pending_.begin());
  if (pending_.empty()) return;
  if (pending_.begin()->first != next_seq_) {
    spdlog::warn("watch {}: events {}..{} missing, skipping", job_id_, next_seq_,
                 pending_.begin()->first - 1);
    next_seq_ = pending_.begin()->first;
  }
  out_.Clear();
  *out_.mutable_event() = std::move(pending_.begin()->second);
  pending_.erase(pending_.begin());
  ++next_seq_;
  final_written_ = IsFinalState(out_.event().job().state());
  writing_ = true;
  StartWrite(&out_);
}

void WatchReactor::OnNewEvent(const v1::JobEvent& event) {
  absl::MutexLock lock(&mu_);
  if (finished_ || event.seq() < next_seq_) return;
  pending_.emplace(event.seq(), event);
  Pump();
}

void WatchReactor::OnHeartbeat() {
  absl::MutexLock lock(&mu_);
  if (!ready_ || writing_ || finished_ || !pending_.empty()) return;
  out_.Clear();
  *out_.mutable_heartbeat()->mutable_time() = NowProto();
  out_.mutable_heartbeat()->set_last_event_seq(next_seq_ - 1);
  writing_ = true;
  StartWrite(&out_);
}

void WatchReactor::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  writing_ = false;
  if (finish_after_write_) {
    const grpc::Status status = *finish_after_write_;
    finish_after_write_.reset();
    metrics_->GrpcStreamEnded("WatchJob", CodeName(status));
    Finish(status);
    return;
  }
  if (!ok) {
    // The client went away; OnCancel follows.
    FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
    return;
  }
  Pump();
}

void WatchReactor::OnCancel() {
  absl::MutexLock lock(&mu_);
  FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"));
}

void WatchReactor::FinishOnce(const grpc::Status& status) {
  if (finished_) return;
  finished_ = true;
  if (writing_) {
    finish_after_write_ = status;
    return;
  }
  metrics_->GrpcStreamEnded("WatchJob", CodeName(status));
  Finish(status);
}

void WatchReactor::OnDone() { Release(); }

void WatchReactor::Release() {
  bool last;
  {
    absl::MutexLock lock(&mu_);
    last = --refs_ == 0;
  }
  if (!last) return;
  manager_->hub()->Unsubscribe(job_id_, this);
  delete this;
}

}  // namespace quantd
