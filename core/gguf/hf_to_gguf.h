// How a Hugging Face decoder model becomes a llama.cpp GGUF model, as
// llama.cpp's convert_hf_to_gguf.py does it (docs/research/gguf_conversion.md
// §1-3): the GGUF architecture, tensor names (token_embd, blk.N.attn_q, ...),
// the Q/K row permutation of the "llama" architecture, hyper-parameter keys,
// the Llama 3 rope factors tensor and the general.* keys.
//
// Supported: LlamaForCausalLM and MistralForCausalLM ("llama"),
// Qwen2ForCausalLM ("qwen2").
#ifndef QUANTD_CORE_GGUF_HF_TO_GGUF_H_
#define QUANTD_CORE_GGUF_HF_TO_GGUF_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/gguf/gguf_file.h"
#include "core/gguf/gguf_tokenizer.h"
#include "core/gguf/gguf_writer.h"
#include "core/model/hf_model.h"
#include "core/tensor/tensor.h"
#include "nlohmann/json.hpp"

namespace quantd {

struct GgufArch {
  std::string_view hf_architecture;  // config.json architectures[0]
  std::string_view name;             // general.architecture
  // Q and K rows are permuted for ggml's rope (LlamaModel.undo_permute).
  bool permute_qk;
  VocabFlavor vocab;
};

// The conversion for an HF architecture; INVALID_ARGUMENT listing the
// supported ones otherwise.
absl::StatusOr<const GgufArch*> FindGgufArch(std::string_view hf_architecture);

// The hyper-parameters read from config.json.
struct GgufHparams {
  int64_t n_layer = 0;
  int64_t n_embd = 0;
  int64_t n_ff = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;       // config "head_dim", else n_embd / n_head
  bool has_head_dim = false;  // config.json names head_dim
  int64_t vocab_size = 0;     // 0 when config.json has none
  std::optional<int64_t> n_ctx;
  std::optional<double> rope_theta;
  std::optional<double> rms_eps;
  // rope_scaling (or rope_parameters): type ("linear", "yarn", "llama3",
  // ...; "" when none) and its fields.
  std::string rope_type;
  nlohmann::json rope_params;
  bool tie_embeddings = false;
};

// INVALID_ARGUMENT naming the key for a missing or invalid
// num_hidden_layers, hidden_size, intermediate_size, num_attention_heads,
// num_key_value_heads (defaults to num_attention_heads) or head_dim, or
// heads that do not divide evenly.
absl::StatusOr<GgufHparams> ReadGgufHparams(const nlohmann::json& config);

// How a tensor's rows are reordered before it is encoded.
enum class RowPermute { kNone, kRope };

// One tensor of the GGUF file and where its values come from.
struct GgufTensorSource {
  std::string name;                     // GGUF name, e.g. "blk.0.attn_q.weight"
  const ModelTensor* source = nullptr;  // null for a generated tensor
  std::vector<float> generated;         // values of a generated tensor (F32)
  Shape shape;                          // PyTorch order: [rows, cols] or [n]
  RowPermute permute = RowPermute::kNone;
  int64_t permute_heads = 0;  // heads of the permutation (n_head or n_head_kv)
};

// The GGUF name of an HF tensor name ("model.layers.3.self_attn.q_proj.weight"
// -> "blk.3.attn_q.weight"), or nullopt when it has none.
std::optional<std::string> GgufTensorName(std::string_view hf_name);

// Every tensor of the output, in file order: token_embd, then each block's
// tensors, output_norm, output, rope_freqs (Llama 3 rope). INVALID_ARGUMENT
// naming the tensor for one without a GGUF name (rotary_emb.inv_freq and
// attention masks are dropped silently), one of a dtype other than
// F32/F16/BF16, a block index >= num_hidden_layers, a q/k projection whose
// rows do not match the heads, or a block missing a required tensor.
absl::StatusOr<std::vector<GgufTensorSource>> PlanGgufTensors(const HfModel& model,
                                                              const GgufArch& arch,
                                                              const GgufHparams& hp);

// ggml dimensions of a PyTorch shape (reversed: ne[0] = elements per row).
std::vector<int64_t> GgmlDims(const Shape& shape);

// The Q/K permutation of convert_hf_to_gguf's LlamaModel.permute on the rows
// of `w` (any dtype; 2-D weight or 1-D bias): with hd = rows / n_head,
// output row h*hd + 2*j + i is input row h*hd + i*hd/2 + j. INVALID_ARGUMENT
// when rows is not a multiple of 2 * n_head.
absl::StatusOr<Tensor> PermuteRowsForRope(const TensorView& w, int64_t n_head);

// rope_freqs for rope_scaling.rope_type "llama3" (LlamaModel.
// generate_extra_tensors): head_dim / 2 factors, computed in float32.
std::vector<float> Llama3RopeFactors(const GgufHparams& hp);

// general.* and <arch>.* keys. `name` is general.name, `file_type` the
// LLAMA_FTYPE id.
std::vector<GgufKv> GgufModelMetadata(const GgufArch& arch, const GgufHparams& hp,
                                      const std::string& name, uint32_t file_type);

// Appends the tokenizer.* keys of `vocab`.
void AppendVocabMetadata(const GgufVocab& vocab, std::vector<GgufKv>* kv);

}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_HF_TO_GGUF_H_
