// The device operations of the CUDA Llama runtime
// (kernels/cuda/llama_cuda_ops.h) against host references: conversions and
// the embedding gather bit for bit; RMSNorm, RoPE, SwiGLU, both attention
// kernels and the log-softmax statistics against float64 within the
// tolerances of llama_cuda_test_util.h. Skipped without a CUDA device (and
// empty without CUDA).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/runtime/llama_config.h"
#include "core/tensor/float_bits.h"
#include "gtest/gtest.h"

#if QUANTD_HAVE_CUDA
#include "kernels/cuda/llama_cuda_ops.h"
#include "tests/kernels/llama_cuda_test_util.h"

namespace quantd {
namespace {

using llama_cuda::AttentionArgs;
using namespace llama_cuda_test;  // NOLINT(build/namespaces)

// The conversions and the embedding gather have one correct answer: bit
// for bit equal to core/tensor/float_bits.h (round to nearest even).
TEST_F(LlamaCudaOpsTest, ConversionsAndEmbeddingAreBitExact) {
  const int64_t n = 5137;
  std::normal_distribution<float> d(0.0f, 3.0f);
  std::vector<float> f32(n);
  for (auto& v : f32) v = d(rng_);
  // Specials, ties of the BF16 rounding, subnormals, F32 max.
  const float specials[] = {0.0f,           -0.0f,          INFINITY, -INFINITY, NAN,
                            1.0f + 0x1p-8f, 1.0f + 0x3p-8f, 1e-40f,   -3e-39f,   3.4028235e38f};
  for (size_t i = 0; i < sizeof(specials) / sizeof(float); ++i) f32[i] = specials[i];
  std::vector<uint16_t> f16(n);
  for (int64_t i = 0; i < n; ++i) f16[i] = static_cast<uint16_t>((i * 40503) & 0xffff);
  DevVec<float> df32(f32);
  DevVec<uint16_t> df16(f16), out16(n);
  DevVec<float> out32(n);
  ASSERT_EQ(
      llama_cuda::ConvertToBf16(df32.get(), llama_cuda::SrcType::kF32, n, out16.get(), nullptr),
      cudaSuccess);
  std::vector<uint16_t> got = out16.Get();
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t want = FloatToBf16(f32[i]);
    if (std::isnan(f32[i])) {
      EXPECT_TRUE(std::isnan(Bf16ToFloat(got[i]))) << i;
    } else {
      ASSERT_EQ(got[i], want) << "f32 -> bf16 at " << i << " (" << f32[i] << ")";
    }
  }
  ASSERT_EQ(
      llama_cuda::ConvertToBf16(df16.get(), llama_cuda::SrcType::kF16, n, out16.get(), nullptr),
      cudaSuccess);
  got = out16.Get();
  for (int64_t i = 0; i < n; ++i) {
    const float x = F16ToFloat(f16[i]);
    if (std::isnan(x)) continue;
    ASSERT_EQ(got[i], FloatToBf16(x)) << "f16 -> bf16 at " << i;
  }
  ASSERT_EQ(
      llama_cuda::ConvertToF32(df16.get(), llama_cuda::SrcType::kBF16, n, out32.get(), nullptr),
      cudaSuccess);
  const std::vector<float> wide = out32.Get();
  for (int64_t i = 0; i < n; ++i) {
    const float want = Bf16ToFloat(f16[i]);
    if (std::isnan(want)) continue;
    ASSERT_EQ(std::memcmp(&wide[i], &want, 4), 0) << "bf16 -> f32 at " << i;
  }
  // Embedding: 37 tokens (repeats, first and last id) from a 1003 x 200
  // table.
  const int vocab = 1003, hidden = 200, rows = 37;
  const std::vector<uint16_t> table = RandomBf16(static_cast<size_t>(vocab) * hidden, rng_, 1.0f);
  std::vector<int32_t> tokens(rows);
  std::uniform_int_distribution<int32_t> tok(0, vocab - 1);
  for (auto& t : tokens) t = tok(rng_);
  tokens[0] = 0, tokens[1] = vocab - 1, tokens[2] = tokens[5];
  DevVec<uint16_t> dtable(table);
  DevVec<int32_t> dtok(tokens);
  DevVec<float> demb(static_cast<size_t>(rows) * hidden);
  ASSERT_EQ(llama_cuda::EmbedTokens(dtok.get(), rows, dtable.get(), hidden, demb.get(), nullptr),
            cudaSuccess);
  const std::vector<float> emb = demb.Get();
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < hidden; ++c) {
      const float want = Bf16ToFloat(table[static_cast<size_t>(tokens[r]) * hidden + c]);
      ASSERT_EQ(std::memcmp(&emb[static_cast<size_t>(r) * hidden + c], &want, 4), 0)
          << "row " << r << " column " << c;
    }
  }
}

TEST_F(LlamaCudaOpsTest, RmsNormMatchesReference) {
  for (int hidden : {128, 200, 4096, 5120}) {
    // Two sequences of 5 positions; output rows = positions 2..4 of each.
    const llama_cuda::RowMap map{3, 5, 2};
    const int in_rows = 10, rows = 6;
    std::normal_distribution<float> d(0.3f, 2.0f);
    std::vector<float> x(in_rows * hidden), w(hidden);
    for (auto& v : x) v = d(rng_);
    for (auto& v : w) v = 1.0f + 0.1f * d(rng_);
    DevVec<float> dx(x), dw(w);
    DevVec<uint16_t> dy(rows * hidden);
    ASSERT_EQ(llama_cuda::RmsNorm(dx.get(), map, rows, hidden, dw.get(), 1e-5f, dy.get(), nullptr),
              cudaSuccess);
    std::vector<double> ref(rows * hidden);
    for (int r = 0; r < rows; ++r) {
      const float* xr = &x[((r / 3) * 5 + 2 + r % 3) * hidden];
      double ss = 0;
      for (int c = 0; c < hidden; ++c) ss += double{xr[c]} * xr[c];
      const double inv = 1.0 / std::sqrt(ss / hidden + 1e-5);
      for (int c = 0; c < hidden; ++c) ref[r * hidden + c] = xr[c] * inv * w[c];
    }
    EXPECT_LT(NormErr(ref, Widen(dy.Get())), kBf16Out) << "hidden " << hidden;
  }
}

TEST_F(LlamaCudaOpsTest, RopeMatchesReference) {
  // Llama 3.1 scaling; 37 tokens = sequences of 13 starting at position 500.
  RopeConfig rope;
  rope.theta = 500000.0;
  rope.scaling = RopeScalingType::kLlama3;
  rope.factor = 8.0;
  const int heads = 4, kv_heads = 2, D = 64, tokens = 37, seq_len = 13, pos0 = 500;
  const int width = (heads + 2 * kv_heads) * D, ld = width + 8;
  const std::vector<float> inv = RopeInvFreq(rope, D);
  for (bool with_bias : {false, true}) {
    std::vector<uint16_t> qkv = RandomBf16(static_cast<size_t>(tokens) * ld, rng_, 1.0f);
    std::vector<float> bias(width);
    std::normal_distribution<float> d(0.0f, 0.5f);
    for (auto& b : bias) b = d(rng_);
    DevVec<float> dinv(inv), dbias(bias);
    DevVec<float2> table(static_cast<size_t>(pos0 + seq_len) * D / 2);
    ASSERT_EQ(llama_cuda::RopeTable(dinv.get(), D / 2, pos0 + seq_len, 1.0f, table.get(), nullptr),
              cudaSuccess);
    DevVec<uint16_t> dq(qkv);
    llama_cuda::RopeArgs a;
    a.qkv = dq.get();
    a.tokens = tokens;
    a.ld = ld;
    a.heads = heads;
    a.kv_heads = kv_heads;
    a.head_dim = D;
    a.seq_len = seq_len;
    a.pos0 = pos0;
    a.bias = with_bias ? dbias.get() : nullptr;
    a.cos_sin = table.get();
    ASSERT_EQ(llama_cuda::ApplyRope(a, nullptr), cudaSuccess);
    const std::vector<double> got = Widen(dq.Get());
    std::vector<double> ref = Widen(qkv);
    for (int r = 0; r < tokens; ++r) {
      const float pos = static_cast<float>(pos0 + r % seq_len);
      double* row = &ref[static_cast<size_t>(r) * ld];
      if (with_bias) {
        for (int c = 0; c < width; ++c) row[c] += bias[c];
      }
      for (int h = 0; h < heads + kv_heads; ++h) {
        for (int i = 0; i < D / 2; ++i) {
          const double angle = static_cast<double>(pos * inv[i]);  // float32 product, as HF
          const double x1 = row[h * D + i], x2 = row[h * D + i + D / 2];
          row[h * D + i] = x1 * std::cos(angle) - x2 * std::sin(angle);
          row[h * D + i + D / 2] = x2 * std::cos(angle) + x1 * std::sin(angle);
        }
      }
    }
    EXPECT_LT(NormErr(ref, got), kBf16Out) << "bias " << with_bias;
  }
}

TEST_F(LlamaCudaOpsTest, SwiGluMatchesReference) {
  const int rows = 19, inter = 264, ld = 2 * inter + 16;
  for (bool with_bias : {false, true}) {
    std::vector<uint16_t> gu = RandomBf16(static_cast<size_t>(rows) * ld, rng_, 3.0f);
    std::vector<float> bias(2 * inter);
    std::normal_distribution<float> d(0.0f, 0.5f);
    for (auto& b : bias) b = d(rng_);
    DevVec<uint16_t> dgu(gu);
    DevVec<float> dbias(bias);
    ASSERT_EQ(llama_cuda::SwiGluInPlace(dgu.get(), rows, inter, ld,
                                        with_bias ? dbias.get() : nullptr, nullptr),
              cudaSuccess);
    const std::vector<uint16_t> out = dgu.Get();
    std::vector<double> ref, got;
    for (int r = 0; r < rows; ++r) {
      for (int j = 0; j < inter; ++j) {
        double g = Bf16ToFloat(gu[r * ld + j]), u = Bf16ToFloat(gu[r * ld + inter + j]);
        if (with_bias) g += bias[j], u += bias[inter + j];
        ref.push_back(g / (1.0 + std::exp(-g)) * u);
        got.push_back(Bf16ToFloat(out[r * ld + j]));
      }
    }
    EXPECT_LT(NormErr(ref, got), kBf16Out) << "bias " << with_bias;
  }
}

// Attention of `batch` sequences with q [b][q_len][heads * D], k and v
// [b][kv_len][kv_heads * D], rows padded to exercise the strides. Compares
// the rows in `check` (all when empty) with a float64 reference.
double AttentionError(bool flash, int batch, int heads, int kv_heads, int D, int q_len, int kv_len,
                      int window, std::mt19937_64& rng, std::vector<int> check = {}) {
  const int q_row = heads * D + 8, kv_row = kv_heads * D + 16, o_row = heads * D;
  const std::vector<uint16_t> q = RandomBf16(static_cast<size_t>(batch) * q_len * q_row, rng, 1.0f);
  const std::vector<uint16_t> k =
      RandomBf16(static_cast<size_t>(batch) * kv_len * kv_row, rng, 1.0f);
  const std::vector<uint16_t> v =
      RandomBf16(static_cast<size_t>(batch) * kv_len * kv_row, rng, 1.0f);
  DevVec<uint16_t> dq(q), dk(k), dv(v), dout(static_cast<size_t>(batch) * q_len * o_row);
  AttentionArgs a;
  a.q = dq.get();
  a.k = dk.get();
  a.v = dv.get();
  a.o = dout.get();
  a.q_row = q_row, a.k_row = a.v_row = kv_row, a.o_row = o_row;
  a.q_seq = int64_t{q_len} * q_row, a.k_seq = a.v_seq = int64_t{kv_len} * kv_row;
  a.o_seq = int64_t{q_len} * o_row;
  a.batch = batch, a.heads = heads, a.kv_heads = kv_heads, a.head_dim = D;
  a.q_len = q_len, a.kv_len = kv_len, a.window = window;
  a.scale = 1.0f / std::sqrt(static_cast<float>(D));
  EXPECT_EQ(
      flash ? llama_cuda::FlashAttention(a, nullptr) : llama_cuda::SimpleAttention(a, nullptr),
      cudaSuccess);
  const std::vector<uint16_t> out = dout.Get();
  if (check.empty()) {
    for (int i = 0; i < q_len; ++i) check.push_back(i);
  }
  std::vector<double> ref, got, s(kv_len);
  for (int b = 0; b < batch; ++b) {
    for (int i : check) {
      const int pos = kv_len - q_len + i;
      const int lo = window > 0 ? std::max(0, pos - window + 1) : 0;
      for (int h = 0; h < heads; ++h) {
        const int kvh = h / (heads / kv_heads);
        const uint16_t* qp = &q[(static_cast<size_t>(b) * q_len + i) * q_row + h * D];
        double mx = -INFINITY;
        for (int j = lo; j <= pos; ++j) {
          const uint16_t* kp = &k[(static_cast<size_t>(b) * kv_len + j) * kv_row + kvh * D];
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += double{Bf16ToFloat(qp[d])} * Bf16ToFloat(kp[d]);
          s[j] = dot / std::sqrt(static_cast<double>(D));
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (int j = lo; j <= pos; ++j) sum += (s[j] = std::exp(s[j] - mx));
        for (int d = 0; d < D; ++d) {
          double acc = 0;
          for (int j = lo; j <= pos; ++j) {
            acc +=
                s[j] * Bf16ToFloat(v[(static_cast<size_t>(b) * kv_len + j) * kv_row + kvh * D + d]);
          }
          ref.push_back(acc / sum);
          got.push_back(Bf16ToFloat(out[(static_cast<size_t>(b) * q_len + i) * o_row + h * D + d]));
        }
      }
    }
  }
  return NormErr(ref, got);
}

TEST_F(LlamaCudaOpsTest, FlashAttentionMatchesFloat64) {
  for (int D : {32, 64, 96, 128}) {
    for (int t : {1, 17, 64, 130, 257}) {
      EXPECT_LT(AttentionError(true, 2, 4, 2, D, t, t, 0, rng_), kAttention) << D << " " << t;
    }
    // Queries after a prefix (chunked prefill), a sliding window, no GQA.
    EXPECT_LT(AttentionError(true, 1, 4, 1, D, 70, 200, 0, rng_), kAttention) << D;
    EXPECT_LT(AttentionError(true, 2, 4, 2, D, 300, 300, 33, rng_), kAttention) << D;
    EXPECT_LT(AttentionError(true, 1, 3, 3, D, 100, 131, 64, rng_), kAttention) << D;
  }
}

TEST_F(LlamaCudaOpsTest, SimpleAttentionMatchesFloat64) {
  for (int D : {32, 48, 128, 256}) {
    EXPECT_LT(AttentionError(false, 2, 4, 2, D, 33, 33, 0, rng_), kAttention) << D;
    EXPECT_LT(AttentionError(false, 1, 4, 2, D, 1, 300, 0, rng_), kAttention) << D;  // decode
    EXPECT_LT(AttentionError(false, 1, 4, 2, D, 1, 300, 50, rng_), kAttention) << D;
  }
}

TEST_F(LlamaCudaOpsTest, LongContextAttention) {
  // T = 8192; 40 rows checked (first, last, spread in between).
  std::vector<int> rows = {0, 1, 63, 64, 8191};
  for (int i = 0; i < 35; ++i) rows.push_back(100 + i * 233);
  EXPECT_LT(AttentionError(true, 1, 2, 1, 128, 8192, 8192, 0, rng_, rows), kAttention);
  EXPECT_LT(AttentionError(false, 1, 2, 1, 128, 8192, 8192, 0, rng_, rows), kAttention);
}

TEST_F(LlamaCudaOpsTest, LogSoftmaxStatsMatchesFloat64) {
  for (int vocab : {1003, 128256}) {
    const int rows = 6, ld = (vocab + 7) / 8 * 8;
    std::normal_distribution<float> d(0.0f, 4.0f);
    std::vector<float> logits(static_cast<size_t>(rows) * ld, 0.0f);
    for (int r = 0; r < rows; ++r) {
      for (int c = 0; c < vocab; ++c) logits[static_cast<size_t>(r) * ld + c] = d(rng_);
    }
    logits[static_cast<size_t>(4) * ld + 7] = NAN;                // row 4 has a NaN
    std::vector<int32_t> targets = {0, vocab - 1, 17, 3, 5, -1};  // row 5: no target
    DevVec<float> dl(logits), dlp(rows);
    DevVec<int32_t> dt(targets), dam(rows);
    ASSERT_EQ(llama_cuda::LogSoftmaxStats(dl.get(), rows, vocab, ld, dt.get(), dlp.get(), dam.get(),
                                          nullptr),
              cudaSuccess);
    const std::vector<float> lp = dlp.Get();
    const std::vector<int32_t> am = dam.Get();
    for (int r = 0; r < 4; ++r) {
      const float* row = &logits[static_cast<size_t>(r) * ld];
      int best = 0;
      double mx = row[0], sum = 0;
      for (int c = 1; c < vocab; ++c) {
        if (row[c] > row[best]) best = c;
        mx = std::max(mx, double{row[c]});
      }
      for (int c = 0; c < vocab; ++c) sum += std::exp(row[c] - mx);
      EXPECT_NEAR(lp[r], row[targets[r]] - mx - std::log(sum), 1e-4) << vocab << " " << r;
      EXPECT_EQ(am[r], best);
    }
    EXPECT_TRUE(std::isnan(lp[4]));
    EXPECT_TRUE(std::isnan(lp[5]));
  }
}

}  // namespace
}  // namespace quantd

#endif  // QUANTD_HAVE_CUDA
