// Follows a job with WatchJob until it is final, reconnecting (with the last
// event's seq, so nothing is missed) when the stream breaks, and showing
// progress: a live bar on a terminal, plain lines otherwise.
#ifndef QUANTD_CLIENT_WATCH_H_
#define QUANTD_CLIENT_WATCH_H_

#include <cstdio>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "quantd/v1/quantd.grpc.pb.h"

namespace quantd {

struct WatchOptions {
  // Draw a bar redrawn in place (stderr is a terminal).
  bool live_bar = false;
  // Print progress at all (false for -o json, where only the result prints).
  bool show_progress = true;
  // Give up reconnecting after this long without a connection.
  absl::Duration reconnect_for = absl::Minutes(2);
  FILE* out = stderr;
};

// The job as its final event shows it. UNAVAILABLE when the server stayed
// unreachable past reconnect_for; other codes as the server answered.
absl::StatusOr<v1::Job> WatchUntilDone(v1::QuantizationService::Stub* stub, const std::string& id,
                                       const WatchOptions& options);

// "[#######.......]  45.0% quantizing 12/56 ETA 12s" sized to `width`.
std::string ProgressBar(const v1::Job& job, int width);

}  // namespace quantd

#endif  // QUANTD_CLIENT_WATCH_H_
