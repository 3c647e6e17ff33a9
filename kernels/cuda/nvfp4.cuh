// The CUDA kernel of the "nvfp4" format (core/formats/nvfp4.h). It computes
// with the functions of core/formats/nvfp4_layout.h, so its bytes equal the
// scalar reference's.
//
// Handles every parameter set Check() accepts once tensor_amax is set (an
// unset one goes to the CPU path, which reports it). With cols % 16 == 0 a
// chunk is a flat run of 16-element blocks; thread t of a CTA encodes 4
// blocks (t + 256 i: each warp load covers 32 adjacent blocks), issuing all
// their loads (two or four 16-byte vectors each) before the CTA builds its
// table, and writes each block's E4M3 scale byte and 8 packed bytes. The
// tensor scale is computed on the host (FillHostParts). Element codes come
// from per-scale-code thresholds on |x| (nvfp4.cu says why they equal
// E2M1MagnitudeRef(RN(|x| / d))) instead of a division per element.
// Non-finite inputs: the block is not written and the first bad index is
// atomicMin'd into first_bad. docs/research/nvfp4_format.md describes the
// format.
#ifndef QUANTD_KERNELS_CUDA_NVFP4_CUH_
#define QUANTD_KERNELS_CUDA_NVFP4_CUH_

#include "kernels/cuda/registry.h"

namespace quantd {

const DeviceKernel& Nvfp4DeviceKernel();

}  // namespace quantd

#endif  // QUANTD_KERNELS_CUDA_NVFP4_CUH_
