#include "core/quant/bnb_method.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "core/formats/bnb4.h"
#include "core/formats/bnb_int8.h"

namespace quantd {
namespace {

absl::Status UnknownOption(std::string_view method, const std::string& key) {
  return absl::InvalidArgumentError(
      absl::StrCat("options: ", std::string(method), " has no option \"", key, "\""));
}

// "nf4" and "fp4": bitsandbytes 4-bit blockwise weights.
class Bnb4Method final : public QuantMethod {
 public:
  explicit Bnb4Method(bnb4::QuantType type) : type_(type) {}

  std::string_view name() const override { return type_ == bnb4::QuantType::kNf4 ? "nf4" : "fp4"; }

  std::string_view description() const override {
    return type_ == bnb4::QuantType::kNf4
               ? "bitsandbytes NF4 (QLoRA NormalFloat4) weights, one float32 absmax per block of "
                 "64 (optionally 8-bit double-quantized); transformers + bitsandbytes load it"
               : "bitsandbytes FP4 (e2m1) weights, one float32 absmax per block of 64 "
                 "(optionally 8-bit double-quantized); transformers + bitsandbytes load it";
  }

  std::string_view output_format() const override {
    return type_ == bnb4::QuantType::kNf4 ? "bitsandbytes/nf4" : "bitsandbytes/fp4";
  }

  std::map<std::string, std::string> ParameterHelp() const override {
    return {{"group_size", "block size: 0 = 64 (default), or 32, 128, 256, ..., 4096"},
            {"symmetric", "unset or true (bitsandbytes has no zero points)"},
            {"options.double_quant",
             "true: quantize the block absmax to 8 bits (bnb_4bit_use_double_quant); false "
             "(default, as BitsAndBytesConfig)"},
            {"options.compute_dtype",
             "bfloat16 (default), float16 or float32: bnb_4bit_compute_dtype in the config; "
             "use the model's dtype"}};
  }

  absl::StatusOr<MethodPlan> Resolve(const v1::QuantizeSpec& spec) const override {
    MethodPlan plan;
    plan.format = &Bnb4Format();
    plan.params.bits = 4;
    const int32_t g = spec.group_size();
    plan.params.group_size = g == 0 ? 64 : g;
    if (spec.has_symmetric() && !spec.symmetric()) {
      return absl::InvalidArgumentError(
          absl::StrCat("symmetric false is not supported for ", std::string(name()),
                       ": bitsandbytes scales each block by its absmax, without a zero point"));
    }
    plan.params.extra["quant_type"] = std::string(name());
    plan.params.extra["double_quant"] = "0";
    plan.params.extra["compute_dtype"] = "bfloat16";
    for (const auto& [key, value] : spec.options()) {
      if (key == "double_quant") {
        if (value != "true" && value != "false") {
          return absl::InvalidArgumentError(
              absl::StrCat("options.double_quant \"", value, "\" is not true or false"));
        }
        plan.params.extra["double_quant"] = value == "true" ? "1" : "0";
      } else if (key == "compute_dtype") {
        plan.params.extra["compute_dtype"] = value;
      } else {
        return UnknownOption(name(), key);
      }
    }
    // Validates the block size and the options (a 1 x 1 weight fits any).
    absl::Status st = Bnb4Format().Check(plan.params, 1, 1);
    if (!st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(std::string(name()), ": ", st.message()));
    }
    return plan;
  }

  std::string Label(const FormatParams& p) const override {
    const auto dq = p.extra.find("double_quant");
    return absl::StrCat(std::string(name()), "-b", p.group_size == 0 ? 64 : p.group_size,
                        dq != p.extra.end() && dq->second == "1" ? "-dq" : "");
  }

  std::map<std::string, std::string> Describe(const FormatParams& p) const override {
    const auto dq = p.extra.find("double_quant");
    const auto cd = p.extra.find("compute_dtype");
    return {{"bits", "4"},
            {"quant_type", std::string(name())},
            {"blocksize", std::to_string(p.group_size == 0 ? 64 : p.group_size)},
            {"double_quant", dq != p.extra.end() && dq->second == "1" ? "true" : "false"},
            {"compute_dtype", cd != p.extra.end() ? cd->second : "bfloat16"},
            {"blocks", "over the flattened weight (row-major), float32 absmax per block"},
            {"rounding", "bitsandbytes' threshold tree on x * (1 / absmax)"}};
  }

  nlohmann::json QuantizationConfig(const FormatParams& p,
                                    const std::vector<std::string>& ignore) const override {
    const auto dq = p.extra.find("double_quant");
    const auto cd = p.extra.find("compute_dtype");
    return BitsAndBytesConfigJson(std::string(name()), dq != p.extra.end() && dq->second == "1",
                                  cd != p.extra.end() ? cd->second : "bfloat16", ignore);
  }

 private:
  bnb4::QuantType type_;
};

// "int8:bitsandbytes": LLM.int8() row-wise int8 weights.
class BnbInt8MethodImpl final : public QuantMethod {
 public:
  std::string_view name() const override { return "int8:bitsandbytes"; }

  std::string_view description() const override {
    return "bitsandbytes LLM.int8() weights: int8 per output row with a float32 absmax (SCB); "
           "transformers + bitsandbytes load it (load_in_8bit)";
  }

  std::string_view output_format() const override { return "bitsandbytes/llm.int8"; }

  std::map<std::string, std::string> ParameterHelp() const override {
    return {{"group_size", "0 or -1: one scale per output row (the only layout)"},
            {"symmetric", "unset or true"}};
  }

  absl::StatusOr<MethodPlan> Resolve(const v1::QuantizeSpec& spec) const override {
    MethodPlan plan;
    plan.format = &BnbInt8Format();
    plan.params.bits = 8;
    plan.params.group_size = 0;
    if (spec.group_size() != 0 && spec.group_size() != -1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "group_size ", spec.group_size(),
          " is not supported by int8 layout bitsandbytes (one scale per row: 0 or -1)"));
    }
    if (spec.has_symmetric() && !spec.symmetric()) {
      return absl::InvalidArgumentError(
          "symmetric false is not supported by int8 layout bitsandbytes (LLM.int8 is symmetric)");
    }
    if (!spec.options().empty()) return UnknownOption(name(), spec.options().begin()->first);
    return plan;
  }

  std::string Label(const FormatParams& p) const override { return "int8-bnb-row"; }

  std::map<std::string, std::string> Describe(const FormatParams& p) const override {
    return {{"bits", "8"},
            {"layout", "bitsandbytes"},
            {"strategy", "channel"},
            {"symmetric", "true"},
            {"rounding", "weight cast to float16, round half to even of x * 127 / absmax"}};
  }

  nlohmann::json QuantizationConfig(const FormatParams& p,
                                    const std::vector<std::string>& ignore) const override {
    return BitsAndBytesConfigJson("int8", false, "float32", ignore);
  }
};

}  // namespace

nlohmann::json BitsAndBytesConfigJson(const std::string& quant_type, bool double_quant,
                                      const std::string& compute_dtype,
                                      const std::vector<std::string>& skip_modules) {
  const bool four_bit = quant_type != "int8";
  // transformers' BitsAndBytesConfig.to_dict(); its defaults where 8-bit
  // leaves a 4-bit field unset (quant_type "fp4", compute dtype float32).
  nlohmann::json c = nlohmann::json::object();
  c["_load_in_4bit"] = four_bit;
  c["_load_in_8bit"] = !four_bit;
  c["bnb_4bit_compute_dtype"] = four_bit ? compute_dtype : "float32";
  c["bnb_4bit_quant_storage"] = "uint8";
  c["bnb_4bit_quant_type"] = four_bit ? quant_type : "fp4";
  c["bnb_4bit_use_double_quant"] = four_bit && double_quant;
  c["llm_int8_enable_fp32_cpu_offload"] = false;
  c["llm_int8_has_fp16_weight"] = false;
  // A list (even empty) stops transformers from adding its default skips
  // (the output embedding), which must follow what was quantized.
  c["llm_int8_skip_modules"] = skip_modules;
  c["llm_int8_threshold"] = 6.0;
  c["load_in_4bit"] = four_bit;
  c["load_in_8bit"] = !four_bit;
  c["quant_method"] = "bitsandbytes";
  return c;
}

const QuantMethod& Nf4Method() {
  static const Bnb4Method* method = new Bnb4Method(bnb4::QuantType::kNf4);
  return *method;
}

const QuantMethod& Fp4Method() {
  static const Bnb4Method* method = new Bnb4Method(bnb4::QuantType::kFp4);
  return *method;
}

const QuantMethod& BnbInt8Method() {
  static const BnbInt8MethodImpl* method = new BnbInt8MethodImpl();
  return *method;
}

}  // namespace quantd
