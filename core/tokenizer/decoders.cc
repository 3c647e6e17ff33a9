#include "core/tokenizer/decoders.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "core/tokenizer/unicode.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace tokenizer_internal {
namespace {

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps)
      : steps_(std::move(steps)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& step : steps_) step->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::string pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& t : *tokens) t = absl::StrReplaceAll(t, {{pattern_, content_}});
  }

 private:
  std::string pattern_;
  std::string content_;
};

// Runs of "<0xNN>" tokens become the bytes' text when those are valid UTF-8,
// else one U+FFFD per byte.
class ByteFallbackDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t byte_count = 0;
    auto flush = [&] {
      if (byte_count == 0) return;
      if (IsValidUtf8(bytes)) {
        out.push_back(bytes);
      } else {
        for (size_t i = 0; i < byte_count; ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      bytes.clear();
      byte_count = 0;
    };
    for (std::string& t : *tokens) {
      int value = ParseByteToken(t);
      if (value >= 0) {
        bytes.push_back(static_cast<char>(value));
        ++byte_count;
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    *tokens = std::move(out);
  }

 private:
  static int HexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  // "<0xNN>" -> NN, else -1 (as u8::from_str_radix on the two characters).
  static int ParseByteToken(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    const int hi = HexDigit(t[3]), lo = HexDigit(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
};

class FuseDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string joined = absl::StrJoin(*tokens, "");
    tokens->assign(1, std::move(joined));
  }
};

// Strip: removes up to `start` leading and `stop` trailing `content`
// characters from each token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop)
      : content_(content), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& t : *tokens) {
      std::vector<size_t> offsets;  // Byte offset of each character, and the end.
      std::vector<char32_t> chars;
      for (size_t pos = 0; pos < t.size();) {
        offsets.push_back(pos);
        char32_t cp;
        if (!DecodeUtf8(t, &pos, &cp)) {
          cp = 0xFFFD;
          ++pos;
        }
        chars.push_back(cp);
      }
      offsets.push_back(t.size());
      size_t begin = 0;
      while (begin < chars.size() && begin < start_ && chars[begin] == content_) ++begin;
      size_t end = chars.size();
      while (end > begin && chars.size() - end < stop_ && chars[end - 1] == content_) --end;
      t = t.substr(offsets[begin], offsets[end] - offsets[begin]);
    }
  }

 private:
  char32_t content_;
  size_t start_;
  size_t stop_;
};

// ByteLevel: each token whose characters all stand for bytes becomes those
// bytes, others keep their UTF-8; the whole is then decoded lossily.
class ByteLevelDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string bytes;
    for (const std::string& t : *tokens) {
      std::string mapped;
      bool all = true;
      for (size_t pos = 0; pos < t.size();) {
        char32_t cp;
        int b = DecodeUtf8(t, &pos, &cp) ? ByteLevelByte(cp) : -1;
        if (b < 0) {
          all = false;
          break;
        }
        mapped.push_back(static_cast<char>(b));
      }
      bytes += all ? mapped : t;
    }
    tokens->assign(1, Utf8Lossy(bytes));
  }
};

// Metaspace: the replacement character becomes a space, except in the first
// token when a prefix was prepended, where it is dropped.
class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool prepended)
      : replacement_(std::move(replacement)), prepended_(prepended) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      (*tokens)[i] =
          absl::StrReplaceAll((*tokens)[i], {{replacement_, i == 0 && prepended_ ? "" : " "}});
    }
  }

 private:
  std::string replacement_;
  bool prepended_;
};

absl::StatusOr<char32_t> SingleChar(const Json& config, std::string_view key,
                                    std::string_view where) {
  ASSIGN_OR_RETURN(std::string text, RequiredString(config, key, where));
  size_t pos = 0;
  char32_t cp;
  if (!DecodeUtf8(text, &pos, &cp) || pos != text.size()) {
    return FieldError(where, key, "is not a single character");
  }
  return cp;
}

absl::StatusOr<std::unique_ptr<Decoder>> MetaspaceFromJson(const Json& config) {
  constexpr std::string_view kWhere = "decoder Metaspace";
  ASSIGN_OR_RETURN(char32_t replacement, SingleChar(config, "replacement", kWhere));
  bool prepended = true;
  if (const Json* scheme = OptionalField(config, "prepend_scheme")) {
    if (*scheme != "always" && *scheme != "first" && *scheme != "never") {
      return FieldError(kWhere, "prepend_scheme", "is not always, first or never");
    }
    prepended = *scheme != "never";
  } else {
    ASSIGN_OR_RETURN(prepended, BoolOr(config, "add_prefix_space", true, kWhere));
  }
  std::string utf8;
  AppendUtf8(replacement, &utf8);
  return std::make_unique<MetaspaceDecoder>(std::move(utf8), prepended);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> DecoderFromJson(const Json& config) {
  ASSIGN_OR_RETURN(std::string type, ComponentType(config, "decoder"));
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(const Json* list, RequiredField(config, "decoders", "decoder"));
    if (!list->is_array()) return FieldError("decoder", "decoders", "is not a list");
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const Json& item : *list) {
      ASSIGN_OR_RETURN(auto step, DecoderFromJson(item));
      steps.push_back(std::move(step));
    }
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  if (type == "Replace") {
    constexpr std::string_view kWhere = "decoder Replace";
    ASSIGN_OR_RETURN(const Json* pattern, RequiredField(config, "pattern", kWhere));
    ASSIGN_OR_RETURN(std::string literal, RequiredString(*pattern, "String", kWhere));
    if (literal.empty()) return FieldError(kWhere, "pattern.String", "is empty");
    ASSIGN_OR_RETURN(std::string content, RequiredString(config, "content", kWhere));
    return std::make_unique<ReplaceDecoder>(std::move(literal), std::move(content));
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    constexpr std::string_view kWhere = "decoder Strip";
    ASSIGN_OR_RETURN(char32_t content, SingleChar(config, "content", kWhere));
    ASSIGN_OR_RETURN(int64_t start, IntOr(config, "start", 0, kWhere));
    ASSIGN_OR_RETURN(int64_t stop, IntOr(config, "stop", 0, kWhere));
    if (start < 0 || stop < 0) return FieldError(kWhere, "start/stop", "is negative");
    return std::make_unique<StripDecoder>(content, start, stop);
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") return MetaspaceFromJson(config);
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported decoder type '", type,
      "' (supported: Sequence, Replace, ByteFallback, Fuse, Strip, ByteLevel, Metaspace)"));
}

std::unique_ptr<Decoder> MakeSentencePieceDecoder(bool strip_leading_space) {
  std::vector<std::unique_ptr<Decoder>> steps;
  steps.push_back(std::make_unique<ReplaceDecoder>("\xE2\x96\x81", " "));
  steps.push_back(std::make_unique<ByteFallbackDecoder>());
  steps.push_back(std::make_unique<FuseDecoder>());
  if (strip_leading_space) steps.push_back(std::make_unique<StripDecoder>(' ', 1, 0));
  return std::make_unique<SequenceDecoder>(std::move(steps));
}

}  // namespace tokenizer_internal
}  // namespace quantd
