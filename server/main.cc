// quantd: the quantization service. See docs/ARCHITECTURE.md.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/util/fs.h"
#include "nlohmann/json.hpp"
#include "server/config.h"
#include "server/event_hub.h"
#include "server/executor.h"
#include "server/job_manager.h"
#include "server/metrics.h"
#include "server/metrics_http.h"
#include "server/runtime_factory.h"
#include "server/service.h"
#include "server/workers.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;

#ifdef QUANTD_HAVE_CUDA
constexpr bool kCudaBuild = true;
#else
constexpr bool kCudaBuild = false;
#endif

absl::StatusOr<fs::path> PrepareDir(const fs::path& p, const char* what) {
  std::error_code ec;
  fs::create_directories(p, ec);
  if (ec)
    return absl::FailedPreconditionError(absl::StrCat(what, " ", p.string(), ": ", ec.message()));
  fs::path canon = fs::canonical(p, ec);
  if (ec)
    return absl::FailedPreconditionError(absl::StrCat(what, " ", p.string(), ": ", ec.message()));
  return canon;
}

// ports.json lets scripts and tests find ports chosen with port 0.
absl::Status WritePorts(const fs::path& data_dir, int grpc_port, int metrics_port) {
  nlohmann::json j = {{"grpc", grpc_port}, {"metrics", metrics_port}, {"pid", getpid()}};
  const fs::path tmp = data_dir / "ports.json.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump() << "\n";
    if (!out) return absl::InternalError("cannot write " + tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, data_dir / "ports.json", ec);
  if (ec) return absl::InternalError("cannot write ports.json: " + ec.message());
  return absl::OkStatus();
}

int Run(int argc, char** argv) {
  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<ServerConfig> parsed = ParseServerConfig(argc, argv);
  if (!parsed.ok()) {
    if (parsed.status().code() == absl::StatusCode::kCancelled) {
      std::cout << parsed.status().message();
      return 0;
    }
    std::cerr << "quantd: " << parsed.status().message() << "\n";
    return 2;
  }
  ServerConfig config = *parsed;
  spdlog::set_level(spdlog::level::from_str(config.log_level));

  absl::StatusOr<fs::path> data_dir = PrepareDir(config.data_dir, "--data-dir");
  absl::StatusOr<fs::path> model_root = PrepareDir(config.model_root, "--model-root");
  absl::StatusOr<fs::path> output_root = PrepareDir(config.output_root, "--output-root");
  for (const auto* s : {&data_dir, &model_root, &output_root}) {
    if (!s->ok()) {
      spdlog::error("{}", std::string(s->status().message()));
      return 1;
    }
  }
  if (absl::Status s = RemoveStaleTemps(*output_root); !s.ok()) {
    spdlog::warn("removing stale temporary outputs: {}", s.ToString());
  }
  absl::StatusOr<std::unique_ptr<JobStore>> store = JobStore::Open(*data_dir / "jobs.db");
  if (!store.ok()) {
    spdlog::error("job store: {}", store.status().ToString());
    return 1;
  }
  absl::StatusOr<std::vector<WorkerConfig>> workers = MakeWorkers(config);
  if (!workers.ok()) {
    spdlog::error("{}", std::string(workers.status().message()));
    return 1;
  }

  ServerMetrics metrics(kCudaBuild);
  EventHub hub;
  ManagerOptions options;
  options.max_queued_jobs = config.max_queued_jobs;
  options.max_attempts = config.max_attempts;
  const std::unique_ptr<CausalLMFactory> runtime = MakeKernelsRuntimeFactory(config.cpu_threads);
  JobManager manager(*std::move(store),
                     JobEnv{*model_root, *output_root,
                            absl::Milliseconds(config.debug_step_delay_ms), runtime.get()},
                     *std::move(workers), options, &hub, &metrics);
  metrics.AddLive(LiveGauges{
      [&] { return static_cast<double>(manager.queue_depth()); },
      [&] { return static_cast<double>(manager.running()); },
      [&] { return static_cast<double>(hub.watchers()); },
      [&] {
        std::map<std::string, std::pair<double, double>> by_type;
        for (const v1::Worker& w : manager.Workers()) {
          auto& c = by_type[w.device().type() == "cuda" ? "gpu" : "cpu"];
          c.first += 1;
          c.second += w.current_job().empty() ? 0 : 1;
        }
        return std::vector<std::pair<std::string, std::pair<double, double>>>(by_type.begin(),
                                                                              by_type.end());
      },
  });
  if (absl::Status s = manager.Start(); !s.ok()) {
    spdlog::error("starting the job manager: {}", s.ToString());
    return 1;
  }
  hub.Start(absl::Seconds(config.heartbeat_seconds));

  Executor executor(8);
  QuantdService service(&manager, &metrics, &executor);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int grpc_port = 0;
  builder.AddListeningPort(config.listen, grpc::InsecureServerCredentials(), &grpc_port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || grpc_port == 0) {
    spdlog::error("cannot listen on {} for gRPC", config.listen);
    return 1;
  }

  std::unique_ptr<MetricsHttpServer> metrics_server;
  int metrics_port = 0;
  if (!config.metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> m =
        MetricsHttpServer::Start(config.metrics_listen, metrics.collectables());
    if (!m.ok()) {
      spdlog::error("{}", std::string(m.status().message()));
      return 1;
    }
    metrics_server = *std::move(m);
    metrics_port = metrics_server->port();
  }
  if (absl::Status s = WritePorts(*data_dir, grpc_port, metrics_port); !s.ok()) {
    spdlog::error("{}", s.ToString());
    return 1;
  }
  spdlog::info("quantd {} serving gRPC on port {}, metrics on port {}, models in {}, outputs in {}",
               QUANTD_VERSION, grpc_port, metrics_port, model_root->string(),
               output_root->string());

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {}: draining (up to {} s for running jobs)", sig, config.drain_seconds);
  server->GetHealthCheckService()->SetServingStatus(false);
  manager.Drain(absl::Seconds(config.drain_seconds));
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  hub.Stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace
}  // namespace quantd

int main(int argc, char** argv) { return quantd::Run(argc, argv); }
