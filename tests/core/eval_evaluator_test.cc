// ScoreChunks over small deterministic models whose logits are a function
// of the previous token, so every score can be computed independently here.
#include <gtest/gtest.h>

#include <cmath>

#include "core/eval/evaluator.h"

namespace quantd {
namespace {

constexpr int kVocab = 7;

// logits(pos) depend only on token[pos]: logit[j] = scale * ((t + j) % 5).
class BigramLM : public CausalLM {
 public:
  explicit BigramLM(float scale) : scale_(scale) {}
  std::string device() const override { return "cpu"; }
  int32_t vocab_size() const override { return kVocab; }
  int32_t max_context() const override { return 64; }

  static void Logits(int32_t t, float scale, float* out) {
    for (int j = 0; j < kVocab; ++j) out[j] = scale * static_cast<float>((t + j) % 5);
  }

  absl::Status Forward(const std::vector<std::vector<int32_t>>& batch, int from_pos,
                       LogitsSink* sink, const CancelToken& cancel) override {
    ++forwards;
    if (cancel_after > 0 && forwards >= cancel_after) return absl::CancelledError("cancelled");
    float logits[kVocab];
    for (size_t s = 0; s < batch.size(); ++s) {
      for (size_t p = from_pos; p < batch[s].size(); ++p) {
        Logits(batch[s][p], scale_, logits);
        if (absl::Status st = sink->Consume(static_cast<int>(s), static_cast<int>(p), logits);
            !st.ok()) {
          return st;
        }
        ++tokens_;
      }
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<int32_t>> Generate(const std::vector<int32_t>&, int,
                                                const std::vector<int32_t>&,
                                                const CancelToken&) override {
    return std::vector<int32_t>{};
  }
  ForwardStats TakeStats() override {
    ForwardStats f;
    f.tokens = tokens_;
    tokens_ = 0;
    return f;
  }

  int forwards = 0;
  int cancel_after = 0;

 private:
  const float scale_;
  int64_t tokens_ = 0;
};

double Nll(int32_t prev, int32_t target, float scale) {
  float l[kVocab];
  BigramLM::Logits(prev, scale, l);
  double s = 0;
  for (float v : l) s += std::exp(static_cast<double>(v));
  return std::log(s) - l[target];
}

std::vector<std::vector<int32_t>> Chunks() {
  return {{1, 3, 5, 2, 6, 0, 4, 4}, {1, 2, 2, 3, 0, 6, 5, 1}, {1, 6, 6, 0, 3, 2, 1, 5}};
}

ChunkPlan Plan(const char* protocol) {
  v1::EvaluateSpec spec;
  spec.set_protocol(protocol);
  spec.set_context(8);
  return *MakeChunkPlan(spec, 1, 64);
}

TEST(EvalEvaluatorTest, ScoresExactlyTheProtocolsPositions) {
  for (const char* protocol : {"llama", "gptq"}) {
    const ChunkPlan plan = Plan(protocol);
    BigramLM lm(0.7f);
    std::vector<TokenScores> scores;
    std::vector<ModelRunStats> stats;
    EvalRunOptions opts;
    opts.batch = 2;
    ASSERT_TRUE(ScoreChunks(plan, Chunks(), {&lm}, opts, CancelToken(), &scores, &stats).ok());
    ASSERT_EQ(scores[0].nll.size(), 3u * plan.scored_per_chunk()) << protocol;
    size_t i = 0;
    for (const auto& c : Chunks()) {
      for (int p = plan.scored_from; p < plan.context - 1; ++p, ++i) {
        EXPECT_NEAR(scores[0].nll[i], Nll(c[p], c[p + 1], 0.7f), 1e-5) << protocol << " " << i;
      }
    }
    EXPECT_EQ(lm.forwards, 2);  // batches of 2 and 1 chunks
    EXPECT_EQ(stats[0].forward_tokens, 3 * (plan.context - plan.scored_from));
  }
}

TEST(EvalEvaluatorTest, ComparesWithTheReference) {
  const ChunkPlan plan = Plan("gptq");
  BigramLM ref(1.0f), same(1.0f), other(0.5f);
  std::vector<TokenScores> scores;
  std::vector<ModelRunStats> stats;
  EvalRunOptions opts;
  opts.has_reference = true;
  ASSERT_TRUE(
      ScoreChunks(plan, Chunks(), {&ref, &same, &other}, opts, CancelToken(), &scores, &stats)
          .ok());
  ASSERT_EQ(scores.size(), 3u);
  EXPECT_TRUE(scores[0].kl.empty());
  const size_t n = scores[0].nll.size();
  EXPECT_EQ(scores[1].top1_agree, static_cast<int64_t>(n));
  for (float kl : scores[1].kl) EXPECT_NEAR(kl, 0.0f, 1e-6f);
  // Halving the logits keeps the argmax, and the KL matches a direct sum.
  EXPECT_EQ(scores[2].top1_agree, static_cast<int64_t>(n));
  const auto chunks = Chunks();
  float p[kVocab], q[kVocab];
  BigramLM::Logits(chunks[0][0], 1.0f, p);
  BigramLM::Logits(chunks[0][0], 0.5f, q);
  double zp = 0, zq = 0;
  for (int j = 0; j < kVocab; ++j) {
    zp += std::exp(double{p[j]});
    zq += std::exp(double{q[j]});
  }
  double kl = 0;
  for (int j = 0; j < kVocab; ++j) {
    const double lp = p[j] - std::log(zp), lq = q[j] - std::log(zq);
    kl += std::exp(lp) * (lp - lq);
  }
  EXPECT_NEAR(scores[2].kl[0], kl, 1e-5);
  EXPECT_GT(kl, 0.01);
}

// A factory whose fast path returns the bigram log-probs directly.
class FastFactory : public CausalLMFactory {
 public:
  absl::StatusOr<std::unique_ptr<CausalLM>> Make(const LoadedModel*,
                                                 const std::string&) const override {
    return absl::UnimplementedError("test");
  }
  int64_t EstimateBytes(const LlamaConfig&, bool, int, int) const override { return 0; }
  absl::Status ForwardLogProbs(CausalLM*, const std::vector<std::vector<int32_t>>& batch,
                               int from_pos, const std::vector<std::vector<int32_t>>& targets,
                               std::vector<float>* logprob, std::vector<int32_t>*,
                               const CancelToken&) const override {
    ++calls;
    logprob->clear();
    for (size_t s = 0; s < batch.size(); ++s) {
      for (size_t i = 0; i < targets[s].size(); ++i) {
        logprob->push_back(static_cast<float>(-Nll(batch[s][from_pos + i], targets[s][i], 0.7f)));
      }
    }
    return absl::OkStatus();
  }
  mutable int calls = 0;
};

TEST(EvalEvaluatorTest, FastPathGivesTheSameScores) {
  const ChunkPlan plan = Plan("llama");
  BigramLM slow_lm(0.7f), fast_lm(0.7f);
  std::vector<TokenScores> slow, fast;
  std::vector<ModelRunStats> stats;
  EvalRunOptions opts;
  ASSERT_TRUE(ScoreChunks(plan, Chunks(), {&slow_lm}, opts, CancelToken(), &slow, &stats).ok());
  FastFactory factory;
  opts.factory = &factory;
  ASSERT_TRUE(ScoreChunks(plan, Chunks(), {&fast_lm}, opts, CancelToken(), &fast, &stats).ok());
  EXPECT_EQ(factory.calls, 3);
  EXPECT_EQ(fast_lm.forwards, 0);
  ASSERT_EQ(slow[0].nll.size(), fast[0].nll.size());
  for (size_t i = 0; i < slow[0].nll.size(); ++i) EXPECT_NEAR(slow[0].nll[i], fast[0].nll[i], 1e-6);
}

TEST(EvalEvaluatorTest, StopsWhenCancelled) {
  const ChunkPlan plan = Plan("llama");
  BigramLM lm(1.0f);
  std::vector<TokenScores> scores;
  std::vector<ModelRunStats> stats;
  CancelToken cancel;
  EvalRunOptions opts;
  int reports = 0;
  opts.on_chunks = [&](int64_t done, int64_t total) {
    ++reports;
    EXPECT_EQ(total, 3);
    if (done == 1) cancel.Cancel();
  };
  absl::Status s = ScoreChunks(plan, Chunks(), {&lm}, opts, cancel, &scores, &stats);
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(reports, 1);
  EXPECT_EQ(lm.forwards, 1);
}

TEST(EvalEvaluatorTest, RejectsDifferentVocabulariesWithAReference) {
  class Wide : public BigramLM {
   public:
    Wide() : BigramLM(1.0f) {}
    int32_t vocab_size() const override { return kVocab + 1; }
  };
  BigramLM ref(1.0f);
  Wide wide;
  std::vector<TokenScores> scores;
  std::vector<ModelRunStats> stats;
  EvalRunOptions opts;
  opts.has_reference = true;
  EXPECT_EQ(
      ScoreChunks(Plan("llama"), Chunks(), {&ref, &wide}, opts, CancelToken(), &scores, &stats)
          .code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quantd
