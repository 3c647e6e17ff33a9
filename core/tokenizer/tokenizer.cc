#include "core/tokenizer/tokenizer.h"

#include <algorithm>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/tokenizer/pipeline.h"
#include "core/tokenizer/unicode.h"
#include "core/util/fs.h"
#include "core/util/status_macros.h"

namespace quantd {

using tokenizer_internal::AbslView;
using tokenizer_internal::Piece;
using tokenizer_internal::Pipeline;

namespace {

constexpr uint64_t kMaxTokenizerFileBytes = uint64_t{1} << 30;
constexpr uint64_t kMaxConfigFileBytes = uint64_t{64} << 20;

// Reads `dir`/`name` when it exists; "" when it does not.
absl::StatusOr<std::string> ReadOptional(const std::filesystem::path& dir, const char* name) {
  std::error_code ec;
  if (!std::filesystem::exists(dir / name, ec)) return std::string();
  return ReadFileToString(dir / name, kMaxConfigFileBytes);
}

// Words repeat: one call's words are encoded once each (up to a bound).
class WordCache {
 public:
  void Encode(const tokenizer_internal::Model& model, std::string_view word,
              std::vector<int32_t>* ids) {
    if (word.size() > kMaxWordBytes) {
      model.Tokenize(word, ids);
      return;
    }
    if (auto it = cache_.find(AbslView(word)); it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
    const size_t first = ids->size();
    model.Tokenize(word, ids);
    if (cache_.size() < kMaxEntries) {
      cache_.emplace(std::string(word), std::vector<int32_t>(ids->begin() + first, ids->end()));
    }
  }

 private:
  static constexpr size_t kMaxWordBytes = 256;
  static constexpr size_t kMaxEntries = 1 << 18;
  absl::flat_hash_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Pipeline> pipeline) : pipeline_(std::move(pipeline)) {}

Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromModelDir(
    const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("model folder ", dir.string(), " does not exist"));
  }
  ASSIGN_OR_RETURN(std::string config, ReadOptional(dir, "tokenizer_config.json"));
  ASSIGN_OR_RETURN(std::string generation, ReadOptional(dir, "generation_config.json"));
  if (std::filesystem::exists(dir / "tokenizer.json", ec)) {
    ASSIGN_OR_RETURN(std::string json,
                     ReadFileToString(dir / "tokenizer.json", kMaxTokenizerFileBytes));
    auto tokenizer = FromTokenizerJson(json, config, generation);
    if (!tokenizer.ok()) {
      return absl::Status(tokenizer.status().code(),
                          absl::StrCat((dir / "tokenizer.json").string(), ": ",
                                       std::string(tokenizer.status().message())));
    }
    return tokenizer;
  }
  if (std::filesystem::exists(dir / "tokenizer.model", ec)) {
    ASSIGN_OR_RETURN(std::string proto,
                     ReadFileToString(dir / "tokenizer.model", kMaxTokenizerFileBytes));
    auto tokenizer = FromSentencePieceModel(proto, config, generation);
    if (!tokenizer.ok()) {
      return absl::Status(tokenizer.status().code(),
                          absl::StrCat((dir / "tokenizer.model").string(), ": ",
                                       std::string(tokenizer.status().message())));
    }
    return tokenizer;
  }
  return absl::NotFoundError(
      absl::StrCat("no tokenizer.json or tokenizer.model in ", dir.string()));
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text,
                                                       bool add_special_tokens) const {
  if (!tokenizer_internal::IsValidUtf8(text)) {
    return absl::InvalidArgumentError("text to encode is not valid UTF-8");
  }
  const Pipeline& p = *pipeline_;
  std::vector<Piece> pieces;
  p.added.ExtractAndNormalize(text, p.normalizer.get(), &pieces);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  WordCache cache;
  std::vector<Piece> words;
  for (Piece& piece : pieces) {
    if (piece.id >= 0) {
      ids.push_back(piece.id);
      continue;
    }
    words.clear();
    if (p.pre_tokenizer != nullptr) {
      p.pre_tokenizer->PreTokenize(std::move(piece), &words);
    } else {
      words.push_back(std::move(piece));
    }
    for (const Piece& word : words) cache.Encode(*p.model, word.text, &ids);
  }
  if (!add_special_tokens) return ids;
  for (const tokenizer_internal::Template& t : p.post_processor) {
    std::vector<int32_t> wrapped;
    wrapped.reserve(ids.size() + 4);
    for (const tokenizer_internal::TemplateItem& item : t) {
      const std::vector<int32_t>& part = item.is_sequence ? ids : item.ids;
      wrapped.insert(wrapped.end(), part.begin(), part.end());
    }
    ids = std::move(wrapped);
  }
  return ids;
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids, bool skip_special) const {
  const Pipeline& p = *pipeline_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* token = nullptr;
    if (const auto* added = p.added.FindById(id)) {
      if (skip_special && p.added.IsSpecial(added->content)) continue;
      token = &added->decoded;
    } else {
      token = p.model->IdToToken(id);
      if (token == nullptr || (skip_special && p.added.IsSpecial(*token))) continue;
    }
    tokens.push_back(*token);
  }
  if (p.decoder == nullptr) return absl::StrJoin(tokens, " ");
  p.decoder->DecodeChain(&tokens);
  return absl::StrJoin(tokens, "");
}

int32_t Tokenizer::bos_id() const { return pipeline_->bos_id; }
int32_t Tokenizer::eos_id() const { return pipeline_->eos_id; }
std::vector<int32_t> Tokenizer::eos_ids() const { return pipeline_->eos_ids; }
int32_t Tokenizer::vocab_size() const {
  return std::max(pipeline_->model->IdLimit(), pipeline_->added.IdLimit());
}
std::string_view Tokenizer::kind() const { return pipeline_->kind; }

int32_t Tokenizer::TokenToId(std::string_view token) const {
  const int32_t id = pipeline_->added.FindByContent(token);
  return id >= 0 ? id : pipeline_->model->TokenToId(token);
}

}  // namespace quantd
