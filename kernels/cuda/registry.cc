#include "kernels/cuda/registry.h"

#include <map>
#include <string>

#include "kernels/cuda/rtn_int.cuh"

namespace quantd {

const DeviceKernel* FindDeviceKernel(std::string_view name) {
  static const auto* kernels = new std::map<std::string, const DeviceKernel*, std::less<>>{
      {"rtn_int", &RtnIntDeviceKernel()},
  };
  auto it = kernels->find(name);
  return it == kernels->end() ? nullptr : it->second;
}

}  // namespace quantd
