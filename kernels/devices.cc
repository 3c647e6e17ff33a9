#include "kernels/devices.h"

#include "absl/strings/str_cat.h"

#if QUANTD_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace quantd {

#if QUANTD_HAVE_CUDA

namespace {

int DeviceCount() {
  int n = 0;
  // No driver, no device, a driver too old: all mean "none".
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear
    return 0;
  }
  return n;
}

}  // namespace

std::vector<GpuInfo> ListCudaDevices() {
  std::vector<GpuInfo> out;
  const int n = DeviceCount();
  int previous = 0;
  if (n > 0 && cudaGetDevice(&previous) != cudaSuccess) previous = 0;
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    GpuInfo g;
    g.index = i;
    g.name = prop.name;
    g.cc_major = prop.major;
    g.cc_minor = prop.minor;
    g.total_memory = static_cast<int64_t>(prop.totalGlobalMem);
    g.multiprocessors = prop.multiProcessorCount;
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaSetDevice(i) == cudaSuccess &&
        cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
      g.free_memory = static_cast<int64_t>(free_bytes);
    } else {
      cudaGetLastError();
    }
    out.push_back(std::move(g));
  }
  if (n > 0) cudaSetDevice(previous);
  return out;
}

absl::StatusOr<int64_t> CudaFreeMemory(int device) {
  const int n = DeviceCount();
  if (device < 0 || device >= n) {
    return absl::UnavailableError(absl::StrCat("no CUDA device ", device, " (found ", n, ")"));
  }
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess) previous = device;
  size_t free_bytes = 0, total_bytes = 0;
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) e = cudaMemGetInfo(&free_bytes, &total_bytes);
  cudaSetDevice(previous);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return absl::InternalError(
        absl::StrCat("cudaMemGetInfo on device ", device, ": ", cudaGetErrorString(e)));
  }
  return static_cast<int64_t>(free_bytes);
}

#else  // !QUANTD_HAVE_CUDA

std::vector<GpuInfo> ListCudaDevices() { return {}; }

absl::StatusOr<int64_t> CudaFreeMemory(int device) {
  return absl::UnavailableError("quantd was built without CUDA");
}

#endif  // QUANTD_HAVE_CUDA

}  // namespace quantd
