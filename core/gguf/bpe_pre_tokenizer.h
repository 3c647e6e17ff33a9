// Recognizes llama.cpp's name for a byte-level BPE pre-tokenizer
// (tokenizer.ggml.pre) from a tokenizer.json's "pre_tokenizer".
#ifndef QUANTD_CORE_GGUF_BPE_PRE_TOKENIZER_H_
#define QUANTD_CORE_GGUF_BPE_PRE_TOKENIZER_H_

#include <string>

#include "nlohmann/json.hpp"

namespace quantd {

// The tokenizer.ggml.pre name llama.cpp uses for a byte-level BPE
// tokenizer.json, recognized from its "pre_tokenizer"; "" when unknown.
std::string DetectBpePreTokenizer(const nlohmann::json& tokenizer_json);

}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_BPE_PRE_TOKENIZER_H_
