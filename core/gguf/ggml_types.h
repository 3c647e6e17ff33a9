// ggml's tensor types as GGUF files store them: the numeric ids of ggml's
// `enum ggml_type` (ggml/include/ggml.h), and one traits table in the manner
// of ggml's `type_traits[]` (ggml/src/ggml.c): name, elements per block,
// bytes per block, whether the type is block-quantized. Ids that ggml
// removed (4, 5, 31-33, 36-38) are not types here; a GGUF file naming them
// is rejected.
//
// Which of these quantd can *encode* is CanEncodeGgml(); the algorithms are
// core/gguf/ggml_quants.h, the format "ggml" core/gguf/ggml_format.h.
#ifndef QUANTD_CORE_GGUF_GGML_TYPES_H_
#define QUANTD_CORE_GGUF_GGML_TYPES_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace quantd {

// ggml's type ids (stable: they are written into GGUF files).
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
  kNVFP4 = 40,
  kQ1_0 = 41,
  kQ2_0 = 42,
};

struct GgmlTypeTraits {
  GgmlType type;
  // Upper-case name as GGUF tooling prints it (gguf-py's
  // GGMLQuantizationType, llama.cpp's gguf-dump, llama-quantize's type
  // names): "F32", "BF16", "Q4_K", "IQ4_XS".
  std::string_view name;
  // ggml_type_name(): "f32", "bf16", "q4_K", "iq4_xs".
  std::string_view ggml_name;
  int64_t block_size;  // elements per block (1 for plain types)
  int64_t type_size;   // bytes per block
  bool is_quantized;   // ggml_is_quantized()
};

// The traits of `t`, which must be one of the enumerators above.
const GgmlTypeTraits& GgmlTraits(GgmlType t);

// Every type, in id order.
const std::vector<GgmlType>& AllGgmlTypes();

// The type with numeric id `id`; INVALID_ARGUMENT for an unknown or removed
// id.
absl::StatusOr<GgmlType> GgmlTypeFromId(uint32_t id);

// GgmlTraits(t).name.
std::string_view GgmlTypeName(GgmlType t);

// Parses a type name, either form of GgmlTypeTraits (case-insensitive:
// "Q4_K", "q4_k", "bf16"); INVALID_ARGUMENT naming it otherwise.
absl::StatusOr<GgmlType> ParseGgmlType(std::string_view name);

// Bytes of one row of `cols` elements (ggml_row_size). INVALID_ARGUMENT when
// cols is negative, not a multiple of the block size, or the size overflows
// int64.
absl::StatusOr<int64_t> RowBytes(GgmlType t, int64_t cols);

// Bytes of a tensor with ggml dimensions `ne` (ne[0] = elements per row;
// see gguf_file.h): RowBytes(t, ne[0]) times the other dimensions.
// INVALID_ARGUMENT as RowBytes, for a negative dimension, or on overflow.
absl::StatusOr<int64_t> TensorBytes(GgmlType t, const std::vector<int64_t>& ne);

// Whether quantd's "ggml" format can encode float weights to `t` (F32, F16,
// BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K).
bool CanEncodeGgml(GgmlType t);

}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_GGML_TYPES_H_
