// The measures of an evaluation, from logits: per-position negative
// log-likelihood, argmax and KL divergence against a reference, and their
// summaries (perplexity with its standard error, the perplexity difference
// with the correlation of the two models taken into account, quantiles).
// Sums run in double; the formulas follow llama-perplexity's.
#ifndef QUANTD_CORE_EVAL_METRICS_H_
#define QUANTD_CORE_EVAL_METRICS_H_

#include <cstdint>
#include <vector>

namespace quantd {

// out[i] = logits[i] - logsumexp(logits) for `vocab` values (computed in
// double, stored as float).
void LogSoftmax(const float* logits, int vocab, float* out);

// First index of the largest value (NaN never wins).
int32_t ArgMax(const float* values, int vocab);

struct PositionScore {
  double nll = 0;  // -log_softmax(logits)[target]
  int32_t argmax = -1;
  double kl = 0;  // KL(reference || model); 0 without a reference
};

// Scores one position. `ref_logprob`, when not null, holds the reference's
// log_softmax over the same vocabulary: kl = sum_i p_i (ref_i - model_i)
// with p = exp(ref).
PositionScore ScorePosition(const float* logits, int vocab, int32_t target,
                            const float* ref_logprob);

// Per-token results of one model over a whole evaluation.
struct TokenScores {
  std::vector<float> nll;
  std::vector<float> kl;  // empty without a reference
  int64_t top1_agree = 0;
};

struct PerplexitySummary {
  double nll_mean = 0;
  double perplexity = 0;
  // perplexity * stderr(nll_mean) (delta method).
  double perplexity_stderr = 0;
};
PerplexitySummary SummarizePerplexity(const std::vector<float>& nll);

struct DiffSummary {
  double diff = 0;  // ppl(model) - ppl(reference)
  double stderr = 0;
};
// Same-length per-token losses of a model and its reference.
DiffSummary SummarizePerplexityDiff(const std::vector<float>& nll,
                                    const std::vector<float>& ref_nll);

struct Distribution {
  double mean = 0;
  double stderr = 0;
  double median = 0;
  double p99 = 0;
};
// Linear interpolation between order statistics (numpy's default).
Distribution Summarize(std::vector<float> values);

}  // namespace quantd

#endif  // QUANTD_CORE_EVAL_METRICS_H_
