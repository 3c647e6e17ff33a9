// Device buffers, cuBLAS GEMMs and the weight upload of the CUDA Llama
// runtime (see llama_cuda_internal.h).
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cuda/llama_cuda_internal.h"
#include "kernels/cuda/llama_cuda_ops.h"
#include "kernels/cuda/llama_cuda_plan.h"

namespace quantd {
namespace llama_cuda {

absl::Status CublasStatus(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  if (s == CUBLAS_STATUS_ALLOC_FAILED) {
    return absl::ResourceExhaustedError(absl::StrCat(what, ": out of memory (cuBLAS)"));
  }
  return absl::InternalError(absl::StrCat(what, ": ", cublasGetStatusString(s)));
}

absl::Status DeviceBuffer::Allocate(int64_t bytes, const char* what) {
  Free();
  if (bytes <= 0) return absl::OkStatus();
  const cudaError_t e = cudaMalloc(&ptr_, static_cast<size_t>(bytes));
  if (e != cudaSuccess) {
    ptr_ = nullptr;
    cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) cudaGetLastError();
    const absl::Status st = CudaStatus(e, what);
    return absl::Status(st.code(),
                        absl::StrFormat("%s; requested %.2f GiB, %.2f of %.2f GiB free",
                                        std::string(st.message()), bytes / 1073741824.0,
                                        free_bytes / 1073741824.0, total_bytes / 1073741824.0));
  }
  bytes_ = bytes;
  return absl::OkStatus();
}

void DeviceBuffer::Free() {
  if (ptr_ != nullptr) cudaFree(ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
}

absl::Status Linear(cublasHandle_t handle, const uint16_t* x, int64_t ldx, int64_t m, int64_t k,
                    const uint16_t* w, int64_t n, void* y, bool y_f32, int64_t ldy, float beta) {
  constexpr int64_t kMax = 0x7fffffff;
  if (m <= 0) return absl::OkStatus();
  if (m > kMax || n > kMax || k > kMax || ldx > kMax || ldy > kMax) {
    return absl::InvalidArgumentError(absl::StrCat("GEMM too large: ", m, "x", n, "x", k));
  }
  const float alpha = 1.0f;
  return CublasStatus(
      cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                   static_cast<int>(k), &alpha, w, CUDA_R_16BF, static_cast<int>(k), x, CUDA_R_16BF,
                   static_cast<int>(ldx), &beta, y, y_f32 ? CUDA_R_32F : CUDA_R_16BF,
                   static_cast<int>(ldy), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      "cublasGemmEx");
}

namespace {

// Copies host matrices into device BF16 buffers: each 64 MiB chunk is
// copied (by several threads) into one of two pinned buffers, sent to a
// device staging buffer and converted there, while the host fills the
// other pinned buffer.
class Uploader {
 public:
  explicit Uploader(cudaStream_t stream) : stream_(stream) {}
  Uploader(const Uploader&) = delete;
  Uploader& operator=(const Uploader&) = delete;
  ~Uploader() {
    cudaStreamSynchronize(stream_);
    for (Slot& s : slots_) {
      if (s.host) cudaFreeHost(s.host);
      if (s.done) cudaEventDestroy(s.done);
    }
    cudaGetLastError();
  }

  absl::Status Init() {
    for (Slot& s : slots_) {
      RETURN_IF_CUDA(cudaHostAlloc(&s.host, kChunk, cudaHostAllocDefault),
                     "cudaHostAlloc (upload staging)");
      RETURN_IF_ERROR(s.dev.Allocate(kChunk, "cudaMalloc (upload staging)"));
      RETURN_IF_CUDA(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming), "cudaEventCreate");
    }
    pool_ = std::make_unique<ThreadPool>(
        std::min(8, std::max(1, static_cast<int>(std::thread::hardware_concurrency()))));
    return absl::OkStatus();
  }

  absl::Status Matrix(const WeightMatrix& m, uint16_t* dst) {
    SrcType type;
    switch (m.dtype()) {
      case DType::kBF16:
        type = SrcType::kBF16;
        break;
      case DType::kF16:
        type = SrcType::kF16;
        break;
      case DType::kF32:
        type = SrcType::kF32;
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("weight dtype ", std::string(DTypeName(m.dtype())), " is not supported"));
    }
    const int64_t esize = static_cast<int64_t>(DTypeSize(m.dtype()));
    const int64_t total = m.rows() * m.cols();
    const int64_t chunk_elems = kChunk / esize;
    const uint8_t* src = static_cast<const uint8_t*>(m.data());
    for (int64_t e0 = 0; e0 < total; e0 += chunk_elems) {
      const int64_t n = std::min(chunk_elems, total - e0);
      Slot& s = slots_[next_++ % 2];
      RETURN_IF_CUDA(cudaEventSynchronize(s.done), "uploading weights");
      ParallelCopy(s.host, src + e0 * esize, static_cast<size_t>(n * esize));
      RETURN_IF_CUDA(cudaMemcpyAsync(s.dev.as<void>(), s.host, static_cast<size_t>(n * esize),
                                     cudaMemcpyHostToDevice, stream_),
                     "cudaMemcpyAsync (weights)");
      RETURN_IF_CUDA(ConvertToBf16(s.dev.as<void>(), type, n, dst + e0, stream_),
                     "converting weights");
      RETURN_IF_CUDA(cudaEventRecord(s.done, stream_), "cudaEventRecord");
    }
    return absl::OkStatus();
  }

  // Float32 vectors are small: a synchronous copy from pageable memory.
  absl::Status Vector(const std::vector<float>& v, DeviceBuffer* dst) {
    RETURN_IF_ERROR(dst->Allocate(static_cast<int64_t>(v.size() * 4), "cudaMalloc (vector)"));
    if (v.empty()) return absl::OkStatus();
    RETURN_IF_CUDA(cudaMemcpy(dst->as<void>(), v.data(), v.size() * 4, cudaMemcpyHostToDevice),
                   "cudaMemcpy (vector)");
    return absl::OkStatus();
  }

  absl::Status Finish() { return CudaStatus(cudaStreamSynchronize(stream_), "uploading weights"); }

 private:
  static constexpr int64_t kChunk = int64_t{64} << 20;
  struct Slot {
    void* host = nullptr;
    DeviceBuffer dev;
    cudaEvent_t done = nullptr;
  };

  void ParallelCopy(void* dst, const void* src, size_t n) {
    constexpr size_t kSlice = size_t{4} << 20;
    const int64_t slices = static_cast<int64_t>((n + kSlice - 1) / kSlice);
    pool_->ParallelFor(slices, [&](int64_t i) {
      const size_t begin = static_cast<size_t>(i) * kSlice;
      std::memcpy(static_cast<uint8_t*>(dst) + begin, static_cast<const uint8_t*>(src) + begin,
                  std::min(kSlice, n - begin));
    });
  }

  cudaStream_t stream_;
  Slot slots_[2];
  int64_t next_ = 0;
  std::unique_ptr<ThreadPool> pool_;
};

absl::Status CheckMatrix(const WeightMatrix& m, int64_t rows, int64_t cols,
                         const std::string& name) {
  if (m.empty()) return absl::InvalidArgumentError(absl::StrCat("weight ", name, " is missing"));
  if (m.rows() != rows || m.cols() != cols) {
    return absl::InvalidArgumentError(absl::StrCat("weight ", name, " is [", m.rows(), ", ",
                                                   m.cols(), "], expected [", rows, ", ", cols,
                                                   "]"));
  }
  return absl::OkStatus();
}

absl::Status CheckVector(const std::vector<float>& v, int64_t n, const std::string& name) {
  if (static_cast<int64_t>(v.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("vector ", name, " has ", v.size(), " values, expected ", n));
  }
  return absl::OkStatus();
}

// Concatenates float32 vectors (all empty -> empty; else each must have its
// size) for a fused bias.
absl::StatusOr<std::vector<float>> Concat(const std::vector<const std::vector<float>*>& parts,
                                          const std::vector<int64_t>& sizes,
                                          const std::string& name) {
  std::vector<float> out;
  bool any = false;
  for (const auto* p : parts) any |= !p->empty();
  if (!any) return out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i]->empty()) {
      out.insert(out.end(), static_cast<size_t>(sizes[i]), 0.0f);
      continue;
    }
    RETURN_IF_ERROR(CheckVector(*parts[i], sizes[i], name));
    out.insert(out.end(), parts[i]->begin(), parts[i]->end());
  }
  return out;
}

absl::Status UploadLayer(const LlamaConfig& c, const LlamaLayerWeights& w, int index, Uploader& up,
                         DeviceLayer* d) {
  const Dims dims(c);
  const std::string l = absl::StrCat("layers.", index, ".");
  const int64_t h = dims.hidden, q = dims.q_dim, kv = dims.kv_dim, in = dims.inter;
  RETURN_IF_ERROR(CheckMatrix(w.q, q, h, l + "q_proj"));
  RETURN_IF_ERROR(CheckMatrix(w.k, kv, h, l + "k_proj"));
  RETURN_IF_ERROR(CheckMatrix(w.v, kv, h, l + "v_proj"));
  RETURN_IF_ERROR(CheckMatrix(w.o, h, q, l + "o_proj"));
  RETURN_IF_ERROR(CheckMatrix(w.gate, in, h, l + "gate_proj"));
  RETURN_IF_ERROR(CheckMatrix(w.up, in, h, l + "up_proj"));
  RETURN_IF_ERROR(CheckMatrix(w.down, h, in, l + "down_proj"));
  RETURN_IF_ERROR(CheckVector(w.attn_norm, h, l + "input_layernorm"));
  RETURN_IF_ERROR(CheckVector(w.ffn_norm, h, l + "post_attention_layernorm"));

  RETURN_IF_ERROR(d->qkv.Allocate(2 * dims.qkv_dim * h, "cudaMalloc (qkv weight)"));
  RETURN_IF_ERROR(up.Matrix(w.q, d->qkv.as<uint16_t>()));
  RETURN_IF_ERROR(up.Matrix(w.k, d->qkv.as<uint16_t>() + q * h));
  RETURN_IF_ERROR(up.Matrix(w.v, d->qkv.as<uint16_t>() + (q + kv) * h));
  RETURN_IF_ERROR(d->o.Allocate(2 * h * q, "cudaMalloc (o weight)"));
  RETURN_IF_ERROR(up.Matrix(w.o, d->o.as<uint16_t>()));
  RETURN_IF_ERROR(d->gate_up.Allocate(2 * 2 * in * h, "cudaMalloc (gate/up weight)"));
  RETURN_IF_ERROR(up.Matrix(w.gate, d->gate_up.as<uint16_t>()));
  RETURN_IF_ERROR(up.Matrix(w.up, d->gate_up.as<uint16_t>() + in * h));
  RETURN_IF_ERROR(d->down.Allocate(2 * h * in, "cudaMalloc (down weight)"));
  RETURN_IF_ERROR(up.Matrix(w.down, d->down.as<uint16_t>()));

  RETURN_IF_ERROR(up.Vector(w.attn_norm, &d->attn_norm));
  RETURN_IF_ERROR(up.Vector(w.ffn_norm, &d->ffn_norm));
  ASSIGN_OR_RETURN(std::vector<float> qkv_bias,
                   Concat({&w.q_bias, &w.k_bias, &w.v_bias}, {q, kv, kv}, l + "qkv bias"));
  RETURN_IF_ERROR(up.Vector(qkv_bias, &d->qkv_bias));
  ASSIGN_OR_RETURN(std::vector<float> gu_bias,
                   Concat({&w.gate_bias, &w.up_bias}, {in, in}, l + "gate/up bias"));
  RETURN_IF_ERROR(up.Vector(gu_bias, &d->gate_up_bias));
  if (!w.o_bias.empty()) RETURN_IF_ERROR(CheckVector(w.o_bias, h, l + "o_proj bias"));
  RETURN_IF_ERROR(up.Vector(w.o_bias, &d->o_bias));
  if (!w.down_bias.empty()) RETURN_IF_ERROR(CheckVector(w.down_bias, h, l + "down_proj bias"));
  RETURN_IF_ERROR(up.Vector(w.down_bias, &d->down_bias));
  if (static_cast<int>(c.sliding_window.size()) > index) {
    d->window = static_cast<int>(c.sliding_window[index]);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DeviceWeights> UploadWeights(const LoadedModel& model, cudaStream_t stream) {
  const LlamaConfig& c = model.config;
  const LlamaWeights& w = model.weights;
  const Dims dims(c);
  if (static_cast<int64_t>(w.layers.size()) != dims.layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("model has ", w.layers.size(), " layers, config says ", dims.layers));
  }
  RETURN_IF_ERROR(CheckMatrix(w.embed, dims.vocab, dims.hidden, "embed_tokens"));
  if (!w.lm_head_tied()) {
    RETURN_IF_ERROR(CheckMatrix(w.lm_head_untied, dims.vocab, dims.hidden, "lm_head"));
  }
  RETURN_IF_ERROR(CheckVector(w.final_norm, dims.hidden, "norm"));

  Uploader up(stream);
  RETURN_IF_ERROR(up.Init());
  DeviceWeights d;
  RETURN_IF_ERROR(d.embed.Allocate(2 * dims.vocab * dims.hidden, "cudaMalloc (embedding)"));
  RETURN_IF_ERROR(up.Matrix(w.embed, d.embed.as<uint16_t>()));
  if (!w.lm_head_tied()) {
    RETURN_IF_ERROR(d.lm_head.Allocate(2 * dims.vocab * dims.hidden, "cudaMalloc (lm_head)"));
    RETURN_IF_ERROR(up.Matrix(w.lm_head_untied, d.lm_head.as<uint16_t>()));
  }
  RETURN_IF_ERROR(up.Vector(w.final_norm, &d.final_norm));
  RETURN_IF_ERROR(up.Vector(RopeInvFreq(c.rope, c.head_dim), &d.inv_freq));
  d.layers.resize(w.layers.size());
  for (size_t i = 0; i < w.layers.size(); ++i) {
    RETURN_IF_ERROR(UploadLayer(c, w.layers[i], static_cast<int>(i), up, &d.layers[i]));
  }
  RETURN_IF_ERROR(up.Finish());

  d.bytes = d.embed.bytes() + d.lm_head.bytes() + d.final_norm.bytes() + d.inv_freq.bytes();
  for (const DeviceLayer& l : d.layers) {
    for (const DeviceBuffer* b : {&l.attn_norm, &l.ffn_norm, &l.qkv, &l.o, &l.gate_up, &l.down,
                                  &l.qkv_bias, &l.o_bias, &l.down_bias, &l.gate_up_bias}) {
      d.bytes += b->bytes();
    }
  }
  return d;
}

}  // namespace llama_cuda
}  // namespace quantd
