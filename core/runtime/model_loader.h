// Loads a model for the runtime (core/runtime/llama_weights.h) from
//  - a Hugging Face folder with F32/F16/BF16 safetensors weights (mapped,
//    not copied);
//  - a folder quantd (or a compatible tool) wrote: compressed-tensors
//    pack-quantized ("rtn_int"), float-quantized ("fp8"),
//    nvfp4-pack-quantized ("nvfp4"), bitsandbytes 4-bit ("bnb4") / 8-bit
//    ("bnb_int8"), ModelOpt NVFP4 (hf_quant_config.json, "nvfp4"). Each
//    quantized module is rebuilt with its registered format's DecodeRef;
//  - a GGUF file (arch llama or qwen2) of any type core/gguf dequantizes.
// Architectures and features: core/runtime/llama_config.h.
#ifndef QUANTD_CORE_RUNTIME_MODEL_LOADER_H_
#define QUANTD_CORE_RUNTIME_MODEL_LOADER_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/runtime/llama_config.h"
#include "core/runtime/llama_weights.h"
#include "core/util/cancel.h"

namespace quantd {

// The dtype dequantized (quantized-source) matrices are kept in.
enum class DequantDType {
  kAuto,  // BF16 when every value of the matrix is exactly a BF16, else F32
  kF32,   // always F32: exact
  kBF16,  // always BF16 (round to nearest even): half the memory, not exact
};

struct LoadOptions {
  DequantDType dequant_dtype = DequantDType::kAuto;
  // Threads that dequantize modules in parallel (0 = hardware concurrency).
  // Each decodes whole modules with the format's scalar DecodeRef.
  int threads = 0;
  // Checked between modules; CANCELLED when set. Not owned; may be null.
  const CancelToken* cancel = nullptr;
};

// Loads the model at `path`: a folder with config.json, or a *.gguf file.
// Errors: NOT_FOUND if `path` does not exist; INVALID_ARGUMENT for an
// unsupported architecture or feature (LlamaConfigFromJson's message, which
// lists the supported architectures), a missing or misshapen tensor (named),
// non-finite norm weights, or an unreadable quantization_config;
// UNIMPLEMENTED for a quantization scheme this build cannot decode (the
// message names it and, when its format is not registered, the format);
// the errors of HfModel::Open, the GGUF reader and DecodeRef otherwise;
// CANCELLED through options.cancel.
absl::StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const std::filesystem::path& path,
                                                       const LoadOptions& options);

// What LoadModel would do, from headers and config alone (no weight is read
// or decoded), for job admission.
struct ModelInspection {
  LlamaConfig config;
  // As LoadedModel::source_format.
  std::string source_format;
  // Bytes LoadModel(path, options) keeps resident: mapped weights plus
  // dequantized buffers (F32 assumed for kAuto), plus the transient peak of
  // decoding (one quantized module and its float32 result per thread).
  int64_t resident_bytes = 0;
};

// Inspects `path` with the checks of LoadModel that need no weight data
// (architecture, every tensor present with its shape, quantization scheme
// known and its format registered). Same errors.
absl::StatusOr<ModelInspection> InspectModel(const std::filesystem::path& path,
                                             const LoadOptions& options);

// InspectModel(path, {}).resident_bytes: bytes needed resident to load
// `path` (weights only; a backend adds its activations, see
// CpuLlamaScratchBytes in kernels/cpu/llama_cpu.h).
absl::StatusOr<int64_t> EstimateMemory(const std::filesystem::path& path);

}  // namespace quantd

#endif  // QUANTD_CORE_RUNTIME_MODEL_LOADER_H_
