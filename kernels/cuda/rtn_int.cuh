// The CUDA kernel of the "rtn_int" format (core/formats/rtn_int.h). It
// computes with the functions of core/formats/rtn_int_layout.h, so its bytes
// equal the scalar reference's.
//
// Handles every parameter set Check() accepts whose group size (cols when
// per channel) is a multiple of 8, so that a thread owns whole 8-element
// vectors (one int4 word or two int8 words); other group sizes go to the
// CPU path. Groups of 8..256 elements (size / 8 a power of two) are encoded
// by TeamKernel, teams of a few threads per group keeping up to 64 elements
// each in registers; other sizes (per channel) by BlockKernel, one block per
// (row, group) keeping up to 16384 elements in registers between its
// reducing and its quantizing pass. Reductions of 16-bit inputs work on raw
// bit pairs; the division by the scale uses a hoisted reciprocal with exact
// corrections (see Quantizer in rtn_int.cu); codes are rounded with the
// 1.5 * 2^23 trick of rtn::RoundedBits. Non-finite inputs: the group is not
// written and the first bad index is atomicMin'd into first_bad.
#ifndef QUANTD_KERNELS_CUDA_RTN_INT_CUH_
#define QUANTD_KERNELS_CUDA_RTN_INT_CUH_

#include "kernels/cuda/registry.h"

namespace quantd {

const DeviceKernel& RtnIntDeviceKernel();

}  // namespace quantd

#endif  // QUANTD_KERNELS_CUDA_RTN_INT_CUH_
