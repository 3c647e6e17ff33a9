// FP8 E4M3 weights with float scales, stored in compressed-tensors'
// "float-quantized" layout (docs/research/fp8_format.md; the layout of
// llm-compressor's FP8 / FP8_DYNAMIC / FP8_BLOCK checkpoints).
//
// Registry name "fp8". FormatParams:
//   bits        8.
//   group_size  0 (the strategy decides the grouping).
//   symmetric   true.
//   scale_dtype F16, BF16 or F32: the dtype of weight_scale
//               (compressed-tensors: the weight's own dtype).
//   extra       "strategy": "channel" (default: one scale per row),
//               "tensor" (one scale for the tensor, from
//               FormatParams::tensor_amax: NeedsTensorAmax() is true) or
//               "block" (one scale per 128 x 128 block; blocks at the
//               bottom and right edges are partial). No other keys.
//
// The math (scale = amax / 448 rounded to the scale dtype, all-zero groups,
// scales that underflow or overflow the dtype, q = E4M3_rne(clamp(x / S,
// -448, 448))) is defined in core/formats/fp8_layout.h, which the CUDA
// kernel shares; the E4M3 conversions in core/formats/fp8_e4m3.h.
//
// Parts of a [rows, cols] weight, in this order:
//   weight        F8_E4M3 [rows, cols]     the codes
//   weight_scale  scale_dtype, tensor: [1]; channel: [rows, 1];
//                 block: [ceil(rows / 128), ceil(cols / 128)]
// (no weight_shape and no zero point: compressed-tensors' naive compressor
// writes neither for symmetric float weights; rows and columns need not be
// multiples of 128: the weight keeps its shape, as the current
// compressed-tensors writes it).
//
// RowGranularity() is 128 for the block strategy (a chunk of rows starts on
// a block boundary so that it owns its blocks' scales), else 1.
// EncodeRowsRef writes the tensor strategy's scale in the call whose range
// starts at row 0. Non-finite input: INVALID_ARGUMENT "non-finite value at
// row R, column C" for the first in row-major order within the rows of the
// call. The tensor strategy also needs tensor_amax >= 0 (INVALID_ARGUMENT
// when unset) and finite (when it is not, all rows of the tensor are
// scanned for the first non-finite value to name, else the message says
// that a tensor sharing the scale holds one; INVALID_ARGUMENT either way);
// a tensor_amax below the tensor's own largest magnitude makes larger
// values saturate.
#ifndef QUANTD_CORE_FORMATS_FP8_H_
#define QUANTD_CORE_FORMATS_FP8_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "core/formats/format.h"
#include "core/formats/fp8_layout.h"

namespace quantd {

// The "fp8" format (a process-wide singleton).
const WeightFormat& Fp8Format();

// Part names and the FormatParams::extra key.
inline constexpr char kFp8WeightSuffix[] = "weight";
inline constexpr char kFp8ScaleSuffix[] = "weight_scale";
inline constexpr char kFp8StrategyKey[] = "strategy";
// extra[kFp8WholeBlocksKey] = "1": with strategy block, Check() refuses a
// weight whose dimensions are not multiples of 128 (a partial last block),
// which compressed-tensors cannot load. The fp8 method sets it; the format
// itself defines partial blocks (vLLM reads them).
inline constexpr char kFp8WholeBlocksKey[] = "whole_blocks";

// The strategy of `p` (extra["strategy"], default channel); INVALID_ARGUMENT
// naming an unknown value.
absl::StatusOr<fp8::Strategy> Fp8StrategyOf(const FormatParams& p);

// "tensor", "channel" or "block".
std::string_view Fp8StrategyName(fp8::Strategy s);

// The scale dtype as the layout header names it; INVALID_ARGUMENT for a
// dtype that is not F16, BF16 or F32.
absl::StatusOr<fp8::ScaleType> Fp8ScaleType(DType scale_dtype);

// Shape of weight_scale for a [rows, cols] weight.
Shape Fp8ScaleShape(fp8::Strategy s, int64_t rows, int64_t cols);

// FormatParams for `strategy` with scales in `scale_dtype`.
FormatParams Fp8Params(fp8::Strategy strategy, DType scale_dtype);

}  // namespace quantd

#endif  // QUANTD_CORE_FORMATS_FP8_H_
