// llama-quantize's per-tensor type rules (core/gguf/gguf_mix.h) on
// Llama-shaped models. Expected types are those of llama.cpp's
// src/llama-quant.cpp (see docs/research/gguf_conversion.md §4); the
// Llama-2-7B Q4_K_M pattern matches published files (attn_v and ffn_down
// Q6_K in layers 0-3, 6, 9, ..., 27, 28-31).
#include "core/gguf/gguf_mix.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace quantd {
namespace {

using T = GgmlType;

struct Shape2 {
  int64_t layers = 32, embd = 4096, ff = 11008, heads = 32, kv_heads = 32, vocab = 32000;
  bool tied = false;
};

// The tensors of a Llama model in GGUF names, as the pipeline plans them.
std::vector<GgufMixTensor> LlamaTensors(const Shape2& s) {
  const int64_t kv = s.embd / s.heads * s.kv_heads;
  std::vector<GgufMixTensor> t;
  auto add = [&](std::string name, std::vector<int64_t> ne) {
    t.push_back({std::move(name), std::move(ne), T::kF32});
  };
  add("token_embd.weight", {s.embd, s.vocab});
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string b = absl::StrCat("blk.", l, ".");
    add(b + "attn_norm.weight", {s.embd});
    add(b + "attn_q.weight", {s.embd, s.embd});
    add(b + "attn_k.weight", {s.embd, kv});
    add(b + "attn_v.weight", {s.embd, kv});
    add(b + "attn_output.weight", {s.embd, s.embd});
    add(b + "ffn_norm.weight", {s.embd});
    add(b + "ffn_gate.weight", {s.embd, s.ff});
    add(b + "ffn_up.weight", {s.embd, s.ff});
    add(b + "ffn_down.weight", {s.ff, s.embd});
  }
  add("output_norm.weight", {s.embd});
  if (!s.tied) add("output.weight", {s.embd, s.vocab});
  return t;
}

class GgufMixTest : public ::testing::Test {
 protected:
  std::map<std::string, GgmlType> Choose(const Shape2& s, const std::string& ftype,
                                         bool imatrix = false, const std::string& overrides = "") {
    auto ft = ParseGgufFileType(ftype);
    EXPECT_TRUE(ft.ok()) << ft.status();
    auto ov = ParseGgufTypeOverrides(overrides);
    EXPECT_TRUE(ov.ok()) << ov.status();
    GgufMixOptions options{*ft, imatrix, *ov};
    tensors_ = LlamaTensors(s);
    choices_ = ChooseGgufTypes({"llama", s.layers, s.heads, s.kv_heads}, tensors_, options);
    std::map<std::string, GgmlType> out;
    for (size_t i = 0; i < tensors_.size(); ++i) out[tensors_[i].name] = choices_[i].type;
    return out;
  }

  static std::string Blk(int l, const char* name) { return absl::StrCat("blk.", l, ".", name); }

  std::vector<GgufMixTensor> tensors_;
  std::vector<GgufMixChoice> choices_;
};

bool UseMoreBits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

TEST_F(GgufMixTest, Q4KMUpgradesAttnVAndFfnDownByLayerPosition) {
  const auto types = Choose(Shape2{}, "Q4_K_M");
  EXPECT_EQ(types.at("token_embd.weight"), T::kQ4_K);
  EXPECT_EQ(types.at("output.weight"), T::kQ6_K);
  EXPECT_EQ(types.at("output_norm.weight"), T::kF32);
  const std::vector<int> q6 = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
  for (int l = 0; l < 32; ++l) {
    const bool more = std::find(q6.begin(), q6.end(), l) != q6.end();
    ASSERT_EQ(more, UseMoreBits(l, 32));
    EXPECT_EQ(types.at(Blk(l, "attn_v.weight")), more ? T::kQ6_K : T::kQ4_K) << l;
    EXPECT_EQ(types.at(Blk(l, "ffn_down.weight")), more ? T::kQ6_K : T::kQ4_K) << l;
    for (const char* n : {"attn_q.weight", "attn_k.weight", "attn_output.weight", "ffn_gate.weight",
                          "ffn_up.weight"}) {
      EXPECT_EQ(types.at(Blk(l, n)), T::kQ4_K) << l << n;
    }
    EXPECT_EQ(types.at(Blk(l, "attn_norm.weight")), T::kF32);
    EXPECT_EQ(types.at(Blk(l, "ffn_norm.weight")), T::kF32);
  }
  for (const GgufMixChoice& c : choices_) EXPECT_FALSE(c.fallback);
}

TEST_F(GgufMixTest, Q3KVariants) {
  auto m = Choose(Shape2{}, "Q3_K_M");
  for (int l = 0; l < 32; ++l) {
    EXPECT_EQ(m.at(Blk(l, "attn_v.weight")), l < 2 ? T::kQ5_K : T::kQ4_K) << l;
    EXPECT_EQ(m.at(Blk(l, "ffn_down.weight")), l < 32 / 16 ? T::kQ5_K : T::kQ4_K) << l;
    EXPECT_EQ(m.at(Blk(l, "attn_output.weight")), T::kQ4_K);
    EXPECT_EQ(m.at(Blk(l, "attn_q.weight")), T::kQ3_K);
    EXPECT_EQ(m.at(Blk(l, "ffn_up.weight")), T::kQ3_K);
  }
  EXPECT_EQ(m.at("output.weight"), T::kQ6_K);
  auto l = Choose(Shape2{}, "Q3_K_L");
  EXPECT_EQ(l.at(Blk(7, "attn_v.weight")), T::kQ5_K);
  EXPECT_EQ(l.at(Blk(7, "ffn_down.weight")), T::kQ5_K);
  EXPECT_EQ(l.at(Blk(7, "attn_output.weight")), T::kQ5_K);
  EXPECT_EQ(l.at(Blk(7, "ffn_gate.weight")), T::kQ3_K);
  auto s = Choose(Shape2{}, "Q3_K_S");
  EXPECT_EQ(s.at(Blk(0, "attn_v.weight")), T::kQ3_K);
  EXPECT_EQ(s.at(Blk(0, "ffn_down.weight")), T::kQ3_K);
  EXPECT_EQ(s.at("output.weight"), T::kQ6_K);
}

TEST_F(GgufMixTest, Q2KDependsOnGqa) {
  Shape2 gqa;  // Llama-3-8B-like: 32 heads, 8 KV heads
  gqa.kv_heads = 8;
  gqa.ff = 14336;
  gqa.vocab = 128256;
  auto g = Choose(gqa, "Q2_K");
  EXPECT_EQ(g.at(Blk(5, "attn_v.weight")), T::kQ4_K);
  EXPECT_EQ(g.at(Blk(5, "ffn_down.weight")), T::kQ3_K);
  EXPECT_EQ(g.at(Blk(5, "attn_output.weight")), T::kQ3_K);
  EXPECT_EQ(g.at(Blk(5, "attn_q.weight")), T::kQ2_K);
  auto m = Choose(Shape2{}, "Q2_K");  // no GQA
  EXPECT_EQ(m.at(Blk(5, "attn_v.weight")), T::kQ3_K);
}

TEST_F(GgufMixTest, QKSAndQ5KM) {
  auto s = Choose(Shape2{}, "Q4_K_S");
  for (int l = 0; l < 32; ++l) {
    EXPECT_EQ(s.at(Blk(l, "attn_v.weight")), l < 4 ? T::kQ5_K : T::kQ4_K) << l;
    EXPECT_EQ(s.at(Blk(l, "ffn_down.weight")), l < 4 ? T::kQ5_K : T::kQ4_K) << l;
  }
  auto m = Choose(Shape2{}, "Q5_K_M");
  for (int l = 0; l < 32; ++l) {
    EXPECT_EQ(m.at(Blk(l, "attn_v.weight")), UseMoreBits(l, 32) ? T::kQ6_K : T::kQ5_K) << l;
  }
  auto k5s = Choose(Shape2{}, "Q5_K_S");
  EXPECT_EQ(k5s.at(Blk(0, "attn_v.weight")), T::kQ5_K);
  auto k6 = Choose(Shape2{}, "Q6_K");
  EXPECT_EQ(k6.at(Blk(0, "attn_v.weight")), T::kQ6_K);
  EXPECT_EQ(k6.at("output.weight"), T::kQ6_K);
}

TEST_F(GgufMixTest, LegacyTypesAndImatrixGuard) {
  auto q8 = Choose(Shape2{}, "Q8_0");
  EXPECT_EQ(q8.at("output.weight"), T::kQ8_0);  // not raised to Q6_K
  EXPECT_EQ(q8.at(Blk(0, "attn_v.weight")), T::kQ8_0);
  auto q4 = Choose(Shape2{}, "Q4_0");
  EXPECT_EQ(q4.at("output.weight"), T::kQ6_K);
  EXPECT_EQ(q4.at(Blk(0, "ffn_down.weight")), T::kQ4_0);
  auto q4i = Choose(Shape2{}, "Q4_0", /*imatrix=*/true);
  for (int l = 0; l < 32; ++l) {
    EXPECT_EQ(q4i.at(Blk(l, "ffn_down.weight")), l < 4 ? T::kQ4_1 : T::kQ4_0) << l;
  }
  auto q5i = Choose(Shape2{}, "Q5_0", /*imatrix=*/true);
  EXPECT_EQ(q5i.at(Blk(0, "ffn_down.weight")), T::kQ5_1);
  auto q41 = Choose(Shape2{}, "Q4_1");
  EXPECT_EQ(q41.at(Blk(0, "attn_q.weight")), T::kQ4_1);
}

TEST_F(GgufMixTest, FloatFileTypesKeepNormsF32) {
  auto f16 = Choose(Shape2{}, "F16");
  EXPECT_EQ(f16.at("token_embd.weight"), T::kF16);
  EXPECT_EQ(f16.at("output.weight"), T::kF16);
  EXPECT_EQ(f16.at(Blk(3, "attn_v.weight")), T::kF16);
  EXPECT_EQ(f16.at(Blk(3, "attn_norm.weight")), T::kF32);
  auto bf16 = Choose(Shape2{}, "bf16");
  EXPECT_EQ(bf16.at(Blk(3, "ffn_down.weight")), T::kBF16);
}

TEST_F(GgufMixTest, TiedEmbeddingsTakeTheOutputType) {
  Shape2 s;
  s.tied = true;
  auto m = Choose(s, "Q4_K_M");
  EXPECT_EQ(m.at("token_embd.weight"), T::kQ6_K);
  EXPECT_EQ(m.count("output.weight"), 0u);
}

TEST_F(GgufMixTest, RowsNotMultipleOf256FallBack) {
  Shape2 s;  // hidden 128: every K-quant of a row of 128 falls back
  s.layers = 2;
  s.embd = 128;
  s.ff = 256;
  s.heads = 4;
  s.kv_heads = 2;
  s.vocab = 259;
  auto m = Choose(s, "Q4_K_M");
  EXPECT_EQ(m.at(Blk(0, "attn_q.weight")), T::kQ5_0);    // Q4_K -> Q5_0
  EXPECT_EQ(m.at(Blk(1, "attn_v.weight")), T::kQ8_0);    // Q6_K -> Q8_0
  EXPECT_EQ(m.at(Blk(0, "ffn_down.weight")), T::kQ4_K);  // rows of 256: no fallback
  EXPECT_EQ(m.at("output.weight"), T::kQ8_0);            // nx % block -> Q8_0 directly
  EXPECT_EQ(m.at("token_embd.weight"), T::kQ5_0);
  auto q2 = Choose(s, "Q2_K");
  EXPECT_EQ(q2.at(Blk(0, "attn_q.weight")), T::kQ4_0);       // Q2_K -> Q4_0
  EXPECT_EQ(q2.at(Blk(0, "attn_output.weight")), T::kQ4_0);  // Q3_K -> Q4_0
  auto q5 = Choose(s, "Q5_K_S");
  EXPECT_EQ(q5.at(Blk(0, "attn_q.weight")), T::kQ5_1);  // Q5_K -> Q5_1
  int fallbacks = 0;
  for (const GgufMixChoice& c : choices_) fallbacks += c.fallback;
  EXPECT_GT(fallbacks, 0);

  // A row length that fits no 32-block falls back to F16.
  GgufMixOptions o{*ParseGgufFileType("Q4_K_M"), false, {}};
  auto odd = ChooseGgufTypes({"llama", 1, 1, 1}, {{"blk.0.attn_q.weight", {48, 48}, T::kF32}}, o);
  EXPECT_EQ(odd[0].type, T::kF16);
  EXPECT_TRUE(odd[0].fallback);
}

TEST_F(GgufMixTest, SeventyBillionAttnVGetsQ5K) {
  Shape2 s;
  s.layers = 80;
  s.embd = 8192;
  s.ff = 28672;
  s.heads = 64;
  s.kv_heads = 8;
  auto m = Choose(s, "Q4_K_M");
  EXPECT_FALSE(UseMoreBits(11, 80));
  EXPECT_EQ(m.at(Blk(11, "attn_v.weight")), T::kQ5_K);
  EXPECT_EQ(m.at(Blk(12, "attn_v.weight")), T::kQ6_K);
  EXPECT_EQ(m.at(Blk(11, "attn_q.weight")), T::kQ4_K);
}

TEST_F(GgufMixTest, OverridesWinAndDoNotAdvanceCounters) {
  auto m = Choose(Shape2{}, "Q4_K_M", false, "attn_v=Q8_0; blk\\.0\\.ffn_down=F16");
  for (int l = 0; l < 32; ++l) EXPECT_EQ(m.at(Blk(l, "attn_v.weight")), T::kQ8_0);
  EXPECT_EQ(m.at(Blk(0, "ffn_down.weight")), T::kF16);
  // blk.0.ffn_down skipped the rules: the ffn_down counter is one behind for
  // later layers (llama-quantize behaves the same), so blk.1 is counted as
  // i = 0 (Q6_K) and blk.4 as i = 3 (Q6_K), blk.5 as 4 (Q4_K).
  EXPECT_EQ(m.at(Blk(4, "ffn_down.weight")), T::kQ6_K);
  EXPECT_EQ(m.at(Blk(5, "ffn_down.weight")), T::kQ4_K);
  EXPECT_EQ(m.at(Blk(7, "ffn_down.weight")), T::kQ6_K);  // i = 6
  // Norms are never quantized, even when a pattern matches.
  auto n = Choose(Shape2{}, "Q4_K_M", false, "norm=Q8_0");
  EXPECT_EQ(n.at("output_norm.weight"), T::kF32);
  // Overrides also apply to float file types.
  auto f = Choose(Shape2{}, "F16", false, "output=Q8_0");
  EXPECT_EQ(f.at("output.weight"), T::kQ8_0);
  EXPECT_EQ(f.at("token_embd.weight"), T::kF16);
}

TEST(GgufFileTypeTest, ParsesNamesAndAliases) {
  EXPECT_EQ(ParseGgufFileType("Q4_K_M")->id, 15u);
  EXPECT_EQ(ParseGgufFileType("q4_k")->name, "Q4_K_M");
  EXPECT_EQ(ParseGgufFileType("Q5_K")->id, 17u);
  EXPECT_EQ(ParseGgufFileType("Q3_K")->id, 12u);
  EXPECT_EQ(ParseGgufFileType("BF16")->id, 32u);
  EXPECT_EQ(ParseGgufFileType("f32")->default_type, T::kF32);
  EXPECT_EQ(ParseGgufFileType("Q8_0")->default_type, T::kQ8_0);
  EXPECT_EQ(GgufFileTypes().size(), 17u);
  auto bad = ParseGgufFileType("IQ2_XS");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("Q4_K_M"), std::string::npos);
}

TEST(GgufTypeOverrideTest, RejectsMalformedItems) {
  EXPECT_TRUE(ParseGgufTypeOverrides("").ok());
  EXPECT_EQ(ParseGgufTypeOverrides(" ; ")->size(), 0u);
  auto ok = ParseGgufTypeOverrides("a=b=q8_0;ffn_.*=Q6_K");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)[0].pattern, "a=b");
  EXPECT_EQ((*ok)[0].type, T::kQ8_0);
  for (const char* bad : {"attn_v", "=Q8_0", "attn_v=IQ2_XS", "attn_v=nope", "([=Q8_0"}) {
    EXPECT_EQ(ParseGgufTypeOverrides(bad).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

}  // namespace
}  // namespace quantd
