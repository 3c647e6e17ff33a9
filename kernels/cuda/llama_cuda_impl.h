// The CUDA Llama runtime's implementation class (see llama_cuda.h), shared
// by its two sources: llama_cuda.cc (workspace, the layer loop, creation)
// and llama_cuda_outputs.cc (the three ways out of the last layer: streamed
// logits, on-device log-probabilities, greedy decoding with a KV cache).
// Internal to kernels/cuda.
#ifndef QUANTD_KERNELS_CUDA_LLAMA_CUDA_IMPL_H_
#define QUANTD_KERNELS_CUDA_LLAMA_CUDA_IMPL_H_

#include <algorithm>
#include <cstdint>
#include <limits>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kernels/cuda/llama_cuda.h"
#include "kernels/cuda/llama_cuda_internal.h"
#include "kernels/cuda/llama_cuda_plan.h"

namespace quantd {
namespace llama_cuda {

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

  ~CudaLlamaImpl() override;

  absl::Status Init(const LoadedModel& model);

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

  // Raises peak_bytes_ to the device memory held now.
  void NoteMemory();

  // INVALID_ARGUMENT for a token id outside the vocabulary.
  absl::Status CheckTokens(const std::vector<int32_t>& seq) const;

  // The common length T of the batch's sequences.
  absl::StatusOr<int> Validate(const std::vector<std::vector<int32_t>>& batch, int from_pos) const;

  // Grow the buffers to at least the size asked (activations of `rows`
  // token rows, float32 logits of `rows` positions, the two pinned host
  // buffers, the RoPE table, the KV cache); RESOURCE_EXHAUSTED when an
  // allocation fails, after which the buffer is reallocated on next use.
  absl::Status EnsureWorkspace(int64_t rows);
  absl::Status EnsureLogits(int64_t rows);
  absl::Status EnsurePinned(int64_t rows);
  absl::Status EnsureRope(int64_t positions);
  absl::Status EnsureCache(int64_t capacity);

  uint16_t* CacheK(int layer) const {
    return cache_.as<uint16_t>() + (2 * layer) * cache_cap_ * dims_.kv_dim;
  }
  uint16_t* CacheV(int layer) const {
    return cache_.as<uint16_t>() + (2 * layer + 1) * cache_cap_ * dims_.kv_dim;
  }

  // Copies rows [s0, s0 + n) of `rows` (token ids or targets),
  // concatenated, to `dst` on the device.
  absl::Status UploadInts(const std::vector<std::vector<int32_t>>& rows, size_t s0, int n,
                          const DeviceBuffer& dst);

  // Attention of layer l over the pass (flash attention where the head
  // size allows, else the simple kernel) into act_.
  absl::Status Attention(const DeviceLayer& layer, int l, const Pass& p);

  // Embedding and every layer of the pass; the residual stream ends in
  // resid_. CANCELLED between layers.
  absl::Status RunLayers(const Pass& p, const CancelToken& cancel);

  // Final norm of positions [from, seq_len) of each of `n` sequences into
  // act_ (row i = sequence i / (seq_len - from), position from + i % ...).
  absl::Status FinalNorm(int n, int seq_len, int from);

  // logits_[0, rows) = act_[row0, row0 + rows) * lm_head^T, float32.
  absl::Status LmHead(int64_t row0, int64_t rows);

  // Forward, ForwardLogProbs and Generate without the lock and accounting
  // (llama_cuda_outputs.cc).
  absl::Status ForwardImpl(const std::vector<std::vector<int32_t>>& batch, int from_pos,
                           LogitsSink* sink, const CancelToken& cancel);
  absl::Status LogProbsImpl(const std::vector<std::vector<int32_t>>& batch, int from_pos,
                            const std::vector<std::vector<int32_t>>& targets,
                            std::vector<float>* target_logprob, std::vector<int32_t>* argmax,
                            const CancelToken& cancel);

  absl::Status GenerateImpl(const std::vector<int32_t>& prompt, int max_new,
                            const std::vector<int32_t>& stop_ids, const CancelToken& cancel,
                            std::vector<int32_t>* out);
  // Greedy next token after the last of the `seq_len` rows of the pass.
  absl::StatusOr<int32_t> NextToken(int seq_len);

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

}  // namespace llama_cuda
}  // namespace quantd

#endif  // QUANTD_KERNELS_CUDA_LLAMA_CUDA_IMPL_H_
