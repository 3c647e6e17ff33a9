#include "server/metrics.h"

#include <utility>

#include "prometheus/metric_family.h"
#include "server/nvml.h"

namespace quantd {
namespace {

prometheus::MetricFamily GaugeFamily(const std::string& name, const std::string& help) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = prometheus::MetricType::Gauge;
  return f;
}

void AddSample(prometheus::MetricFamily* f, std::vector<prometheus::ClientMetric::Label> labels,
               double v) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = v;
  f->metric.push_back(std::move(m));
}

}  // namespace

class ServerMetrics::LiveCollectable : public prometheus::Collectable {
 public:
  explicit LiveCollectable(LiveGauges g) : gauges_(std::move(g)), nvml_(Nvml::Load()) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    auto single = [&](const std::string& name, const std::string& help,
                      const std::function<double()>& fn) {
      if (!fn) return;
      prometheus::MetricFamily f = GaugeFamily(name, help);
      AddSample(&f, {}, fn());
      out.push_back(std::move(f));
    };
    single("quantd_queue_depth", "Jobs waiting for a worker.", gauges_.queue_depth);
    single("quantd_jobs_running", "Jobs running now.", gauges_.jobs_running);
    single("quantd_watchers", "Open WatchJob streams.", gauges_.watchers);
    if (gauges_.workers) {
      prometheus::MetricFamily all = GaugeFamily("quantd_workers", "Workers by device type.");
      prometheus::MetricFamily busy =
          GaugeFamily("quantd_workers_busy", "Workers running a job, by device type.");
      for (const auto& [type, counts] : gauges_.workers()) {
        AddSample(&all, {{"type", type}}, counts.first);
        AddSample(&busy, {{"type", type}}, counts.second);
      }
      out.push_back(std::move(all));
      out.push_back(std::move(busy));
    }
    if (nvml_) {
      prometheus::MetricFamily used =
          GaugeFamily("quantd_gpu_memory_used_bytes", "GPU memory in use (NVML).");
      prometheus::MetricFamily total =
          GaugeFamily("quantd_gpu_memory_total_bytes", "GPU memory (NVML).");
      prometheus::MetricFamily util = GaugeFamily(
          "quantd_gpu_utilization_ratio", "Fraction of time a kernel ran on the GPU (NVML).");
      for (const GpuSample& s : nvml_->Sample()) {
        std::vector<prometheus::ClientMetric::Label> labels = {{"gpu", std::to_string(s.index)},
                                                               {"name", s.name}};
        AddSample(&used, labels, static_cast<double>(s.memory_used_bytes));
        AddSample(&total, labels, static_cast<double>(s.memory_total_bytes));
        AddSample(&util, labels, s.utilization);
      }
      out.push_back(std::move(used));
      out.push_back(std::move(total));
      out.push_back(std::move(util));
    }
    return out;
  }

 private:
  LiveGauges gauges_;
  std::unique_ptr<Nvml> nvml_;
};

ServerMetrics::ServerMetrics(bool cuda_build)
    : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  jobs_created_ = &BuildCounter()
                       .Name("quantd_jobs_created_total")
                       .Help("Jobs created, by kind and method.")
                       .Register(*registry_);
  jobs_finished_ = &BuildCounter()
                        .Name("quantd_jobs_finished_total")
                        .Help("Jobs that reached a final state, by kind, method and state.")
                        .Register(*registry_);
  job_duration_ = &BuildHistogram()
                       .Name("quantd_job_duration_seconds")
                       .Help("Seconds from start to finish of jobs that ran.")
                       .Register(*registry_);
  bytes_read_ = &BuildCounter()
                     .Name("quantd_read_bytes_total")
                     .Help("Model bytes read by jobs.")
                     .Register(*registry_)
                     .Add({});
  bytes_written_ = &BuildCounter()
                        .Name("quantd_written_bytes_total")
                        .Help("Output bytes written by jobs.")
                        .Register(*registry_)
                        .Add({});
  grpc_requests_ = &BuildCounter()
                        .Name("quantd_grpc_requests_total")
                        .Help("gRPC requests handled, by method and status code.")
                        .Register(*registry_);
  grpc_duration_ = &BuildHistogram()
                        .Name("quantd_grpc_request_duration_seconds")
                        .Help("Seconds to answer unary gRPC requests, by method.")
                        .Register(*registry_);
  BuildGauge()
      .Name("quantd_build_info")
      .Help("Always 1; labels describe the build.")
      .Register(*registry_)
      .Add({{"version", QUANTD_VERSION}, {"cuda", cuda_build ? "yes" : "no"}})
      .Set(1);
}

ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::AddLive(LiveGauges gauges) {
  live_ = std::make_shared<LiveCollectable>(std::move(gauges));
}

std::vector<std::shared_ptr<prometheus::Collectable>> ServerMetrics::collectables() const {
  std::vector<std::shared_ptr<prometheus::Collectable>> out = {registry_};
  if (live_) out.push_back(live_);
  return out;
}

void ServerMetrics::JobCreated(const std::string& kind, const std::string& method) {
  jobs_created_->Add({{"kind", kind}, {"method", method}}).Increment();
}

void ServerMetrics::JobFinished(const std::string& kind, const std::string& method,
                                const std::string& state, double seconds) {
  jobs_finished_->Add({{"kind", kind}, {"method", method}, {"state", state}}).Increment();
  if (seconds >= 0) {
    static const prometheus::Histogram::BucketBoundaries kBuckets = {
        0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200};
    job_duration_->Add({{"kind", kind}, {"method", method}}, kBuckets).Observe(seconds);
  }
}

void ServerMetrics::BytesRead(double n) { bytes_read_->Increment(n); }

void ServerMetrics::BytesWritten(double n) { bytes_written_->Increment(n); }

void ServerMetrics::GrpcRequest(const std::string& method, const std::string& code,
                                double seconds) {
  grpc_requests_->Add({{"method", method}, {"code", code}}).Increment();
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5};
  grpc_duration_->Add({{"method", method}}, kBuckets).Observe(seconds);
}

}  // namespace quantd

namespace quantd {

void ServerMetrics::GrpcStreamEnded(const std::string& method, const std::string& code) {
  grpc_requests_->Add({{"method", method}, {"code", code}}).Increment();
}

}  // namespace quantd
