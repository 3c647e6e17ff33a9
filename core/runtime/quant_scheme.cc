#include "core/runtime/quant_scheme.h"

#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/util/fs.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxQuantConfigBytes = uint64_t{16} << 20;

std::string StrOr(const json& obj, std::string_view key, std::string_view fallback) {
  auto it = obj.find(std::string(key));
  if (it == obj.end() || !it->is_string()) return std::string(fallback);
  return it->get<std::string>();
}

bool BoolOr(const json& obj, std::string_view key, bool fallback) {
  auto it = obj.find(std::string(key));
  if (it == obj.end() || !it->is_boolean()) return fallback;
  return it->get<bool>();
}

// An integer field, `fallback` when absent or null.
absl::StatusOr<int64_t> IntOr(const json& obj, std::string_view key, int64_t fallback) {
  auto it = obj.find(std::string(key));
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) {
    return absl::InvalidArgumentError(
        absl::StrCat("quantization_config: \"", std::string(key), "\" must be an integer"));
  }
  return it->get<int64_t>();
}

// compressed-tensors stores scales in the weight's dtype: read it from the
// module's weight_scale.
absl::Status ScaleDTypeFromParts(const EncodedWeight& parts, FormatParams* p) {
  const Tensor* scale = parts.Find("weight_scale");
  if (scale == nullptr) return absl::InvalidArgumentError("no weight_scale");
  p->scale_dtype = scale->dtype();
  return absl::OkStatus();
}

absl::StatusOr<QuantScheme> CompressedTensors(const json& qc) {
  const std::string top_format = StrOr(qc, "format", "");
  auto groups = qc.find("config_groups");
  if (groups == qc.end() || !groups->is_object() || groups->empty()) {
    return absl::InvalidArgumentError("quantization_config: no config_groups");
  }
  // Every group must quantize weights the same way (quantd writes one).
  const json* weights = nullptr;
  std::string format = top_format;
  for (const auto& [name, group] : groups->items()) {
    if (!group.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat("quantization_config: config_groups.", name, " is not an object"));
    }
    auto w = group.find("weights");
    if (w == group.end() || !w->is_object()) {
      return absl::UnimplementedError(absl::StrCat("quantization_config: config_groups.", name,
                                                   " quantizes no weights (activation-only "
                                                   "schemes are not supported)"));
    }
    const std::string group_format = StrOr(group, "format", top_format);
    if (weights != nullptr && (*w != *weights || group_format != format)) {
      return absl::UnimplementedError(
          "quantization_config: config_groups with different weight schemes are not supported");
    }
    weights = &*w;
    format = group_format;
  }
  ASSIGN_OR_RETURN(const int64_t bits, IntOr(*weights, "num_bits", 0));
  const std::string type = StrOr(*weights, "type", "int");
  const std::string strategy = StrOr(*weights, "strategy", "");
  ASSIGN_OR_RETURN(const int64_t group_size, IntOr(*weights, "group_size", 0));
  const bool symmetric = BoolOr(*weights, "symmetric", true);

  QuantScheme s;
  s.description = absl::StrCat("compressed-tensors ", format, " ", type, bits, " ", strategy);
  s.params.bits = static_cast<int>(bits);
  s.params.symmetric = symmetric;
  if (format == "pack-quantized" && type == "int" && (bits == 4 || bits == 8) &&
      (strategy == "channel" || strategy == "group")) {
    s.format = "rtn_int";
    s.params.group_size = strategy == "group" ? group_size : 0;
    s.per_module = ScaleDTypeFromParts;
    return s;
  }
  if (format == "float-quantized" && type == "float" && bits == 8) {
    s.format = "fp8";  // core/formats/fp8.h
    s.params.extra["strategy"] = strategy;
    s.per_module = ScaleDTypeFromParts;
    return s;
  }
  if (format == "nvfp4-pack-quantized") {
    s.format = "nvfp4";
    s.params.bits = 4;
    s.params.group_size = 16;
    s.params.extra["layout"] = "compressed-tensors";
    return s;
  }
  return absl::UnimplementedError(absl::StrCat(
      "quantization_config: ", s.description,
      " is not a scheme the runtime decodes (supported: pack-quantized int4/int8 channel or "
      "group, float-quantized fp8, nvfp4-pack-quantized)"));
}

absl::StatusOr<QuantScheme> BitsAndBytes(const json& qc) {
  QuantScheme s;
  if (BoolOr(qc, "load_in_4bit", false)) {
    const std::string type = StrOr(qc, "bnb_4bit_quant_type", "fp4");
    if (type != "nf4" && type != "fp4") {
      return absl::UnimplementedError(
          absl::StrCat("quantization_config: bnb_4bit_quant_type \"", type, "\" is unknown"));
    }
    s.format = "bnb4";
    s.description = absl::StrCat("bitsandbytes ", type);
    s.params.bits = 4;
    s.params.group_size = 64;
    s.params.extra["quant_type"] = type;
    s.params.extra["double_quant"] = BoolOr(qc, "bnb_4bit_use_double_quant", false) ? "1" : "0";
    return s;
  }
  if (BoolOr(qc, "load_in_8bit", false)) {
    s.format = "bnb_int8";
    s.description = "bitsandbytes int8";
    s.params.bits = 8;
    return s;
  }
  return absl::InvalidArgumentError(
      "quantization_config: bitsandbytes without load_in_4bit or load_in_8bit");
}

// ModelOpt: {"quant_algo": "NVFP4" | "W4A16_NVFP4" | "FP8", ...}, either
// hf_quant_config.json's "quantization" or config.json's
// quantization_config with quant_method "modelopt".
absl::StatusOr<QuantScheme> ModelOpt(const json& q) {
  const std::string algo = StrOr(q, "quant_algo", "");
  QuantScheme s;
  s.description = absl::StrCat("modelopt ", algo);
  if (algo == "NVFP4" || algo == "W4A16_NVFP4") {
    s.format = "nvfp4";
    s.params.bits = 4;
    s.params.group_size = 16;
    s.params.extra["layout"] = "modelopt";
    return s;
  }
  if (algo == "FP8") {
    s.format = "fp8";
    s.params.bits = 8;
    s.params.extra["strategy"] = "tensor";
    s.per_module = ScaleDTypeFromParts;
    return s;
  }
  return absl::UnimplementedError(
      absl::StrCat("ModelOpt quant_algo \"", algo,
                   "\" is not decoded by the runtime (supported: NVFP4, W4A16_NVFP4, FP8)"));
}

absl::StatusOr<json> ReadJson(const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path, kMaxQuantConfigBytes));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), " is not a JSON object"));
  }
  return j;
}

}  // namespace

absl::StatusOr<std::optional<QuantScheme>> ReadQuantScheme(const json& config,
                                                           const std::filesystem::path& dir) {
  auto qc_it = config.find("quantization_config");
  const bool has_qc = qc_it != config.end() && !qc_it->is_null();
  std::error_code ec;
  const std::filesystem::path modelopt_path = dir / "hf_quant_config.json";
  if (!has_qc) {
    if (!std::filesystem::exists(modelopt_path, ec)) return std::nullopt;
    ASSIGN_OR_RETURN(const json hf_quant, ReadJson(modelopt_path));
    auto q = hf_quant.find("quantization");
    if (q == hf_quant.end() || !q->is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(modelopt_path.string(), " has no \"quantization\" object"));
    }
    return ModelOpt(*q);
  }
  if (!qc_it->is_object()) {
    return absl::InvalidArgumentError("config.json: quantization_config is not an object");
  }
  const json& qc = *qc_it;
  const std::string method = StrOr(qc, "quant_method", "");
  if (method == "compressed-tensors") return CompressedTensors(qc);
  if (method == "bitsandbytes") return BitsAndBytes(qc);
  if (method == "modelopt") {
    if (qc.contains("quant_algo")) return ModelOpt(qc);
    auto q = qc.find("quantization");
    if (q != qc.end() && q->is_object()) return ModelOpt(*q);
    return ModelOpt(json::object());
  }
  return absl::UnimplementedError(absl::StrCat(
      "quantization_config quant_method \"", method,
      "\" is not decoded by the runtime (supported: compressed-tensors, bitsandbytes, modelopt)"));
}

}  // namespace quantd
