#include "core/gguf/bpe_pre_tokenizer.h"

#include <string>

namespace quantd {

using json = nlohmann::json;

std::string DetectBpePreTokenizer(const json& tok) {
  static const char kLlama3[] =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const char kQwen2[] =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const char kTekken[] =
      R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  if (!tok.is_object() || !tok.contains("pre_tokenizer")) return "";
  const json& pre = tok["pre_tokenizer"];
  if (!pre.is_object()) return "";
  std::vector<json> steps;
  if (pre.value("type", "") == "Sequence" && pre.contains("pretokenizers") &&
      pre["pretokenizers"].is_array()) {
    for (const json& s : pre["pretokenizers"]) steps.push_back(s);
  } else {
    steps.push_back(pre);
  }
  std::vector<std::string> kinds;
  std::string regex;
  bool byte_level_regex = false;
  for (const json& s : steps) {
    if (!s.is_object()) return "";
    const std::string type = s.value("type", "");
    if (type == "Split" && s.contains("pattern") && s["pattern"].is_object() &&
        s["pattern"].contains("Regex") && s["pattern"]["Regex"].is_string()) {
      regex = s["pattern"]["Regex"].get<std::string>();
    } else if (type == "ByteLevel") {
      byte_level_regex = s.value("use_regex", true);
    } else if (type == "Digits") {
      if (!s.value("individual_digits", false)) return "";
    }
    kinds.push_back(type);
  }
  const std::vector<std::string> split_byte = {"Split", "ByteLevel"};
  if (kinds == split_byte && !byte_level_regex) {
    if (regex == kLlama3) return "llama-bpe";
    if (regex == kQwen2) return "qwen2";
    if (regex == kTekken) return "tekken";
    return "";
  }
  if (kinds == std::vector<std::string>{"Digits", "ByteLevel"} && byte_level_regex) return "smollm";
  if (kinds == std::vector<std::string>{"ByteLevel"} && byte_level_regex) return "gpt-2";
  return "";
}

}  // namespace quantd
