// Perplexity protocols: how a tokenized text is cut into chunks and which
// positions of each chunk are scored. Published perplexities disagree
// mostly because of these choices, so every result stores them.
//
//  - "llama" (llama.cpp's llama-perplexity): BOS + the text's tokens, cut
//    into non-overlapping chunks of `context` (default 512) tokens whose
//    first token is replaced by BOS; the first half of each chunk is
//    context only: positions [context/2, context-1) predict the next token
//    and are scored (255 tokens a chunk at 512).
//  - "gptq" (the GPTQ/AWQ papers' wikitext2 evaluation): BOS (as the HF
//    tokenizer adds it) + the text's tokens, non-overlapping chunks of
//    `context` (default 2048) tokens, every position but the last scored.
// A trailing partial chunk is dropped in both.
#ifndef QUANTD_CORE_EVAL_PROTOCOL_H_
#define QUANTD_CORE_EVAL_PROTOCOL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "quantd/v1/quantd.pb.h"

namespace quantd {

struct ChunkPlan {
  std::string protocol;  // "llama" or "gptq"
  int context = 0;
  // Positions [scored_from, context - 1) of a chunk are scored.
  int scored_from = 0;
  bool add_bos = false;
  // True for llama: the first token of every chunk becomes BOS.
  bool bos_every_chunk = false;
  int32_t bos_id = -1;
  // 0: every whole chunk of the text.
  int64_t max_tokens = 0;

  int scored_per_chunk() const { return context - 1 - scored_from; }
};

// The plan a spec asks for. `tokenizer_bos` is the tokenizer's BOS id (-1:
// none); `max_context` the smallest max_context of the models. Errors
// (INVALID_ARGUMENT): an unknown protocol, a context below 4 or above
// max_context, add_bos set without a BOS token, negative max_tokens.
absl::StatusOr<ChunkPlan> MakeChunkPlan(const v1::EvaluateSpec& spec, int32_t tokenizer_bos,
                                        int max_context);

// The default context of a protocol name ("" is llama): 512 or 2048.
int DefaultContext(const std::string& protocol);

// Cuts `text_tokens` (the text encoded without special tokens) into the
// plan's chunks, at most max_tokens / context of them when max_tokens > 0.
// INVALID_ARGUMENT when not even one chunk fits (the message gives the
// counts).
absl::StatusOr<std::vector<std::vector<int32_t>>> MakeChunks(
    const ChunkPlan& plan, const std::vector<int32_t>& text_tokens);

// The plan as stored in results.
v1::EvaluateProtocol ProtocolProto(const ChunkPlan& plan);

}  // namespace quantd

#endif  // QUANTD_CORE_EVAL_PROTOCOL_H_
