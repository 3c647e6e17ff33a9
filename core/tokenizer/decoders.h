// Decoders of Hugging Face tokenizer.json files: Sequence, Replace (literal),
// ByteFallback, Fuse, Strip, ByteLevel, Metaspace.
#ifndef QUANTD_CORE_TOKENIZER_DECODERS_H_
#define QUANTD_CORE_TOKENIZER_DECODERS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/tokenizer/components.h"
#include "core/tokenizer/json_fields.h"

namespace quantd {
namespace tokenizer_internal {

// Builds the decoder that `config` (the "decoder" object of a tokenizer.json)
// describes. INVALID_ARGUMENT for unsupported types and malformed fields.
absl::StatusOr<std::unique_ptr<Decoder>> DecoderFromJson(const Json& config);

// The decoder Hugging Face's converter gives SentencePiece BPE models:
// Replace("▁", " "), ByteFallback, Fuse, then Strip(" ", 1, 0) when the model
// adds a dummy prefix.
std::unique_ptr<Decoder> MakeSentencePieceDecoder(bool strip_leading_space);

}  // namespace tokenizer_internal
}  // namespace quantd

#endif  // QUANTD_CORE_TOKENIZER_DECODERS_H_
