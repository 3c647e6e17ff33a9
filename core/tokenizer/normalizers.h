// Normalizers of Hugging Face tokenizer.json files (Sequence, Prepend,
// Replace with a literal pattern, NFC, Strip) and the SentencePiece
// normalizer of tokenizer.model files without a character map.
#ifndef QUANTD_CORE_TOKENIZER_NORMALIZERS_H_
#define QUANTD_CORE_TOKENIZER_NORMALIZERS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "core/tokenizer/components.h"
#include "core/tokenizer/json_fields.h"

namespace quantd {
namespace tokenizer_internal {

// Builds the normalizer that `config` (the "normalizer" object of a
// tokenizer.json) describes. INVALID_ARGUMENT for unsupported types (NFD,
// NFKC, NFKD, Lowercase, BertNormalizer, Precompiled, ...), regex patterns
// and malformed fields.
absl::StatusOr<std::unique_ptr<Normalizer>> NormalizerFromJson(const Json& config);

// SentencePiece's normalizer with the "identity" rule: optional removal of
// leading, trailing and repeated spaces, a "▁" prepended to non-empty text,
// spaces replaced by "▁".
std::unique_ptr<Normalizer> MakeSentencePieceNormalizer(bool add_dummy_prefix,
                                                        bool remove_extra_whitespaces,
                                                        bool escape_whitespaces);

}  // namespace tokenizer_internal
}  // namespace quantd

#endif  // QUANTD_CORE_TOKENIZER_NORMALIZERS_H_
