// The CUDA Llama runtime (see llama_cuda.h): workspace, the layer loop and
// the three ways out of the last layer (streamed logits, on-device
// log-probabilities, greedy decoding with a KV cache).
#include "kernels/cuda/llama_cuda.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kernels/cuda/llama_cuda_internal.h"
#include "kernels/cuda/llama_cuda_ops.h"
#include "kernels/cuda/llama_cuda_plan.h"

namespace quantd {
namespace {

using llama_cuda::DeviceBuffer;
using llama_cuda::DeviceLayer;
using llama_cuda::DeviceWeights;
using llama_cuda::Dims;
using llama_cuda::Linear;
using llama_cuda::RowMap;

// One pass over the layers: `batch` sequences of `seq_len` tokens whose
// first token sits at position pos0. With `cache` (batch 1), K and V are
// written to the KV cache at [pos0, pos0 + seq_len) and attention reads
// keys [0, pos0 + seq_len) from it.
struct Pass {
  int batch = 1;
  int seq_len = 0;
  int pos0 = 0;
  bool cache = false;
};

class CudaLlamaImpl final : public CudaLlama {
 public:
  CudaLlamaImpl(const LlamaConfig& config, int device, const CudaLlamaOptions& options)
      : config_(config), dims_(config), options_(options), device_(device) {
    const int64_t max_ctx =
        options.max_context > 0 ? options.max_context : config.max_position_embeddings;
    max_context_ = static_cast<int>(std::min<int64_t>(max_ctx, std::numeric_limits<int>::max()));
  }

  ~CudaLlamaImpl() override {
    if (cudaSetDevice(device_) != cudaSuccess) return;
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    if (cublas_ != nullptr) cublasDestroy(cublas_);
    for (int i = 0; i < 2; ++i) {
      if (pinned_[i] != nullptr) cudaFreeHost(pinned_[i]);
      if (copied_[i] != nullptr) cudaEventDestroy(copied_[i]);
    }
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    cudaGetLastError();
  }

  absl::Status Init(const LoadedModel& model) {
    RETURN_IF_CUDA(cudaSetDevice(device_), "cudaSetDevice");
    RETURN_IF_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    for (cudaEvent_t& e : copied_) {
      RETURN_IF_CUDA(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    }
    RETURN_IF_CUBLAS(cublasCreate(&cublas_), "cublasCreate");
    RETURN_IF_CUBLAS(cublasSetStream(cublas_, stream_), "cublasSetStream");
    RETURN_IF_ERROR(cublas_ws_.Allocate(llama_cuda::kCublasWorkspaceBytes, "cudaMalloc (cuBLAS)"));
    RETURN_IF_CUBLAS(
        cublasSetWorkspace(cublas_, cublas_ws_.as<void>(), static_cast<size_t>(cublas_ws_.bytes())),
        "cublasSetWorkspace");
    ASSIGN_OR_RETURN(w_, llama_cuda::UploadWeights(model, stream_));
    NoteMemory();
    return absl::OkStatus();
  }

  std::string device() const override { return absl::StrCat("cuda:", device_); }
  int32_t vocab_size() const override { return static_cast<int32_t>(dims_.vocab); }
  int32_t max_context() const override { return max_context_; }

  absl::Status Forward(const std::vector<std::vector<int32_t>>& batch, int from_pos,
                       LogitsSink* sink, const CancelToken& cancel) override {
    std::lock_guard<std::mutex> lock(mu_);
    return Timed(batch, [&] { return ForwardImpl(batch, from_pos, sink, cancel); });
  }

  absl::Status ForwardLogProbs(const std::vector<std::vector<int32_t>>& batch, int from_pos,
                               const std::vector<std::vector<int32_t>>& targets,
                               std::vector<float>* target_logprob, std::vector<int32_t>* argmax,
                               const CancelToken& cancel) override {
    std::lock_guard<std::mutex> lock(mu_);
    return Timed(batch, [&] {
      return LogProbsImpl(batch, from_pos, targets, target_logprob, argmax, cancel);
    });
  }

  absl::StatusOr<std::vector<int32_t>> Generate(const std::vector<int32_t>& prompt, int max_new,
                                                const std::vector<int32_t>& stop_ids,
                                                const CancelToken& cancel) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int32_t> out;
    const absl::Time t0 = absl::Now();
    absl::Status st = GenerateImpl(prompt, max_new, stop_ids, cancel, &out);
    if (!st.ok()) {
      Drain();
      return st;
    }
    stats_.seconds += absl::ToDoubleSeconds(absl::Now() - t0);
    // Tokens run through the layers: the prompt and all but the last new one.
    stats_.tokens += static_cast<int64_t>(prompt.size() + out.size()) - (out.empty() ? 0 : 1);
    return out;
  }

  ForwardStats TakeStats() override {
    std::lock_guard<std::mutex> lock(mu_);
    ForwardStats s = std::exchange(stats_, ForwardStats{});
    s.peak_device_bytes = peak_bytes_;
    return s;
  }

 private:
  // Runs fn, accounts its time and tokens; on error leaves the stream idle.
  template <typename Fn>
  absl::Status Timed(const std::vector<std::vector<int32_t>>& batch, Fn fn) {
    const absl::Time t0 = absl::Now();
    absl::Status st = CudaStatus(cudaSetDevice(device_), "cudaSetDevice");
    if (st.ok()) st = fn();
    if (!st.ok()) {
      Drain();
      return st;
    }
    stats_.seconds += absl::ToDoubleSeconds(absl::Now() - t0);
    for (const auto& s : batch) stats_.tokens += static_cast<int64_t>(s.size());
    return absl::OkStatus();
  }

  void Drain() {
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    cudaGetLastError();
  }

  void NoteMemory() {
    int64_t b = w_.bytes + cublas_ws_.bytes() + logits_.bytes() + rope_.bytes() + cache_.bytes();
    for (const DeviceBuffer* d : {&tokens_, &resid_, &act_, &big_, &targets_, &logprob_, &argmax_})
      b += d->bytes();
    peak_bytes_ = std::max(peak_bytes_, b);
  }

  absl::Status CheckTokens(const std::vector<int32_t>& seq) const {
    for (int32_t t : seq) {
      if (t < 0 || t >= dims_.vocab) {
        return absl::InvalidArgumentError(
            absl::StrCat("token id ", t, " is outside the vocabulary [0, ", dims_.vocab, ")"));
      }
    }
    return absl::OkStatus();
  }

  // The common length T of the batch's sequences.
  absl::StatusOr<int> Validate(const std::vector<std::vector<int32_t>>& batch, int from_pos) const {
    if (batch[0].empty()) return absl::InvalidArgumentError("empty sequence");
    const size_t t = batch[0].size();
    if (t > static_cast<size_t>(max_context_)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence of ", t, " tokens exceeds the context of ", max_context_));
    }
    for (const auto& s : batch) {
      if (s.size() != t) return absl::InvalidArgumentError("sequences differ in length (ragged)");
      RETURN_IF_ERROR(CheckTokens(s));
    }
    if (from_pos < 0 || static_cast<size_t>(from_pos) > t) {
      return absl::InvalidArgumentError(
          absl::StrCat("from_pos ", from_pos, " outside [0, ", t, "]"));
    }
    return static_cast<int>(t);
  }

  absl::Status EnsureWorkspace(int64_t rows) {
    if (rows <= ws_rows_) return absl::OkStatus();
    Drain();
    ws_rows_ = 0;  // a failed allocation below leaves the buffers unusable
    const int64_t h = dims_.hidden;
    RETURN_IF_ERROR(tokens_.Allocate(rows * 4, "cudaMalloc (tokens)"));
    RETURN_IF_ERROR(resid_.Allocate(rows * h * 4, "cudaMalloc (residual)"));
    RETURN_IF_ERROR(act_.Allocate(rows * std::max(h, dims_.q_dim) * 2, "cudaMalloc (activations)"));
    RETURN_IF_ERROR(big_.Allocate(rows * std::max(dims_.qkv_dim, 2 * dims_.inter) * 2,
                                  "cudaMalloc (projections)"));
    RETURN_IF_ERROR(targets_.Allocate(rows * 4, "cudaMalloc (targets)"));
    RETURN_IF_ERROR(logprob_.Allocate(rows * 4, "cudaMalloc (log-probs)"));
    RETURN_IF_ERROR(argmax_.Allocate(rows * 4, "cudaMalloc (argmax)"));
    ws_rows_ = rows;
    NoteMemory();
    return absl::OkStatus();
  }

  absl::Status EnsureLogits(int64_t rows) {
    if (rows <= logit_rows_) return absl::OkStatus();
    Drain();
    logit_rows_ = 0;
    RETURN_IF_ERROR(logits_.Allocate(rows * dims_.ld_vocab * 4, "cudaMalloc (logits)"));
    logit_rows_ = rows;
    NoteMemory();
    return absl::OkStatus();
  }

  absl::Status EnsurePinned(int64_t rows) {
    if (rows <= pinned_rows_) return absl::OkStatus();
    Drain();
    for (float*& p : pinned_) {
      if (p != nullptr) cudaFreeHost(p);
      p = nullptr;
    }
    pinned_rows_ = 0;
    for (float*& p : pinned_) {
      RETURN_IF_CUDA(
          cudaHostAlloc(reinterpret_cast<void**>(&p), static_cast<size_t>(rows * dims_.vocab * 4),
                        cudaHostAllocDefault),
          "cudaHostAlloc (logits)");
    }
    pinned_rows_ = rows;
    return absl::OkStatus();
  }

  absl::Status EnsureRope(int64_t positions) {
    if (positions <= rope_positions_) return absl::OkStatus();
    Drain();
    rope_positions_ = 0;
    RETURN_IF_ERROR(
        rope_.Allocate(llama_cuda::RopeTableBytes(config_, positions), "cudaMalloc (RoPE table)"));
    RETURN_IF_CUDA(
        llama_cuda::RopeTable(w_.inv_freq.as<float>(), static_cast<int>(dims_.head_dim / 2),
                              static_cast<int>(positions), 1.0f, rope_.as<float2>(), stream_),
        "RoPE table kernel");
    rope_positions_ = positions;
    NoteMemory();
    return absl::OkStatus();
  }

  absl::Status EnsureCache(int64_t capacity) {
    if (capacity <= cache_cap_) return absl::OkStatus();
    Drain();
    cache_cap_ = 0;
    capacity = (capacity + 255) / 256 * 256;
    RETURN_IF_ERROR(
        cache_.Allocate(dims_.layers * 2 * capacity * dims_.kv_dim * 2, "cudaMalloc (KV cache)"));
    cache_cap_ = capacity;
    NoteMemory();
    return absl::OkStatus();
  }

  uint16_t* CacheK(int layer) const {
    return cache_.as<uint16_t>() + (2 * layer) * cache_cap_ * dims_.kv_dim;
  }
  uint16_t* CacheV(int layer) const {
    return cache_.as<uint16_t>() + (2 * layer + 1) * cache_cap_ * dims_.kv_dim;
  }

  // Copies rows [s0, s0 + n) of `rows` (token ids or targets),
  // concatenated, to `dst` on the device.
  absl::Status UploadInts(const std::vector<std::vector<int32_t>>& rows, size_t s0, int n,
                          const DeviceBuffer& dst) {
    host_ints_.clear();
    for (int s = 0; s < n; ++s) {
      host_ints_.insert(host_ints_.end(), rows[s0 + s].begin(), rows[s0 + s].end());
    }
    if (host_ints_.empty()) return absl::OkStatus();
    RETURN_IF_CUDA(cudaMemcpyAsync(dst.as<void>(), host_ints_.data(), host_ints_.size() * 4,
                                   cudaMemcpyHostToDevice, stream_),
                   "cudaMemcpyAsync (token ids)");
    // host_ints_ is reused at once: wait for the copy.
    return CudaStatus(cudaStreamSynchronize(stream_), "uploading token ids");
  }

  absl::Status Attention(const DeviceLayer& layer, int l, const Pass& p) {
    llama_cuda::AttentionArgs a;
    const int64_t ld = dims_.qkv_dim;
    a.q = big_.as<uint16_t>();
    a.q_row = ld;
    a.q_seq = p.seq_len * ld;
    if (p.cache) {
      a.k = CacheK(l);
      a.v = CacheV(l);
      a.k_row = a.v_row = dims_.kv_dim;
      a.k_seq = a.v_seq = 0;
      a.kv_len = p.pos0 + p.seq_len;
    } else {
      a.k = a.q + dims_.q_dim;
      a.v = a.k + dims_.kv_dim;
      a.k_row = a.v_row = ld;
      a.k_seq = a.v_seq = p.seq_len * ld;
      a.kv_len = p.seq_len;
    }
    a.o = act_.as<uint16_t>();
    a.o_row = dims_.q_dim;
    a.o_seq = p.seq_len * dims_.q_dim;
    a.batch = p.batch;
    a.heads = static_cast<int>(config_.num_heads);
    a.kv_heads = static_cast<int>(config_.num_kv_heads);
    a.head_dim = static_cast<int>(dims_.head_dim);
    a.q_len = p.seq_len;
    a.window = layer.window;
    a.scale = 1.0f / std::sqrt(static_cast<float>(dims_.head_dim));
    if (p.seq_len > 1 && llama_cuda::FlashAttentionSupports(a.head_dim)) {
      return CudaStatus(llama_cuda::FlashAttention(a, stream_), "flash attention kernel");
    }
    return CudaStatus(llama_cuda::SimpleAttention(a, stream_), "attention kernel");
  }

  absl::Status RunLayers(const Pass& p, const CancelToken& cancel) {
    const int64_t rows = int64_t{p.batch} * p.seq_len;
    const int64_t h = dims_.hidden, I = dims_.inter;
    const float eps = config_.rms_norm_eps;
    RETURN_IF_ERROR(EnsureRope(p.pos0 + p.seq_len));
    RETURN_IF_CUDA(llama_cuda::EmbedTokens(tokens_.as<int32_t>(), rows, w_.embed.as<uint16_t>(),
                                           static_cast<int>(h), resid_.as<float>(), stream_),
                   "embedding kernel");
    float* resid = resid_.as<float>();
    uint16_t* act = act_.as<uint16_t>();
    uint16_t* big = big_.as<uint16_t>();
    for (size_t l = 0; l < w_.layers.size(); ++l) {
      RETURN_IF_ERROR(cancel.Check());
      const DeviceLayer& L = w_.layers[l];
      RETURN_IF_CUDA(llama_cuda::RmsNorm(resid, RowMap::Identity(), rows, static_cast<int>(h),
                                         L.attn_norm.as<float>(), eps, act, stream_),
                     "RMSNorm kernel");
      RETURN_IF_ERROR(Linear(cublas_, act, h, rows, h, L.qkv.as<uint16_t>(), dims_.qkv_dim, big,
                             false, dims_.qkv_dim, 0.0f));
      llama_cuda::RopeArgs r;
      r.qkv = big;
      r.tokens = rows;
      r.ld = dims_.qkv_dim;
      r.heads = static_cast<int>(config_.num_heads);
      r.kv_heads = static_cast<int>(config_.num_kv_heads);
      r.head_dim = static_cast<int>(dims_.head_dim);
      r.seq_len = p.seq_len;
      r.pos0 = p.pos0;
      r.bias = L.qkv_bias.empty() ? nullptr : L.qkv_bias.as<float>();
      r.cos_sin = rope_.as<float2>();
      RETURN_IF_CUDA(llama_cuda::ApplyRope(r, stream_), "RoPE kernel");
      if (p.cache) {
        const size_t row_bytes = static_cast<size_t>(dims_.kv_dim) * 2;
        const size_t src_pitch = static_cast<size_t>(dims_.qkv_dim) * 2;
        for (int kv = 0; kv < 2; ++kv) {
          uint16_t* dst = (kv == 0 ? CacheK(static_cast<int>(l)) : CacheV(static_cast<int>(l))) +
                          int64_t{p.pos0} * dims_.kv_dim;
          const uint16_t* src = big + dims_.q_dim + kv * dims_.kv_dim;
          RETURN_IF_CUDA(
              cudaMemcpy2DAsync(dst, row_bytes, src, src_pitch, row_bytes,
                                static_cast<size_t>(rows), cudaMemcpyDeviceToDevice, stream_),
              "cudaMemcpy2DAsync (KV cache)");
        }
      }
      RETURN_IF_ERROR(Attention(L, static_cast<int>(l), p));
      RETURN_IF_ERROR(Linear(cublas_, act, dims_.q_dim, rows, dims_.q_dim, L.o.as<uint16_t>(), h,
                             resid, true, h, 1.0f));
      if (!L.o_bias.empty()) {
        RETURN_IF_CUDA(
            llama_cuda::AddBias(resid, rows, static_cast<int>(h), L.o_bias.as<float>(), stream_),
            "bias kernel");
      }
      RETURN_IF_CUDA(llama_cuda::RmsNorm(resid, RowMap::Identity(), rows, static_cast<int>(h),
                                         L.ffn_norm.as<float>(), eps, act, stream_),
                     "RMSNorm kernel");
      RETURN_IF_ERROR(Linear(cublas_, act, h, rows, h, L.gate_up.as<uint16_t>(), 2 * I, big, false,
                             2 * I, 0.0f));
      RETURN_IF_CUDA(llama_cuda::SwiGluInPlace(
                         big, rows, static_cast<int>(I), 2 * I,
                         L.gate_up_bias.empty() ? nullptr : L.gate_up_bias.as<float>(), stream_),
                     "SwiGLU kernel");
      RETURN_IF_ERROR(
          Linear(cublas_, big, 2 * I, rows, I, L.down.as<uint16_t>(), h, resid, true, h, 1.0f));
      if (!L.down_bias.empty()) {
        RETURN_IF_CUDA(
            llama_cuda::AddBias(resid, rows, static_cast<int>(h), L.down_bias.as<float>(), stream_),
            "bias kernel");
      }
    }
    return absl::OkStatus();
  }

  // Final norm of positions [from, seq_len) of each of `n` sequences into
  // act_ (row i = sequence i / (seq_len - from), position from + i % ...).
  absl::Status FinalNorm(int n, int seq_len, int from) {
    const int64_t per = seq_len - from;
    return CudaStatus(llama_cuda::RmsNorm(resid_.as<float>(), RowMap{per, seq_len, from}, n * per,
                                          static_cast<int>(dims_.hidden), w_.final_norm.as<float>(),
                                          config_.rms_norm_eps, act_.as<uint16_t>(), stream_),
                      "final RMSNorm kernel");
  }

  // logits_[0, rows) = act_[row0, row0 + rows) * lm_head^T, float32.
  absl::Status LmHead(int64_t row0, int64_t rows) {
    return Linear(cublas_, act_.as<uint16_t>() + row0 * dims_.hidden, dims_.hidden, rows,
                  dims_.hidden, w_.lm_head_ptr(), dims_.vocab, logits_.as<float>(), true,
                  dims_.ld_vocab, 0.0f);
  }

  absl::Status ForwardImpl(const std::vector<std::vector<int32_t>>& batch, int from_pos,
                           LogitsSink* sink, const CancelToken& cancel) {
    if (batch.empty()) return absl::OkStatus();
    ASSIGN_OR_RETURN(const int T, Validate(batch, from_pos));
    if (sink == nullptr && from_pos < T) return absl::InvalidArgumentError("Forward: no sink");
    const int64_t pass_rows = llama_cuda::PassRows(batch.size(), T, options_);
    const int per_pass = static_cast<int>(pass_rows / T);
    const int64_t per = T - from_pos;
    RETURN_IF_ERROR(EnsureWorkspace(pass_rows));
    const int64_t chunk =
        std::max<int64_t>(1, std::min<int64_t>(options_.stream_chunk_rows, per_pass * per));
    RETURN_IF_ERROR(EnsureLogits(chunk));
    RETURN_IF_ERROR(EnsurePinned(chunk));
    const size_t row_bytes = static_cast<size_t>(dims_.vocab) * 4;
    for (size_t s0 = 0; s0 < batch.size(); s0 += per_pass) {
      const int n = static_cast<int>(std::min<size_t>(per_pass, batch.size() - s0));
      RETURN_IF_ERROR(UploadInts(batch, s0, n, tokens_));
      RETURN_IF_ERROR(RunLayers(Pass{n, T, 0, false}, cancel));
      const int64_t rows = n * per;
      if (rows == 0) continue;
      RETURN_IF_ERROR(FinalNorm(n, T, from_pos));
      const int64_t chunks = (rows + chunk - 1) / chunk;
      // Hands chunk c (in pinned_[c % 2]) to the sink.
      auto consume = [&](int64_t c) -> absl::Status {
        RETURN_IF_CUDA(cudaEventSynchronize(copied_[c % 2]), "computing logits");
        const int64_t r0 = c * chunk, r1 = std::min(rows, r0 + chunk);
        for (int64_t r = r0; r < r1; ++r) {
          RETURN_IF_ERROR(sink->Consume(static_cast<int>(s0 + r / per),
                                        static_cast<int>(from_pos + r % per),
                                        pinned_[c % 2] + (r - r0) * dims_.vocab));
        }
        return absl::OkStatus();
      };
      for (int64_t c = 0; c < chunks; ++c) {
        RETURN_IF_ERROR(cancel.Check());
        const int64_t r0 = c * chunk, nr = std::min(chunk, rows - r0);
        RETURN_IF_ERROR(LmHead(r0, nr));
        RETURN_IF_CUDA(cudaMemcpy2DAsync(pinned_[c % 2], row_bytes, logits_.as<float>(),
                                         static_cast<size_t>(dims_.ld_vocab) * 4, row_bytes,
                                         static_cast<size_t>(nr), cudaMemcpyDeviceToHost, stream_),
                       "cudaMemcpy2DAsync (logits)");
        RETURN_IF_CUDA(cudaEventRecord(copied_[c % 2], stream_), "cudaEventRecord");
        if (c > 0) RETURN_IF_ERROR(consume(c - 1));
      }
      RETURN_IF_ERROR(consume(chunks - 1));
    }
    return absl::OkStatus();
  }

  absl::Status LogProbsImpl(const std::vector<std::vector<int32_t>>& batch, int from_pos,
                            const std::vector<std::vector<int32_t>>& targets,
                            std::vector<float>* target_logprob, std::vector<int32_t>* argmax,
                            const CancelToken& cancel) {
    if (target_logprob != nullptr) target_logprob->clear();
    if (argmax != nullptr) argmax->clear();
    if (batch.empty()) return absl::OkStatus();
    ASSIGN_OR_RETURN(const int T, Validate(batch, from_pos));
    const int64_t per = T - from_pos;
    if (targets.size() != batch.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(targets.size(), " target rows for ", batch.size(), " sequences"));
    }
    for (const auto& t : targets) {
      if (static_cast<int64_t>(t.size()) != per) {
        return absl::InvalidArgumentError(
            absl::StrCat(t.size(), " targets for ", per, " positions (T - from_pos)"));
      }
      for (int32_t id : t) {
        if (id >= dims_.vocab) {
          return absl::InvalidArgumentError(absl::StrCat("target id ", id, " >= vocab"));
        }
      }
    }
    const int64_t total = static_cast<int64_t>(batch.size()) * per;
    if (target_logprob != nullptr) target_logprob->assign(total, 0.0f);
    if (argmax != nullptr) argmax->assign(total, 0);
    const int64_t pass_rows = llama_cuda::PassRows(batch.size(), T, options_);
    const int per_pass = static_cast<int>(pass_rows / T);
    RETURN_IF_ERROR(EnsureWorkspace(pass_rows));
    const int64_t chunk = llama_cuda::LogitRows(config_, per_pass * per, options_);
    RETURN_IF_ERROR(EnsureLogits(chunk));
    for (size_t s0 = 0; s0 < batch.size(); s0 += per_pass) {
      const int n = static_cast<int>(std::min<size_t>(per_pass, batch.size() - s0));
      const int64_t rows = n * per;
      RETURN_IF_ERROR(UploadInts(targets, s0, n, targets_));
      RETURN_IF_ERROR(UploadInts(batch, s0, n, tokens_));
      RETURN_IF_ERROR(RunLayers(Pass{n, T, 0, false}, cancel));
      if (rows == 0) continue;
      RETURN_IF_ERROR(FinalNorm(n, T, from_pos));
      for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        const int64_t nr = std::min(chunk, rows - r0);
        RETURN_IF_ERROR(LmHead(r0, nr));
        RETURN_IF_CUDA(llama_cuda::LogSoftmaxStats(
                           logits_.as<float>(), nr, static_cast<int>(dims_.vocab), dims_.ld_vocab,
                           targets_.as<int32_t>() + r0, logprob_.as<float>() + r0,
                           argmax_.as<int32_t>() + r0, stream_),
                       "log-softmax kernel");
      }
      const int64_t out0 = static_cast<int64_t>(s0) * per;
      if (target_logprob != nullptr) {
        RETURN_IF_CUDA(cudaMemcpyAsync(target_logprob->data() + out0, logprob_.as<void>(), rows * 4,
                                       cudaMemcpyDeviceToHost, stream_),
                       "cudaMemcpyAsync (log-probs)");
      }
      if (argmax != nullptr) {
        RETURN_IF_CUDA(cudaMemcpyAsync(argmax->data() + out0, argmax_.as<void>(), rows * 4,
                                       cudaMemcpyDeviceToHost, stream_),
                       "cudaMemcpyAsync (argmax)");
      }
      RETURN_IF_CUDA(cudaStreamSynchronize(stream_), "forward pass");
    }
    return absl::OkStatus();
  }

  // Greedy next token after the last of the `seq_len` rows of the pass.
  absl::StatusOr<int32_t> NextToken(int seq_len) {
    RETURN_IF_ERROR(FinalNorm(1, seq_len, seq_len - 1));
    RETURN_IF_ERROR(LmHead(0, 1));
    RETURN_IF_CUDA(llama_cuda::LogSoftmaxStats(logits_.as<float>(), 1,
                                               static_cast<int>(dims_.vocab), dims_.ld_vocab,
                                               nullptr, nullptr, argmax_.as<int32_t>(), stream_),
                   "argmax kernel");
    int32_t next = 0;
    RETURN_IF_CUDA(cudaMemcpyAsync(&next, argmax_.as<void>(), 4, cudaMemcpyDeviceToHost, stream_),
                   "cudaMemcpyAsync (token)");
    RETURN_IF_CUDA(cudaStreamSynchronize(stream_), "decoding");
    return next;
  }

  absl::Status GenerateImpl(const std::vector<int32_t>& prompt, int max_new,
                            const std::vector<int32_t>& stop_ids, const CancelToken& cancel,
                            std::vector<int32_t>* out) {
    RETURN_IF_CUDA(cudaSetDevice(device_), "cudaSetDevice");
    if (prompt.empty()) return absl::InvalidArgumentError("Generate: empty prompt");
    RETURN_IF_ERROR(CheckTokens(prompt));
    const int64_t prompt_len = static_cast<int64_t>(prompt.size());
    if (prompt_len > max_context_) {
      return absl::InvalidArgumentError(absl::StrCat("Generate: prompt length ", prompt_len,
                                                     " exceeds the context of ", max_context_));
    }
    // As the CPU backend: the sequence ends at the context length.
    max_new = static_cast<int>(std::min<int64_t>(max_new, max_context_ - prompt_len));
    if (max_new <= 0) return absl::OkStatus();
    const int P = static_cast<int>(prompt_len);
    RETURN_IF_ERROR(EnsureCache(P + max_new));
    RETURN_IF_ERROR(EnsureWorkspace(P));
    RETURN_IF_ERROR(EnsureRope(P + max_new));
    RETURN_IF_ERROR(EnsureLogits(1));
    RETURN_IF_ERROR(UploadInts({prompt}, 0, 1, tokens_));
    RETURN_IF_ERROR(RunLayers(Pass{1, P, 0, true}, cancel));
    ASSIGN_OR_RETURN(int32_t next, NextToken(P));
    for (int i = 0;; ++i) {
      out->push_back(next);
      if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) break;
      if (static_cast<int>(out->size()) == max_new) break;
      RETURN_IF_ERROR(UploadInts({{next}}, 0, 1, tokens_));
      RETURN_IF_ERROR(RunLayers(Pass{1, 1, P + i, true}, cancel));
      ASSIGN_OR_RETURN(next, NextToken(1));
    }
    return absl::OkStatus();
  }

  const LlamaConfig config_;
  const Dims dims_;
  const CudaLlamaOptions options_;
  const int device_;
  int max_context_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  DeviceBuffer cublas_ws_;
  DeviceWeights w_;
  // Activations for ws_rows_ token rows (see llama_cuda_plan.h).
  int64_t ws_rows_ = 0;
  DeviceBuffer tokens_, resid_, act_, big_, targets_, logprob_, argmax_;
  int64_t logit_rows_ = 0;
  DeviceBuffer logits_;
  int64_t rope_positions_ = 0;
  DeviceBuffer rope_;
  int64_t cache_cap_ = 0;
  DeviceBuffer cache_;  // BF16 [layers][k, v][cache_cap_][kv_dim]
  float* pinned_[2] = {nullptr, nullptr};
  int64_t pinned_rows_ = 0;
  cudaEvent_t copied_[2] = {nullptr, nullptr};
  std::vector<int32_t> host_ints_;
  std::mutex mu_;
  ForwardStats stats_;
  int64_t peak_bytes_ = 0;
};

absl::Status CheckSupported(const LlamaConfig& c) {
  const Dims d(c);
  for (const auto& [name, v] : {std::pair<const char*, int64_t>{"hidden_size", d.hidden},
                                {"q width", d.q_dim},
                                {"kv width", d.kv_dim},
                                {"intermediate_size", d.inter}}) {
    if (v <= 0 || v % 8 != 0) {
      return absl::UnimplementedError(
          absl::StrCat("CUDA runtime: ", name, " = ", v, " is not a positive multiple of 8"));
    }
  }
  if (d.head_dim % 4 != 0 || d.head_dim > 256) {
    return absl::UnimplementedError(
        absl::StrCat("CUDA runtime: head_dim ", d.head_dim, " is not a multiple of 4 up to 256"));
  }
  if (c.num_heads <= 0 || c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0) {
    return absl::InvalidArgumentError("heads not divisible by kv heads");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CausalLM>> MakeCudaLlama(const LoadedModel* model, int device,
                                                        const CudaLlamaOptions& options) {
  if (model == nullptr) return absl::InvalidArgumentError("no model");
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    n = 0;
  }
  if (device < 0 || device >= n) {
    return absl::UnavailableError(absl::StrCat("no CUDA device ", device, " (found ", n, ")"));
  }
  RETURN_IF_ERROR(CheckSupported(model->config));
  auto lm = std::make_unique<CudaLlamaImpl>(model->config, device, options);
  RETURN_IF_ERROR(lm->Init(*model));
  return std::unique_ptr<CausalLM>(std::move(lm));
}

}  // namespace quantd
