// NVML, loaded at run time (dlopen of libnvidia-ml.so.1): per-GPU memory and
// utilisation for /metrics. Where the library or a driver is absent every
// call reports nothing; nothing here aborts.
#ifndef QUANTD_SERVER_NVML_H_
#define QUANTD_SERVER_NVML_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace quantd {

struct GpuSample {
  int index = 0;
  std::string name;
  uint64_t memory_total_bytes = 0;
  uint64_t memory_used_bytes = 0;
  // 0..1 over NVML's last sample period.
  double utilization = 0;
};

class Nvml {
 public:
  // A loaded NVML, or nullptr when the library or driver is missing.
  static std::unique_ptr<Nvml> Load();
  ~Nvml();

  // One sample per device; devices that fail to answer are skipped.
  std::vector<GpuSample> Sample() const;

 private:
  struct Api;
  Nvml() = default;
  void* handle_ = nullptr;
  std::unique_ptr<Api> api_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_NVML_H_
