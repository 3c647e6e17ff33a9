// The encoders that kernels/ provides: the multi-threaded CPU path and the
// CUDA path. Both produce exactly the bytes of the format's scalar reference
// (WeightFormat::EncodeRowsRef).
#ifndef QUANTD_KERNELS_ENCODERS_H_
#define QUANTD_KERNELS_ENCODERS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "core/quant/encoder.h"

namespace quantd {

// Encodes on `threads` CPU threads (0 = std::thread::hardware_concurrency),
// the calling thread included. Rows are split into chunks aligned to the
// format's RowGranularity, each encoded by EncodeRowsRef, so the output is
// the reference's by construction; cancellation is checked between chunks.
// device() is "cpu". Encode may be called from several threads (calls are
// serialised).
std::unique_ptr<WeightEncoder> MakeCpuEncoder(int threads);

// Encodes on CUDA device `device`; device() is "cuda:<device>". Formats
// without a device kernel (kernels/cuda/registry.h), or with parameters
// their kernel does not handle, are encoded on the CPU path instead.
// UNAVAILABLE when the build has no CUDA, there is no usable driver, or no
// device `device`; INTERNAL if the device cannot be set up.
absl::StatusOr<std::unique_ptr<WeightEncoder>> MakeCudaEncoder(int device);

}  // namespace quantd

#endif  // QUANTD_KERNELS_ENCODERS_H_
