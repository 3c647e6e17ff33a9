// The CUDA kernel of the "fp8" format (core/formats/fp8.h). It computes
// with the functions of core/formats/fp8_layout.h and fp8_e4m3.h, so its
// bytes equal the scalar reference's.
//
// Handles every parameter set Check() accepts whose cols is a multiple of 8
// (a thread owns whole 8-element vectors: 16-byte loads, 8-byte stores)
// and, for the tensor strategy, whose tensor_amax is finite and >= 0; the
// rest goes to the CPU path. Three kernels:
//   tensor   elementwise, the scale computed once on the host (the scale
//            part is filled by FillHostParts);
//   channel  one thread block per row, the row's first 16384 elements kept
//            in registers between the reduction and the quantizing pass;
//   block    one thread block per 128 x 128 block (partial at the edges),
//            the whole block kept in registers.
// Codes come from the hardware conversion cvt.rn.satfinite.e4m3x2.f32
// (sm_89 and later; CountE4m3CvtMismatches checks on the device that it
// equals e4m3::FloatToE4m3 on all 2^32 float32 patterns but the NaNs).
// Division by the scale uses fp8::Divider's hoisted reciprocal (equal to
// IEEE division, checked on the host by tests/core/fp8_test.cc). Non-finite
// inputs: the group (tensor: the 8-element vector) is not written and the
// first bad index of each of its vectors is atomicMin'd into first_bad.
#ifndef QUANTD_KERNELS_CUDA_FP8_CUH_
#define QUANTD_KERNELS_CUDA_FP8_CUH_

#include <cstdint>

#include "absl/status/statusor.h"
#include "kernels/cuda/registry.h"

namespace quantd {

const DeviceKernel& Fp8DeviceKernel();

// For tests: how many float32 values (all 2^32 bit patterns but the NaNs,
// each in both lanes of the instruction) the kernels' hardware conversion
// maps to another code than e4m3::FloatToE4m3, counted on the current CUDA
// device (a few ms). Fails with the CUDA error (e.g. no device).
absl::StatusOr<uint64_t> CountE4m3CvtMismatches();

}  // namespace quantd

#endif  // QUANTD_KERNELS_CUDA_FP8_CUH_
