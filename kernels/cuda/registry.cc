#include "kernels/cuda/registry.h"

#include <map>
#include <string>

#include "kernels/cuda/bnb4.cuh"
#include "kernels/cuda/bnb_int8.cuh"
#include "kernels/cuda/fp8.cuh"
#include "kernels/cuda/ggml_quants.cuh"
#include "kernels/cuda/nvfp4.cuh"
#include "kernels/cuda/rtn_int.cuh"

namespace quantd {

const DeviceKernel* FindDeviceKernel(std::string_view name) {
  static const auto* kernels = new std::map<std::string, const DeviceKernel*, std::less<>>{
      {"rtn_int", &RtnIntDeviceKernel()}, {"ggml", &GgmlDeviceKernel()},
      {"fp8", &Fp8DeviceKernel()},        {"nvfp4", &Nvfp4DeviceKernel()},
      {"bnb4", &Bnb4DeviceKernel()},      {"bnb_int8", &BnbInt8DeviceKernel()},
  };
  auto it = kernels->find(name);
  return it == kernels->end() ? nullptr : it->second;
}

}  // namespace quantd
