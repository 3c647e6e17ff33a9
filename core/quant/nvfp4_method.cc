#include "core/quant/nvfp4_method.h"

#include <cstdlib>
#include <map>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/formats/nvfp4.h"
#include "core/quant/compressed_tensors.h"

namespace quantd {
namespace {

using json = nlohmann::json;

// What hf_quant_config.json's producer.version says: ModelOpt's layout,
// written by quantd (loaders do not read it).
constexpr char kProducerVersion[] = "quantd-" QUANTD_VERSION;

// Blackwell (compute capability 10.x, 12.x) has FP4 tensor cores; earlier
// GPUs run NVFP4 checkpoints by dequantizing the weights (vLLM's FP4 Marlin
// kernel needs sm_75+).
constexpr int kNativeFp4Major = 10;

// The major version of a compute capability like "9.0" or "12.0"; -1 when
// it does not parse.
int ComputeCapabilityMajor(const std::string& cc) {
  const size_t dot = cc.find('.');
  int major = -1;
  if (!absl::SimpleAtoi(cc.substr(0, dot), &major)) return -1;
  return major;
}

class Nvfp4MethodImpl final : public QuantMethod {
 public:
  explicit Nvfp4MethodImpl(nvfp4::Layout layout) : layout_(layout) {}

  std::string_view name() const override { return modelopt() ? "nvfp4:modelopt" : "nvfp4"; }

  std::string_view description() const override {
    return modelopt() ? "NVFP4 weights (W4A16) in NVIDIA ModelOpt's layout (quant_algo "
                        "W4A16_NVFP4): FP4 E2M1 values, an FP8 E4M3 scale per 16 inputs and "
                        "an FP32 scale per tensor (shared by fused q/k/v and gate/up)"
                      : "NVFP4 weights (W4A16, compressed-tensors NVFP4A16): FP4 E2M1 values, "
                        "an FP8 E4M3 scale per 16 inputs and an FP32 scale per tensor (shared "
                        "by fused q/k/v and gate/up)";
  }

  std::string_view output_format() const override {
    return modelopt() ? "modelopt/W4A16_NVFP4" : "compressed-tensors/nvfp4-pack-quantized";
  }

  std::map<std::string, std::string> ParameterHelp() const override {
    return {{"group_size", "0 or 16 (NVFP4 blocks are 16 inputs)"},
            {"symmetric", "true (default and only value)"},
            {"options.layout",
             "compressed-tensors (method nvfp4) or modelopt (method nvfp4:modelopt)"}};
  }

  absl::StatusOr<MethodPlan> Resolve(const v1::QuantizeSpec& spec) const override {
    MethodPlan plan;
    plan.format = &Nvfp4Format();
    plan.params.bits = 4;
    plan.params.group_size = nvfp4::kBlockSize;
    plan.params.symmetric = true;
    plan.params.extra[kNvfp4LayoutKey] =
        modelopt() ? kNvfp4LayoutModelOpt : kNvfp4LayoutCompressedTensors;
    if (spec.group_size() != 0 && spec.group_size() != nvfp4::kBlockSize) {
      return absl::InvalidArgumentError(absl::StrCat(
          "group_size ", spec.group_size(), " is not 16 (or 0) for ", std::string(name())));
    }
    if (spec.has_symmetric() && !spec.symmetric()) {
      return absl::InvalidArgumentError(
          absl::StrCat("symmetric false is not supported for ", std::string(name())));
    }
    if (!spec.options().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("options: ", std::string(name()),
                                                     " takes no options, got \"",
                                                     spec.options().begin()->first, "\""));
    }
    return plan;
  }

  std::string Label(const FormatParams& p) const override {
    return modelopt() ? "nvfp4-g16-modelopt" : "nvfp4-g16";
  }

  std::map<std::string, std::string> Describe(const FormatParams& p) const override {
    return {{"bits", "4 (FP4 E2M1)"},
            {"group_size", "16"},
            {"block_scale", "FP8 E4M3, round to nearest even, saturating"},
            {"global_scale", modelopt() ? "F32 weight_scale_2 = amax / 2688"
                                        : "F32 weight_global_scale = 2688 / amax"},
            {"layout", modelopt() ? kNvfp4LayoutModelOpt : kNvfp4LayoutCompressedTensors},
            {"activations", "not quantized (W4A16)"},
            {"rounding", "round to nearest E2M1 value, ties to even"}};
  }

  json QuantizationConfig(const FormatParams& p,
                          const std::vector<std::string>& ignore) const override {
    return modelopt() ? Nvfp4ModelOptConfig(ignore) : Nvfp4CompressedTensorsConfig(ignore);
  }

  std::map<std::string, std::string> ExtraFiles(
      const FormatParams& p, const std::vector<std::string>& ignore) const override {
    if (!modelopt()) return {};
    return {{"hf_quant_config.json", Nvfp4ModelOptHfQuantConfig(ignore).dump(4) + "\n"}};
  }

  v1::Support SupportOn(const v1::DeviceInfo& device, std::string* note) const override {
    if (device.type() == "cuda" &&
        ComputeCapabilityMajor(device.compute_capability()) >= kNativeFp4Major) {
      return v1::SUPPORT_NATIVE;
    }
    if (note != nullptr) *note = "FP4 weights dequantized for BF16 matmul";
    return v1::SUPPORT_EMULATED;
  }

 private:
  bool modelopt() const { return layout_ == nvfp4::Layout::kModelOpt; }

  nvfp4::Layout layout_;
};

}  // namespace

json Nvfp4CompressedTensorsConfig(const std::vector<std::string>& ignore) {
  json config = PackQuantizedConfig(4, nvfp4::kBlockSize, true, ignore);
  config["format"] = "nvfp4-pack-quantized";
  json& group = config["config_groups"]["group_0"];
  group["format"] = "nvfp4-pack-quantized";
  json& weights = group["weights"];
  weights["strategy"] = "tensor_group";
  weights["type"] = "float";
  return config;
}

json Nvfp4ModelOptHfQuantConfig(const std::vector<std::string>& ignore) {
  return json{
      {"producer", {{"name", "modelopt"}, {"version", kProducerVersion}}},
      {"quantization",
       {{"quant_algo", "W4A16_NVFP4"},
        {"kv_cache_quant_algo", nullptr},
        {"group_size", nvfp4::kBlockSize},
        {"exclude_modules", ignore}}},
  };
}

json Nvfp4ModelOptConfig(const std::vector<std::string>& ignore) {
  json weights = {
      {"dynamic", false}, {"num_bits", 4}, {"type", "float"}, {"group_size", nvfp4::kBlockSize}};
  return json{
      {"config_groups",
       {{"group_0", {{"weights", std::move(weights)}, {"targets", json::array({"Linear"})}}}}},
      {"ignore", ignore},
      {"quant_algo", "W4A16_NVFP4"},
      {"producer", {{"name", "modelopt"}, {"version", kProducerVersion}}},
      {"quant_method", "modelopt"},
  };
}

const QuantMethod& Nvfp4Method() {
  static const Nvfp4MethodImpl* method = new Nvfp4MethodImpl(nvfp4::Layout::kCompressedTensors);
  return *method;
}

const QuantMethod& Nvfp4ModelOptMethod() {
  static const Nvfp4MethodImpl* method = new Nvfp4MethodImpl(nvfp4::Layout::kModelOpt);
  return *method;
}

}  // namespace quantd
