#include "kernels/cpu/llama_cpu.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/util/status_macros.h"
#include "kernels/cpu/llama_cpu_ops.h"
#include "kernels/cpu/thread_pool.h"

namespace quantd {
namespace {

using llama_cpu::Axpy;
using llama_cpu::Dot;
using llama_cpu::MatMul;

// Bytes of logits computed at once before they are streamed to the sink.
constexpr int64_t kLogitsChunkBytes = int64_t{64} << 20;
constexpr int64_t kMaxLogitsChunkRows = 256;
// Query rows per attention task.
constexpr int64_t kQueryBlock = 16;
// Rows per task of the row-wise operations (norms, RoPE, SwiGLU).
constexpr int64_t kRowsPerTask = 8;

int64_t LogitsChunkRows(int64_t vocab) {
  return std::clamp<int64_t>(kLogitsChunkBytes / (vocab * 4), 1, kMaxLogitsChunkRows);
}

// Keys and values after RoPE: `slots` layers (1 when a whole-sequence pass
// reuses one slot for every layer), `batch` sequences, `capacity` positions.
struct KvCache {
  int64_t slots = 0, batch = 0, capacity = 0, kv_dim = 0;
  std::vector<float> k, v;

  void Reset(int64_t s, int64_t b, int64_t cap, int64_t dim) {
    slots = s, batch = b, capacity = cap, kv_dim = dim;
    k.resize(static_cast<size_t>(s * b * cap * dim));
    v.resize(k.size());
  }
  size_t Offset(int64_t slot, int64_t seq, int64_t pos) const {
    return static_cast<size_t>(((slot * batch + seq) * capacity + pos) * kv_dim);
  }
};

// Activation buffers, grown as needed and reused across calls.
struct Scratch {
  std::vector<float> x, xn, q, k, v, att, g, u, logits, cos, sin;
};

template <typename T>
T* Grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

absl::Status CheckMatrix(const WeightMatrix& m, int64_t rows, int64_t cols,
                         const std::string& what) {
  const DType d = m.dtype();
  if (m.empty() || m.rows() != rows || m.cols() != cols ||
      (d != DType::kF32 && d != DType::kF16 && d != DType::kBF16)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights: ", what, " is ", m.empty() ? "missing" : ShapeString({m.rows(), m.cols()}), " ",
        std::string(DTypeName(d)), ", expected F32/F16/BF16 [", rows, ", ", cols, "]"));
  }
  return absl::OkStatus();
}

absl::Status CheckVector(const std::vector<float>& v, int64_t n, bool present,
                         const std::string& what) {
  if (static_cast<int64_t>(v.size()) != (present ? n : 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights: ", what, " has ", v.size(), " values, expected ", present ? n : 0));
  }
  return absl::OkStatus();
}

absl::Status CheckWeights(const LoadedModel& m) {
  const LlamaConfig& c = m.config;
  RETURN_IF_ERROR(ValidateLlamaConfig(c));
  const LlamaWeights& w = m.weights;
  const int64_t h = c.hidden_size, f = c.intermediate_size;
  RETURN_IF_ERROR(CheckMatrix(w.embed, c.vocab_size, h, "embed"));
  RETURN_IF_ERROR(CheckMatrix(w.lm_head(), c.vocab_size, h, "lm_head"));
  RETURN_IF_ERROR(CheckVector(w.final_norm, h, true, "final_norm"));
  if (static_cast<int64_t>(w.layers.size()) != c.num_layers) {
    return absl::InvalidArgumentError("weights: layer count differs from the config");
  }
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LlamaLayerWeights& L = w.layers[l];
    const std::string p = absl::StrCat("layer ", l, " ");
    RETURN_IF_ERROR(CheckMatrix(L.q, c.q_dim(), h, p + "q"));
    RETURN_IF_ERROR(CheckMatrix(L.k, c.kv_dim(), h, p + "k"));
    RETURN_IF_ERROR(CheckMatrix(L.v, c.kv_dim(), h, p + "v"));
    RETURN_IF_ERROR(CheckMatrix(L.o, h, c.q_dim(), p + "o"));
    RETURN_IF_ERROR(CheckMatrix(L.gate, f, h, p + "gate"));
    RETURN_IF_ERROR(CheckMatrix(L.up, f, h, p + "up"));
    RETURN_IF_ERROR(CheckMatrix(L.down, h, f, p + "down"));
    RETURN_IF_ERROR(CheckVector(L.attn_norm, h, true, p + "attn_norm"));
    RETURN_IF_ERROR(CheckVector(L.ffn_norm, h, true, p + "ffn_norm"));
    RETURN_IF_ERROR(CheckVector(L.q_bias, c.q_dim(), c.qkv_bias, p + "q_bias"));
    RETURN_IF_ERROR(CheckVector(L.k_bias, c.kv_dim(), c.qkv_bias, p + "k_bias"));
    RETURN_IF_ERROR(CheckVector(L.v_bias, c.kv_dim(), c.qkv_bias, p + "v_bias"));
    RETURN_IF_ERROR(CheckVector(L.o_bias, h, c.o_bias, p + "o_bias"));
    RETURN_IF_ERROR(CheckVector(L.gate_bias, f, c.mlp_bias, p + "gate_bias"));
    RETURN_IF_ERROR(CheckVector(L.up_bias, f, c.mlp_bias, p + "up_bias"));
    RETURN_IF_ERROR(CheckVector(L.down_bias, h, c.mlp_bias, p + "down_bias"));
  }
  return absl::OkStatus();
}

const float* BiasOrNull(const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); }

// Remembers the greedy choice of the last position it sees.
class ArgmaxSink final : public LogitsSink {
 public:
  explicit ArgmaxSink(int64_t vocab) : vocab_(vocab) {}
  absl::Status Consume(int seq, int pos, const float* logits) override {
    int32_t best = 0;
    for (int64_t i = 1; i < vocab_; ++i) {
      if (logits[i] > logits[best] || std::isnan(logits[best])) best = static_cast<int32_t>(i);
    }
    token = best;
    return absl::OkStatus();
  }
  int32_t token = 0;

 private:
  int64_t vocab_;
};

class CpuLlama final : public CausalLM {
 public:
  CpuLlama(const LoadedModel* model, int threads)
      : model_(*model),
        c_(model->config),
        pool_(threads),
        inv_freq_(RopeInvFreq(c_.rope, c_.head_dim)) {}

  std::string device() const override { return "cpu"; }
  int32_t vocab_size() const override { return static_cast<int32_t>(c_.vocab_size); }
  int32_t max_context() const override {
    return static_cast<int32_t>(std::min<int64_t>(c_.max_position_embeddings, INT32_MAX));
  }

  absl::Status Forward(const std::vector<std::vector<int32_t>>& batch, int from_pos,
                       LogitsSink* sink, const CancelToken& cancel) override {
    if (batch.empty()) return absl::OkStatus();
    const int64_t t = static_cast<int64_t>(batch[0].size());
    if (t == 0) return absl::InvalidArgumentError("Forward: empty sequence");
    if (t > max_context()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Forward: sequence length ", t, " exceeds the context of ", max_context()));
    }
    if (from_pos < 0 || from_pos > t) {
      return absl::InvalidArgumentError(
          absl::StrCat("Forward: from_pos ", from_pos, " is outside [0, ", t, "]"));
    }
    if (sink == nullptr && from_pos < t) return absl::InvalidArgumentError("Forward: no sink");
    std::vector<const int32_t*> seqs;
    for (size_t b = 0; b < batch.size(); ++b) {
      if (static_cast<int64_t>(batch[b].size()) != t) {
        return absl::InvalidArgumentError(absl::StrCat("Forward: ragged batch: sequence ", b,
                                                       " has ", batch[b].size(),
                                                       " tokens, sequence 0 has ", t));
      }
      RETURN_IF_ERROR(CheckTokens(batch[b]));
      seqs.push_back(batch[b].data());
    }
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Time start = absl::Now();
    absl::Status s = Guarded([&] {
      cache_.Reset(1, static_cast<int64_t>(seqs.size()), t, c_.kv_dim());
      return Step(seqs, t, 0, /*per_layer_cache=*/false, from_pos, sink, cancel);
    });
    stats_.seconds += absl::ToDoubleSeconds(absl::Now() - start);
    if (s.ok()) stats_.tokens += t * static_cast<int64_t>(seqs.size());
    return s;
  }

  absl::StatusOr<std::vector<int32_t>> Generate(const std::vector<int32_t>& prompt, int max_new,
                                                const std::vector<int32_t>& stop_ids,
                                                const CancelToken& cancel) override {
    if (prompt.empty()) return absl::InvalidArgumentError("Generate: empty prompt");
    RETURN_IF_ERROR(CheckTokens(prompt));
    const int64_t p = static_cast<int64_t>(prompt.size());
    if (p > max_context()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Generate: prompt length ", p, " exceeds the context of ", max_context()));
    }
    std::vector<int32_t> out;
    if (max_new <= 0 || p == max_context()) return out;
    const int64_t capacity = std::min<int64_t>(p + max_new, max_context());
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Time start = absl::Now();
    int64_t processed = 0;
    absl::Status s = Guarded([&]() -> absl::Status {
      cache_.Reset(c_.num_layers, 1, capacity, c_.kv_dim());
      ArgmaxSink next(c_.vocab_size);
      RETURN_IF_ERROR(Step({prompt.data()}, p, 0, true, p - 1, &next, cancel));
      processed += p;
      for (int64_t len = p;;) {
        const int32_t token = next.token;
        out.push_back(token);
        if (std::find(stop_ids.begin(), stop_ids.end(), token) != stop_ids.end()) break;
        // Stop at max_new tokens, or when the sequence fills the context.
        if (static_cast<int64_t>(out.size()) >= max_new || len + 1 >= max_context()) break;
        RETURN_IF_ERROR(Step({&token}, 1, len, true, 0, &next, cancel));
        ++len;
        ++processed;
      }
      return absl::OkStatus();
    });
    stats_.seconds += absl::ToDoubleSeconds(absl::Now() - start);
    stats_.tokens += processed;
    if (!s.ok()) return s;
    return out;
  }

  ForwardStats TakeStats() override {
    std::lock_guard<std::mutex> lock(mu_);
    ForwardStats s = stats_;
    stats_ = ForwardStats{};
    return s;
  }

 private:
  absl::Status CheckTokens(const std::vector<int32_t>& tokens) const {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] < 0 || tokens[i] >= c_.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("token id ", tokens[i], " at position ", i,
                                                       " is outside the vocabulary [0, ",
                                                       c_.vocab_size, ")"));
      }
    }
    return absl::OkStatus();
  }

  template <typename F>
  absl::Status Guarded(F&& f) {
    try {
      return f();
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError("CPU runtime: out of memory");
    }
  }

  void ParallelRows(int64_t rows, const std::function<void(int64_t)>& fn) {
    pool_.ParallelFor((rows + kRowsPerTask - 1) / kRowsPerTask, [&](int64_t task) {
      const int64_t end = std::min(rows, (task + 1) * kRowsPerTask);
      for (int64_t r = task * kRowsPerTask; r < end; ++r) fn(r);
    });
  }

  // Rotates `heads` heads of each of `rows` rows (row r at position
  // index r % t_new of the cos/sin tables), rotate_half convention.
  void Rope(float* x, int64_t rows, int64_t ld, int64_t heads, int64_t t_new) {
    const int64_t hd = c_.head_dim, half = hd / 2;
    const float* cos = scratch_.cos.data();
    const float* sin = scratch_.sin.data();
    ParallelRows(rows, [&](int64_t r) {
      const float* cr = cos + (r % t_new) * half;
      const float* sr = sin + (r % t_new) * half;
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + r * ld + h * hd;
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = v[i], x2 = v[i + half];
          v[i] = x1 * cr[i] - x2 * sr[i];
          v[i + half] = x2 * cr[i] + x1 * sr[i];
        }
      }
    });
  }

  void Attention(int64_t layer, int64_t slot, int64_t batch, int64_t t_new, int64_t past) {
    const int64_t hd = c_.head_dim, q_dim = c_.q_dim(), kv_dim = c_.kv_dim();
    const int64_t group = c_.num_heads / c_.num_kv_heads;
    const int64_t window = c_.sliding_window[layer];
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const int64_t qblocks = (t_new + kQueryBlock - 1) / kQueryBlock;
    const float* q = scratch_.q.data();
    float* att = scratch_.att.data();
    pool_.ParallelFor(batch * c_.num_heads * qblocks, [&](int64_t task) {
      const int64_t qb = task % qblocks, h = (task / qblocks) % c_.num_heads;
      const int64_t b = task / (qblocks * c_.num_heads), kvh = h / group;
      const float* keys = cache_.k.data() + cache_.Offset(slot, b, 0) + kvh * hd;
      const float* values = cache_.v.data() + cache_.Offset(slot, b, 0) + kvh * hd;
      thread_local std::vector<float> scores;
      float* s = Grow(scores, past + t_new);
      for (int64_t i = qb * kQueryBlock; i < std::min(t_new, (qb + 1) * kQueryBlock); ++i) {
        const int64_t pos = past + i;
        const int64_t lo = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
        const float* qv = q + (b * t_new + i) * q_dim + h * hd;
        float mx = -INFINITY;
        for (int64_t j = lo; j <= pos; ++j) {
          s[j] = Dot(qv, keys + j * kv_dim, hd) * scale;
          mx = std::max(mx, s[j]);
        }
        float sum = 0;
        for (int64_t j = lo; j <= pos; ++j) {
          s[j] = std::exp(s[j] - mx);
          sum += s[j];
        }
        const float inv = 1.0f / sum;
        float* out = att + (b * t_new + i) * q_dim + h * hd;
        std::fill(out, out + hd, 0.0f);
        for (int64_t j = lo; j <= pos; ++j) Axpy(s[j] * inv, values + j * kv_dim, out, hd);
      }
    });
  }

  // One pass over `t_new` new tokens of each sequence in `seqs`, at
  // positions [past, past + t_new); keys and values of earlier positions
  // are in cache_. Streams logits of new-token indices >= from (reported
  // at position past + index) to `sink`.
  absl::Status Step(const std::vector<const int32_t*>& seqs, int64_t t_new, int64_t past,
                    bool per_layer_cache, int64_t from, LogitsSink* sink,
                    const CancelToken& cancel) {
    const LlamaWeights& w = model_.weights;
    const int64_t batch = static_cast<int64_t>(seqs.size()), rows = batch * t_new;
    const int64_t h = c_.hidden_size, f = c_.intermediate_size;
    const int64_t q_dim = c_.q_dim(), kv_dim = c_.kv_dim(), half = c_.head_dim / 2;
    Scratch& sc = scratch_;
    float* x = Grow(sc.x, rows * h);
    float* xn = Grow(sc.xn, rows * h);
    float* q = Grow(sc.q, rows * q_dim);
    float* k = Grow(sc.k, rows * kv_dim);
    float* v = Grow(sc.v, rows * kv_dim);
    float* att = Grow(sc.att, rows * q_dim);
    float* g = Grow(sc.g, rows * f);
    float* u = Grow(sc.u, rows * f);
    float* cos = Grow(sc.cos, t_new * half);
    float* sin = Grow(sc.sin, t_new * half);
    for (int64_t i = 0; i < t_new; ++i) {
      for (int64_t j = 0; j < half; ++j) {
        // The float32 product, as transformers computes the angle.
        const float angle = static_cast<float>(past + i) * inv_freq_[j];
        cos[i * half + j] = static_cast<float>(std::cos(static_cast<double>(angle)));
        sin[i * half + j] = static_cast<float>(std::sin(static_cast<double>(angle)));
      }
    }
    ParallelRows(rows, [&](int64_t r) {
      llama_cpu::LoadRow(w.embed, seqs[r / t_new][r % t_new], x + r * h);
    });
    for (int64_t l = 0; l < c_.num_layers; ++l) {
      RETURN_IF_ERROR(cancel.Check());
      const LlamaLayerWeights& L = w.layers[l];
      const int64_t slot = per_layer_cache ? l : 0;
      ParallelRows(rows, [&](int64_t r) {
        llama_cpu::RmsNorm(x + r * h, L.attn_norm.data(), h, c_.rms_norm_eps, xn + r * h);
      });
      MatMul(pool_, xn, rows, h, L.q, BiasOrNull(L.q_bias), q, q_dim, false);
      MatMul(pool_, xn, rows, h, L.k, BiasOrNull(L.k_bias), k, kv_dim, false);
      MatMul(pool_, xn, rows, h, L.v, BiasOrNull(L.v_bias), v, kv_dim, false);
      Rope(q, rows, q_dim, c_.num_heads, t_new);
      Rope(k, rows, kv_dim, c_.num_kv_heads, t_new);
      for (int64_t r = 0; r < rows; ++r) {
        const size_t at = cache_.Offset(slot, r / t_new, past + r % t_new);
        std::copy(k + r * kv_dim, k + (r + 1) * kv_dim, cache_.k.begin() + at);
        std::copy(v + r * kv_dim, v + (r + 1) * kv_dim, cache_.v.begin() + at);
      }
      Attention(l, slot, batch, t_new, past);
      MatMul(pool_, att, rows, q_dim, L.o, BiasOrNull(L.o_bias), x, h, true);
      ParallelRows(rows, [&](int64_t r) {
        llama_cpu::RmsNorm(x + r * h, L.ffn_norm.data(), h, c_.rms_norm_eps, xn + r * h);
      });
      MatMul(pool_, xn, rows, h, L.gate, BiasOrNull(L.gate_bias), g, f, false);
      MatMul(pool_, xn, rows, h, L.up, BiasOrNull(L.up_bias), u, f, false);
      ParallelRows(rows, [&](int64_t r) { llama_cpu::SwiGlu(g + r * f, u + r * f, f); });
      MatMul(pool_, g, rows, f, L.down, BiasOrNull(L.down_bias), x, h, true);
    }
    RETURN_IF_ERROR(cancel.Check());
    return Logits(batch, t_new, past, from, sink);
  }

  absl::Status Logits(int64_t batch, int64_t t_new, int64_t past, int64_t from, LogitsSink* sink) {
    const int64_t h = c_.hidden_size, vocab = c_.vocab_size;
    const int64_t per_seq = t_new - from, total = batch * per_seq;
    if (total <= 0) return absl::OkStatus();
    const int64_t chunk = LogitsChunkRows(vocab);
    float* logits = Grow(scratch_.logits, std::min(chunk, total) * vocab);
    float* normed = Grow(scratch_.att, std::min(chunk, total) * h);  // att is free now
    for (int64_t first = 0; first < total; first += chunk) {
      const int64_t n = std::min(chunk, total - first);
      ParallelRows(n, [&](int64_t r) {
        const int64_t idx = first + r, b = idx / per_seq, i = from + idx % per_seq;
        llama_cpu::RmsNorm(scratch_.x.data() + (b * t_new + i) * h,
                           model_.weights.final_norm.data(), h, c_.rms_norm_eps, normed + r * h);
      });
      MatMul(pool_, normed, n, h, model_.weights.lm_head(), nullptr, logits, vocab, false);
      for (int64_t r = 0; r < n; ++r) {
        const int64_t idx = first + r, b = idx / per_seq, i = from + idx % per_seq;
        RETURN_IF_ERROR(
            sink->Consume(static_cast<int>(b), static_cast<int>(past + i), logits + r * vocab));
      }
    }
    return absl::OkStatus();
  }

  const LoadedModel& model_;
  const LlamaConfig& c_;
  ThreadPool pool_;
  const std::vector<float> inv_freq_;
  std::mutex mu_;  // one Forward / Generate at a time; guards the members below
  Scratch scratch_;
  KvCache cache_;
  ForwardStats stats_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CausalLM>> MakeCpuLlama(const LoadedModel* model, int threads) {
  if (model == nullptr) return absl::InvalidArgumentError("MakeCpuLlama: no model");
  RETURN_IF_ERROR(CheckWeights(*model));
  return std::unique_ptr<CausalLM>(new CpuLlama(model, threads));
}

int64_t CpuLlamaScratchBytes(const LlamaConfig& c, int64_t batch, int64_t seq_len) {
  const int64_t rows = batch * seq_len;
  const int64_t chunk = std::min(LogitsChunkRows(std::max<int64_t>(c.vocab_size, 1)), rows);
  const int64_t floats =
      rows * (2 * c.hidden_size + 2 * c.q_dim() + 4 * c.kv_dim() + 2 * c.intermediate_size) +
      chunk * c.vocab_size + seq_len * c.head_dim;
  return floats * static_cast<int64_t>(sizeof(float));
}

}  // namespace quantd
