// Splitting as Hugging Face `tokenizers` does it (NormalizedString::split),
// with hand-written matchers for the pre-tokenizer regexes that GPT-2,
// Llama 3 and Qwen2 checkpoints use. No general regex engine: a pattern is
// recognised by its exact string and matched by code that follows
// Oniguruma's leftmost-first, backtracking semantics for that pattern.
#ifndef QUANTD_CORE_TOKENIZER_SPLIT_PATTERNS_H_
#define QUANTD_CORE_TOKENIZER_SPLIT_PATTERNS_H_

#include <cstddef>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tokenizer/unicode.h"

namespace quantd {
namespace tokenizer_internal {

using ByteRange = std::pair<size_t, size_t>;  // [first, second)

enum class SplitRegex {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  // (GPT-2; also what the ByteLevel pre-tokenizer applies with use_regex).
  kGpt2,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
  //  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+   (Llama 3)
  kLlama3,
  // As kLlama3 with \p{N} instead of \p{N}{1,3} (Qwen2, Qwen2.5).
  kQwen2,
};

// The pattern whose regex source is exactly `regex`; INVALID_ARGUMENT naming
// the pattern otherwise.
absl::StatusOr<SplitRegex> RecognizeSplitRegex(std::string_view regex);

// The successive non-overlapping matches of `regex` in `text` (valid UTF-8),
// as byte ranges, as a find-all loop with Oniguruma finds them.
std::vector<ByteRange> FindRegexMatches(SplitRegex regex, std::string_view text);

// The successive non-overlapping occurrences of `needle` (not empty).
std::vector<ByteRange> FindLiteralMatches(std::string_view needle, std::string_view text);

// Each character satisfying `pred` is one match (HF's `Fn(char) -> bool`
// patterns).
template <typename Pred>
std::vector<ByteRange> FindCharMatches(std::string_view text, Pred pred);

// HF's SplitDelimiterBehavior.
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Parses "Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
// "Contiguous"; INVALID_ARGUMENT otherwise.
absl::StatusOr<SplitBehavior> ParseSplitBehavior(std::string_view name);

// The non-empty pieces NormalizedString::split keeps for a text of
// `text_size` bytes whose pattern matched `matches` (sorted, disjoint), with
// the matches' roles swapped when `invert`.
std::vector<ByteRange> SplitByMatches(size_t text_size, const std::vector<ByteRange>& matches,
                                      SplitBehavior behavior, bool invert);

// Implementation.

template <typename Pred>
std::vector<ByteRange> FindCharMatches(std::string_view text, Pred pred) {
  std::vector<ByteRange> matches;
  for (size_t pos = 0; pos < text.size();) {
    const size_t begin = pos;
    char32_t cp;
    if (!DecodeUtf8(text, &pos, &cp)) {
      ++pos;
      continue;
    }
    if (pred(cp)) matches.emplace_back(begin, pos);
  }
  return matches;
}

}  // namespace tokenizer_internal
}  // namespace quantd

#endif  // QUANTD_CORE_TOKENIZER_SPLIT_PATTERNS_H_
