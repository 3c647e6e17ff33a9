#include "core/tokenizer/pre_tokenizers.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/tokenizer/split_patterns.h"
#include "core/tokenizer/unicode.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace tokenizer_internal {
namespace {

// Appends the non-empty `ranges` of `text` as pieces; a piece is at the
// start of the original text when its parent was and it begins at 0.
void AppendRanges(const Piece& parent, const std::string& text,
                  const std::vector<ByteRange>& ranges, std::vector<Piece>* out) {
  for (const ByteRange& r : ranges) {
    if (r.second <= r.first) continue;
    out->push_back(
        Piece{text.substr(r.first, r.second - r.first), -1, parent.at_start && r.first == 0});
  }
}

// Split: a regex (one of the known patterns) or a literal string, with a
// delimiter behavior, optionally inverted.
class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(bool is_regex, SplitRegex regex, std::string literal, SplitBehavior behavior,
                    bool invert)
      : is_regex_(is_regex),
        regex_(regex),
        literal_(std::move(literal)),
        behavior_(behavior),
        invert_(invert) {}

  void PreTokenize(Piece piece, std::vector<Piece>* out) const override {
    const std::vector<ByteRange> matches =
        is_regex_ ? FindRegexMatches(regex_, piece.text) : FindLiteralMatches(literal_, piece.text);
    AppendRanges(piece, piece.text, SplitByMatches(piece.text.size(), matches, behavior_, invert_),
                 out);
  }

 private:
  bool is_regex_;
  SplitRegex regex_;
  std::string literal_;
  SplitBehavior behavior_;
  bool invert_;
};

// Digits: every \p{N} character alone, or runs of them.
class DigitsPreTokenizer : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual) : individual_(individual) {}

  void PreTokenize(Piece piece, std::vector<Piece>* out) const override {
    const std::vector<ByteRange> matches = FindCharMatches(piece.text, IsNumber);
    AppendRanges(
        piece, piece.text,
        SplitByMatches(piece.text.size(), matches,
                       individual_ ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, false),
        out);
  }

 private:
  bool individual_;
};

// ByteLevel: optional prefix space, optional GPT-2 regex split, then every
// byte replaced by its bytes_to_unicode character.
class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}

  void PreTokenize(Piece piece, std::vector<Piece>* out) const override {
    if (add_prefix_space_ && (piece.text.empty() || piece.text[0] != ' '))
      piece.text.insert(0, " ");
    std::vector<Piece> split;
    if (use_regex_) {
      AppendRanges(
          piece, piece.text,
          SplitByMatches(piece.text.size(), FindRegexMatches(SplitRegex::kGpt2, piece.text),
                         SplitBehavior::kIsolated, false),
          &split);
    } else {
      split.push_back(std::move(piece));
    }
    for (Piece& p : split) {
      std::string mapped;
      mapped.reserve(p.text.size() * 2);
      for (char c : p.text) mapped += ByteLevelChar(static_cast<uint8_t>(c));
      p.text = std::move(mapped);
      out->push_back(std::move(p));
    }
  }

 private:
  bool add_prefix_space_;
  bool use_regex_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

// Metaspace: spaces become the replacement character, which is prepended
// per the scheme, then optionally split before each replacement character.
class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}

  void PreTokenize(Piece piece, std::vector<Piece>* out) const override {
    std::string text = absl::StrReplaceAll(piece.text, {{" ", replacement_}});
    const bool starts = text.compare(0, replacement_.size(), replacement_) == 0;
    if (!starts && (scheme_ == PrependScheme::kAlways ||
                    (scheme_ == PrependScheme::kFirst && piece.at_start))) {
      text.insert(0, replacement_);
    }
    std::vector<ByteRange> ranges = {{0, text.size()}};
    if (split_) {
      ranges = SplitByMatches(text.size(), FindLiteralMatches(replacement_, text),
                              SplitBehavior::kMergedWithNext, false);
    }
    AppendRanges(piece, text, ranges, out);
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}

  void PreTokenize(Piece piece, std::vector<Piece>* out) const override {
    std::vector<Piece> current;
    current.push_back(std::move(piece));
    for (const auto& step : steps_) {
      std::vector<Piece> next;
      for (Piece& p : current) step->PreTokenize(std::move(p), &next);
      current = std::move(next);
    }
    for (Piece& p : current) out->push_back(std::move(p));
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

absl::StatusOr<std::unique_ptr<PreTokenizer>> SplitFromJson(const Json& config) {
  constexpr std::string_view kWhere = "pre_tokenizer Split";
  ASSIGN_OR_RETURN(const Json* pattern, RequiredField(config, "pattern", kWhere));
  ASSIGN_OR_RETURN(std::string behavior_name, RequiredString(config, "behavior", kWhere));
  ASSIGN_OR_RETURN(SplitBehavior behavior, ParseSplitBehavior(behavior_name));
  ASSIGN_OR_RETURN(bool invert, BoolOr(config, "invert", false, kWhere));
  if (const Json* regex = OptionalField(*pattern, "Regex")) {
    if (!regex->is_string()) return FieldError(kWhere, "pattern.Regex", "is not a string");
    ASSIGN_OR_RETURN(SplitRegex known, RecognizeSplitRegex(regex->get<std::string>()));
    return std::make_unique<SplitPreTokenizer>(true, known, "", behavior, invert);
  }
  ASSIGN_OR_RETURN(std::string literal, RequiredString(*pattern, "String", kWhere));
  if (literal.empty()) return FieldError(kWhere, "pattern.String", "is empty");
  return std::make_unique<SplitPreTokenizer>(false, SplitRegex::kGpt2, std::move(literal), behavior,
                                             invert);
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> MetaspaceFromJson(const Json& config) {
  constexpr std::string_view kWhere = "pre_tokenizer Metaspace";
  ASSIGN_OR_RETURN(std::string replacement, RequiredString(config, "replacement", kWhere));
  if (replacement.empty() || !IsValidUtf8(replacement) ||
      Utf8Length(static_cast<unsigned char>(replacement[0])) != replacement.size()) {
    return FieldError(kWhere, "replacement", "is not a single character");
  }
  // Older files have add_prefix_space (true means "always") and no
  // prepend_scheme; split defaults to true.
  PrependScheme scheme = PrependScheme::kAlways;
  if (const Json* name = OptionalField(config, "prepend_scheme")) {
    if (*name == "always") {
      scheme = PrependScheme::kAlways;
    } else if (*name == "first") {
      scheme = PrependScheme::kFirst;
    } else if (*name == "never") {
      scheme = PrependScheme::kNever;
    } else {
      return FieldError(kWhere, "prepend_scheme", "is not always, first or never");
    }
  } else {
    ASSIGN_OR_RETURN(bool add_prefix_space, BoolOr(config, "add_prefix_space", true, kWhere));
    scheme = add_prefix_space ? PrependScheme::kAlways : PrependScheme::kNever;
  }
  ASSIGN_OR_RETURN(bool split, BoolOr(config, "split", true, kWhere));
  return std::make_unique<MetaspacePreTokenizer>(std::move(replacement), scheme, split);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizerFromJson(const Json& config) {
  ASSIGN_OR_RETURN(std::string type, ComponentType(config, "pre_tokenizer"));
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(const Json* list, RequiredField(config, "pretokenizers", "pre_tokenizer"));
    if (!list->is_array()) return FieldError("pre_tokenizer", "pretokenizers", "is not a list");
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const Json& item : *list) {
      ASSIGN_OR_RETURN(auto step, PreTokenizerFromJson(item));
      steps.push_back(std::move(step));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  if (type == "Split") return SplitFromJson(config);
  if (type == "Metaspace") return MetaspaceFromJson(config);
  if (type == "ByteLevel") {
    ASSIGN_OR_RETURN(bool add_prefix_space,
                     BoolOr(config, "add_prefix_space", true, "pre_tokenizer ByteLevel"));
    ASSIGN_OR_RETURN(bool use_regex, BoolOr(config, "use_regex", true, "pre_tokenizer ByteLevel"));
    return std::make_unique<ByteLevelPreTokenizer>(add_prefix_space, use_regex);
  }
  if (type == "Digits") {
    ASSIGN_OR_RETURN(bool individual,
                     BoolOr(config, "individual_digits", false, "pre_tokenizer Digits"));
    return std::make_unique<DigitsPreTokenizer>(individual);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported pre_tokenizer type '", type,
                   "' (supported: ByteLevel, Split, Digits, Metaspace, Sequence)"));
}

}  // namespace tokenizer_internal
}  // namespace quantd
