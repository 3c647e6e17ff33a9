// The CUDA kernel of the "bnb4" format (core/formats/bnb4.h): it computes
// with core/formats/bnb4_layout.h, so its codes and block absmax equal the
// scalar reference's bit for bit (tests/kernels/bnb_kernels_test.cc).
//
// One thread per 8 consecutive elements of the flattened weight (one 16-byte
// load for 16-bit sources), blocksize / 8 adjacent threads per bnb block:
// max |x| by shuffles (and shared memory for blocks over 256 elements), the
// factor 1 / absmax once per thread, each code by one lookup in a table of
// 1/128-wide buckets (bnb4::CodeBucket, in shared memory) and one compare,
// one 4-byte store of 8 codes. A grid of a few CTAs per SM strides over the
// tensor, loading the next 8 elements before encoding the current ones.
//
// The CUDA encoder (kernels/cuda/cuda_encoder.h) runs it through
// Bnb4DeviceKernel(), whose plan indexes the packed codes by element pairs
// and the float32 block absmax by block (DevicePartPlan::elements_per_index);
// chunks of blocksize rows start on a block boundary. Code books, the JSON
// and double quantization stay on the host (Allocate, FinalizeRef).
// Bnb4EncodeOnDevice() runs the kernel on a whole weight in one launch
// (tests, bench).
#ifndef QUANTD_KERNELS_CUDA_BNB4_CUH_
#define QUANTD_KERNELS_CUDA_BNB4_CUH_

#include <cuda_runtime_api.h>

#include "absl/status/statusor.h"
#include "core/formats/bnb4.h"
#include "kernels/cuda/registry.h"

namespace quantd {

// One launch over elements [0, numel) of a flattened weight (or of a part
// of one that starts on a block boundary).
struct Bnb4DeviceArgs {
  const void* input = nullptr;  // device: numel elements of `source` (16-byte aligned)
  DType source = DType::kBF16;
  int64_t numel = 0;   // < 2^31
  int blocksize = 64;  // a power of two in [32, 4096]
  bnb4::QuantType type = bnb4::QuantType::kNf4;
  uint8_t* packed = nullptr;  // device: (numel + 1) / 2 bytes
  float* absmax = nullptr;    // device: ceil(numel / blocksize) floats
  // Device counter preset to ~0: atomicMin'd with the index of every
  // non-finite input element.
  unsigned long long* first_bad = nullptr;
  cudaStream_t stream = nullptr;
};

// Enqueues the kernel; cudaErrorInvalidValue for arguments out of range,
// else the launch error.
cudaError_t LaunchBnb4(const Bnb4DeviceArgs& a);

// Encodes a whole weight on CUDA device `device` in one launch: the kernel
// for the codes and float32 absmax, then FinalizeRef on the host. The bytes equal
// EncodeRef(Bnb4Format(), p, w)'s. Errors: Check()'s, INVALID_ARGUMENT naming the first non-finite
// value's row and column, CudaStatus() for device failures.
absl::StatusOr<EncodedWeight> Bnb4EncodeOnDevice(const FormatParams& p, const TensorView& w,
                                                 int device);

// The registry entry (kernels/cuda/registry.cc): every F32, F16 or BF16
// weight that passes Check().
const DeviceKernel& Bnb4DeviceKernel();

}  // namespace quantd

#endif  // QUANTD_KERNELS_CUDA_BNB4_CUH_
