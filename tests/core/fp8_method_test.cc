// The "fp8" method (core/quant/fp8_method.h): spec resolution, labels,
// compressed-tensors quantization_config, device support.
#include "core/quant/fp8_method.h"

#include <string>

#include "core/formats/fp8.h"
#include "core/quant/compressed_tensors.h"
#include "core/quant/method_registry.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using json = nlohmann::json;

v1::QuantizeSpec Spec(const std::string& strategy = "") {
  v1::QuantizeSpec s;
  s.set_method("fp8");
  if (!strategy.empty()) (*s.mutable_options())["strategy"] = strategy;
  return s;
}

TEST(Fp8MethodTest, IsRegistered) {
  absl::StatusOr<const QuantMethod*> m = FindMethod("fp8");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(*m, &Fp8Method());
  EXPECT_EQ(Fp8Method().output_format(), "compressed-tensors/float-quantized");
  EXPECT_EQ(Fp8Method().ParameterHelp().count("options.strategy"), 1u);
}

TEST(Fp8MethodTest, ResolvesStrategies) {
  struct Case {
    std::string option;
    fp8::Strategy strategy;
    std::string label;
  };
  const Case cases[] = {{"", fp8::Strategy::kChannel, "fp8-channel"},
                        {"channel", fp8::Strategy::kChannel, "fp8-channel"},
                        {"tensor", fp8::Strategy::kTensor, "fp8-tensor"},
                        {"block", fp8::Strategy::kBlock, "fp8-block128"}};
  for (const Case& c : cases) {
    v1::QuantizeSpec spec = Spec(c.option);
    spec.set_symmetric(true);
    absl::StatusOr<MethodPlan> plan = Fp8Method().Resolve(spec);
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_EQ(plan->format, &Fp8Format());
    EXPECT_EQ(*Fp8StrategyOf(plan->params), c.strategy);
    EXPECT_TRUE(Fp8Format().Check(plan->params, 256, 256).ok());
    EXPECT_EQ(Fp8Method().Label(plan->params), c.label);
    EXPECT_EQ(Fp8Method().Describe(plan->params).at("strategy"),
              std::string(Fp8StrategyName(c.strategy)));
  }
}

TEST(Fp8MethodTest, RejectsOtherParameters) {
  v1::QuantizeSpec spec = Spec("group");
  absl::Status s = Fp8Method().Resolve(spec).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("options.strategy \"group\""), std::string::npos) << s;
  spec = Spec();
  spec.set_group_size(128);
  s = Fp8Method().Resolve(spec).status();
  EXPECT_NE(s.message().find("group_size 128"), std::string::npos) << s;
  spec = Spec();
  spec.set_symmetric(false);
  EXPECT_EQ(Fp8Method().Resolve(spec).status().code(), absl::StatusCode::kInvalidArgument);
  spec = Spec();
  (*spec.mutable_options())["block_size"] = "64";
  s = Fp8Method().Resolve(spec).status();
  EXPECT_NE(s.message().find("block_size"), std::string::npos) << s;
}

TEST(Fp8MethodTest, WritesFp8DynamicConfigForChannel) {
  const json cfg =
      Fp8Method().QuantizationConfig(Fp8Params(fp8::Strategy::kChannel, DType::kBF16), {"lm_head"});
  EXPECT_EQ(cfg["quant_method"], "compressed-tensors");
  EXPECT_EQ(cfg["format"], "float-quantized");
  EXPECT_EQ(cfg["quantization_status"], "compressed");
  EXPECT_EQ(cfg["ignore"], json::array({"lm_head"}));
  EXPECT_EQ(cfg["version"], kCompressedTensorsVersion);
  const json& g = cfg["config_groups"]["group_0"];
  EXPECT_EQ(g["format"], "float-quantized");
  EXPECT_EQ(g["targets"], json::array({"Linear"}));
  EXPECT_TRUE(g["output_activations"].is_null());
  const json& w = g["weights"];
  EXPECT_EQ(w["num_bits"], 8);
  EXPECT_EQ(w["type"], "float");
  EXPECT_EQ(w["strategy"], "channel");
  EXPECT_EQ(w["symmetric"], true);
  EXPECT_EQ(w["dynamic"], false);
  EXPECT_TRUE(w["group_size"].is_null());
  EXPECT_TRUE(w["block_structure"].is_null());
  EXPECT_FALSE(w.contains("scale_dtype"));
  EXPECT_EQ(w.size(), 10u);
  const json& a = g["input_activations"];
  EXPECT_EQ(a["num_bits"], 8);
  EXPECT_EQ(a["type"], "float");
  EXPECT_EQ(a["strategy"], "token");
  EXPECT_EQ(a["dynamic"], true);
  EXPECT_EQ(a["symmetric"], true);
  EXPECT_TRUE(a["observer"].is_null());
  EXPECT_EQ(a.size(), 10u);
}

TEST(Fp8MethodTest, WritesFp8BlockAndTensorConfigs) {
  const json block = FloatQuantizedConfig(fp8::Strategy::kBlock, {});
  const json& bw = block["config_groups"]["group_0"]["weights"];
  EXPECT_EQ(bw["strategy"], "block");
  EXPECT_EQ(bw["block_structure"], json::array({128, 128}));
  EXPECT_TRUE(bw["group_size"].is_null());
  const json& ba = block["config_groups"]["group_0"]["input_activations"];
  EXPECT_EQ(ba["strategy"], "group");
  EXPECT_EQ(ba["group_size"], 128);
  EXPECT_EQ(ba["dynamic"], true);
  const json tensor = FloatQuantizedConfig(fp8::Strategy::kTensor, {});
  EXPECT_EQ(tensor["config_groups"]["group_0"]["weights"]["strategy"], "tensor");
  EXPECT_EQ(tensor["config_groups"]["group_0"]["input_activations"]["strategy"], "token");
}

TEST(Fp8MethodTest, NativeOnlyWithFp8TensorCores) {
  auto device = [](const std::string& type, const std::string& cc) {
    v1::DeviceInfo d;
    d.set_type(type);
    d.set_compute_capability(cc);
    return d;
  };
  std::string note;
  EXPECT_EQ(Fp8Method().SupportOn(device("cuda", "9.0"), &note), v1::SUPPORT_NATIVE);
  EXPECT_EQ(Fp8Method().SupportOn(device("cuda", "8.9"), &note), v1::SUPPORT_NATIVE);
  EXPECT_EQ(Fp8Method().SupportOn(device("cuda", "12.0"), &note), v1::SUPPORT_NATIVE);
  for (const std::string cc : {"8.6", "8.0", "7.5", "", "nine"}) {
    note.clear();
    EXPECT_EQ(Fp8Method().SupportOn(device("cuda", cc), &note), v1::SUPPORT_EMULATED) << cc;
    EXPECT_NE(note.find("dequantized BF16"), std::string::npos) << note;
  }
  note.clear();
  EXPECT_EQ(Fp8Method().SupportOn(device("cpu", ""), &note), v1::SUPPORT_EMULATED);
  EXPECT_FALSE(note.empty());
}

}  // namespace
}  // namespace quantd
