// The CUDA Llama runtime (see llama_cuda.h): creation, workspace and the
// layer loop. The ways out of the last layer are in llama_cuda_outputs.cc.
#include "kernels/cuda/llama_cuda.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/llama_cuda_impl.h"
#include "kernels/cuda/llama_cuda_internal.h"
#include "kernels/cuda/llama_cuda_ops.h"
#include "kernels/cuda/llama_cuda_plan.h"

namespace quantd {
namespace llama_cuda {

CudaLlamaImpl::~CudaLlamaImpl() {
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

absl::Status CudaLlamaImpl::Init(const LoadedModel& model) {
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

void CudaLlamaImpl::NoteMemory() {
  int64_t b = w_.bytes + cublas_ws_.bytes() + logits_.bytes() + rope_.bytes() + cache_.bytes();
  for (const DeviceBuffer* d : {&tokens_, &resid_, &act_, &big_, &targets_, &logprob_, &argmax_})
    b += d->bytes();
  peak_bytes_ = std::max(peak_bytes_, b);
}

absl::Status CudaLlamaImpl::CheckTokens(const std::vector<int32_t>& seq) const {
  for (int32_t t : seq) {
    if (t < 0 || t >= dims_.vocab) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", t, " is outside the vocabulary [0, ", dims_.vocab, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int> CudaLlamaImpl::Validate(const std::vector<std::vector<int32_t>>& batch,
                                            int from_pos) const {
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
    return absl::InvalidArgumentError(absl::StrCat("from_pos ", from_pos, " outside [0, ", t, "]"));
  }
  return static_cast<int>(t);
}

absl::Status CudaLlamaImpl::EnsureWorkspace(int64_t rows) {
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

absl::Status CudaLlamaImpl::EnsureLogits(int64_t rows) {
  if (rows <= logit_rows_) return absl::OkStatus();
  Drain();
  logit_rows_ = 0;
  RETURN_IF_ERROR(logits_.Allocate(rows * dims_.ld_vocab * 4, "cudaMalloc (logits)"));
  logit_rows_ = rows;
  NoteMemory();
  return absl::OkStatus();
}

absl::Status CudaLlamaImpl::EnsurePinned(int64_t rows) {
  if (rows <= pinned_rows_) return absl::OkStatus();
  Drain();
  for (float*& p : pinned_) {
    if (p != nullptr) cudaFreeHost(p);
    p = nullptr;
  }
  pinned_rows_ = 0;
  for (float*& p : pinned_) {
    RETURN_IF_CUDA(cudaHostAlloc(reinterpret_cast<void**>(&p),
                                 static_cast<size_t>(rows * dims_.vocab * 4), cudaHostAllocDefault),
                   "cudaHostAlloc (logits)");
  }
  pinned_rows_ = rows;
  return absl::OkStatus();
}

absl::Status CudaLlamaImpl::EnsureRope(int64_t positions) {
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

absl::Status CudaLlamaImpl::EnsureCache(int64_t capacity) {
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

absl::Status CudaLlamaImpl::UploadInts(const std::vector<std::vector<int32_t>>& rows, size_t s0,
                                       int n, const DeviceBuffer& dst) {
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

absl::Status CudaLlamaImpl::Attention(const DeviceLayer& layer, int l, const Pass& p) {
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

absl::Status CudaLlamaImpl::RunLayers(const Pass& p, const CancelToken& cancel) {
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
            cudaMemcpy2DAsync(dst, row_bytes, src, src_pitch, row_bytes, static_cast<size_t>(rows),
                              cudaMemcpyDeviceToDevice, stream_),
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
    RETURN_IF_ERROR(
        Linear(cublas_, act, h, rows, h, L.gate_up.as<uint16_t>(), 2 * I, big, false, 2 * I, 0.0f));
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

absl::Status CudaLlamaImpl::FinalNorm(int n, int seq_len, int from) {
  const int64_t per = seq_len - from;
  return CudaStatus(llama_cuda::RmsNorm(resid_.as<float>(), RowMap{per, seq_len, from}, n * per,
                                        static_cast<int>(dims_.hidden), w_.final_norm.as<float>(),
                                        config_.rms_norm_eps, act_.as<uint16_t>(), stream_),
                    "final RMSNorm kernel");
}

absl::Status CudaLlamaImpl::LmHead(int64_t row0, int64_t rows) {
  return Linear(cublas_, act_.as<uint16_t>() + row0 * dims_.hidden, dims_.hidden, rows,
                dims_.hidden, w_.lm_head_ptr(), dims_.vocab, logits_.as<float>(), true,
                dims_.ld_vocab, 0.0f);
}

}  // namespace llama_cuda

namespace {

absl::Status CheckSupported(const LlamaConfig& c) {
  const llama_cuda::Dims d(c);
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
  auto lm = std::make_unique<llama_cuda::CudaLlamaImpl>(model->config, device, options);
  RETURN_IF_ERROR(lm->Init(*model));
  return std::unique_ptr<CausalLM>(std::move(lm));
}

}  // namespace quantd
