// Perplexity-style forward throughput of the CUDA Llama runtime on a
// Llama-3-8B-shaped model with random BF16 weights built in memory (no
// file): ForwardLogProbs over batches of 2048-token sequences, against the
// BF16 GEMM rate cuBLAS reaches on the same card in the same run, then
// where one forward's time goes (each operation timed alone).
//
//   llama_bench [--layers N] [--seq T] [--batches 1,4,8] [--reps R]
//               [--cpu-seq T] [--cpu-threads N] [--json PATH]
//
// Then the CPU backend (every build): tokens/s of Forward over one sequence
// of --cpu-seq tokens (default 512; 0 skips it) of a SmolLM-135M-shaped
// random BF16 model, the second half of the positions streamed as logits
// (the "llama" perplexity protocol). --json writes the headline numbers.
//
// Model FLOPs per forward = 2 * (GEMM parameters) * tokens + attention
// (4 * heads * head_dim * T (T + 1) / 2 per sequence and layer: QK^T and
// PV over the causal triangle). The embedding is a gather: not counted.
// Target: >= 20,000 tokens/s on one H100 at context 2048.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "core/runtime/llama_weights.h"
#include "kernels/cpu/llama_cpu.h"
#include "kernels/cuda/llama_cuda.h"
#include "kernels/devices.h"

#if QUANTD_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "kernels/cuda/llama_cuda_internal.h"
#include "kernels/cuda/llama_cuda_ops.h"
#endif

namespace quantd {
namespace {

struct Args {
  int layers = 32;
  int seq = 2048;
  std::vector<int> batches = {1, 4, 8};
  int reps = 3;
  int cpu_seq = 512;
  int cpu_threads = 0;
  std::string json;
};

Args ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    bool ok = true;
    if (k == "--layers") {
      ok = absl::SimpleAtoi(v, &a.layers);
    } else if (k == "--seq") {
      ok = absl::SimpleAtoi(v, &a.seq);
    } else if (k == "--reps") {
      ok = absl::SimpleAtoi(v, &a.reps);
    } else if (k == "--cpu-seq") {
      ok = absl::SimpleAtoi(v, &a.cpu_seq);
    } else if (k == "--cpu-threads") {
      ok = absl::SimpleAtoi(v, &a.cpu_threads);
    } else if (k == "--json") {
      a.json = v;
    } else if (k == "--batches") {
      a.batches.clear();
      for (absl::string_view p : absl::StrSplit(v, ',')) {
        int b = 0;
        ok = ok && absl::SimpleAtoi(p, &b);
        a.batches.push_back(b);
      }
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: llama_bench [--layers N] [--seq T] [--batches 1,4,8] [--reps R] "
                   "[--cpu-seq T] [--cpu-threads N] [--json PATH]\n");
      std::exit(2);
    }
  }
  return a;
}

// N(0, ~0.02)-sized random BF16 values (uniform, never zero), in parallel.
std::vector<uint16_t> RandomPool(int64_t n) {
  std::vector<uint16_t> pool(static_cast<size_t>(n));
  const int threads = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      uint64_t x = 0x9e3779b97f4a7c15ull * (t + 1);
      for (int64_t i = n * t / threads; i < n * (t + 1) / threads; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        const float u = (static_cast<float>(x >> 40) + 0.5f) / 16777216.0f;  // (0, 1)
        float f = (u - 0.5f) * 0.07f;
        if (f == 0.0f) f = 1e-3f;
        uint32_t bits;
        std::memcpy(&bits, &f, 4);
        pool[i] = static_cast<uint16_t>(bits >> 16);
      }
    });
  }
  for (auto& t : ts) t.join();
  return pool;
}

// Every matrix is a view at a random offset into one random pool, so
// layers differ without 16 GB of host memory.
std::unique_ptr<LoadedModel> MakeModel(const LlamaConfig& c, const std::vector<uint16_t>& pool) {
  auto m = std::make_unique<LoadedModel>();
  m->config = c;
  if (m->config.sliding_window.empty()) m->config.sliding_window.assign(c.num_layers, 0);
  std::mt19937_64 rng(1);
  auto view = [&](int64_t rows, int64_t cols) {
    const int64_t n = rows * cols;
    std::uniform_int_distribution<int64_t> d(0, (static_cast<int64_t>(pool.size()) - n) / 8);
    return WeightMatrix::View(DType::kBF16, rows, cols, pool.data() + d(rng) * 8);
  };
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), f = c.intermediate_size;
  m->weights.embed = view(c.vocab_size, h);
  if (!c.tie_word_embeddings) m->weights.lm_head_untied = view(c.vocab_size, h);
  m->weights.final_norm.assign(h, 1.0f);
  for (int l = 0; l < c.num_layers; ++l) {
    LlamaLayerWeights L;
    L.attn_norm.assign(h, 1.0f);
    L.ffn_norm.assign(h, 1.0f);
    L.q = view(q, h), L.k = view(kv, h), L.v = view(kv, h), L.o = view(h, q);
    L.gate = view(f, h), L.up = view(f, h), L.down = view(h, f);
    m->weights.layers.push_back(std::move(L));
  }
  m->source_format = "bf16";
  return m;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// SmolLM-135M's shape (HuggingFaceTB/SmolLM-135M config.json), tied.
LlamaConfig Smol135M() {
  LlamaConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = 576;
  c.num_layers = 30;
  c.num_heads = 9;
  c.num_kv_heads = 3;
  c.head_dim = 64;
  c.intermediate_size = 1536;
  c.vocab_size = 49152;
  c.max_position_embeddings = 2048;
  c.rms_norm_eps = 1e-5f;
  c.tie_word_embeddings = true;
  return c;
}

// Discards the logits (touching one value a row so the copy is not free).
class NullSink : public LogitsSink {
 public:
  absl::Status Consume(int, int, const float* logits) override {
    checksum_ += logits[0];
    return absl::OkStatus();
  }
  double checksum_ = 0;
};

// CPU backend: best tokens/s of `reps` Forward calls over one sequence of
// `seq` tokens streaming positions [seq / 2, seq); 0 when skipped.
double CpuTokensPerSecond(const Args& args, const std::vector<uint16_t>& pool) {
  if (args.cpu_seq <= 0) return 0;
  const LlamaConfig c = Smol135M();
  std::unique_ptr<LoadedModel> model = MakeModel(c, pool);
  absl::StatusOr<std::unique_ptr<CausalLM>> lm = MakeCpuLlama(model.get(), args.cpu_threads);
  if (!lm.ok()) {
    std::fprintf(stderr, "MakeCpuLlama: %s\n", lm.status().ToString().c_str());
    std::exit(1);
  }
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int32_t> tok(0, c.vocab_size - 1);
  std::vector<std::vector<int32_t>> batch(1, std::vector<int32_t>(args.cpu_seq));
  for (auto& t : batch[0]) t = tok(rng);
  double best = 0;
  for (int r = 0; r < 1 + std::max(1, args.reps / 2); ++r) {  // first run: warm-up
    NullSink sink;
    CancelToken cancel;
    const absl::Time t0 = absl::Now();
    const absl::Status st = (*lm)->Forward(batch, args.cpu_seq / 2, &sink, cancel);
    if (!st.ok()) {
      std::fprintf(stderr, "CPU Forward: %s\n", st.ToString().c_str());
      std::exit(1);
    }
    const double tps = args.cpu_seq / absl::ToDoubleSeconds(absl::Now() - t0);
    if (r > 0) best = std::max(best, tps);
  }
  std::printf(
      "\nCPU backend (%u hardware threads, --cpu-threads %d): SmolLM-135M-shaped random "
      "BF16 model (%.0fM parameters), 1 x %d tokens, logits of the second half: "
      "%.0f tokens/s (best of %d)\n",
      std::thread::hardware_concurrency(), args.cpu_threads, c.ParameterCount() / 1e6, args.cpu_seq,
      best, std::max(1, args.reps / 2));
  return best;
}

#if QUANTD_HAVE_CUDA

#define CHECK_OK(expr)                                                                \
  do {                                                                                \
    const absl::Status s_ = (expr);                                                   \
    if (!s_.ok()) {                                                                   \
      std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, s_.ToString().c_str()); \
      std::exit(1);                                                                   \
    }                                                                                 \
  } while (0)
#define CHECK_CUDA(expr) CHECK_OK(CudaStatus((expr), #expr))

LlamaConfig Llama3_8B(int layers) {
  LlamaConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = 4096;
  c.num_layers = layers;
  c.num_heads = 32;
  c.num_kv_heads = 8;
  c.head_dim = 128;
  c.intermediate_size = 14336;
  c.vocab_size = 128256;
  c.max_position_embeddings = 131072;
  c.rms_norm_eps = 1e-5f;
  c.rope.theta = 500000.0;
  c.rope.scaling = RopeScalingType::kLlama3;
  c.rope.factor = 8.0;
  c.rope.original_max_position_embeddings = 8192;
  return c;
}

// Median milliseconds of `reps` runs of fn (after 2 warm-ups), CUDA events.
template <typename Fn>
double TimeMs(cudaStream_t stream, int reps, Fn fn) {
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  for (int i = 0; i < 2; ++i) fn();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    CHECK_CUDA(cudaEventRecord(a, stream));
    fn();
    CHECK_CUDA(cudaEventRecord(b, stream));
    CHECK_CUDA(cudaEventSynchronize(b));
    float t = 0;
    CHECK_CUDA(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return Median(ms);
}

// A device buffer of random BF16 values.
llama_cuda::DeviceBuffer RandomDevice(int64_t elems, const std::vector<uint16_t>& pool) {
  llama_cuda::DeviceBuffer b;
  CHECK_OK(b.Allocate(elems * 2, "bench buffer"));
  for (int64_t off = 0; off < elems;) {
    const int64_t n = std::min<int64_t>(elems - off, static_cast<int64_t>(pool.size()));
    CHECK_CUDA(cudaMemcpy(b.as<uint16_t>() + off, pool.data(), n * 2, cudaMemcpyHostToDevice));
    off += n;
  }
  return b;
}

struct Gemm {
  cudaStream_t stream;
  cublasHandle_t handle;
  llama_cuda::DeviceBuffer ws;
};

Gemm MakeGemm() {
  Gemm g;
  CHECK_CUDA(cudaStreamCreateWithFlags(&g.stream, cudaStreamNonBlocking));
  CHECK_OK(llama_cuda::CublasStatus(cublasCreate(&g.handle), "cublasCreate"));
  CHECK_OK(llama_cuda::CublasStatus(cublasSetStream(g.handle, g.stream), "cublasSetStream"));
  CHECK_OK(g.ws.Allocate(int64_t{32} << 20, "cuBLAS workspace"));
  CHECK_OK(llama_cuda::CublasStatus(cublasSetWorkspace(g.handle, g.ws.as<void>(), g.ws.bytes()),
                                    "cublasSetWorkspace"));
  return g;
}

// TFLOP/s of an 8192^3 BF16 product (float32 accumulation, BF16 output).
double GemmRate(Gemm& g, const std::vector<uint16_t>& pool) {
  const int64_t n = 8192;
  llama_cuda::DeviceBuffer a = RandomDevice(n * n, pool), b = RandomDevice(n * n, pool);
  llama_cuda::DeviceBuffer c;
  CHECK_OK(c.Allocate(n * n * 2, "C"));
  const double ms = TimeMs(g.stream, 20, [&] {
    CHECK_OK(llama_cuda::Linear(g.handle, a.as<uint16_t>(), n, n, n, b.as<uint16_t>(), n,
                                c.as<void>(), false, n, 0.0f));
  });
  return 2.0 * n * n * n / (ms * 1e-3) / 1e12;
}

struct Row {
  const char* op;
  std::string shape;
  double ms_per_forward;
  double rate;  // TFLOP/s or GB/s
  const char* unit;
};

// Each operation of one forward over `rows` tokens (sequences of `seq`),
// timed alone and multiplied by its count per forward.
std::vector<Row> Components(const LlamaConfig& c, int64_t rows, int seq, Gemm& g,
                            const std::vector<uint16_t>& pool) {
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), f = c.intermediate_size;
  const int64_t qkv = q + 2 * kv, v = c.vocab_size, L = c.num_layers;
  const int64_t lm_rows = std::min<int64_t>(rows, (int64_t{1} << 30) / (v * 4));
  std::vector<Row> out;
  llama_cuda::DeviceBuffer x = RandomDevice(rows * std::max(h, q), pool);
  llama_cuda::DeviceBuffer big = RandomDevice(rows * std::max(qkv, 2 * f), pool);
  llama_cuda::DeviceBuffer w = RandomDevice(std::max(2 * f * h, v * h), pool);
  llama_cuda::DeviceBuffer resid, logits, norm_w, lp, am, tg;
  CHECK_OK(resid.Allocate(rows * h * 4, "resid"));
  CHECK_CUDA(cudaMemset(resid.as<void>(), 0x3f, rows * h * 4));  // ~0.75 everywhere
  CHECK_OK(logits.Allocate(lm_rows * v * 4, "logits"));
  CHECK_OK(norm_w.Allocate(h * 4, "norm"));
  CHECK_CUDA(cudaMemset(norm_w.as<void>(), 0x3f, h * 4));
  CHECK_OK(lp.Allocate(rows * 4, "lp"));
  CHECK_OK(am.Allocate(rows * 4, "am"));
  CHECK_OK(tg.Allocate(rows * 4, "targets"));
  CHECK_CUDA(cudaMemset(tg.as<void>(), 0, rows * 4));
  const uint16_t* W = w.as<uint16_t>();
  // Outputs: BF16 into `big`, or float32 accumulated into `resid`. The
  // down GEMM reads the SwiGLU output in place (row stride 2f), as the
  // model does.
  auto gemm = [&](const char* name, int64_t m, int64_t n, int64_t k, bool f32, double count) {
    const bool down = k == f;
    const uint16_t* in = down ? big.as<uint16_t>() : x.as<uint16_t>();
    const double ms = TimeMs(g.stream, 10, [&] {
      CHECK_OK(llama_cuda::Linear(g.handle, in, down ? 2 * f : k, m, k, W, n,
                                  f32 ? resid.as<void>() : big.as<void>(), f32, n,
                                  f32 ? 1.0f : 0.0f));
    });
    out.push_back({name, std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k),
                   ms * count, 2.0 * m * n * k / (ms * 1e-3) / 1e12, "TFLOP/s"});
  };
  gemm("qkv GEMM", rows, qkv, h, false, L);
  gemm("o GEMM (+residual)", rows, h, q, true, L);
  gemm("gate|up GEMM", rows, 2 * f, h, false, L);
  gemm("down GEMM (+residual)", rows, h, f, true, L);
  {
    const double ms = TimeMs(g.stream, 10, [&] {
      CHECK_OK(llama_cuda::Linear(g.handle, x.as<uint16_t>(), h, lm_rows, h, W, v,
                                  logits.as<void>(), true, v, 0.0f));
    });
    out.push_back({"lm_head GEMM",
                   std::to_string(lm_rows) + "x" + std::to_string(v) + "x" + std::to_string(h),
                   ms * rows / lm_rows, 2.0 * lm_rows * v * h / (ms * 1e-3) / 1e12, "TFLOP/s"});
  }
  {
    llama_cuda::AttentionArgs a;
    a.q = big.as<uint16_t>(), a.k = a.q + q, a.v = a.k + kv, a.o = x.as<uint16_t>();
    a.q_row = a.k_row = a.v_row = qkv, a.o_row = q;
    a.q_seq = a.k_seq = a.v_seq = seq * qkv, a.o_seq = seq * q;
    a.batch = static_cast<int>(rows / seq), a.heads = c.num_heads, a.kv_heads = c.num_kv_heads;
    a.head_dim = c.head_dim, a.q_len = a.kv_len = seq, a.scale = 0.088f;
    const double ms =
        TimeMs(g.stream, 10, [&] { CHECK_CUDA(llama_cuda::FlashAttention(a, g.stream)); });
    const double flops = 4.0 * c.num_heads * c.head_dim * (seq * (seq + 1.0) / 2) * a.batch;
    out.push_back({"flash attention", "T " + std::to_string(seq), ms * L,
                   flops / (ms * 1e-3) / 1e12, "TFLOP/s"});
  }
  auto mem = [&](const char* name, double bytes, double count, auto fn) {
    const double ms = TimeMs(g.stream, 10, fn);
    out.push_back({name, "", ms * count, bytes / (ms * 1e-3) / 1e9, "GB/s"});
  };
  mem("RMSNorm", rows * h * 6.0, 2 * L + 1, [&] {
    CHECK_CUDA(llama_cuda::RmsNorm(resid.as<float>(), llama_cuda::RowMap::Identity(), rows, h,
                                   norm_w.as<float>(), 1e-5f, x.as<uint16_t>(), g.stream));
  });
  mem("SwiGLU (in place)", rows * f * 6.0, L, [&] {
    CHECK_CUDA(llama_cuda::SwiGluInPlace(big.as<uint16_t>(), rows, f, 2 * f, nullptr, g.stream));
  });
  llama_cuda::DeviceBuffer table;
  CHECK_OK(table.Allocate(seq * c.head_dim / 2 * 8, "rope"));
  CHECK_CUDA(cudaMemset(table.as<void>(), 0, table.bytes()));
  mem("RoPE (in place)", rows * (q + kv) * 4.0, L, [&] {
    llama_cuda::RopeArgs r;
    r.qkv = big.as<uint16_t>(), r.tokens = rows, r.ld = qkv, r.heads = c.num_heads;
    r.kv_heads = c.num_kv_heads, r.head_dim = c.head_dim, r.seq_len = seq;
    r.cos_sin = table.as<float2>();
    CHECK_CUDA(llama_cuda::ApplyRope(r, g.stream));
  });
  mem("log-softmax stats", lm_rows * v * 4.0, static_cast<double>(rows) / lm_rows, [&] {
    CHECK_CUDA(llama_cuda::LogSoftmaxStats(logits.as<float>(), lm_rows, v, v, tg.as<int32_t>(),
                                           lp.as<float>(), am.as<int32_t>(), g.stream));
  });
  return out;
}

// The GPU part; fills `json` with its headline numbers. Returns the random
// weight pool for the CPU part.
std::vector<uint16_t> CudaMain(const Args& args, std::string* json) {
  const std::vector<GpuInfo> gpus = ListCudaDevices();
  if (gpus.empty()) {
    std::printf("llama_bench: no CUDA device\n");
    return RandomPool(int64_t{64} << 20);
  }
  std::printf("device: %s, %d SMs, %.1f GiB\n", gpus[0].name.c_str(), gpus[0].multiprocessors,
              gpus[0].total_memory / 1073741824.0);
  const LlamaConfig c = Llama3_8B(args.layers);
  absl::Time t0 = absl::Now();
  const std::vector<uint16_t> pool = RandomPool(int64_t{640} << 20);
  std::printf("random weight pool: %.1f s\n", absl::ToDoubleSeconds(absl::Now() - t0));

  Gemm g = MakeGemm();
  const double gemm_rate = GemmRate(g, pool);
  std::printf("cuBLAS BF16 GEMM 8192^3 (random data, median of 20): %.1f TFLOP/s\n", gemm_rate);
  *json += absl::StrFormat(
      "\"device\": \"%s\", \"layers\": %d, \"seq\": %d, \"gemm_tflops\": %.1f, \"runs\": [",
      gpus[0].name, args.layers, args.seq, gemm_rate);

  const double gemm_params =
      static_cast<double>(c.num_layers) *
          (c.hidden_size * (c.q_dim() + 2 * c.kv_dim()) + c.q_dim() * c.hidden_size +
           3.0 * c.hidden_size * c.intermediate_size) +
      static_cast<double>(c.vocab_size) * c.hidden_size;
  const double attn_flops_per_seq =
      4.0 * c.num_heads * c.head_dim * (args.seq * (args.seq + 1.0) / 2) * c.num_layers;
  {
    std::unique_ptr<LoadedModel> model = MakeModel(c, pool);
    t0 = absl::Now();
    CudaLlamaOptions options;
    absl::StatusOr<std::unique_ptr<CausalLM>> lm = MakeCudaLlama(model.get(), 0, options);
    CHECK_OK(lm.status());
    auto* fast = dynamic_cast<CudaLlama*>(lm->get());
    std::printf("model: %d layers, %.2fe9 GEMM parameters; upload %.1f s\n\n", args.layers,
                gemm_params / 1e9, absl::ToDoubleSeconds(absl::Now() - t0));
    std::printf("ForwardLogProbs, context %d (wall time per call, median of %d after a warm-up)\n",
                args.seq, args.reps);
    std::printf("%6s %8s %9s %10s %13s %12s %9s %10s\n", "batch", "tokens", "seconds", "tokens/s",
                "model TFLOP/s", "of GEMM rate", "peak GiB", "estimate");
    std::mt19937_64 rng(5);
    std::uniform_int_distribution<int32_t> tok(0, c.vocab_size - 1);
    for (int b : args.batches) {
      std::vector<std::vector<int32_t>> batch(b, std::vector<int32_t>(args.seq));
      std::vector<std::vector<int32_t>> targets(b, std::vector<int32_t>(args.seq));
      for (auto& s : batch) {
        for (auto& t : s) t = tok(rng);
      }
      for (int s = 0; s < b; ++s) {
        for (int i = 0; i < args.seq; ++i) {
          targets[s][i] = i + 1 < args.seq ? batch[s][i + 1] : tok(rng);
        }
      }
      std::vector<float> lp;
      std::vector<int32_t> am;
      CancelToken cancel;
      CHECK_OK(fast->ForwardLogProbs(batch, 0, targets, &lp, &am, cancel));  // warm-up
      std::vector<double> secs;
      for (int r = 0; r < args.reps; ++r) {
        const absl::Time s0 = absl::Now();
        CHECK_OK(fast->ForwardLogProbs(batch, 0, targets, &lp, &am, cancel));
        secs.push_back(absl::ToDoubleSeconds(absl::Now() - s0));
      }
      const double s = Median(secs);
      const double tokens = static_cast<double>(b) * args.seq;
      const double tflops = (2.0 * gemm_params * tokens + attn_flops_per_seq * b) / s / 1e12;
      double mean_lp = 0;
      for (float x : lp) mean_lp += x;
      mean_lp /= lp.size();
      const ForwardStats st = (*lm)->TakeStats();
      std::printf("%6d %8.0f %9.3f %10.0f %13.1f %11.1f%% %9.2f %10.2f   (mean log-prob %.3f)\n", b,
                  tokens, s, tokens / s, tflops, 100.0 * tflops / gemm_rate,
                  st.peak_device_bytes / 1073741824.0,
                  EstimateCudaMemory(c, b, args.seq, options) / 1073741824.0, mean_lp);
      *json += absl::StrFormat(
          "%s{\"batch\": %d, \"tokens_per_s\": %.0f, \"model_tflops\": %.1f, "
          "\"fraction_of_gemm\": %.3f, \"peak_device_bytes\": %d, \"estimate_bytes\": %d}",
          b == args.batches.front() ? "" : ", ", b, tokens / s, tflops, tflops / gemm_rate,
          st.peak_device_bytes, EstimateCudaMemory(c, b, args.seq, options));
    }
  }
  *json += "], ";
  const int64_t rows = static_cast<int64_t>(args.batches.back()) * args.seq;
  std::printf("\nOne forward of batch %d (each op timed alone, CUDA events, x its count)\n",
              args.batches.back());
  const std::vector<Row> parts = Components(c, rows, args.seq, g, pool);
  double total = 0;
  for (const Row& r : parts) total += r.ms_per_forward;
  std::printf("%-22s %-22s %12s %8s %14s\n", "op", "shape (MxNxK)", "ms/forward", "share", "rate");
  for (const Row& r : parts) {
    std::printf("%-22s %-22s %12.2f %7.1f%% %8.1f %s\n", r.op, r.shape.c_str(), r.ms_per_forward,
                100.0 * r.ms_per_forward / total, r.rate, r.unit);
  }
  std::printf("%-22s %-22s %12.2f   -> %.0f tokens/s if nothing else costs\n", "sum", "", total,
              rows / (total * 1e-3));
  return pool;
}

#else

std::vector<uint16_t> CudaMain(const Args&, std::string*) {
  std::printf("llama_bench: quantd was built without CUDA\n");
  return RandomPool(int64_t{64} << 20);
}

#endif

int Main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  std::string json = "{";
  const std::vector<uint16_t> pool = CudaMain(args, &json);
  const double cpu = CpuTokensPerSecond(args, pool);
  json += absl::StrFormat(
      "\"cpu_model\": \"SmolLM-135M-shaped\", \"cpu_seq\": %d, "
      "\"cpu_tokens_per_s\": %.1f}\n",
      args.cpu_seq, cpu);
  if (!args.json.empty()) {
    FILE* f = std::fopen(args.json.c_str(), "w");
    if (f == nullptr || std::fputs(json.c_str(), f) < 0 || std::fclose(f) != 0) {
      std::fprintf(stderr, "cannot write %s\n", args.json.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace quantd

int main(int argc, char** argv) { return quantd::Main(argc, argv); }
