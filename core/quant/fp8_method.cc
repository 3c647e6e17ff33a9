#include "core/quant/fp8_method.h"

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/formats/fp8.h"
#include "core/quant/compressed_tensors.h"

namespace quantd {
namespace {

using json = nlohmann::json;

// Quantization arguments with every key compressed-tensors reads.
json Args(const char* strategy, bool dynamic, const json& group_size, const json& block_structure,
          const json& observer) {
  return json{
      {"actorder", nullptr},
      {"block_structure", block_structure},
      {"dynamic", dynamic},
      {"group_size", group_size},
      {"num_bits", 8},
      {"observer", observer},
      {"observer_kwargs", json::object()},
      {"strategy", strategy},
      {"symmetric", true},
      {"type", "float"},
  };
}

// Compute capability "major.minor" as major * 10 + minor; -1 when unparsable.
int ParseComputeCapability(const std::string& cc) {
  const size_t dot = cc.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 >= cc.size()) return -1;
  char* end = nullptr;
  const long major = std::strtol(cc.c_str(), &end, 10);
  if (end != cc.c_str() + dot) return -1;
  const long minor = std::strtol(cc.c_str() + dot + 1, &end, 10);
  if (*end != '\0' || major < 0 || minor < 0 || minor > 9) return -1;
  return static_cast<int>(major * 10 + minor);
}

// FP8 tensor cores: Ada (8.9) and Hopper (9.0) onwards.
constexpr int kFp8TensorCoreCapability = 89;

class Fp8MethodImpl final : public QuantMethod {
 public:
  std::string_view name() const override { return "fp8"; }

  std::string_view description() const override {
    return "FP8 E4M3 weights (W8A8-FP8 with dynamic FP8 activations), round to nearest even, "
           "one float scale per output channel (default), per tensor, or per 128 x 128 block";
  }

  std::string_view output_format() const override { return "compressed-tensors/float-quantized"; }

  std::map<std::string, std::string> ParameterHelp() const override {
    return {{"options.strategy",
             "channel (default, as FP8_DYNAMIC): one scale per output channel; tensor: one scale "
             "per tensor, shared by fused q/k/v and gate/up; block: one scale per 128 x 128 "
             "block (as FP8_BLOCK, activations per group of 128)"},
            {"group_size", "0 only (the strategy decides the grouping)"},
            {"symmetric", "true (default and only value)"}};
  }

  absl::StatusOr<MethodPlan> Resolve(const v1::QuantizeSpec& spec) const override {
    if (spec.group_size() != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("group_size ", spec.group_size(),
                       " is not accepted by fp8 (0 only); choose options.strategy "
                       "channel, tensor or block"));
    }
    if (spec.has_symmetric() && !spec.symmetric()) {
      return absl::InvalidArgumentError("symmetric false is not supported: fp8 is symmetric");
    }
    fp8::Strategy strategy = fp8::Strategy::kChannel;
    for (const auto& [key, value] : spec.options()) {
      if (key != kFp8StrategyKey) {
        return absl::InvalidArgumentError(
            absl::StrCat("options: fp8 has no option \"", key, "\" (it takes strategy)"));
      }
      if (value == "tensor") {
        strategy = fp8::Strategy::kTensor;
      } else if (value == "block") {
        strategy = fp8::Strategy::kBlock;
      } else if (value != "channel") {
        return absl::InvalidArgumentError(
            absl::StrCat("options.strategy \"", value, "\" is not one of channel, tensor, block"));
      }
    }
    MethodPlan plan;
    plan.format = &Fp8Format();
    plan.params = Fp8Params(strategy, DType::kBF16);
    // Outputs must load in compressed-tensors: no partial 128 x 128 blocks.
    if (strategy == fp8::Strategy::kBlock) plan.params.extra[kFp8WholeBlocksKey] = "1";
    return plan;
  }

  std::string Label(const FormatParams& p) const override {
    absl::StatusOr<fp8::Strategy> s = Fp8StrategyOf(p);
    if (!s.ok()) return "fp8";
    return *s == fp8::Strategy::kBlock ? "fp8-block128"
                                       : absl::StrCat("fp8-", std::string(Fp8StrategyName(*s)));
  }

  std::map<std::string, std::string> Describe(const FormatParams& p) const override {
    const fp8::Strategy s = Fp8StrategyOf(p).value_or(fp8::Strategy::kChannel);
    std::map<std::string, std::string> d = {
        {"bits", "8"},
        {"type", "float (E4M3)"},
        {"strategy", std::string(Fp8StrategyName(s))},
        {"symmetric", "true"},
        {"scale_dtype", "the weight's dtype (BF16, F16 or F32)"},
        {"scale", "amax / 448"},
        {"rounding",
         "x / scale round to nearest even, saturating at +-448; zero groups get the "
         "scale dtype's epsilon"},
        {"activations", s == fp8::Strategy::kBlock ? "FP8, dynamic, per token per group of 128"
                                                   : "FP8, dynamic, per token"},
    };
    if (s == fp8::Strategy::kBlock) d["block_structure"] = "128x128";
    return d;
  }

  json QuantizationConfig(const FormatParams& p,
                          const std::vector<std::string>& ignore) const override {
    return FloatQuantizedConfig(Fp8StrategyOf(p).value_or(fp8::Strategy::kChannel), ignore);
  }

  v1::Support SupportOn(const v1::DeviceInfo& device, std::string* note) const override {
    if (device.type() == "cuda") {
      const int cc = ParseComputeCapability(device.compute_capability());
      if (cc >= kFp8TensorCoreCapability) return v1::SUPPORT_NATIVE;
      if (note != nullptr) {
        *note = absl::StrCat(
            "weights stored as FP8, matmul through dequantized BF16 (FP8 tensor "
            "cores need compute capability 8.9; this device has ",
            device.compute_capability().empty() ? std::string("an unknown one")
                                                : device.compute_capability(),
            ")");
      }
      return v1::SUPPORT_EMULATED;
    }
    if (note != nullptr) {
      *note = "weights stored as FP8, matmul through dequantized weights (no FP8 compute on CPU)";
    }
    return v1::SUPPORT_EMULATED;
  }
};

}  // namespace

json FloatQuantizedConfig(fp8::Strategy strategy, const std::vector<std::string>& ignore) {
  const bool block = strategy == fp8::Strategy::kBlock;
  json weights =
      Args(std::string(Fp8StrategyName(strategy)).c_str(), /*dynamic=*/false, nullptr,
           block ? json::array({fp8::kBlockRows, fp8::kBlockCols}) : json(nullptr), "minmax");
  // FP8_BLOCK quantizes activations per token and per group of 128 inputs
  // (one group per weight block column); FP8_DYNAMIC per token.
  json inputs = block ? Args("group", /*dynamic=*/true, fp8::kBlockCols, nullptr, nullptr)
                      : Args("token", /*dynamic=*/true, nullptr, nullptr, nullptr);
  json group = {
      {"format", "float-quantized"},   {"input_activations", std::move(inputs)},
      {"output_activations", nullptr}, {"targets", json::array({"Linear"})},
      {"weights", std::move(weights)},
  };
  return json{
      {"config_groups", {{"group_0", std::move(group)}}},
      {"format", "float-quantized"},
      {"global_compression_ratio", nullptr},
      {"ignore", ignore},
      {"kv_cache_scheme", nullptr},
      {"quant_method", "compressed-tensors"},
      {"quantization_status", "compressed"},
      {"sparsity_config", json::object()},
      {"transform_config", json::object()},
      {"version", kCompressedTensorsVersion},
  };
}

const QuantMethod& Fp8Method() {
  static const Fp8MethodImpl* method = new Fp8MethodImpl();
  return *method;
}

}  // namespace quantd
