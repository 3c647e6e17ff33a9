// The stages of a tokenizer, as Hugging Face `tokenizers` runs them:
//   added tokens split out -> normalizer -> pre-tokenizer -> model
//   -> post-processor (special tokens);  ids -> tokens -> decoder -> text.
// Internal to core/tokenizer; the public API is tokenizer.h.
#ifndef QUANTD_CORE_TOKENIZER_COMPONENTS_H_
#define QUANTD_CORE_TOKENIZER_COMPONENTS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"

namespace quantd {
namespace tokenizer_internal {

// Debian's Abseil has its own absl::string_view; hash map lookups take it.
inline absl::string_view AbslView(std::string_view s) { return {s.data(), s.size()}; }

// A piece of the text on its way to the model.
struct Piece {
  std::string text;
  // >= 0 when the piece is an added token: its id is final and no later stage
  // touches it.
  int32_t id = -1;
  // True when the piece begins at offset 0 of the original text (Metaspace's
  // prepend_scheme "first" looks at this).
  bool at_start = false;
};

// Rewrites the text of one piece (HF normalizers; offsets are not tracked).
class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string Normalize(std::string_view text) const = 0;
};

// Splits or rewrites one piece that is not an added token, appending the
// non-empty results to *out in order.
class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void PreTokenize(Piece piece, std::vector<Piece>* out) const = 0;
};

// Turns one pre-tokenized word into ids.
class Model {
 public:
  virtual ~Model() = default;
  virtual void Tokenize(std::string_view word, std::vector<int32_t>* ids) const = 0;
  // The token of `id`, or nullptr when the model has none.
  virtual const std::string* IdToToken(int32_t id) const = 0;
  // The id of `token`, or -1.
  virtual int32_t TokenToId(std::string_view token) const = 0;
  // One more than the largest id of the model's vocabulary.
  virtual int32_t IdLimit() const = 0;
};

// HF decoders' decode_chain: rewrites the token strings in place (their
// concatenation is the decoded text).
class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
};

}  // namespace tokenizer_internal
}  // namespace quantd

#endif  // QUANTD_CORE_TOKENIZER_COMPONENTS_H_
