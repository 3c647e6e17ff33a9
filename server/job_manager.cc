#include "server/job_manager.h"

#include <google/protobuf/util/message_differencer.h>
#include <spdlog/spdlog.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/jobs/job_state.h"
#include "core/quant/method_registry.h"
#include "core/util/proto_time.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace {

std::string MethodLabel(const v1::JobSpec& spec) {
  if (spec.has_quantize()) return spec.quantize().method();
  if (spec.has_evaluate()) return "evaluate";
  return "";
}

void SetError(v1::Job* job, const absl::Status& s) {
  job->mutable_error()->set_code(static_cast<int>(s.code()));
  job->mutable_error()->set_message(std::string(s.message()));
}

}  // namespace

// Receives a running job's progress; stores at most one progress event per
// interval (and every stage change) but keeps the newest in memory for
// GetJob.
class JobManager::Progress : public ProgressSink {
 public:
  Progress(JobManager* m, std::string id) : m_(m), id_(std::move(id)) {}
  void Report(const v1::Progress& p) override {
    absl::MutexLock lock(&m_->mu_);
    auto it = m_->active_.find(id_);
    if (it == m_->active_.end()) return;
    Active& a = it->second;
    const absl::Time now = absl::Now();
    v1::Progress next = p;
    const double elapsed = absl::ToDoubleSeconds(now - a.started);
    next.set_eta_seconds(p.fraction() > 0.01 ? elapsed * (1 - p.fraction()) / p.fraction() : -1);
    const bool stage_changed = next.stage() != a.job.progress().stage();
    *a.job.mutable_progress() = next;
    if (stage_changed || now - a.last_progress_store >= m_->options_.progress_interval ||
        (p.total_steps() > 0 && p.step() == p.total_steps())) {
      a.last_progress_store = now;
      absl::Status s = m_->Commit(&a.job, v1::JobEvent::TYPE_PROGRESS);
      if (!s.ok()) spdlog::warn("job {}: storing progress failed: {}", id_, s.ToString());
    }
  }

 private:
  JobManager* m_;
  std::string id_;
};

JobManager::JobManager(std::unique_ptr<JobStore> store, JobEnv env,
                       std::vector<WorkerConfig> workers, ManagerOptions options, EventHub* hub,
                       ServerMetrics* metrics)
    : store_(std::move(store)),
      env_(std::move(env)),
      options_(options),
      hub_(hub),
      metrics_(metrics) {
  for (WorkerConfig& c : workers) {
    auto w = std::make_unique<Worker>();
    w->config = std::move(c);
    workers_.push_back(std::move(w));
  }
}

JobManager::~JobManager() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

absl::Status JobManager::Commit(v1::Job* job, v1::JobEvent::Type type) {
  ASSIGN_OR_RETURN(v1::JobEvent ev, store_->Append(job, type));
  hub_->Publish(ev);
  return absl::OkStatus();
}

absl::StatusOr<PendingJob> JobManager::PlanPending(const v1::Job& job, uint64_t order) {
  ASSIGN_OR_RETURN(const JobHandler* handler, FindHandler(job.kind()));
  ASSIGN_OR_RETURN(JobPlan plan, handler->Plan(job.spec(), env_));
  PendingJob p;
  p.job_id = job.id();
  p.priority = job.spec().priority();
  p.order = order;
  p.memory_bytes = plan.memory_bytes;
  p.device = job.spec().device();
  p.gpu_capable = plan.gpu_capable;
  return p;
}

absl::Status JobManager::Start() {
  ASSIGN_OR_RETURN(std::vector<v1::Job> unfinished, store_->Unfinished());
  absl::MutexLock lock(&mu_);
  for (v1::Job& job : unfinished) {
    if (job.state() == v1::JOB_STATE_RUNNING) {
      if (job.attempts() >= options_.max_attempts) {
        job.set_state(v1::JOB_STATE_FAILED);
        SetError(&job, absl::AbortedError(absl::StrCat("the server stopped while the job ran, ",
                                                       job.attempts(), " times")));
        *job.mutable_finish_time() = NowProto();
        RETURN_IF_ERROR(Commit(&job, v1::JobEvent::TYPE_FAILED));
        continue;
      }
      job.set_state(v1::JOB_STATE_QUEUED);
      job.clear_progress();
      job.mutable_progress()->set_stage("queued");
      job.mutable_progress()->set_message("requeued after a server restart");
      job.mutable_progress()->set_eta_seconds(-1);
      job.clear_device();
      job.clear_worker();
      RETURN_IF_ERROR(Commit(&job, v1::JobEvent::TYPE_REQUEUED));
      spdlog::info("job {} was running when the server stopped: requeued", job.id());
    }
    absl::StatusOr<PendingJob> pending = PlanPending(job, next_order_++);
    absl::Status placeable = pending.ok() ? CheckPlaceable(*pending, Slots()) : pending.status();
    if (!placeable.ok()) {
      job.set_state(v1::JOB_STATE_FAILED);
      SetError(&job, placeable);
      *job.mutable_finish_time() = NowProto();
      RETURN_IF_ERROR(Commit(&job, v1::JobEvent::TYPE_FAILED));
      continue;
    }
    scheduler_.Push(*pending);
    active_[job.id()].job = std::move(job);
  }
  accepting_ = true;
  for (size_t i = 0; i < workers_.size(); ++i) {
    workers_[i]->thread = std::thread([this, i] { WorkerLoop(i); });
  }
  Dispatch();
  return absl::OkStatus();
}

std::vector<WorkerSlot> JobManager::Slots() {
  std::vector<WorkerSlot> slots;
  for (const auto& w : workers_) {
    slots.push_back({w->config.id, w->config.gpu, w->config.memory_bytes, !w->job_id.empty()});
  }
  return slots;
}

void JobManager::Dispatch() {
  if (!accepting_ || stopping_) return;
  while (true) {
    std::optional<Assignment> a = scheduler_.Next(Slots());
    if (!a) return;
    workers_[a->worker]->job_id = a->job.job_id;
  }
}

void JobManager::WorkerLoop(size_t index) {
  Worker* w;
  {
    absl::MutexLock lock(&mu_);
    w = workers_[index].get();
  }
  while (true) {
    std::string id;
    v1::JobSpec spec;
    v1::JobKind kind;
    const CancelToken* cancel;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this, w]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        if (stopping_) return true;
        if (w->job_id.empty()) return false;
        auto it = active_.find(w->job_id);
        return it != active_.end() && it->second.job.state() == v1::JOB_STATE_QUEUED;
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      id = w->job_id;
      Active& a = active_.at(id);
      a.cancel = std::make_unique<CancelToken>();
      a.started = absl::Now();
      a.job.set_state(v1::JOB_STATE_RUNNING);
      *a.job.mutable_start_time() = NowProto();
      a.job.set_device(absl::StrCat(w->config.device.id(), " (", w->config.device.name(), ")"));
      a.job.set_worker(w->config.id);
      a.job.set_attempts(a.job.attempts() + 1);
      a.job.mutable_progress()->set_stage("starting");
      a.job.mutable_progress()->set_message("");
      absl::Status s = Commit(&a.job, v1::JobEvent::TYPE_STARTED);
      if (!s.ok()) spdlog::error("job {}: storing start failed: {}", id, s.ToString());
      spec = a.job.spec();
      kind = a.job.kind();
      cancel = a.cancel.get();
    }
    spdlog::info("job {} started on {}", id, w->config.id);
    absl::StatusOr<v1::JobResult> result = RunJob(w, id, spec, kind, cancel);
    absl::MutexLock lock(&mu_);
    Finish(&active_.at(id), std::move(result));
    active_.erase(id);
    w->job_id.clear();
    ++w->completed;
    Dispatch();
  }
}

absl::StatusOr<v1::JobResult> JobManager::RunJob(Worker* w, const std::string& id,
                                                 const v1::JobSpec& spec, v1::JobKind kind,
                                                 const CancelToken* cancel) {
  Progress progress(this, id);
  RunContext ctx;
  ctx.env = &env_;
  ctx.job_id = id;
  ctx.encoder = w->config.encoder.get();
  ctx.progress = &progress;
  ctx.cancel = cancel;
  ASSIGN_OR_RETURN(const JobHandler* handler, FindHandler(kind));
  try {
    return handler->Run(spec, ctx);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of host memory");
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("unexpected exception: ", e.what()));
  }
}

void JobManager::Finish(Active* a, absl::StatusOr<v1::JobResult> result) {
  v1::Job& job = a->job;
  v1::JobEvent::Type type;
  if (result.ok()) {
    job.set_state(v1::JOB_STATE_SUCCEEDED);
    *job.mutable_result() = *std::move(result);
    job.mutable_progress()->set_stage("done");
    job.mutable_progress()->set_fraction(1.0);
    job.mutable_progress()->set_eta_seconds(0);
    type = v1::JobEvent::TYPE_SUCCEEDED;
    metrics_->BytesRead(static_cast<double>(job.result().original_size_bytes()));
    double written = 0;
    for (const v1::OutputFile& f : job.result().files()) written += f.size_bytes();
    metrics_->BytesWritten(written);
  } else if (result.status().code() == absl::StatusCode::kCancelled && a->requeue_on_stop) {
    job.set_state(v1::JOB_STATE_QUEUED);
    job.clear_progress();
    job.mutable_progress()->set_stage("queued");
    job.mutable_progress()->set_message("stopped by a server shutdown; runs again at next start");
    job.mutable_progress()->set_eta_seconds(-1);
    absl::Status s = Commit(&job, v1::JobEvent::TYPE_REQUEUED);
    if (!s.ok()) spdlog::error("job {}: storing requeue failed: {}", job.id(), s.ToString());
    spdlog::info("job {} stopped by shutdown, requeued", job.id());
    return;
  } else if (result.status().code() == absl::StatusCode::kCancelled) {
    job.set_state(v1::JOB_STATE_CANCELLED);
    SetError(&job, result.status());
    type = v1::JobEvent::TYPE_CANCELLED;
  } else {
    job.set_state(v1::JOB_STATE_FAILED);
    SetError(&job, result.status());
    type = v1::JobEvent::TYPE_FAILED;
  }
  *job.mutable_finish_time() = NowProto();
  // Counted before the final state is stored: a client that sees the job
  // finished and then scrapes /metrics finds it counted.
  const double seconds = absl::ToDoubleSeconds(absl::Now() - a->started);
  metrics_->JobFinished(KindName(job.kind()), MethodLabel(job.spec()), StateName(job.state()),
                        seconds);
  absl::Status s = Commit(&job, type);
  if (!s.ok()) spdlog::error("job {}: storing the final state failed: {}", job.id(), s.ToString());
  spdlog::info("job {} {} after {:.2f} s{}{}", job.id(), StateName(job.state()), seconds,
               job.has_error() ? ": " : "", job.error().message());
}

absl::StatusOr<v1::Job> JobManager::Create(const v1::CreateJobRequest& request) {
  const v1::JobSpec& spec = request.spec();
  const v1::JobKind kind = KindOf(spec);
  ASSIGN_OR_RETURN(const JobHandler* handler, FindHandler(kind));
  if (request.request_id().size() > 256) {
    return absl::InvalidArgumentError("request_id is longer than 256 characters");
  }
  absl::MutexLock admission(&create_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (!accepting_) return absl::UnavailableError("the server is shutting down");
  }
  if (!request.request_id().empty()) {
    ASSIGN_OR_RETURN(std::optional<v1::Job> existing,
                     store_->FindByRequestId(request.request_id()));
    if (existing) {
      if (!google::protobuf::util::MessageDifferencer::Equals(existing->spec(), spec)) {
        return absl::AlreadyExistsError(absl::StrCat("request_id \"", request.request_id(),
                                                     "\" was used for a different spec (job ",
                                                     existing->id(), ")"));
      }
      return Get(existing->id());
    }
  }
  ASSIGN_OR_RETURN(JobPlan plan, handler->Plan(spec, env_));
  v1::Job job;
  job.set_id(NewJobId());
  job.set_kind(kind);
  *job.mutable_spec() = spec;
  job.set_state(v1::JOB_STATE_QUEUED);
  job.mutable_progress()->set_stage("queued");
  job.mutable_progress()->set_eta_seconds(-1);
  *job.mutable_create_time() = NowProto();
  job.set_request_id(request.request_id());
  job.set_memory_required_bytes(plan.memory_bytes);

  absl::MutexLock lock(&mu_);
  if (static_cast<int>(scheduler_.size()) >= options_.max_queued_jobs) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the queue is full (", options_.max_queued_jobs, " jobs waiting)"));
  }
  PendingJob pending{job.id(),          spec.priority(), next_order_++,
                     plan.memory_bytes, spec.device(),   plan.gpu_capable};
  RETURN_IF_ERROR(CheckPlaceable(pending, Slots()));
  ASSIGN_OR_RETURN(v1::JobEvent ev, store_->Insert(job));
  hub_->Publish(ev);
  metrics_->JobCreated(KindName(kind), MethodLabel(spec));
  active_[job.id()].job = ev.job();
  scheduler_.Push(pending);
  Dispatch();
  spdlog::info("job {} created ({} {})", job.id(), KindName(kind), MethodLabel(spec));
  return ev.job();
}

absl::StatusOr<v1::Job> JobManager::Get(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(id);
    if (it != active_.end()) return it->second.job;
  }
  return store_->Get(id);
}

absl::StatusOr<JobPage> JobManager::List(const JobFilter& filter, int page_size,
                                         const std::string& page_token) {
  ASSIGN_OR_RETURN(JobPage page, store_->List(filter, page_size, page_token));
  absl::MutexLock lock(&mu_);
  for (v1::Job& job : page.jobs) {
    auto it = active_.find(job.id());
    // Fresher progress than the last stored event.
    if (it != active_.end() && it->second.job.state() == job.state()) job = it->second.job;
  }
  return page;
}

absl::StatusOr<v1::Job> JobManager::Cancel(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = active_.find(id);
  if (it == active_.end()) {
    ASSIGN_OR_RETURN(v1::Job job, store_->Get(id));
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " has already finished (", StateName(job.state()), ")"));
  }
  Active& a = it->second;
  if (a.job.state() == v1::JOB_STATE_QUEUED) {
    // Queued, or assigned to a worker that has not picked it up yet.
    scheduler_.Erase(id);
    for (auto& w : workers_) {
      if (w->job_id == id) w->job_id.clear();
    }
    a.job.set_state(v1::JOB_STATE_CANCELLED);
    SetError(&a.job, absl::CancelledError("cancelled before it started"));
    *a.job.mutable_finish_time() = NowProto();
    RETURN_IF_ERROR(Commit(&a.job, v1::JobEvent::TYPE_CANCELLED));
    metrics_->JobFinished(KindName(a.job.kind()), MethodLabel(a.job.spec()), "cancelled", -1);
    v1::Job job = a.job;
    active_.erase(it);
    Dispatch();
    return job;
  }
  if (!a.cancel->cancelled()) {
    a.cancel->Cancel();
    a.job.mutable_progress()->set_message("cancelling");
    RETURN_IF_ERROR(Commit(&a.job, v1::JobEvent::TYPE_CANCEL_REQUESTED));
  }
  return a.job;
}

absl::Status JobManager::Delete(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(id);
    if (it != active_.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", id, " is ",
                       it->second.job.state() == v1::JOB_STATE_RUNNING ? "running" : "queued",
                       "; cancel it first"));
    }
  }
  return store_->Delete(id);
}

absl::StatusOr<std::vector<v1::JobEvent>> JobManager::EventsAfter(const std::string& id,
                                                                  int64_t after_seq, int limit) {
  return store_->EventsAfter(id, after_seq, limit);
}

size_t JobManager::queue_depth() {
  absl::MutexLock lock(&mu_);
  return scheduler_.size();
}

size_t JobManager::running() {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, a] : active_) n += a.job.state() == v1::JOB_STATE_RUNNING;
  return n;
}

void JobManager::Drain(absl::Duration grace) {
  absl::MutexLock lock(&mu_);
  accepting_ = false;
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& [id, a] : active_) {
      if (a.job.state() == v1::JOB_STATE_RUNNING) return false;
    }
    return true;
  };
  // Unassign jobs not yet picked up so no new job starts.
  for (auto& w : workers_) {
    auto it = active_.find(w->job_id);
    if (it != active_.end() && it->second.job.state() == v1::JOB_STATE_QUEUED) w->job_id.clear();
  }
  if (!mu_.AwaitWithTimeout(absl::Condition(&idle), grace)) {
    for (auto& [id, a] : active_) {
      if (a.job.state() == v1::JOB_STATE_RUNNING) {
        spdlog::info("job {} still running after the drain period: stopping it", id);
        a.requeue_on_stop = true;
        a.cancel->Cancel();
      }
    }
    mu_.Await(absl::Condition(&idle));
  }
  stopping_ = true;
  mu_.Unlock();
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  mu_.Lock();
}

}  // namespace quantd
