// The CUDA Llama runtime (kernels/cuda/llama_cuda.h) as a whole: logits
// against the CPU backend (tolerances in llama_cuda_test_util.h), batches
// against single sequences, the log-prob fast path against streamed logits,
// greedy decoding with the KV cache against teacher-forced forwards, input
// errors, cancellation and out-of-memory. The kernels one by one:
// llama_cuda_ops_test.cc. Skipped without a CUDA device; without CUDA, only
// the stub and the memory estimate are checked.
#include "kernels/cuda/llama_cuda.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "core/runtime/llama_config.h"
#include "core/runtime/llama_weights.h"
#include "core/tensor/float_bits.h"
#include "gtest/gtest.h"
#include "kernels/devices.h"

#if QUANTD_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "kernels/cpu/llama_cpu.h"
#include "tests/kernels/llama_cuda_test_util.h"
#endif

namespace quantd {
namespace {

LlamaConfig EightBConfig() {
  LlamaConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = 4096;
  c.num_layers = 32;
  c.num_heads = 32;
  c.num_kv_heads = 8;
  c.head_dim = 128;
  c.intermediate_size = 14336;
  c.vocab_size = 128256;
  c.max_position_embeddings = 8192;
  return c;
}

TEST(LlamaCudaMemory, EstimateCoversWeightsAndActivations) {
  const LlamaConfig c = EightBConfig();
  const int64_t one = EstimateCudaMemory(c, 1, 2048);
  const int64_t eight = EstimateCudaMemory(c, 8, 2048);
  EXPECT_GT(one, int64_t{16} << 30);    // 8.03e9 BF16 parameters
  EXPECT_LT(eight, int64_t{22} << 30);  // fits an 80 GB card with room
  EXPECT_GT(eight, one);
  // More sequences than one pass holds cost no more activations.
  EXPECT_EQ(EstimateCudaMemory(c, 64, 2048), eight);
}

#if !QUANTD_HAVE_CUDA
TEST(LlamaCudaStub, Unavailable) {
  LoadedModel m;
  EXPECT_EQ(MakeCudaLlama(&m, 0, {}).status().code(), absl::StatusCode::kUnavailable);
}
#else

using namespace llama_cuda_test;  // NOLINT(build/namespaces)

// A Llama-shaped model in memory with random BF16 weights (shapes and
// initialisation as tests/fixtures/tiny_model.h; logits scaled up so that
// greedy choices are not near-ties).
struct TinyOptions {
  int hidden = 128, inter = 256, layers = 2, heads = 4, kv_heads = 2, vocab = 259;
  bool tie = false, biases = false, llama3_rope = false;
  std::vector<int64_t> windows;
};

std::unique_ptr<LoadedModel> MakeTiny(const TinyOptions& o, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto m = std::make_unique<LoadedModel>();
  LlamaConfig& c = m->config;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = o.hidden;
  c.num_layers = o.layers;
  c.num_heads = o.heads;
  c.num_kv_heads = o.kv_heads;
  c.head_dim = o.hidden / o.heads;
  c.intermediate_size = o.inter;
  c.vocab_size = o.vocab;
  c.max_position_embeddings = 2048;
  c.rms_norm_eps = 1e-5f;
  c.tie_word_embeddings = o.tie;
  c.qkv_bias = c.o_bias = c.mlp_bias = o.biases;
  if (o.llama3_rope) {
    c.rope.theta = 500000.0;
    c.rope.scaling = RopeScalingType::kLlama3;
    c.rope.factor = 8.0;
    c.rope.original_max_position_embeddings = 64;  // so all three bands occur
  }
  c.sliding_window = o.windows;
  if (c.sliding_window.empty()) c.sliding_window.assign(o.layers, 0);
  EXPECT_TRUE(ValidateLlamaConfig(c).ok());
  auto matrix = [&](int64_t rows, int64_t cols, float std) {
    Tensor t = Tensor::Allocate(DType::kBF16, {rows, cols});
    std::normal_distribution<float> d(0.0f, std);
    for (int64_t i = 0; i < rows * cols; ++i) t.as<uint16_t>()[i] = FloatToBf16(d(rng));
    return WeightMatrix::Own(std::move(t));
  };
  auto vec = [&](int64_t n, float mean, float std) {
    std::normal_distribution<float> d(mean, std);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
  };
  const int64_t h = o.hidden, q = c.q_dim(), kv = c.kv_dim(), f = o.inter;
  LlamaWeights& w = m->weights;
  w.embed = matrix(o.vocab, h, o.tie ? 0.5f : 0.02f);
  for (int l = 0; l < o.layers; ++l) {
    LlamaLayerWeights L;
    L.attn_norm = vec(h, 1.0f, 0.01f);
    L.ffn_norm = vec(h, 1.0f, 0.01f);
    L.q = matrix(q, h, 0.08f);
    L.k = matrix(kv, h, 0.08f);
    L.v = matrix(kv, h, 0.08f);
    L.o = matrix(h, q, 0.05f);
    L.gate = matrix(f, h, 0.05f);
    L.up = matrix(f, h, 0.05f);
    L.down = matrix(h, f, 0.05f);
    if (o.biases) {
      L.q_bias = vec(q, 0, 0.1f), L.k_bias = vec(kv, 0, 0.1f), L.v_bias = vec(kv, 0, 0.1f);
      L.o_bias = vec(h, 0, 0.1f);
      L.gate_bias = vec(f, 0, 0.1f), L.up_bias = vec(f, 0, 0.1f), L.down_bias = vec(h, 0, 0.1f);
    }
    w.layers.push_back(std::move(L));
  }
  w.final_norm = vec(h, 1.0f, 0.01f);
  if (!o.tie) w.lm_head_untied = matrix(o.vocab, h, 0.5f);
  m->source_format = "bf16";
  return m;
}

// Collects streamed logits as [seq][pos - from][vocab] doubles.
class CollectSink : public LogitsSink {
 public:
  CollectSink(int seqs, int positions, int from, int vocab)
      : from_(from),
        vocab_(vocab),
        data_(static_cast<size_t>(seqs) * positions * vocab, NAN),
        positions_(positions) {}
  absl::Status Consume(int seq, int pos, const float* logits) override {
    double* dst = &data_[(static_cast<size_t>(seq) * positions_ + (pos - from_)) * vocab_];
    for (int i = 0; i < vocab_; ++i) dst[i] = logits[i];
    return absl::OkStatus();
  }
  const std::vector<double>& data() const { return data_; }
  const double* row(int seq, int i) const {
    return &data_[(static_cast<size_t>(seq) * positions_ + i) * vocab_];
  }

 private:
  int from_, vocab_;
  std::vector<double> data_;
  int positions_;
};

std::vector<std::vector<int32_t> > RandomBatch(int n, int t, int vocab, std::mt19937_64& rng) {
  std::uniform_int_distribution<int32_t> d(0, vocab - 1);
  std::vector<std::vector<int32_t> > b(n, std::vector<int32_t>(t));
  for (auto& s : b) {
    for (auto& x : s) x = d(rng);
  }
  return b;
}

class LlamaCudaModelTest : public LlamaCudaOpsTest {
 protected:
  // Streams the logits of positions [from, T) of `batch` from `lm`.
  static std::vector<double> Logits(CausalLM& lm, const std::vector<std::vector<int32_t> >& batch,
                                    int from) {
    const int t = static_cast<int>(batch[0].size());
    CollectSink sink(static_cast<int>(batch.size()), t - from, from, lm.vocab_size());
    CancelToken cancel;
    const absl::Status s = lm.Forward(batch, from, &sink, cancel);
    EXPECT_TRUE(s.ok()) << s;
    return sink.data();
  }

  static std::unique_ptr<CausalLM> Cuda(const LoadedModel& m, CudaLlamaOptions o = {}) {
    absl::StatusOr<std::unique_ptr<CausalLM> > lm = MakeCudaLlama(&m, 0, o);
    EXPECT_TRUE(lm.ok()) << lm.status();
    return lm.ok() ? *std::move(lm) : nullptr;
  }
  static std::unique_ptr<CausalLM> Cpu(const LoadedModel& m) {
    absl::StatusOr<std::unique_ptr<CausalLM> > lm = MakeCpuLlama(&m, 0);
    EXPECT_TRUE(lm.ok()) << lm.status();
    return lm.ok() ? *std::move(lm) : nullptr;
  }
};

TEST_F(LlamaCudaModelTest, LogitsMatchCpuBackend) {
  struct Case {
    const char* name;
    TinyOptions o;
    int batch, t, from;
  };
  TinyOptions plain, simple_attn, qwen_like;
  simple_attn.hidden = 192;  // head_dim 48: the CUDA-core attention kernel
  qwen_like.biases = qwen_like.tie = qwen_like.llama3_rope = true;
  qwen_like.windows = {24, 0};
  TinyOptions deep = plain;
  deep.layers = 4, deep.heads = 2, deep.kv_heads = 1;  // head_dim 64, MQA
  TinyOptions llama3 = plain;
  llama3.llama3_rope = true;
  llama3.heads = 1, llama3.kv_heads = 1;  // head_dim 128
  for (const Case& c :
       {Case{"plain, batch 1", plain, 1, 40, 0}, Case{"plain, batch 8", plain, 8, 40, 0},
        Case{"head_dim 48", simple_attn, 3, 33, 5},
        Case{"biases, tied, llama3, window", qwen_like, 2, 90, 1},
        Case{"head_dim 64, MQA", deep, 3, 130, 64},
        // 12 query tiles x up to 12 key tiles of 64.
        Case{"long: T 750, llama3, head_dim 128", llama3, 2, 750, 0}}) {
    std::unique_ptr<LoadedModel> m = MakeTiny(c.o, 7);
    std::unique_ptr<CausalLM> gpu = Cuda(*m), cpu = Cpu(*m);
    ASSERT_TRUE(gpu && cpu);
    const auto batch = RandomBatch(c.batch, c.t, c.o.vocab, rng_);
    const double err = NormErr(Logits(*cpu, batch, c.from), Logits(*gpu, batch, c.from));
    EXPECT_LT(err, kModel) << c.name;
    std::printf("[ model ] %-36s normalised logits error vs CPU %.2e\n", c.name, err);
  }
}

TEST_F(LlamaCudaModelTest, BatchMatchesSinglesAndPasses) {
  std::unique_ptr<LoadedModel> m = MakeTiny({}, 11);
  CudaLlamaOptions one_per_pass;
  one_per_pass.max_batch_tokens = 50;  // one sequence of 48 a pass
  one_per_pass.stream_chunk_rows = 7;
  std::unique_ptr<CausalLM> gpu = Cuda(*m), split = Cuda(*m, one_per_pass);
  ASSERT_TRUE(gpu && split);
  const auto batch = RandomBatch(4, 48, 259, rng_);
  const std::vector<double> all = Logits(*gpu, batch, 3);
  EXPECT_LT(NormErr(all, Logits(*split, batch, 3)), kBatch);
  const size_t per = all.size() / batch.size();
  for (size_t s = 0; s < batch.size(); ++s) {
    const std::vector<double> want(all.begin() + s * per, all.begin() + (s + 1) * per);
    EXPECT_LT(NormErr(want, Logits(*gpu, {batch[s]}, 3)), kBatch) << "sequence " << s;
  }
}

TEST_F(LlamaCudaModelTest, LogProbsMatchStreamedLogits) {
  std::unique_ptr<LoadedModel> m = MakeTiny({}, 13);
  CudaLlamaOptions o;
  o.logits_chunk_bytes = 259 * 4 * 10;  // 10-row lm_head chunks
  std::unique_ptr<CausalLM> lm = Cuda(*m, o);
  ASSERT_TRUE(lm);
  auto* fast = dynamic_cast<CudaLlama*>(lm.get());
  ASSERT_NE(fast, nullptr);
  const int t = 37, from = 4;
  const auto batch = RandomBatch(3, t, 259, rng_);
  auto targets = RandomBatch(3, t - from, 259, rng_);
  targets[1][2] = -1;
  std::vector<float> lp;
  std::vector<int32_t> am;
  CancelToken cancel;
  ASSERT_TRUE(fast->ForwardLogProbs(batch, from, targets, &lp, &am, cancel).ok());
  ASSERT_EQ(lp.size(), static_cast<size_t>(3) * (t - from));
  const int vocab = 259;
  CollectSink sink(3, t - from, from, vocab);
  ASSERT_TRUE(lm->Forward(batch, from, &sink, cancel).ok());
  for (int s = 0; s < 3; ++s) {
    for (int i = 0; i < t - from; ++i) {
      const double* row = sink.row(s, i);
      const size_t k = static_cast<size_t>(s) * (t - from) + i;
      const int best = static_cast<int>(std::max_element(row, row + vocab) - row);
      // Another lm_head chunking may flip a near-tie.
      if (am[k] != best) {
        EXPECT_NEAR(row[am[k]], row[best], 1e-3);
      }
      if (targets[s][i] < 0) {
        EXPECT_TRUE(std::isnan(lp[k]));
        continue;
      }
      double sum = 0;
      for (int c = 0; c < vocab; ++c) sum += std::exp(row[c] - row[best]);
      EXPECT_NEAR(lp[k], row[targets[s][i]] - row[best] - std::log(sum), 2e-3);
    }
  }
  EXPECT_EQ(fast->ForwardLogProbs(batch, from, {}, &lp, &am, cancel).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LlamaCudaModelTest, GenerateAgreesWithTeacherForcing) {
  TinyOptions o;
  o.windows = {0, 9};
  std::unique_ptr<LoadedModel> m = MakeTiny(o, 17);
  std::unique_ptr<CausalLM> gpu = Cuda(*m), cpu = Cpu(*m);
  ASSERT_TRUE(gpu && cpu);
  const std::vector<int32_t> prompt = RandomBatch(1, 21, 259, rng_)[0];
  CancelToken cancel;
  absl::StatusOr<std::vector<int32_t> > out = gpu->Generate(prompt, 24, {}, cancel);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 24u);
  // Each new token is the argmax of a full forward over prompt + the
  // tokens before it (up to near-ties between the two computations).
  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), out->begin(), out->end() - 1);
  const int p = static_cast<int>(prompt.size());
  const std::vector<double> logits = Logits(*gpu, {seq}, p - 1);
  for (size_t i = 0; i < out->size(); ++i) {
    const double* row = &logits[i * 259];
    const int best = static_cast<int>(std::max_element(row, row + 259) - row);
    if ((*out)[i] != best) {
      // Decoding with the KV cache and the full forward round their BF16
      // activations differently: a near-tie may flip. Allowed: a gap of 1%
      // of the row's largest |logit| (the normalized errors above are ~5e-3).
      double scale = 0;
      for (int c = 0; c < 259; ++c) scale = std::max(scale, std::abs(row[c]));
      EXPECT_NEAR(row[(*out)[i]], row[best], 1e-2 * scale) << "token " << i;
    }
  }
  // The CPU backend decodes the same tokens while the choice is clear.
  absl::StatusOr<std::vector<int32_t> > want = cpu->Generate(prompt, 24, {}, cancel);
  ASSERT_TRUE(want.ok());
  int same = 0;
  while (same < 24 && (*want)[same] == (*out)[same]) ++same;
  std::printf("[ generate ] CPU and CUDA agree on the first %d of 24 tokens\n", same);
  EXPECT_GE(same, 4);
  // A stop token ends generation and is returned.
  absl::StatusOr<std::vector<int32_t> > stopped = gpu->Generate(prompt, 24, {(*out)[2]}, cancel);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->back(), (*out)[2]);
  EXPECT_LE(stopped->size(), 3u);
}

TEST_F(LlamaCudaModelTest, RejectsBadInputsAndCancels) {
  std::unique_ptr<LoadedModel> m = MakeTiny({}, 19);
  CudaLlamaOptions o;
  o.max_context = 64;
  std::unique_ptr<CausalLM> lm = Cuda(*m, o);
  ASSERT_TRUE(lm);
  EXPECT_EQ(lm->max_context(), 64);
  CollectSink sink(2, 70, 0, 259);
  CancelToken cancel;
  auto code = [&](const std::vector<std::vector<int32_t> >& b, int from) {
    return lm->Forward(b, from, &sink, cancel).code();
  };
  EXPECT_EQ(code({{1, 2, 3}, {1, 2}}, 0), absl::StatusCode::kInvalidArgument);  // ragged
  EXPECT_EQ(code({{1, 259, 3}}, 0), absl::StatusCode::kInvalidArgument);        // vocab
  EXPECT_EQ(code({{-1, 2, 3}}, 0), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({std::vector<int32_t>(65, 1)}, 0), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({{1, 2, 3}}, 4), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(lm->Forward({{1, 2, 3}}, 3, &sink, cancel).ok());  // nothing to stream
  cancel.Cancel();
  EXPECT_EQ(code({{1, 2, 3}}, 0), absl::StatusCode::kCancelled);
  // The model still works after errors.
  CancelToken fresh;
  EXPECT_TRUE(lm->Forward({{1, 2, 3}}, 0, &sink, fresh).ok());
  const ForwardStats stats = lm->TakeStats();
  EXPECT_GT(stats.peak_device_bytes, 0);
  EXPECT_LE(stats.peak_device_bytes, EstimateCudaMemory(m->config, 2, 64, o));
}

TEST_F(LlamaCudaModelTest, OutOfMemoryIsResourceExhaustedAndRecoverable) {
  std::unique_ptr<LoadedModel> m = MakeTiny({}, 23);
  m->config.max_position_embeddings = 1 << 30;
  CudaLlamaOptions o;
  o.max_batch_tokens = int64_t{1} << 40;
  std::unique_ptr<CausalLM> lm = Cuda(*m, o);
  ASSERT_TRUE(lm);
  // 2^27 tokens need ~240 GB of activations (EstimateCudaMemory), more
  // than any single GPU holds.
  const int t = 1 << 27;
  size_t free_bytes = 0, total_bytes = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_bytes, &total_bytes), cudaSuccess);
  ASSERT_GT(EstimateCudaMemory(m->config, 1, t, o), static_cast<int64_t>(total_bytes));
  CollectSink sink(1, 1, t - 1, 259);
  CancelToken cancel;
  const absl::Status st = lm->Forward({std::vector<int32_t>(t, 1)}, t - 1, &sink, cancel);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  EXPECT_NE(st.message().find("GiB free"), absl::string_view::npos) << st;
  // Smaller work still runs on the same object afterwards.
  CollectSink small(1, 3, 0, 259);
  EXPECT_TRUE(lm->Forward({{1, 2, 3}}, 0, &small, cancel).ok());
  EXPECT_FALSE(std::isnan(small.data()[0]));
}

#endif  // QUANTD_HAVE_CUDA

}  // namespace
}  // namespace quantd
