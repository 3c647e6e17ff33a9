// Tokenizer::FromTokenizerJson and Tokenizer::FromSentencePieceModel: the
// files and configs turned into a Pipeline.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/bpe_model.h"
#include "core/tokenizer/decoders.h"
#include "core/tokenizer/json_fields.h"
#include "core/tokenizer/normalizers.h"
#include "core/tokenizer/pipeline.h"
#include "core/tokenizer/pre_tokenizers.h"
#include "core/tokenizer/sentencepiece_model.h"
#include "core/tokenizer/tokenizer.h"
#include "core/util/status_macros.h"

namespace quantd {

using tokenizer_internal::AddedToken;
using tokenizer_internal::Json;
using tokenizer_internal::Pipeline;
using tokenizer_internal::Template;
using tokenizer_internal::TemplateItem;

namespace {

absl::StatusOr<Json> ParseJsonText(std::string_view text, std::string_view what) {
  Json json = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(what), " is not valid JSON"));
  }
  if (!json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(what), " is not a JSON object"));
  }
  return json;
}

// An AddedToken object of tokenizer.json's "added_tokens" or of
// tokenizer_config.json's "added_tokens_decoder" (without the id).
absl::StatusOr<AddedToken> ParseAddedToken(const Json& json, std::string_view where) {
  AddedToken token;
  ASSIGN_OR_RETURN(token.content, tokenizer_internal::RequiredString(json, "content", where));
  ASSIGN_OR_RETURN(token.special, tokenizer_internal::BoolOr(json, "special", false, where));
  ASSIGN_OR_RETURN(token.single_word,
                   tokenizer_internal::BoolOr(json, "single_word", false, where));
  ASSIGN_OR_RETURN(token.lstrip, tokenizer_internal::BoolOr(json, "lstrip", false, where));
  ASSIGN_OR_RETURN(token.rstrip, tokenizer_internal::BoolOr(json, "rstrip", false, where));
  ASSIGN_OR_RETURN(token.normalized,
                   tokenizer_internal::BoolOr(json, "normalized", !token.special, where));
  return token;
}

// What tokenizer_config.json and generation_config.json say about special
// tokens.
struct SpecialTokenConfig {
  std::optional<bool> add_bos;
  std::optional<bool> add_eos;
  std::string bos_token;  // Empty: not given.
  std::string eos_token;
  std::optional<std::vector<AddedToken>> added_tokens_decoder;
  std::vector<int32_t> generation_eos_ids;
};

// A token given as a string or as an AddedToken object; "" when absent.
std::string TokenString(const Json& config, const char* key) {
  const Json* value = tokenizer_internal::OptionalField(config, key);
  if (value == nullptr) return "";
  if (value->is_string()) return value->get<std::string>();
  if (const Json* content = tokenizer_internal::OptionalField(*value, "content")) {
    if (content->is_string()) return content->get<std::string>();
  }
  return "";
}

absl::StatusOr<SpecialTokenConfig> ParseConfigs(std::string_view tokenizer_config,
                                                std::string_view generation_config) {
  SpecialTokenConfig result;
  if (!tokenizer_config.empty()) {
    constexpr std::string_view kWhere = "tokenizer_config.json";
    ASSIGN_OR_RETURN(Json config, ParseJsonText(tokenizer_config, kWhere));
    for (auto [key, target] : {std::pair{"add_bos_token", &result.add_bos},
                               std::pair{"add_eos_token", &result.add_eos}}) {
      if (const Json* value = tokenizer_internal::OptionalField(config, key)) {
        if (!value->is_boolean())
          return tokenizer_internal::FieldError(kWhere, key, "is not a boolean");
        *target = value->get<bool>();
      }
    }
    result.bos_token = TokenString(config, "bos_token");
    result.eos_token = TokenString(config, "eos_token");
    if (const Json* decoder = tokenizer_internal::OptionalField(config, "added_tokens_decoder")) {
      if (!decoder->is_object()) {
        return tokenizer_internal::FieldError(kWhere, "added_tokens_decoder", "is not an object");
      }
      std::vector<AddedToken> tokens;
      for (auto it = decoder->begin(); it != decoder->end(); ++it) {
        int32_t id;
        if (!absl::SimpleAtoi(it.key(), &id) || id < 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "tokenizer_config.json: added_tokens_decoder key '", it.key(), "' is not an id"));
        }
        ASSIGN_OR_RETURN(AddedToken token,
                         ParseAddedToken(it.value(), "tokenizer_config.json added token"));
        token.id = id;
        tokens.push_back(std::move(token));
      }
      result.added_tokens_decoder = std::move(tokens);
    }
  }
  if (!generation_config.empty()) {
    ASSIGN_OR_RETURN(Json config, ParseJsonText(generation_config, "generation_config.json"));
    if (const Json* eos = tokenizer_internal::OptionalField(config, "eos_token_id")) {
      const Json list = eos->is_array() ? *eos : Json::array({*eos});
      for (const Json& id : list) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
          return absl::InvalidArgumentError(
              "generation_config.json: eos_token_id is not an id or a list of ids");
        }
        result.generation_eos_ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
      }
    }
  }
  return result;
}

absl::Status ParsePostProcessor(const Json& json, std::vector<Template>* out) {
  constexpr std::string_view kWhere = "post_processor";
  ASSIGN_OR_RETURN(std::string type, tokenizer_internal::ComponentType(json, kWhere));
  if (type == "ByteLevel") return absl::OkStatus();
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(const Json* list,
                     tokenizer_internal::RequiredField(json, "processors", kWhere));
    if (!list->is_array())
      return tokenizer_internal::FieldError(kWhere, "processors", "is not a list");
    for (const Json& item : *list) RETURN_IF_ERROR(ParsePostProcessor(item, out));
    return absl::OkStatus();
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    Template t(3);
    for (auto [key, index] : {std::pair{"cls", 0}, std::pair{"sep", 2}}) {
      ASSIGN_OR_RETURN(const Json* pair, tokenizer_internal::RequiredField(json, key, kWhere));
      if (!pair->is_array() || pair->size() != 2 || !(*pair)[1].is_number_integer()) {
        return tokenizer_internal::FieldError(kWhere, key, "is not [token, id]");
      }
      t[index].ids = {(*pair)[1].get<int32_t>()};
    }
    t[1].is_sequence = true;
    out->push_back(std::move(t));
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing") {
    return absl::InvalidArgumentError(absl::StrCat("unsupported post_processor type '", type,
                                                   "' (supported: TemplateProcessing, ByteLevel, "
                                                   "RobertaProcessing, BertProcessing, Sequence)"));
  }
  ASSIGN_OR_RETURN(const Json* single, tokenizer_internal::RequiredField(json, "single", kWhere));
  ASSIGN_OR_RETURN(const Json* specials,
                   tokenizer_internal::RequiredField(json, "special_tokens", kWhere));
  if (!single->is_array()) return tokenizer_internal::FieldError(kWhere, "single", "is not a list");
  Template t;
  for (const Json& item : *single) {
    if (const Json* seq = tokenizer_internal::OptionalField(item, "Sequence")) {
      if (tokenizer_internal::OptionalField(*seq, "id") == nullptr || (*seq)["id"] != "A") {
        return absl::InvalidArgumentError(
            "post_processor: single template uses a sequence other than A");
      }
      t.push_back({true, {}});
      continue;
    }
    ASSIGN_OR_RETURN(const Json* special, tokenizer_internal::RequiredField(
                                              item, "SpecialToken", "post_processor template"));
    ASSIGN_OR_RETURN(std::string name,
                     tokenizer_internal::RequiredString(*special, "id", "post_processor template"));
    const Json* entry = tokenizer_internal::OptionalField(*specials, name);
    const Json* ids = entry == nullptr ? nullptr : tokenizer_internal::OptionalField(*entry, "ids");
    if (ids == nullptr || !ids->is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat("post_processor: special token '", name, "' has no ids"));
    }
    TemplateItem special_item;
    for (const Json& id : *ids) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
        return absl::InvalidArgumentError(
            absl::StrCat("post_processor: special token '", name, "' has an invalid id"));
      }
      special_item.ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
    t.push_back(std::move(special_item));
  }
  out->push_back(std::move(t));
  return absl::OkStatus();
}

// The special tokens the (first) template puts before and after the sequence.
void TemplateSpecials(const std::vector<Template>& templates, int32_t* bos, int32_t* eos) {
  for (const Template& t : templates) {
    bool before = true;
    for (const TemplateItem& item : t) {
      if (item.is_sequence) {
        before = false;
      } else if (!item.ids.empty()) {
        if (before && *bos < 0) *bos = item.ids.front();
        if (!before) *eos = item.ids.back();
      }
    }
  }
}

// Settles the special tokens from the configs: bos/eos ids, eos_ids, and
// `transformers`' override of the post-processor by add_bos/add_eos_token.
absl::Status ApplyConfig(const SpecialTokenConfig& config, const Tokenizer& tokenizer,
                         Pipeline* p) {
  if (!config.bos_token.empty()) p->bos_id = tokenizer.TokenToId(config.bos_token);
  if (!config.eos_token.empty()) p->eos_id = tokenizer.TokenToId(config.eos_token);
  if (config.add_bos.has_value() || config.add_eos.has_value()) {
    Template t;
    if (config.add_bos.value_or(false)) {
      if (p->bos_id < 0) {
        return absl::InvalidArgumentError(
            "tokenizer_config.json: add_bos_token is set but bos_token is not a known token");
      }
      t.push_back({false, {p->bos_id}});
    }
    t.push_back({true, {}});
    if (config.add_eos.value_or(false)) {
      if (p->eos_id < 0) {
        return absl::InvalidArgumentError(
            "tokenizer_config.json: add_eos_token is set but eos_token is not a known token");
      }
      t.push_back({false, {p->eos_id}});
    }
    p->post_processor = {std::move(t)};
  }
  p->eos_ids.clear();
  if (p->eos_id >= 0) p->eos_ids.push_back(p->eos_id);
  for (int32_t id : config.generation_eos_ids) {
    if (std::find(p->eos_ids.begin(), p->eos_ids.end(), id) == p->eos_ids.end()) {
      p->eos_ids.push_back(id);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromTokenizerJson(
    std::string_view tokenizer_json, std::string_view tokenizer_config_json,
    std::string_view generation_config_json) {
  ASSIGN_OR_RETURN(Json root, ParseJsonText(tokenizer_json, "tokenizer.json"));
  ASSIGN_OR_RETURN(SpecialTokenConfig config,
                   ParseConfigs(tokenizer_config_json, generation_config_json));
  auto pipeline = std::make_unique<Pipeline>();
  pipeline->kind = "hf_bpe";
  ASSIGN_OR_RETURN(const Json* model_json,
                   tokenizer_internal::RequiredField(root, "model", "tokenizer.json"));
  std::string type = "BPE";  // Files without "type" are BPE when they have merges.
  if (const Json* t = tokenizer_internal::OptionalField(*model_json, "type")) {
    type = t->is_string() ? t->get<std::string>() : "";
  } else if (tokenizer_internal::OptionalField(*model_json, "merges") == nullptr) {
    type = "";
  }
  if (type != "BPE") {
    return absl::InvalidArgumentError(absl::StrCat("unsupported model type '", type,
                                                   "' (only BPE; Unigram, WordPiece and "
                                                   "WordLevel are not supported)"));
  }
  ASSIGN_OR_RETURN(auto bpe, tokenizer_internal::BpeModel::FromJson(*model_json));
  const int32_t vocab_count = bpe->VocabCount();
  pipeline->model = std::move(bpe);
  if (const Json* n = tokenizer_internal::OptionalField(root, "normalizer")) {
    ASSIGN_OR_RETURN(pipeline->normalizer, tokenizer_internal::NormalizerFromJson(*n));
  }
  if (const Json* pt = tokenizer_internal::OptionalField(root, "pre_tokenizer")) {
    ASSIGN_OR_RETURN(pipeline->pre_tokenizer, tokenizer_internal::PreTokenizerFromJson(*pt));
  }
  if (const Json* d = tokenizer_internal::OptionalField(root, "decoder")) {
    ASSIGN_OR_RETURN(pipeline->decoder, tokenizer_internal::DecoderFromJson(*d));
  }
  if (const Json* pp = tokenizer_internal::OptionalField(root, "post_processor")) {
    RETURN_IF_ERROR(ParsePostProcessor(*pp, &pipeline->post_processor));
  }
  std::vector<AddedToken> added;
  if (const Json* list = tokenizer_internal::OptionalField(root, "added_tokens")) {
    if (!list->is_array()) {
      return tokenizer_internal::FieldError("tokenizer.json", "added_tokens", "is not a list");
    }
    for (const Json& item : *list) {
      ASSIGN_OR_RETURN(AddedToken token, ParseAddedToken(item, "tokenizer.json added token"));
      added.push_back(std::move(token));
    }
  }
  pipeline->added.Build(added, *pipeline->model, vocab_count, pipeline->normalizer.get(),
                        /*use_given_ids=*/false);
  TemplateSpecials(pipeline->post_processor, &pipeline->bos_id, &pipeline->eos_id);
  Pipeline* p = pipeline.get();
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer(std::move(pipeline)));
  RETURN_IF_ERROR(ApplyConfig(config, *tokenizer, p));
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromSentencePieceModel(
    std::string_view model_proto, std::string_view tokenizer_config_json,
    std::string_view generation_config_json) {
  using tokenizer_internal::SentencePieceProto;
  ASSIGN_OR_RETURN(SentencePieceProto proto,
                   tokenizer_internal::ParseSentencePieceModel(model_proto));
  ASSIGN_OR_RETURN(SpecialTokenConfig config,
                   ParseConfigs(tokenizer_config_json, generation_config_json));
  if (proto.treat_whitespace_as_suffix) {
    return absl::InvalidArgumentError(
        "tokenizer.model: treat_whitespace_as_suffix is not supported");
  }
  if (proto.precompiled_charsmap_size > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.model: the normalizer '", proto.normalizer_name,
                     "' uses a precompiled character map (e.g. NFKC), which is not supported"));
  }
  ASSIGN_OR_RETURN(auto model, tokenizer_internal::SentencePieceBpeModel::Create(proto));
  auto pipeline = std::make_unique<Pipeline>();
  pipeline->kind = "sentencepiece_bpe";
  pipeline->normalizer = tokenizer_internal::MakeSentencePieceNormalizer(
      proto.add_dummy_prefix, proto.remove_extra_whitespaces, proto.escape_whitespaces);
  pipeline->decoder = tokenizer_internal::MakeSentencePieceDecoder(proto.add_dummy_prefix);
  // Special tokens: as tokenizer_config.json lists them, else the control
  // and unknown pieces (as `transformers`' converter makes them).
  std::vector<AddedToken> added;
  if (config.added_tokens_decoder.has_value()) {
    added = *config.added_tokens_decoder;
  } else {
    for (size_t i = 0; i < proto.pieces.size(); ++i) {
      const int32_t type = proto.pieces[i].type;
      if (type == SentencePieceProto::kControl || type == SentencePieceProto::kUnknown) {
        AddedToken token;
        token.content = proto.pieces[i].piece;
        token.id = static_cast<int32_t>(i);
        token.special = true;
        token.normalized = false;
        added.push_back(std::move(token));
      }
    }
  }
  const int32_t piece_count = static_cast<int32_t>(proto.pieces.size());
  pipeline->model = std::move(model);
  pipeline->added.Build(added, *pipeline->model, piece_count, pipeline->normalizer.get(),
                        /*use_given_ids=*/true);
  auto control_piece = [&](int32_t id) {
    return id >= 0 && id < piece_count && proto.pieces[id].type == SentencePieceProto::kControl
               ? id
               : -1;
  };
  pipeline->bos_id = control_piece(proto.bos_id);
  pipeline->eos_id = control_piece(proto.eos_id);
  // Llama's defaults: BOS added, EOS not.
  SpecialTokenConfig effective = config;
  if (!effective.add_bos.has_value()) effective.add_bos = pipeline->bos_id >= 0;
  if (!effective.add_eos.has_value()) effective.add_eos = false;
  Pipeline* p = pipeline.get();
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer(std::move(pipeline)));
  RETURN_IF_ERROR(ApplyConfig(effective, *tokenizer, p));
  return tokenizer;
}

}  // namespace quantd
