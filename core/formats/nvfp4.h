// NVFP4 weights: FP4 E2M1 values, one FP8 E4M3 scale per 16 consecutive
// elements of a row and one FP32 scale per tensor (shared by the tensors a
// runtime fuses), in compressed-tensors' "nvfp4-pack-quantized" layout or
// NVIDIA ModelOpt's (docs/research/nvfp4_format.md).
//
// Registry name "nvfp4". FormatParams:
//   bits         4.
//   group_size   16.
//   symmetric    true.
//   scale_dtype  ignored (block scales are always E4M3, the tensor scale
//                F32).
//   tensor_amax  max |x| over the tensor or its fused group (q/k/v,
//                gate/up), so that fused tensors share the global scale:
//                NeedsTensorAmax() is true. Negative (unset) and infinite
//                values pass Check() (NaN does not) but encoding needs a
//                finite one: INVALID_ARGUMENT. A value below the
//                tensor's own max |x| is not an error: the block scales and
//                codes saturate.
//   extra        "layout": "compressed-tensors" (default) or "modelopt";
//                no other key.
//
// The arithmetic (global and block scales, the E2M1 rounding and its tie
// rule, all-zero blocks and tensors) and the nibble order are defined in
// core/formats/nvfp4_layout.h, which the CUDA kernel shares.
//
// Parts of a [rows, cols] weight (cols % 16 == 0), in this order:
//   compressed-tensors: weight_packed U8 [rows, cols / 2]
//                       weight_scale F8_E4M3 [rows, cols / 16]
//                       weight_global_scale F32 [1]   (G = 2688 / amax)
//   modelopt:           weight U8 [rows, cols / 2]
//                       weight_scale F8_E4M3 [rows, cols / 16]
//                       weight_scale_2 F32 []         (G2 = amax / 2688)
// EncodeRowsRef writes the tensor scale in the call whose range starts at
// row 0. Non-finite input: INVALID_ARGUMENT "non-finite value at row R,
// column C" for the first in row-major order within the rows of the call;
// an infinite tensor_amax (an Inf in this tensor or in one fused with it)
// names the first non-finite value of the whole tensor, or says that a
// tensor sharing the scale holds one.
#ifndef QUANTD_CORE_FORMATS_NVFP4_H_
#define QUANTD_CORE_FORMATS_NVFP4_H_

#include "core/formats/format.h"
#include "core/formats/nvfp4_layout.h"

namespace quantd {

// The "nvfp4" format (a process-wide singleton).
const WeightFormat& Nvfp4Format();

inline constexpr char kNvfp4LayoutKey[] = "layout";
inline constexpr char kNvfp4LayoutCompressedTensors[] = "compressed-tensors";
inline constexpr char kNvfp4LayoutModelOpt[] = "modelopt";

// The layout FormatParams::extra selects; INVALID_ARGUMENT for an unknown
// layout or another extra key.
absl::StatusOr<nvfp4::Layout> Nvfp4LayoutOf(const FormatParams& p);

// Part suffixes of a layout, in Allocate() order.
struct Nvfp4PartNames {
  const char* packed;
  const char* scale;
  const char* global;
};
Nvfp4PartNames Nvfp4Parts(nvfp4::Layout layout);

// The stored tensor scale for `tensor_amax` (G or G2); see
// nvfp4::GlobalScale. INVALID_ARGUMENT when tensor_amax is unset (negative),
// NaN or infinite.
absl::StatusOr<float> Nvfp4GlobalScale(const FormatParams& p);

}  // namespace quantd

#endif  // QUANTD_CORE_FORMATS_NVFP4_H_
