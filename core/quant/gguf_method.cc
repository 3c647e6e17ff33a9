#include "core/quant/gguf_method.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/formats/registry.h"
#include "core/gguf/gguf_mix.h"

namespace quantd {
namespace {

class GgufQuantMethod final : public QuantMethod {
 public:
  std::string_view name() const override { return kGgufMethodName; }

  std::string_view description() const override {
    return "llama.cpp GGUF file with llama-quantize's per-tensor type mix (Q4_K_M, Q5_K_M, "
           "Q8_0, ...), tokenizer and chat template; optional importance matrix";
  }

  std::string_view output_format() const override { return "gguf"; }

  std::map<std::string, std::string> ParameterHelp() const override {
    std::vector<std::string> names;
    for (const GgufFileType& t : GgufFileTypes()) names.emplace_back(t.name);
    return {{"gguf_type", absl::StrCat("file type (default ", kGgufDefaultType,
                                       "): ", absl::StrJoin(names, ", "))},
            {"imatrix", "llama.cpp importance matrix (.dat or GGUF), relative to the model root"},
            {"override", "\"regex=TYPE;regex=TYPE\": ggml type for GGUF tensor names matching"}};
  }

  absl::StatusOr<MethodPlan> Resolve(const v1::QuantizeSpec& spec) const override {
    if (spec.group_size() != 0 || spec.has_symmetric()) {
      return absl::InvalidArgumentError(
          "gguf: group_size and symmetric do not apply (the GGUF type fixes them); use "
          "options.gguf_type");
    }
    if (!spec.keep_modules().empty()) {
      return absl::InvalidArgumentError(
          "gguf: keep_modules does not apply; use options.override, e.g. "
          "\"blk\\.0\\.=F16\"");
    }
    for (const auto& [key, value] : spec.options()) {
      if (key != "gguf_type" && key != "imatrix" && key != "override") {
        return absl::InvalidArgumentError(
            absl::StrCat("options: gguf takes gguf_type, imatrix and override, got \"", key, "\""));
      }
    }
    auto opt = [&](const char* key, const char* def) {
      auto it = spec.options().find(key);
      return it == spec.options().end() ? std::string(def) : it->second;
    };
    absl::StatusOr<GgufFileType> type = ParseGgufFileType(opt("gguf_type", kGgufDefaultType));
    if (!type.ok()) return type.status();
    absl::StatusOr<std::vector<GgufTypeOverride>> overrides =
        ParseGgufTypeOverrides(opt("override", ""));
    if (!overrides.ok()) return overrides.status();
    absl::StatusOr<const WeightFormat*> format = FindFormat("ggml");
    if (!format.ok()) {
      return absl::FailedPreconditionError("gguf: the \"ggml\" weight format is not registered");
    }
    MethodPlan plan;
    plan.format = *format;
    plan.params.extra["gguf_type"] = std::string(type->name);
    plan.params.extra["type"] = std::string(GgmlTypeName(type->default_type));
    plan.params.extra["imatrix"] = opt("imatrix", "");
    plan.params.extra["override"] = opt("override", "");
    return plan;
  }

  std::string Label(const FormatParams& p) const override {
    auto it = p.extra.find("type");
    return it == p.extra.end() ? "gguf" : it->second;
  }

  std::map<std::string, std::string> Describe(const FormatParams& p) const override {
    auto get = [&](const char* key) {
      auto it = p.extra.find(key);
      return it == p.extra.end() ? std::string() : it->second;
    };
    return {{"gguf_type", get("gguf_type")},
            {"imatrix", get("imatrix").empty() ? "none" : get("imatrix")},
            {"override", get("override").empty() ? "none" : get("override")},
            {"type_mix", "llama-quantize's llama_tensor_get_type rules"}};
  }

  nlohmann::json QuantizationConfig(const FormatParams& p,
                                    const std::vector<std::string>& ignore) const override {
    return nullptr;
  }
};

}  // namespace

const QuantMethod& GgufMethod() {
  static const GgufQuantMethod* method = new GgufQuantMethod();
  return *method;
}

}  // namespace quantd
