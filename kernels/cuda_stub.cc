// MakeCudaEncoder for builds without CUDA (kernels/CMakeLists.txt compiles
// this file instead of kernels/cuda/).
#include "kernels/encoders.h"

namespace quantd {

absl::StatusOr<std::unique_ptr<WeightEncoder>> MakeCudaEncoder(int device) {
  return absl::UnavailableError("quantd was built without CUDA");
}

}  // namespace quantd
