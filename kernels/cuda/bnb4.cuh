// The CUDA kernel of the "bnb4" format (core/formats/bnb4.h): it computes
// with core/formats/bnb4_layout.h, so its codes and block absmax equal the
// scalar reference's bit for bit (tests/kernels/bnb_kernels_test.cc).
//
// One thread per 16 consecutive elements of the flattened weight (two
// 16-byte loads for 16-bit sources, kept as raw bits), blocksize / 16
// adjacent threads per bnb block: max |x| on the raw bits (two 16-bit lanes
// per integer max) and by shuffles (and shared memory for blocks over 512
// elements), the factor 1 / absmax once per thread, each code by one 128-bit
// lookup in a table of 1/128-wide buckets (bnb4::CodeBucket: a threshold
// and both codes repeated in every nibble, so a compare, a select and a
// masked OR place a code), one 8-byte store of 16 codes. Each CTA expands
// the table (cached per type on the host, passed in the launch parameters)
// into 8 copies in shared memory, so the lanes of a load never share a bank;
// a grid of the CTAs that fit on the device strides over the tensor, loading
// the next 16 elements before encoding the current ones.
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
