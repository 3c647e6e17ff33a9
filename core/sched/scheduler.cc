#include "core/sched/scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace quantd {
namespace {

bool AcceptsKind(const PendingJob& job, const WorkerSlot& w) {
  if (w.gpu) return job.gpu_capable && job.device != v1::DEVICE_PREFERENCE_CPU;
  return job.device != v1::DEVICE_PREFERENCE_GPU;
}

bool RunsBefore(const PendingJob& a, const PendingJob& b) {
  if (a.priority != b.priority) return a.priority > b.priority;
  return a.order < b.order;
}

}  // namespace

bool Fits(const PendingJob& job, const WorkerSlot& w) {
  return AcceptsKind(job, w) && job.memory_bytes <= w.memory_bytes;
}

absl::Status CheckPlaceable(const PendingJob& job, const std::vector<WorkerSlot>& workers) {
  int64_t largest = -1;
  for (const WorkerSlot& w : workers) {
    if (!AcceptsKind(job, w)) continue;
    if (job.memory_bytes <= w.memory_bytes) return absl::OkStatus();
    largest = std::max(largest, w.memory_bytes);
  }
  if (largest < 0) {
    return absl::InvalidArgumentError(job.device == v1::DEVICE_PREFERENCE_GPU
                                          ? "the job asks for a GPU and this server has no GPU "
                                            "worker (or the job has no GPU path)"
                                          : "no worker of this server can run the job");
  }
  return absl::ResourceExhaustedError(absl::StrCat("the job needs ", job.memory_bytes,
                                                   " bytes of memory; the largest worker it may "
                                                   "use has ",
                                                   largest));
}

void Scheduler::Push(PendingJob job) {
  auto it = std::upper_bound(queue_.begin(), queue_.end(), job, RunsBefore);
  queue_.insert(it, std::move(job));
}

bool Scheduler::Erase(const std::string& job_id) {
  auto it = std::find_if(queue_.begin(), queue_.end(),
                         [&](const PendingJob& j) { return j.job_id == job_id; });
  if (it == queue_.end()) return false;
  queue_.erase(it);
  return true;
}

std::optional<Assignment> Scheduler::Next(const std::vector<WorkerSlot>& workers) {
  for (size_t qi = 0; qi < queue_.size(); ++qi) {
    const PendingJob& job = queue_[qi];
    std::optional<size_t> chosen;
    for (int pass = 0; pass < 2 && !chosen; ++pass) {
      const bool want_gpu = pass == 0;
      for (size_t wi = 0; wi < workers.size(); ++wi) {
        const WorkerSlot& w = workers[wi];
        if (w.gpu != want_gpu || w.busy || !Fits(job, w)) continue;
        chosen = wi;
        break;
      }
    }
    if (chosen) {
      Assignment a{job, *chosen};
      queue_.erase(queue_.begin() + static_cast<ptrdiff_t>(qi));
      return a;
    }
  }
  return std::nullopt;
}

}  // namespace quantd
