// Internals of the CUDA Llama runtime shared by its sources: owning device
// buffers, cuBLAS calls as absl::Status, and the uploaded weights.
#ifndef QUANTD_KERNELS_CUDA_LLAMA_CUDA_INTERNAL_H_
#define QUANTD_KERNELS_CUDA_LLAMA_CUDA_INTERNAL_H_

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/runtime/llama_weights.h"
#include "core/util/status_macros.h"
#include "kernels/cuda/cuda_encoder.h"

#define RETURN_IF_CUDA(expr, what) RETURN_IF_ERROR(::quantd::CudaStatus((expr), (what)))
#define RETURN_IF_CUBLAS(expr, what) \
  RETURN_IF_ERROR(::quantd::llama_cuda::CublasStatus((expr), (what)))

namespace quantd {
namespace llama_cuda {

// OK for CUBLAS_STATUS_SUCCESS; RESOURCE_EXHAUSTED for
// CUBLAS_STATUS_ALLOC_FAILED; INTERNAL "<what>: <status string>" otherwise.
absl::Status CublasStatus(cublasStatus_t s, const char* what);

// An owning device allocation (cudaMalloc: 256-byte aligned).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { Free(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      Free();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // Frees the old allocation, then allocates `bytes` (none for 0).
  // RESOURCE_EXHAUSTED when the device is full (the message names `what`,
  // the bytes requested and the device's free and total memory); the
  // buffer is then empty.
  absl::Status Allocate(int64_t bytes, const char* what);
  void Free();

  bool empty() const { return ptr_ == nullptr; }
  int64_t bytes() const { return bytes_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
  int64_t bytes_ = 0;
};

// y[m, n] = x[m, k] * w[n, k]^T + beta * y: BF16 x (row stride ldx) and w
// (row-major [n, k], a PyTorch Linear weight), float32 accumulation
// (CUBLAS_COMPUTE_32F), y BF16 or float32 (row stride ldy). In cuBLAS's
// column-major terms: C[n, m] = op_T(W) * X, the "TN" case.
absl::Status Linear(cublasHandle_t handle, const uint16_t* x, int64_t ldx, int64_t m, int64_t k,
                    const uint16_t* w, int64_t n, void* y, bool y_f32, int64_t ldy, float beta);

struct DeviceLayer {
  DeviceBuffer attn_norm, ffn_norm;  // float32 [hidden]
  DeviceBuffer qkv;                  // BF16 [q_dim + 2 kv_dim, hidden]: q, k, v rows
  DeviceBuffer o;                    // BF16 [hidden, q_dim]
  DeviceBuffer gate_up;              // BF16 [2 inter, hidden]: gate rows, then up rows
  DeviceBuffer down;                 // BF16 [hidden, inter]
  DeviceBuffer qkv_bias;             // float32 [q_dim + 2 kv_dim] or empty
  DeviceBuffer o_bias, down_bias;    // float32 [hidden] or empty
  DeviceBuffer gate_up_bias;         // float32 [2 inter] or empty
  int window = 0;                    // sliding window, 0 = none
};

struct DeviceWeights {
  DeviceBuffer embed;       // BF16 [vocab, hidden]
  DeviceBuffer lm_head;     // BF16 [vocab, hidden]; empty when tied to embed
  DeviceBuffer final_norm;  // float32 [hidden]
  DeviceBuffer inv_freq;    // float32 [head_dim / 2]
  std::vector<DeviceLayer> layers;
  int64_t bytes = 0;  // all of the above

  const uint16_t* lm_head_ptr() const {
    return lm_head.empty() ? embed.as<uint16_t>() : lm_head.as<uint16_t>();
  }
};

// Checks every shape of `model` against its config and uploads it on
// `stream` through pinned staging buffers (host copies spread over a few
// threads). INVALID_ARGUMENT for a missing or misshapen weight or an
// unsupported dtype; RESOURCE_EXHAUSTED when the device is full.
absl::StatusOr<DeviceWeights> UploadWeights(const LoadedModel& model, cudaStream_t stream);

}  // namespace llama_cuda
}  // namespace quantd

#endif  // QUANTD_KERNELS_CUDA_LLAMA_CUDA_INTERNAL_H_
