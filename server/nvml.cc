#include "server/nvml.h"

#include <dlfcn.h>

namespace quantd {
namespace {

// The few NVML types used here, as nvml.h defines them (ABI-stable).
using nvmlReturn_t = int;
using nvmlDevice_t = void*;
struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
struct nvmlUtilization_t {
  unsigned int gpu;
  unsigned int memory;
};
constexpr nvmlReturn_t kNvmlSuccess = 0;

}  // namespace

struct Nvml::Api {
  nvmlReturn_t (*init)();
  nvmlReturn_t (*shutdown)();
  nvmlReturn_t (*count)(unsigned int*);
  nvmlReturn_t (*handle)(unsigned int, nvmlDevice_t*);
  nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t*);
  nvmlReturn_t (*utilization)(nvmlDevice_t, nvmlUtilization_t*);
  nvmlReturn_t (*name)(nvmlDevice_t, char*, unsigned int);
};

std::unique_ptr<Nvml> Nvml::Load() {
  void* h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) return nullptr;
  auto api = std::make_unique<Api>();
  auto sym = [h](const char* n) { return dlsym(h, n); };
  api->init = reinterpret_cast<decltype(api->init)>(sym("nvmlInit_v2"));
  api->shutdown = reinterpret_cast<decltype(api->shutdown)>(sym("nvmlShutdown"));
  api->count = reinterpret_cast<decltype(api->count)>(sym("nvmlDeviceGetCount_v2"));
  api->handle = reinterpret_cast<decltype(api->handle)>(sym("nvmlDeviceGetHandleByIndex_v2"));
  api->memory = reinterpret_cast<decltype(api->memory)>(sym("nvmlDeviceGetMemoryInfo"));
  api->utilization =
      reinterpret_cast<decltype(api->utilization)>(sym("nvmlDeviceGetUtilizationRates"));
  api->name = reinterpret_cast<decltype(api->name)>(sym("nvmlDeviceGetName"));
  if (!api->init || !api->shutdown || !api->count || !api->handle || !api->memory ||
      !api->utilization || !api->name || api->init() != kNvmlSuccess) {
    dlclose(h);
    return nullptr;
  }
  std::unique_ptr<Nvml> nvml(new Nvml());
  nvml->handle_ = h;
  nvml->api_ = std::move(api);
  return nvml;
}

Nvml::~Nvml() {
  if (api_) api_->shutdown();
  if (handle_) dlclose(handle_);
}

std::vector<GpuSample> Nvml::Sample() const {
  std::vector<GpuSample> out;
  unsigned int n = 0;
  if (api_->count(&n) != kNvmlSuccess) return out;
  for (unsigned int i = 0; i < n; ++i) {
    nvmlDevice_t dev = nullptr;
    if (api_->handle(i, &dev) != kNvmlSuccess) continue;
    GpuSample s;
    s.index = static_cast<int>(i);
    char name[96] = {0};
    if (api_->name(dev, name, sizeof(name)) == kNvmlSuccess) s.name = name;
    nvmlMemory_t mem{};
    if (api_->memory(dev, &mem) == kNvmlSuccess) {
      s.memory_total_bytes = mem.total;
      s.memory_used_bytes = mem.used;
    }
    nvmlUtilization_t util{};
    if (api_->utilization(dev, &util) == kNvmlSuccess) s.utilization = util.gpu / 100.0;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace quantd
