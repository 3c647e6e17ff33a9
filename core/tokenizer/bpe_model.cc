#include "core/tokenizer/bpe_model.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <queue>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/unicode.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace tokenizer_internal {
namespace {

constexpr std::string_view kWhere = "model BPE";

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const Json& model) {
  std::unique_ptr<BpeModel> bpe(new BpeModel());
  if (const Json* dropout = OptionalField(model, "dropout")) {
    if (!dropout->is_number()) return FieldError(kWhere, "dropout", "is not a number");
    if (dropout->get<double>() > 0.0) {
      return absl::InvalidArgumentError("model BPE: dropout > 0 is not supported");
    }
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const Json* affix = OptionalField(model, key)) {
      if (!affix->is_string()) return FieldError(kWhere, key, "is not a string");
      if (!affix->get<std::string>().empty()) {
        return absl::InvalidArgumentError(absl::StrCat("model BPE: ", key, " is not supported"));
      }
    }
  }
  ASSIGN_OR_RETURN(bpe->byte_fallback_, BoolOr(model, "byte_fallback", false, kWhere));
  ASSIGN_OR_RETURN(bpe->fuse_unk_, BoolOr(model, "fuse_unk", false, kWhere));
  ASSIGN_OR_RETURN(bpe->ignore_merges_, BoolOr(model, "ignore_merges", false, kWhere));
  ASSIGN_OR_RETURN(const Json* vocab, RequiredField(model, "vocab", kWhere));
  RETURN_IF_ERROR(bpe->LoadVocab(*vocab));
  ASSIGN_OR_RETURN(const Json* merges, RequiredField(model, "merges", kWhere));
  RETURN_IF_ERROR(bpe->LoadMerges(*merges));
  if (const Json* unk = OptionalField(model, "unk_token")) {
    if (!unk->is_string()) return FieldError(kWhere, "unk_token", "is not a string");
    bpe->unk_id_ = bpe->TokenToId(unk->get<std::string>());
    if (bpe->unk_id_ < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model BPE: unk_token '", unk->get<std::string>(), "' is not in the vocabulary"));
    }
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    bpe->byte_ids_[b] = bpe->TokenToId(name);
  }
  return bpe;
}

absl::Status BpeModel::LoadVocab(const Json& vocab) {
  if (!vocab.is_object()) return FieldError(kWhere, "vocab", "is not an object");
  vocab_.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() >= std::numeric_limits<int32_t>::max()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model BPE: vocab id of '", it.key(), "' is not a valid id"));
    }
    const int32_t id = static_cast<int32_t>(it.value().get<int64_t>());
    vocab_[it.key()] = id;
    tokens_[id] = it.key();
    id_limit_ = std::max(id_limit_, id + 1);
  }
  return absl::OkStatus();
}

absl::Status BpeModel::LoadMerges(const Json& merges) {
  if (!merges.is_array()) return FieldError(kWhere, "merges", "is not a list");
  merges_.reserve(merges.size());
  int32_t rank = 0;
  for (const Json& merge : merges) {
    std::string left, right;
    if (merge.is_string()) {
      const std::string& line = merge.get_ref<const std::string&>();
      const size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("model BPE: merge ", rank + 1, " '", line, "' is not two tokens"));
      }
      left = line.substr(0, space);
      right = line.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("model BPE: merge ", rank + 1, " is neither \"a b\" nor [a, b]"));
    }
    const int32_t left_id = TokenToId(left), right_id = TokenToId(right);
    const std::string merged = left + right;
    const int32_t merged_id = TokenToId(merged);
    const std::string* missing = left_id < 0 ? &left : right_id < 0 ? &right : &merged;
    if (left_id < 0 || right_id < 0 || merged_id < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model BPE: merge ", rank + 1, " uses '", *missing, "', which is not in the vocabulary"));
    }
    // As a Rust HashMap collected from the list: a repeated pair keeps the
    // later rank.
    merges_[PairKey(left_id, right_id)] = {rank, merged_id};
    ++rank;
  }
  return absl::OkStatus();
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  auto it = tokens_.find(id);
  return it == tokens_.end() ? nullptr : &it->second;
}

int32_t BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(AbslView(token));
  return it == vocab_.end() ? -1 : it->second;
}

void BpeModel::Tokenize(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (int32_t id = TokenToId(word); id >= 0) {
      ids->push_back(id);
      return;
    }
  }
  // BPE::merge_word: one symbol per character, else its bytes' "<0xNN>"
  // tokens, else the unknown token (consecutive ones fused if fuse_unk).
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  bool unk_pending = false;
  for (size_t pos = 0; pos < word.size();) {
    const size_t len =
        std::min(Utf8Length(static_cast<unsigned char>(word[pos])), word.size() - pos);
    const std::string_view ch = word.substr(pos, len);
    pos += len;
    if (int32_t id = TokenToId(ch); id >= 0) {
      if (unk_pending) symbols.push_back(unk_id_);
      unk_pending = false;
      symbols.push_back(id);
      continue;
    }
    if (byte_fallback_ && std::all_of(ch.begin(), ch.end(), [this](char c) {
          return byte_ids_[static_cast<unsigned char>(c)] >= 0;
        })) {
      // As in `tokenizers`, a pending unknown token is not flushed first.
      for (char c : ch) symbols.push_back(byte_ids_[static_cast<unsigned char>(c)]);
      continue;
    }
    if (unk_id_ < 0) continue;  // No unknown token: the character is dropped.
    if (unk_pending && !fuse_unk_) symbols.push_back(unk_id_);
    unk_pending = true;
  }
  if (unk_pending) symbols.push_back(unk_id_);
  MergeAll(&symbols);
  ids->insert(ids->end(), symbols.begin(), symbols.end());
}

void BpeModel::MergeAll(std::vector<int32_t>* ids) const {
  const int32_t n = static_cast<int32_t>(ids->size());
  if (n < 2) return;
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  std::vector<Symbol> symbols(n);
  for (int32_t i = 0; i < n; ++i) symbols[i] = {(*ids)[i], i - 1, i + 1 < n ? i + 1 : -1, true};
  struct Merge {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    // std::priority_queue pops the largest: make that the lowest rank, then
    // the leftmost position.
    bool operator<(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Merge> storage;
  storage.reserve(n);
  std::priority_queue<Merge> queue(std::less<Merge>(), std::move(storage));
  auto find = [this](int32_t left, int32_t right) { return merges_.find(PairKey(left, right)); };
  for (int32_t i = 0; i + 1 < n; ++i) {
    auto it = find(symbols[i].id, symbols[i + 1].id);
    if (it != merges_.end()) queue.push({it->second.first, i, it->second.second});
  }
  while (!queue.empty()) {
    const Merge top = queue.top();
    queue.pop();
    Symbol& cur = symbols[top.pos];
    if (!cur.alive || cur.next < 0) continue;
    Symbol& right = symbols[cur.next];
    // A stale entry: the pair there no longer makes this token (`tokenizers`
    // compares the merged id only, and so do we).
    auto it = find(cur.id, right.id);
    if (it == merges_.end() || it->second.second != top.new_id) continue;
    cur.id = top.new_id;
    right.alive = false;
    cur.next = right.next;
    if (cur.next >= 0) symbols[cur.next].prev = top.pos;
    if (cur.prev >= 0) {
      auto left = find(symbols[cur.prev].id, cur.id);
      if (left != merges_.end()) queue.push({left->second.first, cur.prev, left->second.second});
    }
    if (cur.next >= 0) {
      auto next = find(cur.id, symbols[cur.next].id);
      if (next != merges_.end()) queue.push({next->second.first, top.pos, next->second.second});
    }
  }
  ids->clear();
  for (const Symbol& s : symbols) {
    if (s.alive) ids->push_back(s.id);
  }
}

}  // namespace tokenizer_internal
}  // namespace quantd
