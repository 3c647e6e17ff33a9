// GGUF file types ("Q4_K_M", ...) and the per-tensor type each gives, as
// llama.cpp's llama-quantize chooses it (src/llama-quant.cpp:
// llama_tensor_get_type, llama_tensor_get_type_impl, tensor_type_fallback;
// docs/research/gguf_conversion.md §4), plus user overrides (name regex ->
// type, as llama-quantize's --tensor-type).
//
// Only the llama-family, dense (no experts) branches are transcribed; the
// IQ*/TQ*/MXFP4 file types are not offered.
#ifndef QUANTD_CORE_GGUF_GGUF_MIX_H_
#define QUANTD_CORE_GGUF_GGUF_MIX_H_

#include <cstdint>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/gguf/ggml_types.h"

namespace quantd {

struct GgufFileType {
  std::string_view name;  // as llama-quantize names it: "Q4_K_M"
  uint32_t id;            // LLAMA_FTYPE_* (general.file_type)
  GgmlType default_type;  // llama_ftype_get_default_type
};

// The offered file types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K,
// Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K.
const std::vector<GgufFileType>& GgufFileTypes();

// A file type by name, case-insensitively, with llama-quantize's aliases
// Q3_K, Q4_K, Q5_K (= the _M variant). INVALID_ARGUMENT listing the names.
absl::StatusOr<GgufFileType> ParseGgufFileType(std::string_view name);

struct GgufTypeOverride {
  std::string pattern;  // ECMAScript regex, searched in the GGUF tensor name
  std::regex regex;
  GgmlType type;
};

// Parses "regex=TYPE;regex=TYPE" (split at the last '=' of each item; empty
// items ignored). INVALID_ARGUMENT naming the item for a missing '=', a bad
// regex, or a type quantd cannot encode.
absl::StatusOr<std::vector<GgufTypeOverride>> ParseGgufTypeOverrides(std::string_view spec);

// What of the model the rules look at.
struct GgufMixModel {
  std::string arch;  // general.architecture: "llama", "qwen2"
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
};

struct GgufMixTensor {
  std::string name;         // GGUF name
  std::vector<int64_t> ne;  // ggml dimensions
  // The tensor's type in an unquantized conversion (convert_hf_to_gguf):
  // F32 for norms, biases and other 1-D tensors; kept when the tensor is not
  // quantized.
  GgmlType source_type = GgmlType::kF32;
};

struct GgufMixOptions {
  GgufFileType file_type;
  bool has_imatrix = false;
  std::vector<GgufTypeOverride> overrides;
};

struct GgufMixChoice {
  GgmlType type = GgmlType::kF32;
  bool quantizable = false;  // llama.cpp's tensor_allows_quantization
  bool overridden = false;   // an override matched
  bool fallback = false;     // row length forced another type
};

// The type of every tensor (same order as `tensors`). The rules run over the
// tensors in llama.cpp's loader order (non-block tensors, then blk.0.*,
// blk.1.*, ..., names sorted within), which sets the attn_v / ffn_down
// counters. An override replaces the rules for its tensor (as llama-quantize,
// the tensor then does not advance those counters); unlike llama-quantize,
// overrides also apply to F16/BF16 file types. Row lengths that do not fit
// the chosen type fall back as llama.cpp does (Q2_K/Q3_K -> Q4_0, Q4_K ->
// Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then F16).
std::vector<GgufMixChoice> ChooseGgufTypes(const GgufMixModel& model,
                                           const std::vector<GgufMixTensor>& tensors,
                                           const GgufMixOptions& options);

}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_GGUF_MIX_H_
