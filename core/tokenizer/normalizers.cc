#include "core/tokenizer/normalizers.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/tokenizer/unicode.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace tokenizer_internal {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581 "▁"

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  std::string Normalize(std::string_view text) const override {
    std::string current(text);
    for (const auto& step : steps_) current = step->Normalize(current);
    return current;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

// Prepend: adds `prefix` in front of non-empty text.
class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string Normalize(std::string_view text) const override {
    if (text.empty()) return std::string();
    return absl::StrCat(prefix_, std::string(text));
  }

 private:
  std::string prefix_;
};

// Replace with a literal pattern: every non-overlapping occurrence, left to
// right.
class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::string pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::string Normalize(std::string_view text) const override {
    return absl::StrReplaceAll(std::string(text), {{pattern_, content_}});
  }

 private:
  std::string pattern_;
  std::string content_;
};

class NfcNormalizer : public Normalizer {
 public:
  std::string Normalize(std::string_view text) const override { return ToNfc(text); }
};

// Strip: removes leading and/or trailing White_Space.
class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  std::string Normalize(std::string_view text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      for (size_t pos = 0; pos < text.size();) {
        char32_t cp;
        if (!DecodeUtf8(text, &pos, &cp) || !IsSpace(cp)) break;
        begin = pos;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t pos = start;
        char32_t cp;
        if (!DecodeUtf8(text, &pos, &cp) || !IsSpace(cp)) break;
        end = start;
      }
    }
    return std::string(text.substr(begin, end - begin));
  }

 private:
  bool left_;
  bool right_;
};

// sentencepiece::normalizer::Normalizer::Normalize without a character map.
class SentencePieceNormalizer : public Normalizer {
 public:
  SentencePieceNormalizer(bool add_dummy_prefix, bool remove_extra_whitespaces,
                          bool escape_whitespaces)
      : add_dummy_prefix_(add_dummy_prefix),
        remove_extra_whitespaces_(remove_extra_whitespaces),
        space_(escape_whitespaces ? kSpaceSymbol : " ") {}

  std::string Normalize(std::string_view text) const override {
    if (remove_extra_whitespaces_) {
      while (!text.empty() && text[0] == ' ') text.remove_prefix(1);
    }
    std::string out;
    if (text.empty()) return out;
    out.reserve(text.size() + text.size() / 4 + 3);
    if (add_dummy_prefix_) out.append(space_);
    bool is_prev_space = remove_extra_whitespaces_;
    for (char c : text) {
      if (c == ' ') {
        if (!is_prev_space) out.append(space_);
        is_prev_space = remove_extra_whitespaces_;
      } else {
        out.push_back(c);
        is_prev_space = false;
      }
    }
    if (remove_extra_whitespaces_) {
      while (out.size() >= space_.size() &&
             out.compare(out.size() - space_.size(), space_.size(), space_) == 0) {
        out.resize(out.size() - space_.size());
      }
    }
    return out;
  }

 private:
  bool add_dummy_prefix_;
  bool remove_extra_whitespaces_;
  std::string_view space_;
};

absl::StatusOr<std::string> LiteralPattern(const Json& config, std::string_view where) {
  ASSIGN_OR_RETURN(const Json* pattern, RequiredField(config, "pattern", where));
  if (OptionalField(*pattern, "Regex") != nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(where), ": regex patterns are not supported"));
  }
  ASSIGN_OR_RETURN(std::string literal, RequiredString(*pattern, "String", where));
  if (literal.empty()) return FieldError(where, "pattern.String", "is empty");
  return literal;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> NormalizerFromJson(const Json& config) {
  ASSIGN_OR_RETURN(std::string type, ComponentType(config, "normalizer"));
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(const Json* list, RequiredField(config, "normalizers", "normalizer"));
    if (!list->is_array()) return FieldError("normalizer", "normalizers", "is not a list");
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const Json& item : *list) {
      ASSIGN_OR_RETURN(auto step, NormalizerFromJson(item));
      steps.push_back(std::move(step));
    }
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  if (type == "Prepend") {
    ASSIGN_OR_RETURN(std::string prefix, RequiredString(config, "prepend", "normalizer Prepend"));
    return std::make_unique<PrependNormalizer>(std::move(prefix));
  }
  if (type == "Replace") {
    ASSIGN_OR_RETURN(std::string pattern, LiteralPattern(config, "normalizer Replace"));
    ASSIGN_OR_RETURN(std::string content, RequiredString(config, "content", "normalizer Replace"));
    return std::make_unique<ReplaceNormalizer>(std::move(pattern), std::move(content));
  }
  if (type == "NFC") return std::make_unique<NfcNormalizer>();
  if (type == "Strip") {
    ASSIGN_OR_RETURN(bool left, BoolOr(config, "strip_left", false, "normalizer Strip"));
    ASSIGN_OR_RETURN(bool right, BoolOr(config, "strip_right", false, "normalizer Strip"));
    return std::make_unique<StripNormalizer>(left, right);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported normalizer type '", type,
                   "' (supported: Sequence, Prepend, Replace, NFC, Strip)"));
}

std::unique_ptr<Normalizer> MakeSentencePieceNormalizer(bool add_dummy_prefix,
                                                        bool remove_extra_whitespaces,
                                                        bool escape_whitespaces) {
  return std::make_unique<SentencePieceNormalizer>(add_dummy_prefix, remove_extra_whitespaces,
                                                   escape_whitespaces);
}

}  // namespace tokenizer_internal
}  // namespace quantd
