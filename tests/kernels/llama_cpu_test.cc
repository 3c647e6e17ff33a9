#include "kernels/cpu/llama_cpu.h"

#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "core/tensor/float_bits.h"
#include "gtest/gtest.h"
#include "kernels/cpu/llama_cpu_ops.h"

namespace quantd {
namespace {

// ||ours - ref||_2 / ||ref||_2 over all logits of a sequence, float32
// runtime against the float64 reference below. Measured: ~1e-7 (AVX2 and
// portable paths alike); the bound leaves room for other compilers.
constexpr double kMaxNormalizedError = 2e-6;

// ---------------------------------------------------------------------------
// Random models built in memory.

Tensor RandomMatrix(int64_t rows, int64_t cols, DType dtype, double stddev, std::mt19937_64& rng) {
  Tensor t = Tensor::Allocate(dtype, {rows, cols});
  std::normal_distribution<double> dist(0.0, stddev);
  for (int64_t i = 0; i < rows * cols; ++i) {
    const float v = static_cast<float>(dist(rng));
    if (dtype == DType::kF32) {
      t.as<float>()[i] = v;
    } else if (dtype == DType::kF16) {
      t.as<uint16_t>()[i] = FloatToF16(v);
    } else {
      t.as<uint16_t>()[i] = FloatToBf16(v);
    }
  }
  return t;
}

std::vector<float> RandomVector(int64_t n, double mean, double stddev, std::mt19937_64& rng) {
  std::normal_distribution<double> dist(mean, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(dist(rng));
  return v;
}

std::unique_ptr<LoadedModel> RandomModel(const LlamaConfig& c, DType dtype, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto m = std::make_unique<LoadedModel>();
  m->config = c;
  const int64_t h = c.hidden_size, f = c.intermediate_size;
  auto mat = [&](int64_t rows, int64_t cols, double sd) {
    return WeightMatrix::Own(RandomMatrix(rows, cols, dtype, sd, rng));
  };
  LlamaWeights& w = m->weights;
  w.embed = mat(c.vocab_size, h, 1.0);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LlamaLayerWeights L;
    L.attn_norm = RandomVector(h, 1.0, 0.1, rng);
    L.ffn_norm = RandomVector(h, 1.0, 0.1, rng);
    L.q = mat(c.q_dim(), h, 1.0 / std::sqrt(h));
    L.k = mat(c.kv_dim(), h, 1.0 / std::sqrt(h));
    L.v = mat(c.kv_dim(), h, 1.0 / std::sqrt(h));
    L.o = mat(h, c.q_dim(), 1.0 / std::sqrt(c.q_dim()));
    L.gate = mat(f, h, 1.0 / std::sqrt(h));
    L.up = mat(f, h, 1.0 / std::sqrt(h));
    L.down = mat(h, f, 1.0 / std::sqrt(f));
    if (c.qkv_bias) {
      L.q_bias = RandomVector(c.q_dim(), 0, 0.2, rng);
      L.k_bias = RandomVector(c.kv_dim(), 0, 0.2, rng);
      L.v_bias = RandomVector(c.kv_dim(), 0, 0.2, rng);
    }
    if (c.o_bias) L.o_bias = RandomVector(h, 0, 0.2, rng);
    if (c.mlp_bias) {
      L.gate_bias = RandomVector(f, 0, 0.2, rng);
      L.up_bias = RandomVector(f, 0, 0.2, rng);
      L.down_bias = RandomVector(h, 0, 0.2, rng);
    }
    w.layers.push_back(std::move(L));
  }
  w.final_norm = RandomVector(h, 1.0, 0.1, rng);
  if (!c.tie_word_embeddings) w.lm_head_untied = mat(c.vocab_size, h, 3.0 / std::sqrt(h));
  return m;
}

LlamaConfig BaseConfig(int64_t hidden, int64_t heads, int64_t kv_heads, int64_t head_dim,
                       int64_t ffn, int64_t vocab, int64_t layers) {
  LlamaConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = hidden;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.intermediate_size = ffn;
  c.vocab_size = vocab;
  c.num_layers = layers;
  c.max_position_embeddings = 512;
  c.rms_norm_eps = 1e-5f;
  c.sliding_window.assign(layers, 0);
  return c;
}

// Llama with GQA, BF16, untied.
LlamaConfig GqaLlama() { return BaseConfig(64, 4, 2, 16, 96, 101, 2); }

// Qwen2-like: q/k/v biases, tied embeddings, theta 1e6.
LlamaConfig Qwen2Like() {
  LlamaConfig c = BaseConfig(48, 6, 2, 8, 80, 67, 2);
  c.architecture = "Qwen2ForCausalLM";
  c.qkv_bias = true;
  c.tie_word_embeddings = true;
  c.rope.theta = 1e6;
  return c;
}

// Llama 3 rope scaling (bands hit at small positions: original context 16),
// all Llama biases, head_dim != hidden / heads.
LlamaConfig Llama3Biased() {
  LlamaConfig c = BaseConfig(64, 2, 1, 40, 128, 50, 2);
  c.rope.scaling = RopeScalingType::kLlama3;
  c.rope.factor = 8;
  c.rope.low_freq_factor = 1;
  c.rope.high_freq_factor = 4;
  c.rope.original_max_position_embeddings = 16;
  c.qkv_bias = c.o_bias = c.mlp_bias = true;
  return c;
}

// Mistral with a sliding window shorter than the sequence; sizes that are
// not multiples of 8 (vector tails).
LlamaConfig MistralWindowed() {
  LlamaConfig c = BaseConfig(52, 2, 1, 26, 84, 97, 3);
  c.architecture = "MistralForCausalLM";
  c.sliding_window.assign(3, 5);
  return c;
}

std::vector<int32_t> Tokens(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = static_cast<int32_t>(rng() % vocab);
  return t;
}

// ---------------------------------------------------------------------------
// The float64 reference: straightforward loops, no threads, no blocking.

double At(const WeightMatrix& m, int64_t r, int64_t c) {
  const int64_t i = r * m.cols() + c;
  switch (m.dtype()) {
    case DType::kF32:
      return m.as<float>()[i];
    case DType::kF16:
      return F16ToFloat(m.as<uint16_t>()[i]);
    default:
      return Bf16ToFloat(m.as<uint16_t>()[i]);
  }
}

std::vector<double> Linear(const std::vector<double>& x, const WeightMatrix& w,
                           const std::vector<float>& bias) {
  std::vector<double> y(w.rows());
  for (int64_t n = 0; n < w.rows(); ++n) {
    double s = bias.empty() ? 0.0 : bias[n];
    for (int64_t k = 0; k < w.cols(); ++k) s += At(w, n, k) * x[k];
    y[n] = s;
  }
  return y;
}

std::vector<double> Norm(const std::vector<double>& x, const std::vector<float>& w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / x.size() + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * w[i];
  return y;
}

// transformers' rope inverse frequencies, in double.
std::vector<double> RefInvFreq(const RopeConfig& r, int64_t dim) {
  std::vector<double> inv(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i) {
    double f = 1.0 / std::pow(r.theta, 2.0 * i / dim);
    if (r.scaling == RopeScalingType::kLinear) f /= r.factor;
    if (r.scaling == RopeScalingType::kLlama3) {
      const double old = r.original_max_position_embeddings;
      const double wavelen = 2 * M_PI / f;
      if (wavelen > old / r.low_freq_factor) {
        f /= r.factor;
      } else if (wavelen >= old / r.high_freq_factor) {
        const double s =
            (old / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
        f = (1 - s) * f / r.factor + s * f;
      }
    }
    inv[i] = f;
  }
  return inv;
}

void RefRope(double* v, int64_t hd, int64_t pos, const std::vector<double>& inv) {
  for (int64_t i = 0; i < hd / 2; ++i) {
    const double c = std::cos(pos * inv[i]), s = std::sin(pos * inv[i]);
    const double a = v[i], b = v[i + hd / 2];
    v[i] = a * c - b * s;
    v[i + hd / 2] = b * c + a * s;
  }
}

std::vector<std::vector<double>> RefLogits(const LoadedModel& m, const std::vector<int32_t>& tok) {
  const LlamaConfig& c = m.config;
  const LlamaWeights& w = m.weights;
  const int64_t t_len = tok.size(), hd = c.head_dim, group = c.num_heads / c.num_kv_heads;
  const std::vector<double> inv = RefInvFreq(c.rope, hd);
  std::vector<std::vector<double>> x(t_len, std::vector<double>(c.hidden_size));
  for (int64_t t = 0; t < t_len; ++t) {
    for (int64_t i = 0; i < c.hidden_size; ++i) x[t][i] = At(w.embed, tok[t], i);
  }
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LlamaLayerWeights& L = w.layers[l];
    std::vector<std::vector<double>> q(t_len), k(t_len), v(t_len);
    for (int64_t t = 0; t < t_len; ++t) {
      const std::vector<double> xn = Norm(x[t], L.attn_norm, c.rms_norm_eps);
      q[t] = Linear(xn, L.q, L.q_bias);
      k[t] = Linear(xn, L.k, L.k_bias);
      v[t] = Linear(xn, L.v, L.v_bias);
      for (int64_t h = 0; h < c.num_heads; ++h) RefRope(&q[t][h * hd], hd, t, inv);
      for (int64_t h = 0; h < c.num_kv_heads; ++h) RefRope(&k[t][h * hd], hd, t, inv);
    }
    for (int64_t t = 0; t < t_len; ++t) {
      std::vector<double> att(c.q_dim(), 0.0);
      for (int64_t h = 0; h < c.num_heads; ++h) {
        const int64_t kvh = h / group;
        std::vector<double> p(t + 1, 0.0);
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j <= t; ++j) {
          if (c.sliding_window[l] > 0 && t - j >= c.sliding_window[l]) continue;
          double s = 0;
          for (int64_t d = 0; d < hd; ++d) s += q[t][h * hd + d] * k[j][kvh * hd + d];
          p[j] = s / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, p[j]);
        }
        for (int64_t j = 0; j <= t; ++j) {
          if (c.sliding_window[l] > 0 && t - j >= c.sliding_window[l]) {
            p[j] = 0;
            continue;
          }
          p[j] = std::exp(p[j] - mx);
          sum += p[j];
        }
        for (int64_t j = 0; j <= t; ++j) {
          for (int64_t d = 0; d < hd; ++d) att[h * hd + d] += p[j] / sum * v[j][kvh * hd + d];
        }
      }
      const std::vector<double> o = Linear(att, L.o, L.o_bias);
      for (int64_t i = 0; i < c.hidden_size; ++i) x[t][i] += o[i];
      const std::vector<double> xn = Norm(x[t], L.ffn_norm, c.rms_norm_eps);
      std::vector<double> g = Linear(xn, L.gate, L.gate_bias);
      const std::vector<double> u = Linear(xn, L.up, L.up_bias);
      for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
      const std::vector<double> d = Linear(g, L.down, L.down_bias);
      for (int64_t i = 0; i < c.hidden_size; ++i) x[t][i] += d[i];
    }
  }
  std::vector<std::vector<double>> logits(t_len);
  for (int64_t t = 0; t < t_len; ++t) {
    logits[t] = Linear(Norm(x[t], w.final_norm, c.rms_norm_eps), w.lm_head(), {});
  }
  return logits;
}

// ---------------------------------------------------------------------------

// Collects logits, checking the streaming order.
class CollectSink : public LogitsSink {
 public:
  explicit CollectSink(int64_t vocab) : vocab_(vocab) {}
  absl::Status Consume(int seq, int pos, const float* logits) override {
    EXPECT_TRUE(order.empty() || order.back() < std::make_pair(seq, pos)) << seq << " " << pos;
    order.emplace_back(seq, pos);
    got[{seq, pos}] = std::vector<float>(logits, logits + vocab_);
    return absl::OkStatus();
  }
  std::vector<std::pair<int, int>> order;
  std::map<std::pair<int, int>, std::vector<float>> got;

 private:
  int64_t vocab_;
};

class LlamaCpuTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { llama_cpu::ForcePortablePathForTesting(GetParam()); }
  void TearDown() override { llama_cpu::ForcePortablePathForTesting(false); }

  static std::unique_ptr<CausalLM> Make(const LoadedModel& m, int threads = 2) {
    absl::StatusOr<std::unique_ptr<CausalLM>> lm = MakeCpuLlama(&m, threads);
    EXPECT_TRUE(lm.ok()) << lm.status();
    return lm.ok() ? std::move(*lm) : nullptr;
  }

  static CollectSink Run(CausalLM& lm, const std::vector<std::vector<int32_t>>& batch,
                         int from = 0) {
    CollectSink sink(lm.vocab_size());
    CancelToken cancel;
    absl::Status s = lm.Forward(batch, from, &sink, cancel);
    EXPECT_TRUE(s.ok()) << s;
    return sink;
  }

  void ExpectMatchesReference(const LlamaConfig& c, DType dtype, int64_t len) {
    std::unique_ptr<LoadedModel> m = RandomModel(c, dtype, 99);
    std::unique_ptr<CausalLM> lm = Make(*m);
    const std::vector<int32_t> tokens = Tokens(len, c.vocab_size, 5);
    CollectSink sink = Run(*lm, {tokens});
    const std::vector<std::vector<double>> ref = RefLogits(*m, tokens);
    double num = 0, den = 0;
    ASSERT_EQ(sink.got.size(), static_cast<size_t>(len));
    for (int64_t t = 0; t < len; ++t) {
      const std::vector<float>& ours = sink.got[{0, static_cast<int>(t)}];
      for (int64_t i = 0; i < c.vocab_size; ++i) {
        num += (ours[i] - ref[t][i]) * (ours[i] - ref[t][i]);
        den += ref[t][i] * ref[t][i];
      }
    }
    const double err = std::sqrt(num / den);
    EXPECT_LT(err, kMaxNormalizedError) << c.architecture;
    RecordProperty("normalized_error", std::to_string(err));
    std::printf("  %s %s T=%lld: normalized error %.3g\n", c.architecture.c_str(),
                std::string(DTypeName(dtype)).c_str(), static_cast<long long>(len), err);
  }
};

TEST_P(LlamaCpuTest, GqaLlamaMatchesFloat64Reference) {
  ExpectMatchesReference(GqaLlama(), DType::kBF16, 150);
}

TEST_P(LlamaCpuTest, Qwen2BiasesTiedMatchFloat64Reference) {
  ExpectMatchesReference(Qwen2Like(), DType::kF32, 37);
}

TEST_P(LlamaCpuTest, Llama3ScalingAndBiasesMatchFloat64Reference) {
  ExpectMatchesReference(Llama3Biased(), DType::kF16, 41);
}

TEST_P(LlamaCpuTest, SlidingWindowAndOddSizesMatchFloat64Reference) {
  ExpectMatchesReference(MistralWindowed(), DType::kBF16, 23);
}

TEST_P(LlamaCpuTest, BatchOfTwoEqualsTwoSingleRuns) {
  const LlamaConfig c = GqaLlama();
  std::unique_ptr<LoadedModel> m = RandomModel(c, DType::kBF16, 3);
  std::unique_ptr<CausalLM> lm = Make(*m);
  const std::vector<int32_t> a = Tokens(29, c.vocab_size, 1), b = Tokens(29, c.vocab_size, 2);
  CollectSink both = Run(*lm, {a, b});
  CollectSink only_a = Run(*lm, {a});
  CollectSink only_b = Run(*lm, {b});
  ASSERT_EQ(both.got.size(), 58u);
  for (int t = 0; t < 29; ++t) {
    EXPECT_EQ((both.got[{0, t}]), (only_a.got[{0, t}])) << t;  // bit for bit
    EXPECT_EQ((both.got[{1, t}]), (only_b.got[{0, t}])) << t;
  }
}

TEST_P(LlamaCpuTest, FromPosStreamsOnlyLaterPositions) {
  const LlamaConfig c = Qwen2Like();
  std::unique_ptr<LoadedModel> m = RandomModel(c, DType::kBF16, 4);
  std::unique_ptr<CausalLM> lm = Make(*m);
  const std::vector<int32_t> a = Tokens(20, c.vocab_size, 1), b = Tokens(20, c.vocab_size, 9);
  CollectSink all = Run(*lm, {a, b});
  CollectSink tail = Run(*lm, {a, b}, 13);
  ASSERT_EQ(tail.order.size(), 14u);
  EXPECT_EQ(tail.order.front(), std::make_pair(0, 13));
  EXPECT_EQ(tail.order.back(), std::make_pair(1, 19));
  for (const auto& [key, logits] : tail.got) EXPECT_EQ(logits, all.got[key]);
  CollectSink none = Run(*lm, {a}, 20);
  EXPECT_TRUE(none.got.empty());
}

TEST_P(LlamaCpuTest, ThreadCountDoesNotChangeResults) {
  const LlamaConfig c = MistralWindowed();
  std::unique_ptr<LoadedModel> m = RandomModel(c, DType::kBF16, 5);
  const std::vector<int32_t> a = Tokens(70, c.vocab_size, 1);
  std::unique_ptr<CausalLM> one = Make(*m, 1);
  std::unique_ptr<CausalLM> three = Make(*m, 3);
  CollectSink x = Run(*one, {a}), y = Run(*three, {a});
  EXPECT_EQ(x.got, y.got);
}

TEST_P(LlamaCpuTest, GenerateIsDeterministicAndMatchesRecomputation) {
  const LlamaConfig c = GqaLlama();
  std::unique_ptr<LoadedModel> m = RandomModel(c, DType::kBF16, 6);
  std::unique_ptr<CausalLM> lm = Make(*m);
  const std::vector<int32_t> prompt = Tokens(11, c.vocab_size, 3);
  CancelToken cancel;
  absl::StatusOr<std::vector<int32_t>> first = lm->Generate(prompt, 12, {}, cancel);
  absl::StatusOr<std::vector<int32_t>> second = lm->Generate(prompt, 12, {}, cancel);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*first, *second);
  ASSERT_EQ(first->size(), 12u);
  // Greedy decoding by recomputing every prefix with Forward.
  std::vector<int32_t> seq = prompt;
  for (int i = 0; i < 12; ++i) {
    CollectSink last = Run(*lm, {seq}, static_cast<int>(seq.size()) - 1);
    const std::vector<float>& l = last.got.begin()->second;
    const int32_t best = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
    EXPECT_EQ(best, (*first)[i]) << i;
    seq.push_back(best);
  }
  // A stop id ends generation and is returned.
  absl::StatusOr<std::vector<int32_t>> stopped = lm->Generate(prompt, 12, {(*first)[3]}, cancel);
  ASSERT_TRUE(stopped.ok());
  const size_t stop_at = std::find(first->begin(), first->end(), (*first)[3]) - first->begin() + 1;
  EXPECT_EQ(*stopped, std::vector<int32_t>(first->begin(), first->begin() + stop_at));
  const ForwardStats stats = lm->TakeStats();
  EXPECT_GT(stats.tokens, 0);
  EXPECT_GT(stats.seconds, 0);
  EXPECT_EQ(lm->TakeStats().tokens, 0);
}

INSTANTIATE_TEST_SUITE_P(Paths, LlamaCpuTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Portable" : "Native"; });

TEST(LlamaCpuErrorsTest, RejectsBadInput) {
  LlamaConfig c = GqaLlama();
  c.max_position_embeddings = 16;
  std::unique_ptr<LoadedModel> m = RandomModel(c, DType::kBF16, 7);
  absl::StatusOr<std::unique_ptr<CausalLM>> lm = MakeCpuLlama(m.get(), 2);
  ASSERT_TRUE(lm.ok());
  EXPECT_EQ((*lm)->device(), "cpu");
  EXPECT_EQ((*lm)->vocab_size(), 101);
  EXPECT_EQ((*lm)->max_context(), 16);
  CollectSink sink(101);
  CancelToken cancel;
  auto code = [&](const std::vector<std::vector<int32_t>>& batch, int from) {
    return (*lm)->Forward(batch, from, &sink, cancel).code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code({{1, 2, 101}}, 0), kInvalid);                  // token outside the vocabulary
  EXPECT_EQ(code({{1, -1}}, 0), kInvalid);                      // negative token
  EXPECT_EQ(code({{1, 2}, {3}}, 0), kInvalid);                  // ragged
  EXPECT_EQ(code({{}}, 0), kInvalid);                           // empty
  EXPECT_EQ(code({std::vector<int32_t>(17, 1)}, 0), kInvalid);  // over the context
  EXPECT_EQ(code({{1, 2}}, 3), kInvalid);                       // from_pos past the end
  EXPECT_EQ(code({{1, 2}}, -1), kInvalid);
  EXPECT_EQ(code({}, 0), absl::StatusCode::kOk);  // nothing to do
  EXPECT_TRUE(sink.got.empty());
  EXPECT_EQ((*lm)->Generate({}, 3, {}, cancel).status().code(), kInvalid);
  EXPECT_EQ((*lm)->Generate({500}, 3, {}, cancel).status().code(), kInvalid);
  // Generation ends at the context: 10 prompt tokens + 6 new = 16.
  absl::StatusOr<std::vector<int32_t>> gen = (*lm)->Generate(Tokens(10, 101, 1), 50, {}, cancel);
  ASSERT_TRUE(gen.ok());
  EXPECT_EQ(gen->size(), 6u);
}

TEST(LlamaCpuErrorsTest, CancelsAndPropagatesSinkErrors) {
  const LlamaConfig c = GqaLlama();
  std::unique_ptr<LoadedModel> m = RandomModel(c, DType::kBF16, 8);
  absl::StatusOr<std::unique_ptr<CausalLM>> lm = MakeCpuLlama(m.get(), 2);
  ASSERT_TRUE(lm.ok());
  CollectSink sink(c.vocab_size);
  CancelToken cancelled;
  cancelled.Cancel();
  EXPECT_EQ((*lm)->Forward({{1, 2, 3}}, 0, &sink, cancelled).code(), absl::StatusCode::kCancelled);
  EXPECT_EQ((*lm)->Generate({1, 2}, 4, {}, cancelled).status().code(),
            absl::StatusCode::kCancelled);
  class FailingSink : public LogitsSink {
    absl::Status Consume(int, int, const float*) override {
      return absl::DataLossError("disk full");
    }
  } failing;
  CancelToken cancel;
  EXPECT_EQ((*lm)->Forward({{1, 2, 3}}, 0, &failing, cancel).code(), absl::StatusCode::kDataLoss);
}

TEST(LlamaCpuErrorsTest, RejectsWeightsThatDoNotMatchTheConfig) {
  EXPECT_EQ(MakeCpuLlama(nullptr, 1).status().code(), absl::StatusCode::kInvalidArgument);
  const LlamaConfig c = Qwen2Like();
  std::unique_ptr<LoadedModel> m = RandomModel(c, DType::kBF16, 9);
  m->weights.layers[1].k_bias.pop_back();
  EXPECT_EQ(MakeCpuLlama(m.get(), 1).status().code(), absl::StatusCode::kInvalidArgument);
  m = RandomModel(c, DType::kBF16, 9);
  std::mt19937_64 rng(1);
  m->weights.layers[0].up = WeightMatrix::Own(RandomMatrix(79, 48, DType::kBF16, 1, rng));
  EXPECT_EQ(MakeCpuLlama(m.get(), 1).status().code(), absl::StatusCode::kInvalidArgument);
  m = RandomModel(c, DType::kBF16, 9);
  m->weights.layers[0].gate = WeightMatrix::Own(Tensor::Zeros(DType::kI32, {80, 48}));
  EXPECT_EQ(MakeCpuLlama(m.get(), 1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LlamaCpuScratchTest, GrowsWithBatchAndLength) {
  const LlamaConfig c = GqaLlama();
  EXPECT_GT(CpuLlamaScratchBytes(c, 2, 100), CpuLlamaScratchBytes(c, 1, 100));
  EXPECT_GT(CpuLlamaScratchBytes(c, 1, 200), CpuLlamaScratchBytes(c, 1, 100));
}

}  // namespace
}  // namespace quantd
