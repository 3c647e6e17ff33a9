#include "server/workers.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kernels/devices.h"
#include "kernels/encoders.h"

namespace quantd {
namespace {

std::string CpuModelName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "CPU";
}

int64_t HostMemoryTotal() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : 0;
}

absl::StatusOr<std::set<int>> SelectGpus(const std::string& spec, int count) {
  std::set<int> out;
  if (spec == "none") return out;
  if (spec == "all") {
    for (int i = 0; i < count; ++i) out.insert(i);
    return out;
  }
  for (absl::string_view part : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    int i;
    if (!absl::SimpleAtoi(part, &i) || i < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--gpus: \"", spec, "\" is not all, none or a list of device indices"));
    }
    if (i >= count) {
      return absl::InvalidArgumentError(
          absl::StrCat("--gpus: device ", i, " does not exist (", count, " CUDA devices)"));
    }
    out.insert(i);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<WorkerConfig>> MakeWorkers(const ServerConfig& config) {
  std::vector<WorkerConfig> workers;
  const std::vector<GpuInfo> gpus = ListCudaDevices();
  absl::StatusOr<std::set<int>> selected = SelectGpus(config.gpus, static_cast<int>(gpus.size()));
  if (!selected.ok()) return selected.status();
  for (const GpuInfo& g : gpus) {
    if (!selected->count(g.index)) continue;
    absl::StatusOr<std::unique_ptr<WeightEncoder>> enc = MakeCudaEncoder(g.index);
    if (!enc.ok()) {
      spdlog::warn("gpu{} ({}) is not used: {}", g.index, g.name, enc.status().ToString());
      continue;
    }
    WorkerConfig w;
    w.id = absl::StrCat("gpu", g.index);
    w.gpu = true;
    w.cuda_device = g.index;
    w.device.set_id(w.id);
    w.device.set_type("cuda");
    w.device.set_name(g.name);
    w.device.set_compute_capability(absl::StrCat(g.cc_major, ".", g.cc_minor));
    w.device.set_memory_total_bytes(g.total_memory);
    // Leave room for the CUDA context and other processes.
    w.memory_bytes = static_cast<int64_t>(static_cast<double>(g.free_memory) * 0.9);
    w.encoder = *std::move(enc);
    spdlog::info("worker {}: {} (sm_{}{}), {:.1f} GiB free", w.id, g.name, g.cc_major, g.cc_minor,
                 g.free_memory / 1073741824.0);
    workers.push_back(std::move(w));
  }
  const int threads = config.cpu_threads > 0
                          ? config.cpu_threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int64_t host_total = HostMemoryTotal();
  for (int i = 0; i < config.cpu_workers; ++i) {
    WorkerConfig w;
    w.id = absl::StrCat("cpu", i);
    w.device.set_id("cpu");
    w.device.set_type("cpu");
    w.device.set_name(absl::StrCat(CpuModelName(), ", ", threads, " threads"));
    w.device.set_memory_total_bytes(host_total);
    w.memory_bytes = config.cpu_memory_bytes > 0 ? config.cpu_memory_bytes
                                                 : static_cast<int64_t>(host_total * 0.8);
    w.encoder = MakeCpuEncoder(config.cpu_threads);
    workers.push_back(std::move(w));
  }
  if (workers.empty()) {
    return absl::FailedPreconditionError(
        "no workers: no usable GPU was selected and --cpu-workers is 0");
  }
  return workers;
}

}  // namespace quantd
