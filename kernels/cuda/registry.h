// Device kernels by format name: the CUDA encoder (cuda_encoder.h) looks a
// format up here and falls back to the CPU path when there is no kernel or
// the kernel does not handle the parameters. Adding a kernel adds one line
// to registry.cc.
#ifndef QUANTD_KERNELS_CUDA_REGISTRY_H_
#define QUANTD_KERNELS_CUDA_REGISTRY_H_

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/formats/format.h"

namespace quantd {

// How one part (or scratch tensor) of Allocate()'s output maps to weight
// rows. A part is device-written when rows_per_index or elements_per_index
// is set (at most one of them); otherwise the host fills it (FillHostParts,
// Allocate or FinalizeRef) and the device never touches it.
struct DevicePartPlan {
  // Weight rows covered by one index of the part's first dimension (1 for a
  // per-row part, 8 for int4 zero points packed along rows).
  int64_t rows_per_index = 0;
  // Elements of the flattened row-major weight covered by one index of the
  // part's first dimension (2 for bitsandbytes' packed nibbles, the block
  // size for its block absmax): a chunk of rows [r0, r1) writes indices
  // [r0 * cols / e, ceil(r1 * cols / e)). The encoder runs such a kernel only
  // when every chunk boundary r0 has r0 * cols divisible by e (else the CPU
  // path encodes the weight).
  int64_t elements_per_index = 0;
  // The device buffer must be zero before the launch (the kernel ORs into
  // it).
  bool zero_before_launch = false;
};

// One launch: a chunk of whole rows already in device memory.
struct DeviceEncodeArgs {
  const FormatParams* params = nullptr;
  DType source = DType::kBF16;
  int64_t rows = 0;  // rows of this chunk (a multiple of RowGranularity, or the tail)
  int64_t cols = 0;
  const void* input = nullptr;  // device [rows, cols] of `source`
  // Device pointers to this chunk's first index of each part, in Allocate()
  // order, then of each scratch tensor (nullptr for host-filled ones).
  std::vector<void*> parts;
  // Device counter preset to ~0: the kernel atomicMin's it with
  // row * cols + col (chunk-relative) of every non-finite input it finds.
  unsigned long long* first_bad = nullptr;
  cudaStream_t stream = nullptr;
};

class DeviceKernel {
 public:
  virtual ~DeviceKernel() = default;

  // Whether Launch handles these parameters (Check() already passed).
  virtual bool Supports(const FormatParams& p, int64_t cols, DType source) const = 0;
  // One entry per part of `shapes` (from Allocate()), then one per scratch
  // tensor (a kernel that returns only shapes.parts.size() entries leaves
  // the scratch to the host).
  virtual std::vector<DevicePartPlan> Plan(const FormatParams& p,
                                           const EncodedWeight& shapes) const = 0;
  // Writes the parts that do not depend on the data (plan entries that are
  // not device-written).
  virtual void FillHostParts(const FormatParams& p, int64_t rows, int64_t cols,
                             EncodedWeight* e) const = 0;
  // Enqueues the kernel(s) on args.stream; the launch error, if any.
  virtual cudaError_t Launch(const DeviceEncodeArgs& args) const = 0;
};

// The kernel registered for format `name`, or nullptr.
const DeviceKernel* FindDeviceKernel(std::string_view name);

}  // namespace quantd

#endif  // QUANTD_KERNELS_CUDA_REGISTRY_H_
