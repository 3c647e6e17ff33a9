// quantd's Prometheus metrics (served by MetricsHttpServer on --metrics-listen).
// Names follow Prometheus conventions: base units, counters end in _total,
// no job ids in labels.
#ifndef QUANTD_SERVER_METRICS_H_
#define QUANTD_SERVER_METRICS_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace quantd {

class Nvml;

// Values read at scrape time from the job manager.
struct LiveGauges {
  std::function<double()> queue_depth;
  std::function<double()> jobs_running;
  std::function<double()> watchers;
  // Per worker type ("cpu", "gpu"): {workers, busy}.
  std::function<std::vector<std::pair<std::string, std::pair<double, double>>>()> workers;
};

class ServerMetrics {
 public:
  // `cuda_build` goes into quantd_build_info.
  explicit ServerMetrics(bool cuda_build);
  ~ServerMetrics();

  // Everything the metrics endpoint serves (the registry and the live
  // collectable).
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables() const;

  // Adds NVML's per-GPU gauges (when NVML loads) and the live gauges.
  void AddLive(LiveGauges gauges);

  void JobCreated(const std::string& kind, const std::string& method);
  void JobFinished(const std::string& kind, const std::string& method, const std::string& state,
                   double seconds);
  void BytesRead(double n);
  void BytesWritten(double n);
  void GrpcRequest(const std::string& method, const std::string& code, double seconds);
  // A streaming call ended (counted, not timed).
  void GrpcStreamEnded(const std::string& method, const std::string& code);

 private:
  class LiveCollectable;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* jobs_created_;
  prometheus::Family<prometheus::Counter>* jobs_finished_;
  prometheus::Family<prometheus::Histogram>* job_duration_;
  prometheus::Counter* bytes_read_;
  prometheus::Counter* bytes_written_;
  prometheus::Family<prometheus::Counter>* grpc_requests_;
  prometheus::Family<prometheus::Histogram>* grpc_duration_;
  std::shared_ptr<LiveCollectable> live_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_METRICS_H_
