// The CUDA kernel of the "nvfp4" format (core/formats/nvfp4.h). It computes
// with the functions of core/formats/nvfp4_layout.h, so its bytes equal the
// scalar reference's.
//
// Handles every parameter set Check() accepts once tensor_amax is set (an
// unset one goes to the CPU path, which reports it). With cols % 16 == 0 a
// chunk is a flat run of 16-element blocks; thread t of a CTA encodes 4
// blocks (t + 256 i: each warp load covers 32 adjacent blocks), issuing all
// their loads (two or four 16-byte vectors each) before the CTA builds its
// table of per-scale-code divisors, and writes each block's E4M3 scale byte
// and 8 packed bytes. The tensor scale is computed on the host
// (FillHostParts). An element's code is the exact quotient RN(|x| / d) by
// multiply and FMA corrections, rounded to the E2M1 grid by three FMAs and
// three min (nvfp4.cu says why this equals the reference), all on the FP
// pipes.
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
