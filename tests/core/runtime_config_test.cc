#include <cmath>
#include <string>

#include "core/runtime/llama_config.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace quantd {
namespace {

using nlohmann::json;

// True when `status`'s message contains `part`.
bool Mentions(const absl::Status& status, const std::string& part) {
  return std::string(status.message()).find(part) != std::string::npos;
}

// Abbreviated from the published config.json files.
json Llama2_7b() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "hidden_act": "silu", "hidden_size": 4096,
    "intermediate_size": 11008, "max_position_embeddings": 4096, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
    "rms_norm_eps": 1e-05, "rope_scaling": null, "tie_word_embeddings": false,
    "torch_dtype": "float16", "vocab_size": 32000})");
}

json Llama31_8b() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "hidden_act": "silu",
    "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 131072,
    "mlp_bias": false, "model_type": "llama", "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": false, "vocab_size": 128256})");
}

json TinyLlama() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "hidden_act": "silu", "hidden_size": 2048,
    "intermediate_size": 5632, "max_position_embeddings": 2048, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 22, "num_key_value_heads": 4,
    "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000.0,
    "tie_word_embeddings": false, "vocab_size": 32000})");
}

json SmolLm135m() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "hidden_act": "silu",
    "hidden_size": 576, "intermediate_size": 1536, "max_position_embeddings": 2048,
    "model_type": "llama", "num_attention_heads": 9, "num_hidden_layers": 30,
    "num_key_value_heads": 3, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
    "tie_word_embeddings": true, "vocab_size": 49152})");
}

json Mistral7bV01() {
  return json::parse(R"({
    "architectures": ["MistralForCausalLM"], "hidden_act": "silu", "hidden_size": 4096,
    "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
    "tie_word_embeddings": false, "vocab_size": 32000})");
}

json Qwen2_05b() {
  return json::parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "hidden_act": "silu", "hidden_size": 896,
    "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21,
    "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
    "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
    "sliding_window": 32768, "tie_word_embeddings": true, "use_sliding_window": false,
    "vocab_size": 151936})");
}

TEST(RuntimeConfigTest, ReadsLlama2) {
  absl::StatusOr<LlamaConfig> c = LlamaConfigFromJson(Llama2_7b());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "LlamaForCausalLM");
  EXPECT_EQ(c->hidden_size, 4096);
  EXPECT_EQ(c->num_layers, 32);
  EXPECT_EQ(c->num_heads, 32);
  EXPECT_EQ(c->num_kv_heads, 32);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->intermediate_size, 11008);
  EXPECT_EQ(c->vocab_size, 32000);
  EXPECT_EQ(c->max_position_embeddings, 4096);
  EXPECT_FLOAT_EQ(c->rms_norm_eps, 1e-5f);
  EXPECT_DOUBLE_EQ(c->rope.theta, 10000.0);
  EXPECT_EQ(c->rope.scaling, RopeScalingType::kNone);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_FALSE(c->qkv_bias || c->o_bias || c->mlp_bias);
  EXPECT_EQ(c->sliding_window, std::vector<int64_t>(32, 0));
  EXPECT_EQ(c->ParameterCount(), 6738415616);  // Llama-2-7b's published count
}

TEST(RuntimeConfigTest, ReadsLlama31WithRopeScaling) {
  absl::StatusOr<LlamaConfig> c = LlamaConfigFromJson(Llama31_8b());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_kv_heads, 8);
  EXPECT_EQ(c->kv_dim(), 1024);
  EXPECT_EQ(c->rope.scaling, RopeScalingType::kLlama3);
  EXPECT_DOUBLE_EQ(c->rope.theta, 500000.0);
  EXPECT_DOUBLE_EQ(c->rope.factor, 8.0);
  EXPECT_DOUBLE_EQ(c->rope.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c->rope.high_freq_factor, 4.0);
  EXPECT_EQ(c->rope.original_max_position_embeddings, 8192);
  EXPECT_EQ(c->ParameterCount(), 8030261248);  // Llama-3.1-8B's published count
}

// transformers' _compute_llama3_parameters, in double.
double Llama3InvFreq(int i, int dim, double theta) {
  const double inv = 1.0 / std::pow(theta, 2.0 * i / dim);
  const double wavelen = 2 * M_PI / inv, low = 8192.0 / 1.0, high = 8192.0 / 4.0;
  if (wavelen < high) return inv;
  if (wavelen > low) return inv / 8.0;
  const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
  return (1 - smooth) * inv / 8.0 + smooth * inv;
}

TEST(RuntimeConfigTest, Llama3InverseFrequencies) {
  absl::StatusOr<LlamaConfig> c = LlamaConfigFromJson(Llama31_8b());
  ASSERT_TRUE(c.ok()) << c.status();
  const std::vector<float> inv = RopeInvFreq(c->rope, c->head_dim);
  ASSERT_EQ(inv.size(), 64u);
  int low = 0, mid = 0, high = 0;
  for (int i = 0; i < 64; ++i) {
    const double want = Llama3InvFreq(i, 128, 500000.0);
    EXPECT_NEAR(inv[i], want, 2e-6 * want) << i;
    const double unscaled = 1.0 / std::pow(500000.0, 2.0 * i / 128);
    const double ratio = want / unscaled;
    (ratio > 0.999 ? high : ratio < 0.126 ? low : mid) += 1;
  }
  // All three bands occur: unscaled, smoothed, divided by the factor.
  EXPECT_GT(low, 0);
  EXPECT_GT(mid, 0);
  EXPECT_GT(high, 0);
}

TEST(RuntimeConfigTest, DefaultAndLinearInverseFrequencies) {
  RopeConfig r;
  r.theta = 10000;
  const std::vector<float> inv = RopeInvFreq(r, 64);
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(inv[i], std::pow(10000.0, -i / 32.0), 1e-6);
  r.scaling = RopeScalingType::kLinear;
  r.factor = 4;
  const std::vector<float> lin = RopeInvFreq(r, 64);
  for (int i = 0; i < 32; ++i) EXPECT_FLOAT_EQ(lin[i], inv[i] / 4);
  r.scaling = RopeScalingType::kNone;
  r.freq_factors.assign(32, 2.0f);
  const std::vector<float> ff = RopeInvFreq(r, 64);
  for (int i = 0; i < 32; ++i) EXPECT_FLOAT_EQ(ff[i], inv[i] / 2);
}

TEST(RuntimeConfigTest, ReadsTinyLlamaAndSmolLm) {
  absl::StatusOr<LlamaConfig> tiny = LlamaConfigFromJson(TinyLlama());
  ASSERT_TRUE(tiny.ok()) << tiny.status();
  EXPECT_EQ(tiny->num_kv_heads, 4);
  EXPECT_EQ(tiny->head_dim, 64);
  EXPECT_EQ(tiny->ParameterCount(), 1100048384);  // TinyLlama-1.1B
  absl::StatusOr<LlamaConfig> smol = LlamaConfigFromJson(SmolLm135m());
  ASSERT_TRUE(smol.ok()) << smol.status();
  EXPECT_TRUE(smol->tie_word_embeddings);
  EXPECT_EQ(smol->head_dim, 64);
  EXPECT_EQ(smol->ParameterCount(), 134515008);  // SmolLM-135M
}

TEST(RuntimeConfigTest, ReadsMistralSlidingWindow) {
  absl::StatusOr<LlamaConfig> c = LlamaConfigFromJson(Mistral7bV01());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "MistralForCausalLM");
  EXPECT_EQ(c->sliding_window, std::vector<int64_t>(32, 4096));
  json v03 = Mistral7bV01();
  v03["sliding_window"] = nullptr;
  c = LlamaConfigFromJson(v03);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_window, std::vector<int64_t>(32, 0));
}

TEST(RuntimeConfigTest, ReadsQwen2WithBiases) {
  absl::StatusOr<LlamaConfig> c = LlamaConfigFromJson(Qwen2_05b());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->qkv_bias);
  EXPECT_FALSE(c->o_bias);
  EXPECT_FALSE(c->mlp_bias);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->sliding_window, std::vector<int64_t>(24, 0));  // use_sliding_window false
  EXPECT_EQ(c->ParameterCount(), 494032768);                  // Qwen2-0.5B
  json sliding = Qwen2_05b();
  sliding["use_sliding_window"] = true;
  sliding["sliding_window"] = 4096;
  c = LlamaConfigFromJson(sliding);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_window[20], 0);
  EXPECT_EQ(c->sliding_window[21], 4096);
}

TEST(RuntimeConfigTest, AcceptsTransformers5RopeParameters) {
  json j = Llama31_8b();
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_type", "llama3"},   {"rope_theta", 500000.0},
                          {"factor", 8.0},           {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  absl::StatusOr<LlamaConfig> c = LlamaConfigFromJson(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope.scaling, RopeScalingType::kLlama3);
  EXPECT_DOUBLE_EQ(c->rope.theta, 500000.0);
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1e6}};
  c = LlamaConfigFromJson(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope.scaling, RopeScalingType::kNone);
  EXPECT_DOUBLE_EQ(c->rope.theta, 1e6);
}

TEST(RuntimeConfigTest, ExplicitHeadDimAndModelTypeFallback) {
  json j = TinyLlama();
  j.erase("architectures");
  j["head_dim"] = 128;
  absl::StatusOr<LlamaConfig> c = LlamaConfigFromJson(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "LlamaForCausalLM");
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->q_dim(), 4096);
}

TEST(RuntimeConfigTest, RejectsUnsupportedArchitectureListingSupported) {
  json j = Llama2_7b();
  j["architectures"] = {"GPT2LMHeadModel"};
  absl::StatusOr<LlamaConfig> c = LlamaConfigFromJson(j);
  ASSERT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Mentions(c.status(), "GPT2LMHeadModel"));
  EXPECT_TRUE(Mentions(c.status(), "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM"));
  j.erase("architectures");
  j["model_type"] = "gemma";
  c = LlamaConfigFromJson(j);
  ASSERT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Mentions(c.status(), "gemma"));
}

TEST(RuntimeConfigTest, RejectsUnsupportedFeaturesAndBadValues) {
  struct Case {
    const char* key;
    json value;
    const char* message;
  } cases[] = {
      {"hidden_act", "gelu", "hidden_act"},
      {"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}, "yarn"},
      {"rope_scaling", {{"type", "dynamic"}, {"factor", 2.0}}, "dynamic"},
      {"rope_scaling", "llama3", "rope_scaling"},
      {"hidden_size", "4096", "hidden_size"},
      {"hidden_size", -1, "hidden_size"},
      {"hidden_size", 4097, "multiple"},
      {"num_key_value_heads", 5, "multiple"},
      {"vocab_size", 0, "vocab_size"},
      {"vocab_size", int64_t{1} << 40, "vocab_size"},
      {"rms_norm_eps", "x", "rms_norm_eps"},
      {"rope_theta", 0.5, "rope_theta"},
      {"tie_word_embeddings", 1, "tie_word_embeddings"},
      {"head_dim", 127, "odd"},
  };
  for (const Case& k : cases) {
    json j = Llama2_7b();
    j[k.key] = k.value;
    absl::StatusOr<LlamaConfig> c = LlamaConfigFromJson(j);
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << k.key << " " << k.value;
    EXPECT_TRUE(Mentions(c.status(), k.message)) << k.key;
  }
  json missing = Llama2_7b();
  missing.erase("num_hidden_layers");
  EXPECT_EQ(LlamaConfigFromJson(missing).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LlamaConfigFromJson(json::array()).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quantd
