// The BPE model of Hugging Face tokenizer.json files: vocabulary, merges by
// rank, byte fallback, unknown-token fusing and ignore_merges, with the
// exact merge order of `tokenizers` (lowest rank first, leftmost on ties).
#ifndef QUANTD_CORE_TOKENIZER_BPE_MODEL_H_
#define QUANTD_CORE_TOKENIZER_BPE_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "core/tokenizer/components.h"
#include "core/tokenizer/json_fields.h"

namespace quantd {
namespace tokenizer_internal {

class BpeModel : public Model {
 public:
  // Builds the model from the "model" object of a tokenizer.json (type
  // "BPE"). Merges may be "a b" strings or ["a", "b"] pairs. INVALID_ARGUMENT
  // when fields are missing or mistyped, when a merge names a token (or
  // makes one) outside the vocabulary, when unk_token is not in it, and for
  // what is not supported: dropout > 0, continuing_subword_prefix,
  // end_of_word_suffix.
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const Json& model);

  void Tokenize(std::string_view word, std::vector<int32_t>* ids) const override;
  const std::string* IdToToken(int32_t id) const override;
  int32_t TokenToId(std::string_view token) const override;
  int32_t IdLimit() const override { return id_limit_; }
  // The number of vocabulary entries (`tokenizers`' get_vocab_size).
  int32_t VocabCount() const { return static_cast<int32_t>(vocab_.size()); }

 private:
  BpeModel() = default;
  absl::Status LoadVocab(const Json& vocab);
  absl::Status LoadMerges(const Json& merges);
  // Merges the symbols `ids` in place as Word::merge_all does.
  void MergeAll(std::vector<int32_t>* ids) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  absl::flat_hash_map<int32_t, std::string> tokens_;
  // (left id << 32 | right id) -> (rank, merged id).
  absl::flat_hash_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  int32_t byte_ids_[256];  // "<0xNN>" ids, -1 when absent.
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  int32_t id_limit_ = 0;
};

}  // namespace tokenizer_internal
}  // namespace quantd

#endif  // QUANTD_CORE_TOKENIZER_BPE_MODEL_H_
