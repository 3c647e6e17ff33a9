// JobManager's read-only views: workers and capabilities.
#include <fstream>
#include <set>
#include <string>

#include "core/quant/method_registry.h"
#include "core/runtime/llama_config.h"
#include "kernels/devices.h"
#include "server/job_manager.h"

namespace quantd {
namespace {

// MemAvailable from /proc/meminfo, or -1.
int64_t HostMemoryAvailable() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kb;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return -1;
}

}  // namespace

std::vector<v1::Worker> JobManager::Workers() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Worker> out;
  for (const auto& w : workers_) {
    v1::Worker info;
    info.set_id(w->config.id);
    *info.mutable_device() = w->config.device;
    int64_t free_bytes = -1;
    if (w->config.gpu) {
      absl::StatusOr<int64_t> f = CudaFreeMemory(w->config.cuda_device);
      if (f.ok()) free_bytes = *f;
    } else {
      free_bytes = HostMemoryAvailable();
    }
    info.set_memory_free_bytes(free_bytes);
    auto it = active_.find(w->job_id);
    if (it != active_.end() && it->second.job.state() == v1::JOB_STATE_RUNNING) {
      info.set_current_job(w->job_id);
    }
    info.set_jobs_completed(w->completed);
    out.push_back(std::move(info));
  }
  return out;
}

v1::Capabilities JobManager::Capabilities() {
  v1::Capabilities caps;
  caps.set_version(QUANTD_VERSION);
  std::set<std::string> seen;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& w : workers_) {
      if (seen.insert(w->config.device.id()).second) *caps.add_devices() = w->config.device;
    }
  }
  std::set<std::string> formats;
  for (const QuantMethod* m : AllMethods()) {
    v1::MethodCapability* mc = caps.add_methods();
    mc->set_method(std::string(m->name()));
    mc->set_kind(v1::JOB_KIND_QUANTIZE);
    mc->set_output_format(std::string(m->output_format()));
    mc->set_description(std::string(m->description()));
    for (const auto& [k, v] : m->ParameterHelp()) (*mc->mutable_parameters())[k] = v;
    for (const v1::DeviceInfo& d : caps.devices()) {
      v1::DeviceSupport* ds = mc->add_devices();
      ds->set_device(d.id());
      std::string note;
      ds->set_support(m->SupportOn(d, &note));
      ds->set_note(note);
    }
    formats.insert(std::string(m->output_format()));
  }
  v1::MethodCapability* eval = caps.add_methods();
  eval->set_method("evaluate");
  eval->set_kind(v1::JOB_KIND_EVALUATE);
  eval->set_description(
      "perplexity (protocols llama, gptq), and against a reference KL divergence, top-1 "
      "agreement and the perplexity difference; size, bits per weight, memory, tokens/s and a "
      "greedy sample");
  (*eval->mutable_parameters())["protocol"] =
      "llama (context 512, second half of each chunk scored; default) or gptq (context 2048, "
      "all tokens scored)";
  (*eval->mutable_parameters())["architectures"] = SupportedArchitecturesList();
  for (const v1::DeviceInfo& d : caps.devices()) {
    v1::DeviceSupport* ds = eval->add_devices();
    ds->set_device(d.id());
    ds->set_support(v1::SUPPORT_NATIVE);
    ds->set_note(d.type() == "cuda" ? "BF16 weights, FP32 accumulation"
                                    : "FP32 activations, weights as stored");
  }
  for (const std::string& f : formats) caps.add_output_formats(f);
  return caps;
}

}  // namespace quantd
