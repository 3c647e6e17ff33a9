#include "client/watch.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/render.h"
#include "core/jobs/job_state.h"

namespace quantd {
namespace {

std::string PlainLine(const v1::Job& job) {
  const v1::Progress& p = job.progress();
  std::string s = absl::StrCat(job.id(), ": ", StateName(job.state()));
  if (!p.stage().empty()) absl::StrAppend(&s, ", ", p.stage());
  if (p.total_steps() > 0) absl::StrAppend(&s, " ", p.step(), "/", p.total_steps());
  absl::StrAppend(&s, absl::StrFormat(" (%.1f%%)", 100 * p.fraction()));
  if (p.eta_seconds() >= 0 && !IsFinalState(job.state())) {
    absl::StrAppend(&s, " ETA ", HumanSeconds(p.eta_seconds()));
  }
  return s;
}

}  // namespace

std::string ProgressBar(const v1::Job& job, int width) {
  const v1::Progress& p = job.progress();
  std::string tail = absl::StrFormat(" %5.1f%% %s", 100 * p.fraction(),
                                     p.stage().empty() ? StateName(job.state()) : p.stage());
  if (p.total_steps() > 0) absl::StrAppend(&tail, " ", p.step(), "/", p.total_steps());
  if (!IsFinalState(job.state())) absl::StrAppend(&tail, " ETA ", HumanSeconds(p.eta_seconds()));
  const int bar = std::max(10, std::min(40, width - static_cast<int>(tail.size()) - 3));
  const int filled = static_cast<int>(std::clamp(p.fraction(), 0.0, 1.0) * bar);
  std::string s = "[" + std::string(filled, '#') + std::string(bar - filled, '.') + "]" + tail;
  if (static_cast<int>(s.size()) > width) s.resize(width);
  return s;
}

absl::StatusOr<v1::Job> WatchUntilDone(v1::QuantizationService::Stub* stub, const std::string& id,
                                       const WatchOptions& options) {
  int64_t last_seq = 0;
  std::string last_line;
  absl::Time disconnected = absl::InfinitePast();
  absl::Duration backoff = absl::Milliseconds(200);
  while (true) {
    grpc::ClientContext ctx;
    v1::WatchJobRequest req;
    req.set_id(id);
    req.set_after_seq(last_seq);
    std::unique_ptr<grpc::ClientReader<v1::WatchJobResponse>> reader = stub->WatchJob(&ctx, req);
    v1::WatchJobResponse msg;
    std::optional<v1::Job> final_job;
    while (reader->Read(&msg)) {
      disconnected = absl::InfinitePast();
      backoff = absl::Milliseconds(200);
      if (!msg.has_event()) continue;
      const v1::Job& job = msg.event().job();
      last_seq = msg.event().seq();
      if (options.show_progress) {
        if (options.live_bar) {
          std::fprintf(options.out, "\r%s\033[K", ProgressBar(job, 100).c_str());
        } else {
          const std::string line = PlainLine(job);
          if (line != last_line) std::fprintf(options.out, "%s\n", line.c_str());
          last_line = line;
        }
        std::fflush(options.out);
      }
      if (IsFinalState(job.state())) final_job = job;
    }
    const grpc::Status status = reader->Finish();
    if (final_job) {
      if (options.show_progress && options.live_bar) std::fprintf(options.out, "\n");
      return *final_job;
    }
    if (status.ok()) continue;  // ended without a final event: resume
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE) {
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          status.error_message());
    }
    if (disconnected == absl::InfinitePast()) disconnected = absl::Now();
    if (absl::Now() - disconnected > options.reconnect_for) {
      return absl::UnavailableError(absl::StrCat("lost the server: ", status.error_message()));
    }
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

}  // namespace quantd
