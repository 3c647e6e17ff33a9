// The measures against values computed by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "core/eval/metrics.h"

namespace quantd {
namespace {

TEST(EvalMetricsTest, ScorePositionNllAndArgmax) {
  const float logits[3] = {1.0f, 3.0f, 2.0f};
  const double lse = std::log(std::exp(1.0) + std::exp(3.0) + std::exp(2.0));
  PositionScore s = ScorePosition(logits, 3, 2, nullptr);
  EXPECT_NEAR(s.nll, lse - 2.0, 1e-12);
  EXPECT_EQ(s.argmax, 1);
  EXPECT_EQ(s.kl, 0.0);
}

TEST(EvalMetricsTest, KlDivergenceOfTwoDistributions) {
  // Reference p = (0.5, 0.5), model q = (0.25, 0.75):
  // KL(p || q) = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75).
  const float ref_logits[2] = {0.0f, 0.0f};
  float ref_lp[2];
  LogSoftmax(ref_logits, 2, ref_lp);
  EXPECT_NEAR(ref_lp[0], std::log(0.5), 1e-7);
  const float model_logits[2] = {0.0f, static_cast<float>(std::log(3.0))};
  PositionScore s = ScorePosition(model_logits, 2, 0, ref_lp);
  EXPECT_NEAR(s.kl, 0.5 * std::log(2.0) + 0.5 * std::log(0.5 / 0.75), 1e-6);
  // Against itself: zero.
  EXPECT_NEAR(ScorePosition(ref_logits, 2, 0, ref_lp).kl, 0.0, 1e-12);
}

TEST(EvalMetricsTest, ArgMaxTakesTheFirstLargestAndSkipsNan) {
  const float v[4] = {NAN, 2.0f, 5.0f, 5.0f};
  EXPECT_EQ(ArgMax(v, 4), 2);
}

TEST(EvalMetricsTest, PerplexityAndItsStandardError) {
  const std::vector<float> nll = {1.0f, 2.0f, 3.0f, 2.0f};
  PerplexitySummary p = SummarizePerplexity(nll);
  EXPECT_NEAR(p.nll_mean, 2.0, 1e-12);
  EXPECT_NEAR(p.perplexity, std::exp(2.0), 1e-9);
  // Sample variance 2/3, standard error sqrt(2/3 / 4).
  EXPECT_NEAR(p.perplexity_stderr, std::exp(2.0) * std::sqrt(2.0 / 3.0 / 4.0), 1e-9);
}

TEST(EvalMetricsTest, PerplexityDiffUsesTheCorrelation) {
  const std::vector<float> ref = {1.0f, 2.0f, 3.0f, 2.0f};
  // The same losses: the difference is exactly zero with no uncertainty,
  // although each perplexity alone is uncertain.
  DiffSummary same = SummarizePerplexityDiff(ref, ref);
  EXPECT_NEAR(same.diff, 0.0, 1e-12);
  EXPECT_NEAR(same.stderr, 0.0, 1e-6);
  // A constant shift d: ppl difference exp(2 + d) - exp(2); perfectly
  // correlated, stderr = |exp(2+d) - exp(2)| * sd / sqrt(n).
  std::vector<float> shifted = ref;
  for (float& v : shifted) v += 0.5f;
  DiffSummary d = SummarizePerplexityDiff(shifted, ref);
  EXPECT_NEAR(d.diff, std::exp(2.5) - std::exp(2.0), 1e-6);
  EXPECT_NEAR(d.stderr, (std::exp(2.5) - std::exp(2.0)) * std::sqrt(2.0 / 3.0 / 4.0), 1e-5);
}

TEST(EvalMetricsTest, QuantilesInterpolateLikeNumpy) {
  std::vector<float> v;
  for (int i = 100; i >= 0; --i) v.push_back(static_cast<float>(i));
  Distribution d = Summarize(v);
  EXPECT_NEAR(d.mean, 50.0, 1e-9);
  EXPECT_NEAR(d.median, 50.0, 1e-9);
  EXPECT_NEAR(d.p99, 99.0, 1e-9);
  Distribution two = Summarize({0.0f, 1.0f});
  EXPECT_NEAR(two.median, 0.5, 1e-9);
  EXPECT_NEAR(two.p99, 0.99, 1e-6);
}

}  // namespace
}  // namespace quantd
