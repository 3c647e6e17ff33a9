// A minimal reader of sentencepiece's serialized ModelProto
// (tokenizer.model): the pieces with their scores and types, and the two
// normalizer flags llama.cpp reads. No sentencepiece library; unknown fields
// are skipped by their wire type.
#ifndef QUANTD_CORE_GGUF_SPM_MODEL_H_
#define QUANTD_CORE_GGUF_SPM_MODEL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace quantd {

// One piece of a SentencePiece model.
struct SpmPiece {
  std::string piece;
  float score = 0.0f;
  int32_t type = 1;  // sentencepiece's Type enum: NORMAL 1 ... BYTE 6
};

struct SpmModel {
  std::vector<SpmPiece> pieces;
  std::optional<bool> add_dummy_prefix;
  std::optional<bool> remove_extra_whitespaces;
};

// Parses a serialized sentencepiece ModelProto (tokenizer.model). Only the
// fields llama.cpp uses are kept; unknown fields are skipped.
// INVALID_ARGUMENT for truncated or malformed input, an empty model, or a
// piece type outside 1..6.
absl::StatusOr<SpmModel> ParseSentencePieceModel(std::string_view bytes);

}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_SPM_MODEL_H_
