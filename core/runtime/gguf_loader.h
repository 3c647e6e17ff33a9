// The GGUF side of core/runtime/model_loader.h: llama.cpp model files of
// arch "llama" (Llama, Mistral) or "qwen2". Tensor names are mapped back to
// the HF modules (token_embd -> embed, blk.N.attn_q -> layers[N].q, ...),
// ggml's row permutation of attn_q/attn_k for arch llama is undone, and
// quantized tensors are dequantized with core/gguf's ggml dequantizers.
#ifndef QUANTD_CORE_RUNTIME_GGUF_LOADER_H_
#define QUANTD_CORE_RUNTIME_GGUF_LOADER_H_

#include <filesystem>
#include <memory>

#include "absl/status/statusor.h"
#include "core/gguf/gguf_file.h"
#include "core/runtime/llama_config.h"
#include "core/runtime/model_loader.h"

namespace quantd {

// The config of a GGUF model from its metadata ({arch}.block_count, ...)
// and tensors (vocabulary size, biases, tied output, rope_freqs).
// INVALID_ARGUMENT for an arch other than llama / qwen2 (listing them),
// missing keys, per-layer head counts, or a rope scaling other than
// none / linear.
absl::StatusOr<LlamaConfig> LlamaConfigFromGguf(const GgufFile& file);

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadGgufModel(const std::filesystem::path& path,
                                                           const LoadOptions& options);
absl::StatusOr<ModelInspection> InspectGgufModel(const std::filesystem::path& path,
                                                 const LoadOptions& options);

// Undoes convert_hf_to_gguf.py's Q/K permutation of `rows` x `cols`
// elements of `elem` bytes each, for `heads` heads:
// HF row h*hd + i*hd/2 + j <- GGUF row h*hd + 2*j + i (hd = rows / heads).
// `out` must not alias `in`.
void UnpermuteRopeRows(const uint8_t* in, int64_t rows, int64_t cols, size_t elem, int64_t heads,
                       uint8_t* out);

}  // namespace quantd

#endif  // QUANTD_CORE_RUNTIME_GGUF_LOADER_H_
