// The tokenizer of a Hugging Face model folder as llama.cpp's GGUF keys
// (tokenizer.ggml.*, tokenizer.chat_template), read the way llama.cpp's
// convert_hf_to_gguf.py reads it (docs/research/gguf_conversion.md §6):
//
//  - SentencePiece ("llama"): tokenizer.model, parsed by a minimal protobuf
//    reader (no sentencepiece library), or a tokenizer.json of the SPM kind
//    (model BPE with byte_fallback, "▁" word prefix);
//  - byte-level BPE ("gpt2"): tokenizer.json with merges; the pre-tokenizer
//    name (tokenizer.ggml.pre) is recognized from tokenizer.json's
//    pre_tokenizer, "default" with a warning when not recognized.
//
// Special token ids come from tokenizer_config.json (token strings) and
// config.json (*_token_id), add_bos/add_eos from tokenizer_config.json, the
// chat template from tokenizer_config.json, chat_template.jinja or
// chat_template.json. EOT/EOM ids are set for the tokens llama.cpp itself
// recognizes by text (<|eot_id|>, <|im_end|>, <|eom_id|>, ...).
#ifndef QUANTD_CORE_GGUF_GGUF_TOKENIZER_H_
#define QUANTD_CORE_GGUF_GGUF_TOKENIZER_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/gguf/bpe_pre_tokenizer.h"
#include "core/gguf/spm_model.h"
#include "nlohmann/json.hpp"

namespace quantd {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class GgufTokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// Which vocabulary a caller accepts, in llama.cpp converter order.
enum class VocabFlavor {
  kLlama,  // tokenizer.model, else SPM tokenizer.json, else byte-level BPE
  kQwen2,  // tokenizer.model, else byte-level BPE
};

struct GgufVocab {
  std::string model;  // tokenizer.ggml.model: "llama" or "gpt2"
  std::string pre;    // tokenizer.ggml.pre
  std::vector<std::string> tokens;
  std::vector<float> scores;  // "llama" only (empty for "gpt2")
  std::vector<GgufTokenType> types;
  std::vector<std::string> merges;  // "gpt2" only; "a b" per merge
  // "bos", "eos", "unk", "sep", "pad", "cls", "mask", "eot", "eom" -> id.
  std::map<std::string, int32_t> special_ids;
  // "bos", "eos", "sep" -> add_<name>_token.
  std::map<std::string, bool> add_special;
  std::optional<bool> add_space_prefix;
  std::optional<std::string> chat_template;
  // Further named templates (tokenizer.chat_template.<name>).
  std::vector<std::pair<std::string, std::string>> named_chat_templates;
  // Things a user should know (unrecognized pre-tokenizer, ...).
  std::vector<std::string> warnings;
};

// Reads the tokenizer of the model folder `dir` whose parsed config.json is
// `config`. The vocabulary is padded with "[PAD<i>]" unused tokens up to
// config["vocab_size"] when that is larger. Errors: INVALID_ARGUMENT naming
// the file for a malformed tokenizer.model, tokenizer.json or
// tokenizer_config.json, a vocabulary with gaps or duplicate ids, more tokens
// than vocab_size, or no tokenizer at all ("no tokenizer.model or
// tokenizer.json in <dir>").
absl::StatusOr<GgufVocab> LoadGgufVocab(const std::filesystem::path& dir,
                                        const nlohmann::json& config, VocabFlavor flavor);

}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_GGUF_TOKENIZER_H_
