#include "core/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace quantd {
namespace {

double LogSumExp(const float* x, int n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  if (!std::isfinite(mx)) return mx;
  double s = 0;
  for (int i = 0; i < n; ++i) s += std::exp(static_cast<double>(x[i]) - mx);
  return mx + std::log(s);
}

double Quantile(const std::vector<float>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

}  // namespace

void LogSoftmax(const float* logits, int vocab, float* out) {
  const double lse = LogSumExp(logits, vocab);
  for (int i = 0; i < vocab; ++i) out[i] = static_cast<float>(logits[i] - lse);
}

int32_t ArgMax(const float* values, int vocab) {
  int32_t best = -1;
  for (int i = 0; i < vocab; ++i) {
    if (std::isnan(values[i])) continue;
    if (best < 0 || values[i] > values[best]) best = i;
  }
  return best;
}

PositionScore ScorePosition(const float* logits, int vocab, int32_t target,
                            const float* ref_logprob) {
  PositionScore s;
  const double lse = LogSumExp(logits, vocab);
  s.nll = lse - logits[target];
  s.argmax = ArgMax(logits, vocab);
  if (ref_logprob != nullptr) {
    double kl = 0;
    for (int i = 0; i < vocab; ++i) {
      const double r = ref_logprob[i];
      if (r == -std::numeric_limits<double>::infinity()) continue;  // p = 0
      kl += std::exp(r) * (r - (logits[i] - lse));
    }
    s.kl = std::max(0.0, kl);
  }
  return s;
}

PerplexitySummary SummarizePerplexity(const std::vector<float>& nll) {
  PerplexitySummary out;
  const double n = static_cast<double>(nll.size());
  if (nll.empty()) return out;
  double sum = 0, sum2 = 0;
  for (float v : nll) {
    sum += v;
    sum2 += static_cast<double>(v) * v;
  }
  out.nll_mean = sum / n;
  const double var =
      nll.size() > 1 ? std::max(0.0, (sum2 / n - out.nll_mean * out.nll_mean)) * n / (n - 1) : 0.0;
  out.perplexity = std::exp(out.nll_mean);
  out.perplexity_stderr = out.perplexity * std::sqrt(var / n);
  return out;
}

DiffSummary SummarizePerplexityDiff(const std::vector<float>& nll,
                                    const std::vector<float>& ref_nll) {
  DiffSummary out;
  const size_t n = std::min(nll.size(), ref_nll.size());
  if (n == 0) return out;
  double sa = 0, sb = 0;
  for (size_t i = 0; i < n; ++i) {
    sa += nll[i];
    sb += ref_nll[i];
  }
  const double ma = sa / n, mb = sb / n;
  double va = 0, vb = 0, cov = 0;
  for (size_t i = 0; i < n; ++i) {
    const double da = nll[i] - ma, db = ref_nll[i] - mb;
    va += da * da;
    vb += db * db;
    cov += da * db;
  }
  const double dn = n > 1 ? static_cast<double>(n - 1) : 1.0;
  va /= dn;
  vb /= dn;
  cov /= dn;
  const double pa = std::exp(ma), pb = std::exp(mb);
  out.diff = pa - pb;
  // Var(pa - pb) by the delta method on the means, whose (co)variances are
  // the per-token ones divided by n.
  const double var = (pa * pa * va + pb * pb * vb - 2 * pa * pb * cov) / static_cast<double>(n);
  out.stderr = std::sqrt(std::max(0.0, var));
  return out;
}

Distribution Summarize(std::vector<float> values) {
  Distribution d;
  if (values.empty()) return d;
  const double n = static_cast<double>(values.size());
  double sum = 0, sum2 = 0;
  for (float v : values) {
    sum += v;
    sum2 += static_cast<double>(v) * v;
  }
  d.mean = sum / n;
  const double var =
      values.size() > 1 ? std::max(0.0, sum2 / n - d.mean * d.mean) * n / (n - 1) : 0.0;
  d.stderr = std::sqrt(var / n);
  std::sort(values.begin(), values.end());
  d.median = Quantile(values, 0.5);
  d.p99 = Quantile(values, 0.99);
  return d;
}

}  // namespace quantd
