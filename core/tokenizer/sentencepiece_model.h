// SentencePiece tokenizer.model files: a reader for the ModelProto protobuf
// (written here, without libprotobuf) and the BPE model as sentencepiece's
// bpe::Model encodes (highest-scoring merged piece first, leftmost on ties;
// unknown pieces to byte pieces when byte_fallback).
#ifndef QUANTD_CORE_TOKENIZER_SENTENCEPIECE_MODEL_H_
#define QUANTD_CORE_TOKENIZER_SENTENCEPIECE_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "core/tokenizer/components.h"

namespace quantd {
namespace tokenizer_internal {

// The fields of sentencepiece_model.proto that encoding depends on, with the
// proto's defaults.
struct SentencePieceProto {
  enum PieceType : int32_t {
    kNormal = 1,
    kUnknown = 2,
    kControl = 3,
    kUserDefined = 4,
    kUnused = 5,
    kByte = 6,
  };
  struct Piece {
    std::string piece;
    float score = 0;
    int32_t type = kNormal;
  };
  enum ModelType : int32_t { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };

  std::vector<Piece> pieces;
  // trainer_spec
  int32_t model_type = kUnigram;
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  int32_t unk_id = 0;
  int32_t bos_id = 1;
  int32_t eos_id = 2;
  int32_t pad_id = -1;
  // normalizer_spec
  std::string normalizer_name;
  size_t precompiled_charsmap_size = 0;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

// Parses a serialized ModelProto. INVALID_ARGUMENT on malformed protobuf
// (truncated, bad wire types, lengths past the end) or no pieces.
absl::StatusOr<SentencePieceProto> ParseSentencePieceModel(std::string_view bytes);

class SentencePieceBpeModel : public Model {
 public:
  // INVALID_ARGUMENT when the model is not BPE (Unigram, word and char models
  // are not supported), when a piece is empty or repeated, when there is no
  // (or more than one) unknown piece, or when byte_fallback lacks byte pieces.
  static absl::StatusOr<std::unique_ptr<SentencePieceBpeModel>> Create(
      const SentencePieceProto& proto);

  void Tokenize(std::string_view word, std::vector<int32_t>* ids) const override;
  const std::string* IdToToken(int32_t id) const override;
  int32_t TokenToId(std::string_view token) const override;
  int32_t IdLimit() const override { return static_cast<int32_t>(pieces_.size()); }

 private:
  SentencePieceBpeModel() = default;
  // The id of `piece` as sentencepiece's PieceToId: reserved pieces (control,
  // unknown, byte) first, then the others, else the unknown id.
  int32_t PieceToId(std::string_view piece) const;
  // Longest user-defined piece at the start of `text`, or 0.
  size_t MatchUserDefined(std::string_view text) const;
  // Appends the ids of `piece`, splitting unused pieces back into the two
  // pieces they were merged from (`rev`) and unknown ones into byte pieces.
  void Resegment(std::string_view piece,
                 const absl::flat_hash_map<std::string, std::pair<std::string, std::string>>& rev,
                 std::vector<int32_t>* ids) const;

  std::vector<SentencePieceProto::Piece> pieces_;
  absl::flat_hash_map<std::string, int32_t> normal_;    // Normal, user-defined, unused.
  absl::flat_hash_map<std::string, int32_t> reserved_;  // Control, unknown, byte.
  std::vector<std::string> user_defined_;
  int32_t unk_id_ = -1;
  int32_t byte_ids_[256];
  bool byte_fallback_ = false;
};

}  // namespace tokenizer_internal
}  // namespace quantd

#endif  // QUANTD_CORE_TOKENIZER_SENTENCEPIECE_MODEL_H_
