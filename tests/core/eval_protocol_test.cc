// Perplexity protocols: chunk sizes, scored positions and BOS handling as
// llama-perplexity and the GPTQ evaluation define them.
#include <gtest/gtest.h>

#include <numeric>

#include "core/eval/protocol.h"

namespace quantd {
namespace {

constexpr int32_t kBos = 1;

std::vector<int32_t> Iota(int n, int32_t from) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), from);
  return v;
}

TEST(EvalProtocolTest, LlamaDefaultsScoreTheSecondHalf) {
  v1::EvaluateSpec spec;
  absl::StatusOr<ChunkPlan> plan = MakeChunkPlan(spec, kBos, 4096);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->protocol, "llama");
  EXPECT_EQ(plan->context, 512);
  EXPECT_EQ(plan->scored_from, 256);
  EXPECT_EQ(plan->scored_per_chunk(), 255);  // as llama-perplexity: n_ctx - 1 - n_ctx / 2
  EXPECT_TRUE(plan->add_bos);
  EXPECT_TRUE(plan->bos_every_chunk);
}

TEST(EvalProtocolTest, GptqDefaultsScoreEveryPosition) {
  v1::EvaluateSpec spec;
  spec.set_protocol("gptq");
  absl::StatusOr<ChunkPlan> plan = MakeChunkPlan(spec, kBos, 4096);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->context, 2048);
  EXPECT_EQ(plan->scored_from, 0);
  EXPECT_EQ(plan->scored_per_chunk(), 2047);
  EXPECT_TRUE(plan->add_bos);
  EXPECT_FALSE(plan->bos_every_chunk);
}

TEST(EvalProtocolTest, LlamaChunksStartWithBos) {
  v1::EvaluateSpec spec;
  spec.set_context(8);
  absl::StatusOr<ChunkPlan> plan = MakeChunkPlan(spec, kBos, 64);
  ASSERT_TRUE(plan.ok());
  // BOS + 20 tokens = 21 -> two chunks of 8, the rest dropped.
  absl::StatusOr<std::vector<std::vector<int32_t>>> chunks = MakeChunks(*plan, Iota(20, 100));
  ASSERT_TRUE(chunks.ok()) << chunks.status();
  ASSERT_EQ(chunks->size(), 2u);
  EXPECT_EQ((*chunks)[0], (std::vector<int32_t>{kBos, 100, 101, 102, 103, 104, 105, 106}));
  // The second chunk's first token (107) is replaced by BOS.
  EXPECT_EQ((*chunks)[1], (std::vector<int32_t>{kBos, 108, 109, 110, 111, 112, 113, 114}));
}

TEST(EvalProtocolTest, GptqChunksAreContiguousSlices) {
  v1::EvaluateSpec spec;
  spec.set_protocol("gptq");
  spec.set_context(8);
  spec.set_add_bos(false);
  absl::StatusOr<ChunkPlan> plan = MakeChunkPlan(spec, kBos, 64);
  ASSERT_TRUE(plan.ok());
  absl::StatusOr<std::vector<std::vector<int32_t>>> chunks = MakeChunks(*plan, Iota(17, 100));
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 2u);
  EXPECT_EQ((*chunks)[1], Iota(8, 108));
}

TEST(EvalProtocolTest, MaxTokensLimitsChunks) {
  v1::EvaluateSpec spec;
  spec.set_context(8);
  spec.set_max_tokens(20);
  absl::StatusOr<ChunkPlan> plan = MakeChunkPlan(spec, kBos, 64);
  ASSERT_TRUE(plan.ok());
  absl::StatusOr<std::vector<std::vector<int32_t>>> chunks = MakeChunks(*plan, Iota(100, 10));
  ASSERT_TRUE(chunks.ok());
  EXPECT_EQ(chunks->size(), 2u);
}

TEST(EvalProtocolTest, RejectsBadSpecs) {
  v1::EvaluateSpec spec;
  spec.set_protocol("wikitext");
  EXPECT_EQ(MakeChunkPlan(spec, kBos, 4096).status().code(), absl::StatusCode::kInvalidArgument);
  spec.set_protocol("gptq");
  EXPECT_EQ(MakeChunkPlan(spec, kBos, 1024).status().code(),
            absl::StatusCode::kInvalidArgument);  // 2048 > max context
  spec.set_context(2);
  EXPECT_EQ(MakeChunkPlan(spec, kBos, 1024).status().code(), absl::StatusCode::kInvalidArgument);
  spec.set_context(16);
  spec.set_add_bos(true);
  EXPECT_EQ(MakeChunkPlan(spec, -1, 1024).status().code(), absl::StatusCode::kInvalidArgument);
  spec.clear_add_bos();
  absl::StatusOr<ChunkPlan> no_bos = MakeChunkPlan(spec, -1, 1024);
  ASSERT_TRUE(no_bos.ok());
  EXPECT_FALSE(no_bos->add_bos);
}

TEST(EvalProtocolTest, TooShortDatasetIsAnError) {
  v1::EvaluateSpec spec;
  absl::StatusOr<ChunkPlan> plan = MakeChunkPlan(spec, kBos, 4096);
  ASSERT_TRUE(plan.ok());
  absl::StatusOr<std::vector<std::vector<int32_t>>> chunks = MakeChunks(*plan, Iota(100, 5));
  EXPECT_EQ(chunks.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quantd
