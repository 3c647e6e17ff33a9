#include "core/quant/rtn_int_method.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "core/formats/rtn_int.h"
#include "core/quant/compressed_tensors.h"

namespace quantd {
namespace {

// "int4" and "int8": round-to-nearest integer weights in the rtn_int format.
// Spec group_size: 0 = the method's default (int4: 128, int8: per channel),
// -1 = per output channel, or 32, 64, 128. int8 is symmetric only.
class RtnIntMethod final : public QuantMethod {
 public:
  explicit RtnIntMethod(int bits) : bits_(bits) {}

  std::string_view name() const override { return bits_ == 4 ? "int4" : "int8"; }

  std::string_view description() const override {
    return bits_ == 4 ? "int4 weights (W4A16), round to nearest, one scale (and, when "
                        "asymmetric, one zero point) per group of 32, 64 or 128 inputs"
                      : "int8 weights (W8A16), round to nearest, one symmetric scale per "
                        "output channel (or per group of 32, 64 or 128 inputs)";
  }

  std::string_view output_format() const override { return "compressed-tensors/pack-quantized"; }

  std::map<std::string, std::string> ParameterHelp() const override {
    if (bits_ == 4) {
      return {{"group_size",
               "32, 64 or 128 inputs per scale (0 = default 128); -1 = one scale per output "
               "channel"},
              {"symmetric",
               "true (default): no zero point; false: a zero point per group (vLLM >= spring "
               "2025, compressed-tensors >= Sep 2025 for transformers)"}};
    }
    return {{"group_size",
             "0 (default) or -1 = one scale per output channel; 32, 64 or 128 = per group"},
            {"symmetric", "true (default and only value: asymmetric int8 runs only on SM90)"}};
  }

  absl::StatusOr<MethodPlan> Resolve(const v1::QuantizeSpec& spec) const override {
    MethodPlan plan;
    plan.format = &RtnIntFormat();
    plan.params.bits = bits_;
    const int32_t g = spec.group_size();
    if (g == 0) {
      plan.params.group_size = bits_ == 4 ? 128 : 0;
    } else if (g == -1) {
      plan.params.group_size = 0;
    } else if (g == 32 || g == 64 || g == 128) {
      plan.params.group_size = g;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "group_size ", g, " is not one of 32, 64, 128 (0 = default ",
          bits_ == 4 ? "128" : "per channel", ", -1 = per channel) for ", std::string(name())));
    }
    plan.params.symmetric = !spec.has_symmetric() || spec.symmetric();
    if (bits_ == 8 && !plan.params.symmetric) {
      return absl::InvalidArgumentError(
          "symmetric false is not supported for int8: asymmetric int8 runs only on SM90 in "
          "vLLM; use int4 for asymmetric weights");
    }
    if (!spec.options().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("options: ", std::string(name()),
                                                     " takes no options, got \"",
                                                     spec.options().begin()->first, "\""));
    }
    return plan;
  }

  std::string Label(const FormatParams& p) const override {
    return absl::StrCat("int", p.bits, "-",
                        p.group_size > 0 ? absl::StrCat("g", p.group_size) : "channel", "-",
                        p.symmetric ? "sym" : "asym");
  }

  std::map<std::string, std::string> Describe(const FormatParams& p) const override {
    return {{"bits", std::to_string(p.bits)},
            {"group_size", p.group_size > 0 ? std::to_string(p.group_size) : "per-channel"},
            {"strategy", p.group_size > 0 ? "group" : "channel"},
            {"symmetric", p.symmetric ? "true" : "false"},
            {"scale_dtype", "the weight's dtype (BF16, F16 or F32)"},
            {"rounding", "round half to even; zero groups get scale 1"}};
  }

  nlohmann::json QuantizationConfig(const FormatParams& p,
                                    const std::vector<std::string>& ignore) const override {
    return PackQuantizedConfig(p.bits, p.group_size, p.symmetric, ignore);
  }

  v1::Support SupportOn(const v1::DeviceInfo& device, std::string* note) const override {
    return v1::SUPPORT_NATIVE;
  }

 private:
  int bits_;
};

}  // namespace

const QuantMethod& Int8Method() {
  static const RtnIntMethod* method = new RtnIntMethod(8);
  return *method;
}

const QuantMethod& Int4Method() {
  static const RtnIntMethod* method = new RtnIntMethod(4);
  return *method;
}

}  // namespace quantd
