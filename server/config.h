// quantd's settings, from flags and an optional config file with the same
// keys (TOML or INI, via --config).
#ifndef QUANTD_SERVER_CONFIG_H_
#define QUANTD_SERVER_CONFIG_H_

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/statusor.h"

namespace quantd {

struct ServerConfig {
  // gRPC address; port 0 picks a free port.
  std::string listen = "127.0.0.1:7470";
  // Prometheus /metrics address; port 0 picks a free port; empty disables.
  std::string metrics_listen = "127.0.0.1:7471";
  // Job database, ports.json and logs.
  std::filesystem::path data_dir = "quantd-data";
  std::filesystem::path model_root = "models";
  std::filesystem::path output_root = "outputs";
  // CPU workers (run jobs that do not fit or do not use a GPU).
  int cpu_workers = 1;
  // Threads each CPU worker encodes with; 0 means all cores.
  int cpu_threads = 0;
  // "all", "none", or a comma-separated list of CUDA device indices.
  std::string gpus = "all";
  // Memory a CPU worker offers jobs, in bytes; 0 means 80% of RAM.
  int64_t cpu_memory_bytes = 0;
  // Queued jobs beyond this are refused with RESOURCE_EXHAUSTED.
  int max_queued_jobs = 1000;
  // A job interrupted by a restart this many times fails instead.
  int max_attempts = 3;
  double heartbeat_seconds = 5.0;
  // On SIGTERM: seconds running jobs get to finish before they are stopped
  // and requeued for the next start.
  double drain_seconds = 30.0;
  std::string log_level = "info";
  // Testing aid: pause after each pipeline step (see JobEnv).
  int debug_step_delay_ms = 0;
};

// Parses argv (and --config FILE). INVALID_ARGUMENT with CLI11's message on
// bad flags; a request for --help is returned as CANCELLED with the help
// text as message.
absl::StatusOr<ServerConfig> ParseServerConfig(int argc, char** argv);

}  // namespace quantd

#endif  // QUANTD_SERVER_CONFIG_H_
