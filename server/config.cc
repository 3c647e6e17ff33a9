#include "server/config.h"

#include <string>

#include "CLI/CLI.hpp"

namespace quantd {

absl::StatusOr<ServerConfig> ParseServerConfig(int argc, char** argv) {
  ServerConfig c;
  CLI::App app{"quantd: the quantization service"};
  // A later flag overrides an earlier one (and the config file).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.set_config("--config", "", "Read these options from a TOML or INI file (same keys)");
  // A misspelt key in the file is an error, not silently ignored.
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.add_option("--listen", c.listen, "gRPC address (host:port; port 0 picks one)")
      ->capture_default_str();
  app.add_option("--metrics-listen", c.metrics_listen,
                 "Prometheus /metrics address (port 0 picks one; empty disables)")
      ->capture_default_str();
  app.add_option("--data-dir", c.data_dir, "Job database, ports.json")->capture_default_str();
  app.add_option("--model-root", c.model_root, "Models are named relative to this folder")
      ->capture_default_str();
  app.add_option("--output-root", c.output_root, "Outputs are named relative to this folder")
      ->capture_default_str();
  app.add_option("--cpu-workers", c.cpu_workers, "CPU workers")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  app.add_option("--cpu-threads", c.cpu_threads, "Threads per CPU worker (0: all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 4096));
  app.add_option("--gpus", c.gpus, "CUDA devices to use: all, none, or e.g. 0,2")
      ->capture_default_str();
  app.add_option("--cpu-memory-bytes", c.cpu_memory_bytes,
                 "Memory a CPU worker offers jobs (0: 80% of RAM)")
      ->capture_default_str();
  app.add_option("--max-queued-jobs", c.max_queued_jobs, "Queue limit")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--max-attempts", c.max_attempts, "Restarts a job survives")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--heartbeat-seconds", c.heartbeat_seconds, "WatchJob heartbeat interval")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 3600.0));
  app.add_option("--drain-seconds", c.drain_seconds, "On SIGTERM, how long running jobs may finish")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--log-level", c.log_level, "trace, debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--debug-step-delay-ms", c.debug_step_delay_ms,
                 "Testing aid: pause after each job step (watch progress on tiny models)")
      ->check(CLI::Range(0, 600000))
      ->group("Debugging");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return absl::CancelledError(app.help());
  } catch (const CLI::CallForAllHelp& e) {
    return absl::CancelledError(app.help());
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(e.what());
  }
  return c;
}

}  // namespace quantd
