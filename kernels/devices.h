// The CUDA devices this process can use.
#ifndef QUANTD_KERNELS_DEVICES_H_
#define QUANTD_KERNELS_DEVICES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace quantd {

struct GpuInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;
  int64_t total_memory = 0;  // bytes
  int64_t free_memory = 0;   // bytes, when listed
  int multiprocessors = 0;
};

// Every CUDA device, in CUDA's order. Empty (never an error) when the build
// has no CUDA, there is no driver, or the driver reports no device. Creates
// a CUDA context on each device to read its free memory.
std::vector<GpuInfo> ListCudaDevices();

// Free memory of `device` in bytes. UNAVAILABLE without CUDA or without
// that device; INTERNAL for another CUDA error.
absl::StatusOr<int64_t> CudaFreeMemory(int device);

}  // namespace quantd

#endif  // QUANTD_KERNELS_DEVICES_H_
