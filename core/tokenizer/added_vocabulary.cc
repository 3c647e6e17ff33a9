#include "core/tokenizer/added_vocabulary.h"

#include <algorithm>

#include "core/tokenizer/unicode.h"

namespace quantd {
namespace tokenizer_internal {
namespace {

// The code point that ends text[0..end) (valid UTF-8), and where it begins.
char32_t LastChar(std::string_view text, size_t end, size_t* begin) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  *begin = start;
  size_t pos = start;
  char32_t cp = 0xFFFD;
  DecodeUtf8(text, &pos, &cp);
  return cp;
}

// Rust regex `\w$` on text[0..end) and `^\w` on text[begin..].
bool EndsWithWord(std::string_view text, size_t end) {
  size_t begin;
  return end > 0 && IsWordChar(LastChar(text, end, &begin));
}
bool StartsWithWord(std::string_view text, size_t begin) {
  char32_t cp;
  return begin < text.size() && DecodeUtf8(text, &begin, &cp) && IsWordChar(cp);
}

// Where the whitespace that ends text[0..end) begins (`\s*$`).
size_t TrailingSpaceBegin(std::string_view text, size_t end) {
  while (end > 0) {
    size_t begin;
    if (!IsSpace(LastChar(text, end, &begin))) break;
    end = begin;
  }
  return end;
}

// Where the whitespace that starts text[begin..] ends (`^\s*`).
size_t LeadingSpaceEnd(std::string_view text, size_t begin) {
  while (begin < text.size()) {
    size_t pos = begin;
    char32_t cp;
    if (!DecodeUtf8(text, &pos, &cp) || !IsSpace(cp)) break;
    begin = pos;
  }
  return begin;
}

}  // namespace

void AddedVocabulary::Trie::Add(std::string_view pattern, int32_t token_id) {
  if (pattern.empty()) return;
  int32_t node = 0;
  for (char c : pattern) {
    const uint8_t byte = static_cast<uint8_t>(c);
    int32_t next = Child(node, byte);
    if (next < 0) {
      next = static_cast<int32_t>(nodes_.size());
      nodes_.emplace_back();
      auto& children = nodes_[node].children;
      children.insert(
          std::lower_bound(children.begin(), children.end(), std::make_pair(byte, int32_t{-1})),
          {byte, next});
    }
    node = next;
  }
  if (nodes_[node].token_id < 0) nodes_[node].token_id = token_id;
  first_byte_[static_cast<uint8_t>(pattern[0])] = true;
}

int32_t AddedVocabulary::Trie::Child(int32_t node, uint8_t byte) const {
  const auto& children = nodes_[node].children;
  auto it = std::lower_bound(children.begin(), children.end(), std::make_pair(byte, int32_t{-1}));
  return it != children.end() && it->first == byte ? it->second : -1;
}

int32_t AddedVocabulary::Trie::Find(std::string_view text, size_t from, size_t* begin,
                                    size_t* end) const {
  for (size_t start = from; start < text.size(); ++start) {
    if (!first_byte_[static_cast<uint8_t>(text[start])]) continue;
    int32_t node = 0, found = -1;
    for (size_t i = start; i < text.size(); ++i) {
      node = Child(node, static_cast<uint8_t>(text[i]));
      if (node < 0) break;
      if (nodes_[node].token_id >= 0) {
        found = nodes_[node].token_id;
        *end = i + 1;
      }
    }
    if (found >= 0) {
      *begin = start;
      return found;
    }
  }
  return -1;
}

void AddedVocabulary::Build(const std::vector<AddedToken>& tokens, const Model& model,
                            int32_t model_vocab_count, const Normalizer* normalizer,
                            bool use_given_ids) {
  // AddedVocabulary::add_tokens: specials are listed first.
  std::vector<const AddedToken*> specials, others;
  for (const AddedToken& token : tokens) {
    if (token.special && !token.content.empty() && special_contents_.insert(token.content).second) {
      specials.push_back(&token);
    }
  }
  int32_t max_added = -1;
  for (const AddedToken& token : tokens) {
    if (token.content.empty()) continue;
    int32_t id = FindByContent(token.content);
    if (id < 0) id = model.TokenToId(token.content);
    if (id < 0 && use_given_ids && token.id >= 0) id = token.id;
    if (id < 0) {
      id = max_added < 0                                                ? model_vocab_count
           : (max_added >= model_vocab_count || model_vocab_count == 0) ? max_added + 1
                                                                        : model_vocab_count;
    }
    by_content_[token.content] = id;
    AddedToken stored = token;
    stored.id = id;
    stored.decoded = token.normalized && normalizer != nullptr
                         ? normalizer->Normalize(token.content)
                         : token.content;
    by_id_[id] = stored;
    max_added = std::max(max_added, id);
    id_limit_ = std::max(id_limit_, id + 1);
    if (!special_contents_.contains(token.content)) others.push_back(&token);
  }
  // refresh_added_tokens: one trie for the raw text, one for the normalized.
  for (const auto* list : {&specials, &others}) {
    for (const AddedToken* token : *list) {
      const int32_t id = by_content_[token->content];
      if (!token->normalized) {
        raw_trie_.Add(token->content, id);
      } else {
        normalized_trie_.Add(
            normalizer != nullptr ? normalizer->Normalize(token->content) : token->content, id);
      }
    }
  }
}

const AddedToken* AddedVocabulary::FindById(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

int32_t AddedVocabulary::FindByContent(std::string_view content) const {
  auto it = by_content_.find(AbslView(content));
  return it == by_content_.end() ? -1 : it->second;
}

std::vector<AddedVocabulary::Match> AddedVocabulary::FindMatches(std::string_view text,
                                                                 const Trie& trie) const {
  std::vector<Match> matches;
  size_t start_offset = 0, from = 0, begin = 0, end = 0;
  for (int32_t id; (id = trie.Find(text, from, &begin, &end)) >= 0;) {
    from = end;  // The search goes on after the raw match, whatever is kept.
    const AddedToken& token = by_id_.at(id);
    size_t start = begin, stop = end;
    if (token.single_word) {
      const bool start_space = start == 0 || !EndsWithWord(text, start);
      const bool stop_space = stop == text.size() || !StartsWithWord(text, stop);
      if (!start_space || !stop_space) continue;
    }
    if (token.lstrip) start = std::max(TrailingSpaceBegin(text, start), start_offset);
    if (token.rstrip) stop = LeadingSpaceEnd(text, stop);
    if (start_offset < start) matches.push_back({-1, start_offset, start});
    matches.push_back({id, start, stop});
    start_offset = stop;
  }
  if (start_offset < text.size()) matches.push_back({-1, start_offset, text.size()});
  return matches;
}

void AddedVocabulary::SplitInto(const Piece& piece, const Trie& trie,
                                std::vector<Piece>* out) const {
  for (const Match& m : FindMatches(piece.text, trie)) {
    if (m.end <= m.begin || m.end > piece.text.size()) continue;
    out->push_back(
        Piece{piece.text.substr(m.begin, m.end - m.begin), m.id, piece.at_start && m.begin == 0});
  }
}

void AddedVocabulary::ExtractAndNormalize(std::string_view text, const Normalizer* normalizer,
                                          std::vector<Piece>* out) const {
  std::vector<Piece> raw;
  SplitInto(Piece{std::string(text), -1, true}, raw_trie_, &raw);
  for (Piece& piece : raw) {
    if (piece.id >= 0) {
      out->push_back(std::move(piece));
      continue;
    }
    if (normalizer != nullptr) piece.text = normalizer->Normalize(piece.text);
    SplitInto(piece, normalized_trie_, out);
  }
}

}  // namespace tokenizer_internal
}  // namespace quantd
