// Tokenizers that give the same token ids as Hugging Face `tokenizers` (and,
// for tokenizer.model files, as `transformers`' Llama tokenizer), for the
// checkpoints quantd evaluates: SentencePiece-style BPE (Llama 2, TinyLlama)
// from tokenizer.json or tokenizer.model, and byte-level BPE (GPT-2,
// Llama 3, Qwen2, SmolLM) from tokenizer.json.
//
// Encoding runs the stages of `tokenizers`: added tokens are split out of the
// text, the rest is normalized, pre-tokenized and encoded by the model, then
// the post-processor adds special tokens. What is not supported (Unigram and
// WordPiece models, NFKC and other normalizers, regexes other than the GPT-2,
// Llama 3 and Qwen2 split patterns, ...) is rejected with INVALID_ARGUMENT
// when the tokenizer is loaded, never approximated. See
// docs/research/tokenizers.md.
//
// Thread-safe: all methods are const.
#ifndef QUANTD_CORE_TOKENIZER_TOKENIZER_H_
#define QUANTD_CORE_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace quantd {

namespace tokenizer_internal {
struct Pipeline;
}  // namespace tokenizer_internal

class Tokenizer {
 public:
  // Loads the tokenizer of a Hugging Face model folder: tokenizer.json when
  // present, else tokenizer.model (SentencePiece). tokenizer_config.json,
  // when present, gives the special tokens (bos_token, eos_token,
  // added_tokens_decoder for tokenizer.model) and add_bos_token /
  // add_eos_token, which replace the post-processor's special tokens as
  // `transformers` does; generation_config.json's eos_token_id adds to
  // eos_ids(). NOT_FOUND when `dir` or both tokenizer files are missing;
  // INVALID_ARGUMENT for malformed or unsupported files; file errors as
  // ReadFileToString reports them.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromModelDir(const std::filesystem::path& dir);

  // As FromModelDir, from file contents: a tokenizer.json's text, or a
  // tokenizer.model's bytes. The config texts may be empty (absent).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromTokenizerJson(
      std::string_view tokenizer_json, std::string_view tokenizer_config_json = "",
      std::string_view generation_config_json = "");
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromSentencePieceModel(
      std::string_view model_proto, std::string_view tokenizer_config_json = "",
      std::string_view generation_config_json = "");

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // The ids of `text`, with the post-processor's special tokens (BOS, EOS)
  // when `add_special_tokens`. Special token strings in the text (such as
  // "<s>") become their ids, as in `tokenizers`. INVALID_ARGUMENT when `text`
  // is not valid UTF-8.
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special_tokens) const;

  // The text of `ids` as `tokenizers`' decode gives it; ids without a token
  // are skipped, as are special tokens when `skip_special`.
  std::string Decode(const std::vector<int32_t>& ids, bool skip_special) const;

  // Special token ids, -1 when the tokenizer has none.
  int32_t bos_id() const;
  int32_t eos_id() const;
  // eos_id() and the end-of-sequence ids of generation_config.json.
  std::vector<int32_t> eos_ids() const;
  // One more than the largest id of the vocabulary and the added tokens.
  int32_t vocab_size() const;
  // "hf_bpe" (tokenizer.json) or "sentencepiece_bpe" (tokenizer.model).
  std::string_view kind() const;
  // The id of token `token` (added tokens first, then the model's), or -1.
  int32_t TokenToId(std::string_view token) const;

 private:
  explicit Tokenizer(std::unique_ptr<tokenizer_internal::Pipeline> pipeline);

  std::unique_ptr<tokenizer_internal::Pipeline> pipeline_;
};

}  // namespace quantd

#endif  // QUANTD_CORE_TOKENIZER_TOKENIZER_H_
