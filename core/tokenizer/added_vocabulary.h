// Added tokens (special or not) and how Hugging Face `tokenizers` splits them
// out of the text before the model runs (AddedVocabulary): leftmost-longest
// matching, first against the raw text for tokens with normalized=false,
// then against the normalized rest for tokens with normalized=true, honouring
// single_word, lstrip and rstrip.
#ifndef QUANTD_CORE_TOKENIZER_ADDED_VOCABULARY_H_
#define QUANTD_CORE_TOKENIZER_ADDED_VOCABULARY_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "core/tokenizer/components.h"

namespace quantd {
namespace tokenizer_internal {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
  // The text Decode hands to the decoder for this id: `content`, normalized
  // when `normalized` and the tokenizer has a normalizer (as
  // `tokenizers` 0.23's id_to_token returns it).
  std::string decoded;
};

class AddedVocabulary {
 public:
  // Adds `tokens` as AddedVocabulary::add_tokens does. A token whose content
  // is already added or in `model` keeps that id; others take their own id
  // when `use_given_ids` (tokenizer_config.json's added_tokens_decoder), else
  // the next id after the model's `model_vocab_count` tokens and earlier
  // added ones (`tokenizers` only checks the ids written in tokenizer.json).
  // Patterns of normalized tokens are normalized with `normalizer` (may be
  // null).
  void Build(const std::vector<AddedToken>& tokens, const Model& model, int32_t model_vocab_count,
             const Normalizer* normalizer, bool use_given_ids);

  // Splits `text` (valid UTF-8) into added tokens (Piece::id >= 0) and the
  // normalized text between them, dropping empty pieces.
  void ExtractAndNormalize(std::string_view text, const Normalizer* normalizer,
                           std::vector<Piece>* out) const;

  // The added token with id `id`, or nullptr.
  const AddedToken* FindById(int32_t id) const;
  // The id of the added token `content`, or -1.
  int32_t FindByContent(std::string_view content) const;
  bool IsSpecial(std::string_view content) const {
    return special_contents_.contains(AbslView(content));
  }
  // One more than the largest added id (0 when none).
  int32_t IdLimit() const { return id_limit_; }

 private:
  // A byte trie for leftmost-longest matching.
  class Trie {
   public:
    // A repeated pattern keeps its first id.
    void Add(std::string_view pattern, int32_t token_id);
    // The leftmost, then longest, match at or after `from`: sets *begin,
    // *end and returns the token id, or -1 when none.
    int32_t Find(std::string_view text, size_t from, size_t* begin, size_t* end) const;

   private:
    struct Node {
      std::vector<std::pair<uint8_t, int32_t>> children;  // Sorted by byte.
      int32_t token_id = -1;
    };
    int32_t Child(int32_t node, uint8_t byte) const;
    std::vector<Node> nodes_ = {Node()};
    bool first_byte_[256] = {};
  };

  struct Match {
    int32_t id;  // -1 for the text between tokens.
    size_t begin;
    size_t end;
  };
  // AddedVocabulary::find_matches.
  std::vector<Match> FindMatches(std::string_view text, const Trie& trie) const;
  // Appends the non-empty pieces of `piece` split by `trie`.
  void SplitInto(const Piece& piece, const Trie& trie, std::vector<Piece>* out) const;

  absl::flat_hash_map<int32_t, AddedToken> by_id_;
  absl::flat_hash_map<std::string, int32_t> by_content_;
  absl::flat_hash_set<std::string> special_contents_;
  Trie raw_trie_;
  Trie normalized_trie_;
  int32_t id_limit_ = 0;
};

}  // namespace tokenizer_internal
}  // namespace quantd

#endif  // QUANTD_CORE_TOKENIZER_ADDED_VOCABULARY_H_
