// HF -> GGUF names, the Q/K permutation, hyper-parameter keys and the
// Llama 3 rope factors (core/gguf/hf_to_gguf.h).
#include "core/gguf/hf_to_gguf.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "core/io/safetensors.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

TEST(HfToGgufTest, TensorNames) {
  const std::map<std::string, std::string> names = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
      {"model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight"},
      {"model.layers.12.self_attn.q_proj.weight", "blk.12.attn_q.weight"},
      {"model.layers.3.self_attn.k_proj.bias", "blk.3.attn_k.bias"},
      {"model.layers.3.self_attn.v_proj.weight", "blk.3.attn_v.weight"},
      {"model.layers.3.self_attn.o_proj.weight", "blk.3.attn_output.weight"},
      {"model.layers.3.post_attention_layernorm.weight", "blk.3.ffn_norm.weight"},
      {"model.layers.3.mlp.gate_proj.weight", "blk.3.ffn_gate.weight"},
      {"model.layers.3.mlp.up_proj.weight", "blk.3.ffn_up.weight"},
      {"model.layers.31.mlp.down_proj.weight", "blk.31.ffn_down.weight"},
  };
  for (const auto& [hf, gguf] : names) EXPECT_EQ(GgufTensorName(hf), gguf) << hf;
  EXPECT_EQ(GgufTensorName("model.layers.0.self_attn.rotary_emb.inv_freq"), std::nullopt);
  EXPECT_EQ(GgufTensorName("vision_tower.x.weight"), std::nullopt);
  EXPECT_EQ(GgmlDims({4096, 11008}), (std::vector<int64_t>{11008, 4096}));
}

TEST(HfToGgufTest, ArchitecturesAndUnsupported) {
  EXPECT_EQ((*FindGgufArch("LlamaForCausalLM"))->name, "llama");
  EXPECT_TRUE((*FindGgufArch("MistralForCausalLM"))->permute_qk);
  EXPECT_EQ((*FindGgufArch("Qwen2ForCausalLM"))->name, "qwen2");
  EXPECT_FALSE((*FindGgufArch("Qwen2ForCausalLM"))->permute_qk);
  auto bad = FindGgufArch("GPT2LMHeadModel");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("Qwen2ForCausalLM"), std::string::npos);
}

// convert_hf_to_gguf's permute, written as numpy does it: reshape(n_head, 2,
// hd/2, cols).swapaxes(1, 2).reshape(rows, cols).
std::vector<float> NumpyPermute(const std::vector<float>& w, int64_t rows, int64_t cols,
                                int64_t n_head) {
  const int64_t half = rows / n_head / 2;
  std::vector<float> out(w.size());
  int64_t o = 0;
  for (int64_t h = 0; h < n_head; ++h) {
    for (int64_t j = 0; j < half; ++j) {  // axis swapped to position 1
      for (int64_t i = 0; i < 2; ++i) {   // axis swapped to position 2
        for (int64_t c = 0; c < cols; ++c) {
          out[o++] = w[((h * 2 + i) * half + j) * cols + c];
        }
      }
    }
  }
  return out;
}

TEST(HfToGgufTest, PermutationMatchesConvertHfToGguf) {
  for (auto [rows, cols, heads] : {std::tuple{4, 3, 1}, {16, 5, 2}, {48, 7, 6}, {8, 1, 4}}) {
    Tensor w = Tensor::Allocate(DType::kF32, {rows, cols});
    std::vector<float> values(rows * cols);
    for (int64_t i = 0; i < rows * cols; ++i) values[i] = w.as<float>()[i] = 0.5f * i - 3;
    auto p = PermuteRowsForRope(w.view(), heads);
    ASSERT_TRUE(p.ok());
    const std::vector<float> expected = NumpyPermute(values, rows, cols, heads);
    for (int64_t i = 0; i < rows * cols; ++i) ASSERT_EQ(p->as<float>()[i], expected[i]) << i;
  }
  // One head of 4 rows: rows 0, 2, 1, 3 (interleaving the rotary halves).
  Tensor b = Tensor::Allocate(DType::kBF16, {4});
  for (int i = 0; i < 4; ++i) b.as<uint16_t>()[i] = static_cast<uint16_t>(100 + i);
  auto pb = PermuteRowsForRope(b.view(), 1);
  ASSERT_TRUE(pb.ok());
  EXPECT_EQ(pb->as<uint16_t>()[1], 102);
  EXPECT_EQ(pb->as<uint16_t>()[2], 101);
  EXPECT_EQ(PermuteRowsForRope(b.view(), 3).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(HfToGgufTest, Llama3RopeFactors) {
  // Llama 3.1 8B: values computed in float32 with numpy from
  // convert_hf_to_gguf's formula.
  auto hp = ReadGgufHparams({{"num_hidden_layers", 32},
                             {"hidden_size", 4096},
                             {"intermediate_size", 14336},
                             {"num_attention_heads", 32},
                             {"num_key_value_heads", 8},
                             {"rope_theta", 500000.0},
                             {"rope_scaling",
                              {{"factor", 8.0},
                               {"low_freq_factor", 1.0},
                               {"high_freq_factor", 4.0},
                               {"original_max_position_embeddings", 8192},
                               {"rope_type", "llama3"}}}});
  ASSERT_TRUE(hp.ok()) << hp.status();
  const std::vector<float> f = Llama3RopeFactors(*hp);
  ASSERT_EQ(f.size(), 64u);
  for (int i = 0; i < 29; ++i) EXPECT_EQ(f[i], 1.0f) << i;
  const float mid[] = {1.2074838876724243f, 1.5534145832061768f, 2.026313066482544f,
                       2.6945300102233887f, 3.684253215789795f,  5.257327079772949f};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(f[29 + i], mid[i], 2e-6f * mid[i]) << 29 + i;
  for (int i = 35; i < 64; ++i) EXPECT_EQ(f[i], 8.0f) << i;
}

TEST(HfToGgufTest, HparamsAndMetadata) {
  json config = {{"num_hidden_layers", 2},
                 {"hidden_size", 128},
                 {"intermediate_size", 256},
                 {"num_attention_heads", 4},
                 {"num_key_value_heads", 2},
                 {"max_position_embeddings", 2048},
                 {"rms_norm_eps", 1e-5},
                 {"rope_theta", 10000.0},
                 {"vocab_size", 259},
                 {"head_dim", 32},
                 {"rope_scaling", {{"type", "linear"}, {"factor", 2.0}}}};
  auto hp = ReadGgufHparams(config);
  ASSERT_TRUE(hp.ok()) << hp.status();
  const auto kv = GgufModelMetadata(**FindGgufArch("LlamaForCausalLM"), *hp, "tiny", 15);
  std::map<std::string, GgufValue> m;
  for (const GgufKv& e : kv) EXPECT_TRUE(m.emplace(e.key, e.value).second) << e.key;
  EXPECT_EQ(*m.at("general.architecture").GetString(), "llama");
  EXPECT_EQ(m.at("general.file_type").Get<uint32_t>(), 15u);
  EXPECT_EQ(m.at("general.quantization_version").Get<uint32_t>(), 2u);
  EXPECT_EQ(m.at("general.alignment").Get<uint32_t>(), 32u);
  EXPECT_EQ(m.at("llama.block_count").Get<uint32_t>(), 2u);
  EXPECT_EQ(m.at("llama.context_length").Get<uint32_t>(), 2048u);
  EXPECT_EQ(m.at("llama.embedding_length").Get<uint32_t>(), 128u);
  EXPECT_EQ(m.at("llama.feed_forward_length").Get<uint32_t>(), 256u);
  EXPECT_EQ(m.at("llama.attention.head_count").Get<uint32_t>(), 4u);
  EXPECT_EQ(m.at("llama.attention.head_count_kv").Get<uint32_t>(), 2u);
  EXPECT_EQ(m.at("llama.rope.freq_base").Get<float>(), 10000.0f);
  EXPECT_EQ(m.at("llama.rope.dimension_count").Get<uint32_t>(), 32u);
  EXPECT_EQ(m.at("llama.attention.layer_norm_rms_epsilon").Get<float>(), 1e-5f);
  EXPECT_EQ(m.at("llama.vocab_size").Get<uint32_t>(), 259u);
  EXPECT_EQ(m.at("llama.attention.key_length").Get<uint32_t>(), 32u);
  EXPECT_EQ(*m.at("llama.rope.scaling.type").GetString(), "linear");
  EXPECT_EQ(m.at("llama.rope.scaling.factor").Get<float>(), 2.0f);

  EXPECT_EQ(ReadGgufHparams({{"hidden_size", 8}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  config["num_key_value_heads"] = 3;
  EXPECT_EQ(ReadGgufHparams(config).status().code(), absl::StatusCode::kInvalidArgument);
}

class PlanTensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/hf-to-gguf-XXXXXX";
    dir_ = mkdtemp(tmpl.data());
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A 1-layer model (hidden 8, 2 heads of 4, 1 KV head) of `arch`.
  std::unique_ptr<HfModel> Write(const std::string& arch, bool bias, bool lm_head,
                                 const std::string& extra = "") {
    std::vector<std::pair<std::string, Tensor>> t;
    auto add = [&](const std::string& name, Shape s) {
      Tensor x = Tensor::Zeros(DType::kF32, s);
      t.emplace_back(name, std::move(x));
    };
    add("model.embed_tokens.weight", {16, 8});
    const std::string p = "model.layers.0.";
    add(p + "input_layernorm.weight", {8});
    add(p + "self_attn.q_proj.weight", {8, 8});
    add(p + "self_attn.k_proj.weight", {4, 8});
    add(p + "self_attn.v_proj.weight", {4, 8});
    if (bias) {
      add(p + "self_attn.q_proj.bias", {8});
      add(p + "self_attn.k_proj.bias", {4});
      add(p + "self_attn.v_proj.bias", {4});
    }
    add(p + "self_attn.o_proj.weight", {8, 8});
    add(p + "self_attn.rotary_emb.inv_freq", {2});
    add(p + "post_attention_layernorm.weight", {8});
    add(p + "mlp.gate_proj.weight", {16, 8});
    add(p + "mlp.up_proj.weight", {16, 8});
    add(p + "mlp.down_proj.weight", {8, 16});
    add("model.norm.weight", {8});
    if (lm_head) add("lm_head.weight", {16, 8});
    if (!extra.empty()) add(extra, {8});
    std::vector<std::pair<std::string, TensorView>> views;
    for (auto& [n, x] : t) views.emplace_back(n, x.view());
    EXPECT_TRUE(WriteSafetensors(dir_ / "model.safetensors", views, {}).ok());
    json config = {{"architectures", {arch}},  {"num_hidden_layers", 1},
                   {"hidden_size", 8},         {"intermediate_size", 16},
                   {"num_attention_heads", 2}, {"num_key_value_heads", 1},
                   {"vocab_size", 16},         {"rope_scaling", {{"rope_type", "llama3"}}}};
    std::ofstream(dir_ / "config.json") << config.dump();
    auto m = HfModel::Open(dir_);
    EXPECT_TRUE(m.ok()) << m.status();
    hp_ = *ReadGgufHparams(config);
    return m.ok() ? *std::move(m) : nullptr;
  }

  fs::path dir_;
  GgufHparams hp_;
};

TEST_F(PlanTensorsTest, LlamaOrderPermutationAndRopeFreqs) {
  auto model = Write("LlamaForCausalLM", /*bias=*/true, /*lm_head=*/true);
  auto plan = PlanGgufTensors(*model, **FindGgufArch("LlamaForCausalLM"), hp_);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<std::string> names;
  for (const GgufTensorSource& t : *plan) names.push_back(t.name);
  const std::vector<std::string> expected = {
      "token_embd.weight",     "blk.0.attn_norm.weight", "blk.0.attn_q.weight",
      "blk.0.attn_q.bias",     "blk.0.attn_k.weight",    "blk.0.attn_k.bias",
      "blk.0.attn_v.weight",   "blk.0.attn_v.bias",      "blk.0.attn_output.weight",
      "blk.0.ffn_norm.weight", "blk.0.ffn_gate.weight",  "blk.0.ffn_up.weight",
      "blk.0.ffn_down.weight", "output_norm.weight",     "output.weight",
      "rope_freqs.weight"};
  EXPECT_EQ(names, expected);
  std::map<std::string, const GgufTensorSource*> by;
  for (const GgufTensorSource& t : *plan) by[t.name] = &t;
  EXPECT_EQ(by["blk.0.attn_q.weight"]->permute, RowPermute::kRope);
  EXPECT_EQ(by["blk.0.attn_q.weight"]->permute_heads, 2);
  EXPECT_EQ(by["blk.0.attn_k.weight"]->permute_heads, 1);
  EXPECT_EQ(by["blk.0.attn_k.bias"]->permute, RowPermute::kRope);
  EXPECT_EQ(by["blk.0.attn_v.weight"]->permute, RowPermute::kNone);
  EXPECT_EQ(by["rope_freqs.weight"]->shape, (Shape{2}));
  EXPECT_EQ(by["rope_freqs.weight"]->source, nullptr);
}

TEST_F(PlanTensorsTest, Qwen2IsNotPermutedAndTiedHasNoOutput) {
  auto model = Write("Qwen2ForCausalLM", /*bias=*/true, /*lm_head=*/false);
  auto plan = PlanGgufTensors(*model, **FindGgufArch("Qwen2ForCausalLM"), hp_);
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (const GgufTensorSource& t : *plan) {
    EXPECT_EQ(t.permute, RowPermute::kNone) << t.name;
    EXPECT_NE(t.name, "output.weight");
    EXPECT_NE(t.name, "rope_freqs.weight");  // llama3 rope is a llama-arch thing
  }
}

TEST_F(PlanTensorsTest, UnknownTensorIsInvalidArgument) {
  auto model = Write("LlamaForCausalLM", false, true, "model.layers.0.mystery.weight");
  auto plan = PlanGgufTensors(*model, **FindGgufArch("LlamaForCausalLM"), hp_);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(plan.status().message().find("mystery"), std::string::npos);
}

}  // namespace
}  // namespace quantd
