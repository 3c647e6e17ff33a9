// How the quantized modules of a checkpoint folder are encoded, read from
// config.json's "quantization_config" or ModelOpt's hf_quant_config.json,
// expressed as a quantd weight format (core/formats/registry.h) with its
// FormatParams, so the loader can rebuild each module with DecodeRef.
#ifndef QUANTD_CORE_RUNTIME_QUANT_SCHEME_H_
#define QUANTD_CORE_RUNTIME_QUANT_SCHEME_H_

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/formats/format.h"
#include "nlohmann/json.hpp"

namespace quantd {

struct QuantScheme {
  // For messages and LoadedModel::source_format context, e.g.
  // "compressed-tensors pack-quantized int4".
  std::string description;
  // The registry name of the format ("rtn_int", "fp8", "nvfp4", "bnb4",
  // "bnb_int8").
  std::string format;
  // Parameters shared by every module.
  FormatParams params;
  // Completes `p` for one module from its stored parts (e.g. the scale
  // dtype); null when nothing depends on them.
  std::function<absl::Status(const EncodedWeight& parts, FormatParams* p)> per_module;
};

// The scheme of the folder `dir` whose parsed config.json is `config`;
// nullopt when neither a quantization_config nor an hf_quant_config.json is
// present. UNIMPLEMENTED for a quant_method, format or setting quantd cannot
// decode (naming it); INVALID_ARGUMENT for a malformed configuration.
absl::StatusOr<std::optional<QuantScheme>> ReadQuantScheme(const nlohmann::json& config,
                                                           const std::filesystem::path& dir);

}  // namespace quantd

#endif  // QUANTD_CORE_RUNTIME_QUANT_SCHEME_H_
