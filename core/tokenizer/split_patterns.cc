#include "core/tokenizer/split_patterns.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"

namespace quantd {
namespace tokenizer_internal {
namespace {

constexpr std::string_view kGpt2Pattern =
    R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kLlama3Pattern =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kQwen2Pattern =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// The text as code points with their classes, and a matcher per pattern. Each
// Match* returns the end (code point index) of the match starting at i, or i
// when the pattern does not match there; alternatives are tried in order and
// each one's greedy quantifiers backtrack as Oniguruma's would.
class Matcher {
 public:
  explicit Matcher(std::string_view text) {
    cps_.reserve(text.size());
    offsets_.reserve(text.size() + 1);
    for (size_t pos = 0; pos < text.size();) {
      offsets_.push_back(pos);
      char32_t cp;
      if (!DecodeUtf8(text, &pos, &cp)) {
        cp = 0xFFFD;  // Not reached for valid UTF-8.
        ++pos;
      }
      cps_.push_back(cp);
      classes_.push_back(ClassOf(cp));
    }
    offsets_.push_back(text.size());
  }

  size_t size() const { return cps_.size(); }
  size_t offset(size_t i) const { return offsets_[i]; }

  size_t MatchGpt2(size_t i) const {
    if (size_t len = Contraction(i, /*ignore_case=*/false)) return i + len;
    if (size_t end = OptionalSpaceThenRun(i, &Matcher::L); end > i) return end;
    if (size_t end = OptionalSpaceThenRun(i, &Matcher::N); end > i) return end;
    if (size_t end = OptionalSpaceThenRun(i, &Matcher::O); end > i) return end;
    return Whitespace(i);
  }

  size_t MatchLlama3(size_t i, size_t max_digits) const {
    if (size_t len = Contraction(i, /*ignore_case=*/true)) return i + len;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (i < size() && !NewLine(i) && !L(i) && !N(i) && L(i + 1)) return RunEnd(i + 1, &Matcher::L);
    if (L(i)) return RunEnd(i, &Matcher::L);
    // \p{N}{1,max_digits}
    if (N(i)) {
      size_t j = i;
      while (j < size() && N(j) && j - i < max_digits) ++j;
      return j;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    if (size_t end = OptionalSpaceThenRun(i, &Matcher::O); end > i) {
      while (NewLine(end)) ++end;
      return end;
    }
    // \s*[\r\n]+ : the whitespace run up to and including its last newline.
    if (S(i)) {
      const size_t run_end = RunEnd(i, &Matcher::S);
      for (size_t k = run_end; k > i; --k) {
        if (NewLine(k - 1)) return k;
      }
    }
    return Whitespace(i);
  }

 private:
  bool L(size_t i) const { return i < size() && classes_[i] == kLetter; }
  bool N(size_t i) const {
    return i < size() && (classes_[i] == kNumberWord || classes_[i] == kNumberOther);
  }
  bool S(size_t i) const { return i < size() && classes_[i] == kSpace; }
  // [^\s\p{L}\p{N}]
  bool O(size_t i) const { return i < size() && !S(i) && !L(i) && !N(i); }
  bool NewLine(size_t i) const { return i < size() && (cps_[i] == '\r' || cps_[i] == '\n'); }

  size_t RunEnd(size_t i, bool (Matcher::*pred)(size_t) const) const {
    while ((this->*pred)(i)) ++i;
    return i;
  }

  // ' ?X+' where X is `pred`.
  size_t OptionalSpaceThenRun(size_t i, bool (Matcher::*pred)(size_t) const) const {
    if (i < size() && cps_[i] == ' ' && (this->*pred)(i + 1)) return RunEnd(i + 1, pred);
    return RunEnd(i, pred);
  }

  // \s+(?!\S)|\s+ : a whitespace run, less its last character when a
  // non-space follows and the run is longer than one.
  size_t Whitespace(size_t i) const {
    if (!S(i)) return i;
    const size_t end = RunEnd(i, &Matcher::S);
    if (end < size() && end - 1 > i) return end - 1;
    return end;
  }

  // 's|'t|'re|'ve|'m|'ll|'d, optionally case-insensitive (Unicode simple case
  // folding: only ASCII letters and U+017F LATIN SMALL LETTER LONG S, which
  // folds to 's', are relevant). Returns the match length or 0.
  size_t Contraction(size_t i, bool ignore_case) const {
    if (i >= size() || cps_[i] != '\'') return 0;
    auto folded = [&](size_t k) -> char32_t {
      if (k >= size()) return 0;
      char32_t c = cps_[k];
      if (ignore_case) {
        if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
        if (c == 0x17F) c = 's';
      }
      return c;
    };
    const char32_t c1 = folded(i + 1);
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
    const char32_t c2 = folded(i + 2);
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
    return 0;
  }

  std::vector<char32_t> cps_;
  std::vector<uint8_t> classes_;
  std::vector<size_t> offsets_;  // Byte offset of each code point, and the end.
};

}  // namespace

absl::StatusOr<SplitRegex> RecognizeSplitRegex(std::string_view regex) {
  if (regex == kGpt2Pattern) return SplitRegex::kGpt2;
  if (regex == kLlama3Pattern) return SplitRegex::kLlama3;
  if (regex == kQwen2Pattern) return SplitRegex::kQwen2;
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported pre-tokenizer regex '", std::string(regex),
      "' (supported: the GPT-2, Llama 3 and Qwen2 patterns, see core/tokenizer/split_patterns.h)"));
}

std::vector<ByteRange> FindRegexMatches(SplitRegex regex, std::string_view text) {
  Matcher m(text);
  std::vector<ByteRange> matches;
  for (size_t i = 0; i < m.size();) {
    size_t end = i;
    switch (regex) {
      case SplitRegex::kGpt2:
        end = m.MatchGpt2(i);
        break;
      case SplitRegex::kLlama3:
        end = m.MatchLlama3(i, 3);
        break;
      case SplitRegex::kQwen2:
        end = m.MatchLlama3(i, 1);
        break;
    }
    if (end > i) {
      matches.emplace_back(m.offset(i), m.offset(end));
      i = end;
    } else {
      ++i;
    }
  }
  return matches;
}

std::vector<ByteRange> FindLiteralMatches(std::string_view needle, std::string_view text) {
  std::vector<ByteRange> matches;
  if (needle.empty()) return matches;
  for (size_t pos = text.find(needle); pos != std::string_view::npos;
       pos = text.find(needle, pos + needle.size())) {
    matches.emplace_back(pos, pos + needle.size());
  }
  return matches;
}

absl::StatusOr<SplitBehavior> ParseSplitBehavior(std::string_view name) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown split behavior '", std::string(name), "'"));
}

std::vector<ByteRange> SplitByMatches(size_t text_size, const std::vector<ByteRange>& matches,
                                      SplitBehavior behavior, bool invert) {
  struct Segment {
    ByteRange range;
    bool is_match;
  };
  // Pattern::find_matches: the matches and the gaps between them.
  std::vector<Segment> segments;
  size_t prev = 0;
  for (const ByteRange& m : matches) {
    if (prev != m.first) segments.push_back({{prev, m.first}, invert});
    segments.push_back({m, !invert});
    prev = m.second;
  }
  if (prev != text_size) segments.push_back({{prev, text_size}, invert});

  // (range, removed) as in NormalizedString::split.
  std::vector<std::pair<ByteRange, bool>> splits;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Segment& s : segments) splits.push_back({s.range, false});
      break;
    case SplitBehavior::kRemoved:
      for (const Segment& s : segments) splits.push_back({s.range, s.is_match});
      break;
    case SplitBehavior::kContiguous:
      for (const Segment& s : segments) {
        if (s.is_match == previous_match && !splits.empty()) {
          splits.back().first.second = s.range.second;
        } else {
          splits.push_back({s.range, false});
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Segment& s : segments) {
        if (s.is_match && !previous_match && !splits.empty()) {
          splits.back().first.second = s.range.second;
        } else {
          splits.push_back({s.range, false});
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
        if (it->is_match && !previous_match && !splits.empty()) {
          splits.back().first.first = it->range.first;
        } else {
          splits.push_back({it->range, false});
        }
        previous_match = it->is_match;
      }
      std::reverse(splits.begin(), splits.end());
      break;
  }
  std::vector<ByteRange> pieces;
  for (const auto& [range, removed] : splits) {
    if (!removed && range.second > range.first) pieces.push_back(range);
  }
  return pieces;
}

}  // namespace tokenizer_internal
}  // namespace quantd
