// The "ggml" weight format: one 2-D weight encoded as one ggml tensor, the
// bytes llama-quantize writes for it (core/gguf/ggml_quants.h).
//
// Registry name "ggml". FormatParams:
//   extra["type"]  the ggml type, by name (ParseGgmlType: "Q4_K", "q8_0",
//                  "BF16", ...); one of those CanEncodeGgml() accepts.
//   importance     null, or one weight per input column (a llama.cpp
//                  importance-matrix row, length cols; finite, >= 0), used
//                  by the types GgmlUsesImportance() names, ignored by the
//                  others, exactly as llama-quantize does.
//   bits, group_size, symmetric, scale_dtype, tensor_amax: not used.
//   Any other extra key is INVALID_ARGUMENT.
//
// Input: F32, F16 or BF16 [rows, cols], converted to float32 exactly (as
// llama-quantize converts F16/BF16 tensors before quantizing); cols a
// multiple of the type's block (32, or 256 for k-quants). NaN or Inf is
// INVALID_ARGUMENT naming the row and column.
//
// One part: "data" U8 [rows, RowBytes(type, cols)], row r holding the
// ggml blocks of weight row r: a GGUF tensor with ne = {cols, rows}
// (gguf_file.h). Rows are independent (RowGranularity 1).
#ifndef QUANTD_CORE_GGUF_GGML_FORMAT_H_
#define QUANTD_CORE_GGUF_GGML_FORMAT_H_

#include "core/formats/format.h"
#include "core/gguf/ggml_types.h"

namespace quantd {

// The "ggml" format (a process-wide singleton).
const WeightFormat& GgmlFormat();

inline constexpr char kGgmlFormatName[] = "ggml";
inline constexpr char kGgmlTypeKey[] = "type";
inline constexpr char kGgmlDataSuffix[] = "data";

// FormatParams selecting `type` (and `importance`, not owned).
FormatParams GgmlFormatParams(GgmlType type, const float* importance = nullptr);

// The type `p` selects; INVALID_ARGUMENT when extra["type"] is missing,
// unknown, or a type quantd cannot encode.
absl::StatusOr<GgmlType> GgmlFormatType(const FormatParams& p);

}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_GGML_FORMAT_H_
