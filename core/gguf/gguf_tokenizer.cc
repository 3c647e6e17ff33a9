#include "core/gguf/gguf_tokenizer.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/util/fs.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr uint64_t kMaxTokenizerBytes = 1ull << 30;
constexpr char kSpmSpace[] = "\xe2\x96\x81";  // U+2581 "▁"

// Tokens llama.cpp's loader recognizes by text as end-of-turn / end-of-message
// (src/llama-vocab.cpp, "auto-detect special tokens by text"), in its order.
constexpr const char* kEotTexts[] = {
    "<|eot_id|>",      "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>", "<EOT>",      "_<EOT>",  "[EOT]",         "<end_of_utterance>"};
constexpr const char* kEomTexts[] = {"<|eom_id|>"};

absl::StatusOr<json> ReadJson(const fs::path& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, kMaxTokenizerBytes));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), " is not valid JSON"));
  }
  return j;
}

// An optional JSON object file: null when missing.
absl::StatusOr<json> ReadOptionalJsonObject(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return json();
  ASSIGN_OR_RETURN(json j, ReadJson(path));
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), " is not a JSON object"));
  }
  return j;
}

// convert_hf_to_gguf's TextModel.does_token_look_special.
bool LooksSpecial(const std::string& t) {
  auto wrapped = [&](const char* open, const char* close) {
    return absl::StartsWith(t, open) && absl::EndsWith(t, close);
  };
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" || wrapped("<|", "|>") ||
         wrapped("<\xef\xbd\x9c", "\xef\xbd\x9c>") || wrapped("<unused", ">");
}

std::string PadToken(size_t i) { return absl::StrCat("[PAD", i, "]"); }

// tokenizer.json's model.merges: "a b" strings, or [a, b] pairs (spaces
// inside a pair are written as U+0120, as convert_hf_to_gguf does).
absl::StatusOr<std::vector<std::string>> ReadMerges(const json& model, const fs::path& path) {
  std::vector<std::string> merges;
  auto it = model.find("merges");
  if (it == model.end() || it->is_null()) return merges;
  if (!it->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": model.merges is not a list"));
  }
  merges.reserve(it->size());
  for (const json& m : *it) {
    if (m.is_string()) {
      merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.push_back(
          absl::StrCat(absl::StrReplaceAll(m[0].get<std::string>(), {{" ", "\xc4\xa0"}}), " ",
                       absl::StrReplaceAll(m[1].get<std::string>(), {{" ", "\xc4\xa0"}})));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          path.string(), ": model.merges has an entry that is neither \"a b\" nor a pair"));
    }
  }
  return merges;
}

// token -> id from tokenizer.json's model.vocab.
absl::StatusOr<std::map<std::string, int64_t>> ReadModelVocab(const json& model,
                                                              const fs::path& path) {
  auto it = model.find("vocab");
  if (it == model.end() || !it->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": model.vocab is not an object"));
  }
  std::map<std::string, int64_t> vocab;
  for (const auto& [tok, id] : it->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path.string(), ": token \"", tok, "\" has no valid id"));
    }
    vocab[tok] = id.get<int64_t>();
  }
  return vocab;
}

struct AddedToken {
  std::string content;
  int64_t id = 0;
  bool special = false;
};

absl::StatusOr<std::vector<AddedToken>> ReadAddedTokens(const json& tok, const fs::path& path) {
  std::vector<AddedToken> out;
  auto it = tok.find("added_tokens");
  if (it == tok.end() || it->is_null()) return out;
  if (!it->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": added_tokens is not a list"));
  }
  for (const json& a : *it) {
    if (!a.is_object() || !a.contains("content") || !a["content"].is_string() ||
        !a.contains("id") || !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path.string(), ": an added_tokens entry lacks content or id"));
    }
    out.push_back(
        {a["content"].get<std::string>(), a["id"].get<int64_t>(), a.value("special", false)});
  }
  return out;
}

// Sizes the vocabulary: config's vocab_size when given (and large enough).
absl::StatusOr<size_t> VocabSize(const json& config, int64_t max_id, const std::string& what) {
  int64_t n = max_id + 1;
  auto it = config.find("vocab_size");
  if (it != config.end() && it->is_number_integer()) {
    const int64_t v = it->get<int64_t>();
    if (v < n) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " has token id ", max_id, " but config.json's vocab_size is ", v));
    }
    n = v;
  }
  if (n <= 0 || n > (1 << 24)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": vocabulary size ", n, " out of range"));
  }
  return static_cast<size_t>(n);
}

void InitPadded(GgufVocab* v, size_t n, bool with_scores, float pad_score) {
  v->tokens.resize(n);
  for (size_t i = 0; i < n; ++i) v->tokens[i] = PadToken(i);
  v->types.assign(n, GgufTokenType::kUnused);
  if (with_scores) v->scores.assign(n, pad_score);
}

// convert_hf_to_gguf's _create_vocab_sentencepiece.
absl::Status LoadSentencePiece(const fs::path& dir, const json& config, const json& tok_config,
                               GgufVocab* v) {
  const fs::path path = dir / "tokenizer.model";
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path, kMaxTokenizerBytes));
  absl::StatusOr<SpmModel> spm = ParseSentencePieceModel(bytes);
  if (!spm.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", spm.status().message()));
  }
  size_t n = spm->pieces.size();
  if (auto it = config.find("vocab_size"); it != config.end() && it->is_number_integer() &&
                                           it->get<int64_t>() > 0 &&
                                           it->get<int64_t>() < (1 << 24)) {
    n = static_cast<size_t>(it->get<int64_t>());
  }
  v->model = "llama";
  v->pre = "default";
  InitPadded(v, n, /*with_scores=*/true, -10000.0f);
  for (size_t i = 0; i < spm->pieces.size(); ++i) {
    if (i >= n) {
      v->warnings.push_back(absl::StrCat("tokenizer.model pieces from id ", i,
                                         " ignored: beyond config.json's vocab_size ", n));
      break;
    }
    const SpmPiece& p = spm->pieces[i];
    v->tokens[i] = p.piece;
    v->scores[i] = p.score;
    // User-defined pieces stay NORMAL, as in convert_hf_to_gguf.
    switch (p.type) {
      case 2:
        v->types[i] = GgufTokenType::kUnknown;
        break;
      case 3:
        v->types[i] = GgufTokenType::kControl;
        break;
      case 5:
        v->types[i] = GgufTokenType::kUnused;
        break;
      case 6:
        v->types[i] = GgufTokenType::kByte;
        break;
      default:
        v->types[i] = GgufTokenType::kNormal;
    }
  }
  if (spm->add_dummy_prefix.has_value()) v->add_space_prefix = spm->add_dummy_prefix;
  ASSIGN_OR_RETURN(json added, ReadOptionalJsonObject(dir / "added_tokens.json"));
  if (added.is_object()) {
    for (const auto& [text, id] : added.items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (int64_t)n) {
        v->warnings.push_back(absl::StrCat("added_tokens.json: token \"", text, "\" ignored"));
        continue;
      }
      const size_t i = id.get<size_t>();
      v->tokens[i] = text;
      v->scores[i] = -1000.0f;
      v->types[i] = GgufTokenType::kUserDefined;
    }
  }
  if (tok_config.is_object()) {
    auto it = tok_config.find("added_tokens_decoder");
    if (it != tok_config.end() && it->is_object()) {
      for (const auto& [key, data] : it->items()) {
        char* end = nullptr;
        const long long id = std::strtoll(key.c_str(), &end, 10);
        if (end == key.c_str() || *end != 0 || id < 0 || id >= (long long)n || !data.is_object() ||
            !data.contains("content") || !data["content"].is_string()) {
          continue;
        }
        std::string text = data["content"].get<std::string>();
        if (data.value("special", false) || LooksSpecial(text)) {
          v->types[id] = GgufTokenType::kControl;
        } else {
          text = absl::StrReplaceAll(text, {{kSpmSpace, " "}});
          v->types[id] = GgufTokenType::kUserDefined;
        }
        v->scores[id] = -1000.0f;
        v->tokens[id] = std::move(text);
      }
    }
  }
  return absl::OkStatus();
}

bool IsByteToken(const std::string& t) {
  auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && hex(t[3]) && hex(t[4]) && t[5] == '>';
}

// Ids of a tokenizer.json vocabulary plus its added tokens: id -> text.
absl::StatusOr<std::map<int64_t, std::string>> IdToToken(
    const std::map<std::string, int64_t>& vocab, const std::vector<AddedToken>& added,
    const fs::path& path) {
  std::map<int64_t, std::string> ids;
  for (const auto& [t, id] : vocab) {
    if (!ids.emplace(id, t).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path.string(), ": id ", id, " is given to two tokens"));
    }
  }
  for (const AddedToken& a : added) {
    auto [it, inserted] = ids.emplace(a.id, a.content);
    if (!inserted && it->second != a.content) {
      return absl::InvalidArgumentError(absl::StrCat(path.string(), ": added token \"", a.content,
                                                     "\" reuses id ", a.id, " of another token"));
    }
  }
  if (ids.empty()) return absl::InvalidArgumentError(path.string() + ": empty vocabulary");
  return ids;
}

// A tokenizer.json of the SentencePiece kind (llama.cpp's LlamaHfVocab).
// Scores: -(rank + 1) for tokens some merge produces, so that llama.cpp's
// SPM tokenizer (highest-scoring bigram first) merges in BPE rank order.
absl::Status LoadSpmJson(const json& tok, const fs::path& path, const json& config, GgufVocab* v) {
  const json& model = tok["model"];
  ASSIGN_OR_RETURN(auto vocab, ReadModelVocab(model, path));
  ASSIGN_OR_RETURN(std::vector<AddedToken> added, ReadAddedTokens(tok, path));
  ASSIGN_OR_RETURN(std::vector<std::string> merges, ReadMerges(model, path));
  ASSIGN_OR_RETURN(auto ids, IdToToken(vocab, added, path));
  ASSIGN_OR_RETURN(size_t n, VocabSize(config, ids.rbegin()->first, path.string()));
  v->model = "llama";
  v->pre = "default";
  InitPadded(v, n, /*with_scores=*/true, -1000.0f);
  std::map<std::string, float> merge_score;
  for (size_t r = 0; r < merges.size(); ++r) {
    const size_t sp = merges[r].find(' ');
    if (sp == std::string::npos) continue;
    const std::string merged = merges[r].substr(0, sp) + merges[r].substr(sp + 1);
    merge_score.emplace(merged, -static_cast<float>(r + 1));
  }
  const std::string unk = model.contains("unk_token") && model["unk_token"].is_string()
                              ? model["unk_token"].get<std::string>()
                              : "";
  std::map<int64_t, const AddedToken*> added_by_id;
  for (const AddedToken& a : added) added_by_id[a.id] = &a;
  for (const auto& [id, text] : ids) {
    auto a = added_by_id.find(id);
    const bool in_base = vocab.count(text) > 0;
    std::string t = text;
    GgufTokenType type = GgufTokenType::kNormal;
    float score = 0.0f;
    if (IsByteToken(t)) {
      type = GgufTokenType::kByte;
    } else if (!unk.empty() && t == unk) {
      type = GgufTokenType::kUnknown;
    } else if (a != added_by_id.end() && (a->second->special || LooksSpecial(t))) {
      type = GgufTokenType::kControl;
      if (!in_base) score = -1000.0f;
    } else if (a != added_by_id.end() && !in_base) {
      type = GgufTokenType::kUserDefined;
      score = -1000.0f;
    } else if (auto m = merge_score.find(t); m != merge_score.end()) {
      score = m->second;
    }
    v->tokens[id] = std::move(t);
    v->types[id] = type;
    v->scores[id] = score;
  }
  return absl::OkStatus();
}

// Byte-level BPE (convert_hf_to_gguf's _set_vocab_gpt2 / get_vocab_base).
absl::Status LoadBpe(const json& tok, const fs::path& path, const json& config, GgufVocab* v) {
  const json& model = tok["model"];
  ASSIGN_OR_RETURN(auto vocab, ReadModelVocab(model, path));
  ASSIGN_OR_RETURN(std::vector<AddedToken> added, ReadAddedTokens(tok, path));
  ASSIGN_OR_RETURN(v->merges, ReadMerges(model, path));
  ASSIGN_OR_RETURN(auto ids, IdToToken(vocab, added, path));
  ASSIGN_OR_RETURN(size_t n, VocabSize(config, ids.rbegin()->first, path.string()));
  v->model = "gpt2";
  v->pre = DetectBpePreTokenizer(tok);
  if (v->pre.empty()) {
    v->pre = "default";
    v->warnings.push_back(
        "the BPE pre-tokenizer of tokenizer.json was not recognized: tokenizer.ggml.pre is "
        "\"default\", llama.cpp may split text differently from the original tokenizer");
  }
  InitPadded(v, n, /*with_scores=*/false, 0.0f);
  std::map<int64_t, const AddedToken*> added_by_id;
  for (const AddedToken& a : added) added_by_id[a.id] = &a;
  for (const auto& [id, text] : ids) {
    auto a = added_by_id.find(id);
    std::string t = text;
    GgufTokenType type = GgufTokenType::kNormal;
    if (a != added_by_id.end()) {
      if (a->second->special || LooksSpecial(t)) {
        type = GgufTokenType::kControl;
      } else {
        t = absl::StrReplaceAll(t, {{kSpmSpace, " "}});
        type = GgufTokenType::kUserDefined;
      }
    }
    v->tokens[id] = std::move(t);
    v->types[id] = type;
  }
  return absl::OkStatus();
}

// The id of a token string: tokenizer.json added tokens first (as
// SpecialVocab), then anywhere in the final vocabulary.
std::optional<int64_t> FindToken(const std::vector<AddedToken>& added, const std::string& text) {
  for (const AddedToken& a : added) {
    if (a.content == text) return a.id;
  }
  return std::nullopt;
}

std::optional<std::string> TokenText(const json& entry) {
  if (entry.is_string()) return entry.get<std::string>();
  if (entry.is_object() && entry.contains("content") && entry["content"].is_string()) {
    return entry["content"].get<std::string>();
  }
  return std::nullopt;
}

// gguf-py's SpecialVocab: special ids, add_* flags and the chat template.
absl::Status LoadSpecials(const fs::path& dir, const json& config, const json& tok, json tok_config,
                          GgufVocab* v) {
  std::vector<AddedToken> added;
  if (tok.is_object()) {
    ASSIGN_OR_RETURN(added, ReadAddedTokens(tok, dir / "tokenizer.json"));
  }
  std::vector<std::string> types = {"bos", "eos", "unk", "sep", "pad", "cls", "mask"};
  auto set_special = [&](const std::string& typ, std::optional<int64_t> id) {
    if (!id.has_value() || *id < 0 || *id >= static_cast<int64_t>(v->tokens.size())) return;
    v->special_ids.emplace(typ, static_cast<int32_t>(*id));  // first value wins
  };
  if (tok.is_object() && tok_config.is_object()) {
    auto text_of = [&](const char* key) { return TokenText(tok_config.value(key, json())); };
    if (!text_of("bos_token") && text_of("cls_token"))
      tok_config["bos_token"] = *text_of("cls_token");
    if (!text_of("eos_token") && text_of("sep_token"))
      tok_config["eos_token"] = *text_of("sep_token");
    const json& post = tok.value("post_processor", json());
    if (post.is_object()) {
      const json procs = post.contains("processors") ? post["processors"] : json::array({post});
      for (const json& p : procs) {
        if (!p.is_object()) continue;
        const std::string type = p.value("type", "");
        if (type == "RobertaProcessing") {
          v->add_special["bos"] = v->add_special["eos"] = v->add_special["sep"] = true;
        } else if (type == "TemplateProcessing" && p.contains("single") && p["single"].is_array() &&
                   p["single"].size() > 1) {
          const json& single = p["single"];
          auto special_id = [](const json& item) -> std::optional<std::string> {
            if (item.is_object() && item.contains("SpecialToken") &&
                item["SpecialToken"].is_object() && item["SpecialToken"].contains("id") &&
                item["SpecialToken"]["id"].is_string()) {
              return item["SpecialToken"]["id"].get<std::string>();
            }
            return std::nullopt;
          };
          const auto bos = text_of("bos_token"), cls = text_of("cls_token");
          if (auto first = special_id(single.front())) {
            v->add_special["bos"] = (bos && *first == *bos) || (cls && *first == *cls);
          }
          if (auto last = special_id(single.back())) {
            const auto eos = text_of("eos_token");
            if (eos && *last != *eos) {
              // SpecialVocab keeps the configured eos as EOT and uses the
              // template's trailing token as eos.
              tok_config["eot_token"] = *eos;
              types.push_back("eot");
              tok_config["eos_token"] = *last;
            }
            v->add_special["eos"] = true;
          }
        }
      }
    }
  }
  if (tok_config.is_object()) {
    for (const std::string& typ : types) {
      auto add = tok_config.find(absl::StrCat("add_", typ, "_token"));
      if (add != tok_config.end() && add->is_boolean()) v->add_special[typ] = add->get<bool>();
      auto text = TokenText(tok_config.value(absl::StrCat(typ, "_token"), json()));
      if (text) set_special(typ, FindToken(added, *text));
    }
    if (auto it = tok_config.find("add_prefix_space"); it != tok_config.end() && it->is_boolean()) {
      v->add_space_prefix = it->get<bool>();
    }
  }
  for (const std::string& typ : types) {
    auto it = config.find(absl::StrCat(typ, "_token_id"));
    if (it != config.end() && it->is_number_integer()) set_special(typ, it->get<int64_t>());
  }
  // EOT / EOM the way llama.cpp's loader finds them by text.
  auto by_text = [&](const auto& texts) -> std::optional<int64_t> {
    for (const char* t : texts) {
      for (size_t i = 0; i < v->tokens.size(); ++i) {
        if (v->tokens[i] == t) return static_cast<int64_t>(i);
      }
    }
    return std::nullopt;
  };
  set_special("eot", by_text(kEotTexts));
  set_special("eom", by_text(kEomTexts));
  // add_bos/add_eos keys only matter for the types llama.cpp reads.
  for (auto it = v->add_special.begin(); it != v->add_special.end();) {
    it = (it->first == "bos" || it->first == "eos" || it->first == "sep")
             ? std::next(it)
             : v->add_special.erase(it);
  }

  // Chat template.
  std::optional<json> alt;
  std::error_code ec;
  if (fs::is_regular_file(dir / "chat_template.jinja", ec)) {
    ASSIGN_OR_RETURN(std::string t,
                     ReadFileToString(dir / "chat_template.jinja", kMaxTokenizerBytes));
    alt = t;
  } else if (fs::is_regular_file(dir / "chat_template.json", ec)) {
    ASSIGN_OR_RETURN(json j, ReadJson(dir / "chat_template.json"));
    if (j.is_object() && j.contains("chat_template")) alt = j["chat_template"];
  }
  json tmpl = tok_config.is_object() && tok_config.contains("chat_template")
                  ? tok_config["chat_template"]
                  : alt.value_or(json());
  if (tmpl.is_string()) {
    v->chat_template = tmpl.get<std::string>();
  } else if (tmpl.is_array()) {
    for (const json& choice : tmpl) {
      if (!choice.is_object() || !choice.contains("template") || !choice["template"].is_string())
        continue;
      std::string name = choice.value("name", "");
      for (char& c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      if (name.empty()) continue;
      if (name == "default") {
        v->chat_template = choice["template"].get<std::string>();
      } else {
        v->named_chat_templates.emplace_back(name, choice["template"].get<std::string>());
      }
    }
  } else if (!tmpl.is_null()) {
    v->warnings.push_back("tokenizer_config.json's chat_template is neither text nor a list");
  }
  if (!v->chat_template.has_value() && v->named_chat_templates.empty()) {
    v->warnings.push_back("the model has no chat template");
  }
  if (!v->special_ids.count("eos")) v->warnings.push_back("the model names no eos token");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<GgufVocab> LoadGgufVocab(const fs::path& dir, const json& config,
                                        VocabFlavor flavor) {
  GgufVocab v;
  std::error_code ec;
  ASSIGN_OR_RETURN(json tok_config, ReadOptionalJsonObject(dir / "tokenizer_config.json"));
  json tok;
  const fs::path tok_path = dir / "tokenizer.json";
  if (fs::is_regular_file(tok_path, ec)) {
    ASSIGN_OR_RETURN(tok, ReadJson(tok_path));
    if (!tok.is_object() || !tok.contains("model") || !tok["model"].is_object()) {
      return absl::InvalidArgumentError(tok_path.string() + ": no \"model\" object");
    }
  }
  if (fs::is_regular_file(dir / "tokenizer.model", ec)) {
    RETURN_IF_ERROR(LoadSentencePiece(dir, config, tok_config, &v));
  } else if (tok.is_object()) {
    const json& model = tok["model"];
    const bool bpe = model.value("type", "") == "BPE";
    const bool byte_fallback = model.value("byte_fallback", false);
    const json& decoder = tok.value("decoder", json());
    const bool seq_decoder = decoder.is_object() && decoder.value("type", "") == "Sequence";
    if (!bpe) {
      return absl::InvalidArgumentError(absl::StrCat(
          tok_path.string(), ": model type \"", model.value("type", ""),
          "\" is not supported (BPE only; a SentencePiece model needs tokenizer.model)"));
    }
    if (flavor == VocabFlavor::kLlama && byte_fallback && seq_decoder) {
      RETURN_IF_ERROR(LoadSpmJson(tok, tok_path, config, &v));
    } else {
      RETURN_IF_ERROR(LoadBpe(tok, tok_path, config, &v));
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("no tokenizer.model or tokenizer.json in ", dir.string()));
  }
  RETURN_IF_ERROR(LoadSpecials(dir, config, tok, tok_config, &v));
  return v;
}

}  // namespace quantd
