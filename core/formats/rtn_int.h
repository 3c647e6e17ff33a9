// Round-to-nearest integer weights (int8 per channel, int4 per group),
// stored in compressed-tensors' pack-quantized layout
// (docs/research/compressed_tensors_format.md §1 and §7).
//
// Registry name "rtn_int". FormatParams:
//   bits        4 or 8.
//   group_size  0 = one group per row (per output channel); otherwise a
//               positive divisor of cols (the int4/int8 methods offer 32, 64
//               and 128).
//   symmetric   true: no zero point. false: a zero point per group (int4
//               only; asymmetric int8 is rejected because vLLM runs it only
//               on SM90).
//   scale_dtype F16, BF16 or F32: the dtype of weight_scale (the weight's
//               own dtype in compressed-tensors).
//   extra       must be empty.
//
// The math, its fallbacks (all-zero groups, scales that underflow or
// overflow the scale dtype) and the bit layout are defined in
// core/formats/rtn_int_layout.h, which the CUDA kernel shares.
//
// Parts of a [rows, cols] weight, in this order (pf = 32 / bits, G = groups
// per row = cols / group_size, or 1 per channel):
//   weight_packed      I32 [rows, cols / pf]   pf codes of one row per word
//   weight_scale       scale_dtype [rows, G]
//   weight_shape       I64 [2] = {rows, cols}
//   weight_zero_point  I32 [ceil(rows / pf), G]  (asymmetric only) zero
//                      points of pf consecutive rows per word, packed like
//                      codes; rows past the end are raw 0.
// vLLM needs rows % pf == 0 for asymmetric layers (it allocates
// rows / pf zero-point rows); this format writes ceil(rows / pf) like
// compressed-tensors and leaves that policy to the caller.
//
// RowGranularity() is pf when asymmetric (pf rows share a zero-point word),
// else 1. EncodeRowsRef writes weight_shape in the call whose range starts
// at row 0, and the zero-point words of the pf-row blocks its range covers.
#ifndef QUANTD_CORE_FORMATS_RTN_INT_H_
#define QUANTD_CORE_FORMATS_RTN_INT_H_

#include "core/formats/format.h"
#include "core/formats/rtn_int_layout.h"

namespace quantd {

// The "rtn_int" format (a process-wide singleton).
const WeightFormat& RtnIntFormat();

// Part names.
inline constexpr char kPackedSuffix[] = "weight_packed";
inline constexpr char kScaleSuffix[] = "weight_scale";
inline constexpr char kShapeSuffix[] = "weight_shape";
inline constexpr char kZeroPointSuffix[] = "weight_zero_point";

// The scale dtype of `p` as the layout header names it; INVALID_ARGUMENT for
// a dtype that is not F16, BF16 or F32.
absl::StatusOr<rtn::ScaleType> RtnScaleType(DType scale_dtype);

// Elements per group for a row of `cols` (group_size, or cols per channel).
inline int64_t RtnGroupSize(const FormatParams& p, int64_t cols) {
  return p.group_size > 0 ? p.group_size : cols;
}

// For tests: packs the codes of n (a multiple of 8) float32 values of one
// group with stored scale `scale` and `zero_point` into `words` (n / 8 int4
// or n / 4 int8 words) with the vectorised loop EncodeRowsRef uses for group
// sizes that are multiples of 8, or with the scalar loop (rtn::QuantizeValue
// per element) it uses otherwise. Both must give the same words.
void RtnPackGroupForTest(bool vectorised, int bits, const float* x, int64_t n, float scale,
                         int zero_point, uint32_t* words);

}  // namespace quantd

#endif  // QUANTD_CORE_FORMATS_RTN_INT_H_
