// Pre-tokenizers of Hugging Face tokenizer.json files: ByteLevel, Split (with
// the regexes of split_patterns.h or a literal string), Digits, Metaspace and
// Sequence.
#ifndef QUANTD_CORE_TOKENIZER_PRE_TOKENIZERS_H_
#define QUANTD_CORE_TOKENIZER_PRE_TOKENIZERS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "core/tokenizer/components.h"
#include "core/tokenizer/json_fields.h"

namespace quantd {
namespace tokenizer_internal {

// Builds the pre-tokenizer that `config` (the "pre_tokenizer" object of a
// tokenizer.json) describes. INVALID_ARGUMENT for unknown types, unsupported
// regexes and malformed fields.
absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizerFromJson(const Json& config);

}  // namespace tokenizer_internal
}  // namespace quantd

#endif  // QUANTD_CORE_TOKENIZER_PRE_TOKENIZERS_H_
