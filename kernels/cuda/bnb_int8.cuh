// The CUDA kernel of the "bnb_int8" format (core/formats/bnb_int8.h): it
// computes with core/formats/bnb_int8_layout.h, so its codes and SCB equal
// the scalar reference's bit for bit.
//
// One 256-thread block per row: each thread reads 8-element vectors (16
// bytes of a 16-bit source) of the row, keeping up to 8 of them raw in
// registers between the absmax pass and the quantizing pass (rows longer
// than 16384 elements read the rest again), and stores 8 codes at a time.
// Handles cols that are multiples of 8 (other shapes go to the CPU path).
// Non-finite values, or values whose float16 rounding is infinite, are
// atomicMin'd into first_bad.
#ifndef QUANTD_KERNELS_CUDA_BNB_INT8_CUH_
#define QUANTD_KERNELS_CUDA_BNB_INT8_CUH_

#include "kernels/cuda/registry.h"

namespace quantd {

const DeviceKernel& BnbInt8DeviceKernel();

}  // namespace quantd

#endif  // QUANTD_KERNELS_CUDA_BNB_INT8_CUH_
