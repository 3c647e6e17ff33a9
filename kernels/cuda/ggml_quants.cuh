// The CUDA kernels of the "ggml" format (core/gguf/ggml_format.h). They
// compute with the very functions of the host reference
// (core/gguf/ggml_quants_{math,legacy_impl,k_impl}.h, all QUANTD_HD), under
// the kernels' --fmad=false --prec-div=true --prec-sqrt=true, so their bytes
// equal QuantizeGgml's.
//
//   F32, F16, BF16   one thread per element.
//   Q4_0 .. Q8_0     one thread per 32-element block (quantize_row_*_ref).
//   Q2_K .. Q6_K     one CTA per 16 super-blocks: the super-blocks are staged
//                    in shared memory as float32, one thread per sub-block
//                    runs the scale search (<Type>Subblock, the costly part:
//                    8 or 16 threads per super-block), then one thread per
//                    super-block runs <Type>Finish into global memory.
//
// With an importance matrix (FormatParams::importance, one weight per
// column) the types that use one run their weighted search on the device
// too: the k-quants compute each super-block's sigma2 from the staged
// values, the legacy types first run one thread per row for the row's
// sigma2 (RowSigma2), as the reference does. Non-finite inputs: the
// super-block (block, element) is not written and the first bad index is
// atomicMin'd into first_bad.
#ifndef QUANTD_KERNELS_CUDA_GGML_QUANTS_CUH_
#define QUANTD_KERNELS_CUDA_GGML_QUANTS_CUH_

#include "kernels/cuda/registry.h"

namespace quantd {

const DeviceKernel& GgmlDeviceKernel();

}  // namespace quantd

#endif  // QUANTD_KERNELS_CUDA_GGML_QUANTS_CUH_
