// The weights of a loaded Llama-family model (core/runtime/llama_config.h),
// as every backend (kernels/cpu/llama_cpu.h, the CUDA backend) reads them.
//
// Matrices keep the PyTorch Linear layout [rows = out features, cols = in
// features], row-major, and HF semantics: y = x W^T (+ b). The embedding is
// [vocab, hidden]. Q and K rows are in HF order (GGUF's llama permutation is
// undone by the loader), so RoPE uses the rotate_half convention.
//
// A WeightMatrix is either a view into a mapped checkpoint file (F32, F16 or
// BF16 weights are used as stored, never copied) or an owned buffer holding
// the dequantized values of a quantized weight (BF16 when that is lossless,
// else F32; see LoadOptions). Norm weights and biases are small and always
// float32 vectors.
#ifndef QUANTD_CORE_RUNTIME_LLAMA_WEIGHTS_H_
#define QUANTD_CORE_RUNTIME_LLAMA_WEIGHTS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/runtime/llama_config.h"
#include "core/tensor/dtype.h"
#include "core/tensor/tensor.h"

namespace quantd {

class WeightMatrix {
 public:
  WeightMatrix() = default;
  WeightMatrix(WeightMatrix&&) = default;
  WeightMatrix& operator=(WeightMatrix&&) = default;
  WeightMatrix(const WeightMatrix&) = delete;
  WeightMatrix& operator=(const WeightMatrix&) = delete;

  // A view of `rows` x `cols` elements of `dtype` (F32, F16 or BF16) at
  // `data`, which must stay valid (LoadedModel keeps its files mapped) and
  // be aligned to the element size.
  static WeightMatrix View(DType dtype, int64_t rows, int64_t cols, const void* data) {
    WeightMatrix m;
    m.dtype_ = dtype;
    m.rows_ = rows;
    m.cols_ = cols;
    m.data_ = data;
    return m;
  }
  // Takes `t` (F32, F16 or BF16, shape [rows, cols]).
  static WeightMatrix Own(Tensor t) {
    WeightMatrix m;
    m.dtype_ = t.dtype();
    m.rows_ = t.shape().empty() ? 1 : t.shape()[0];
    m.cols_ = t.shape().size() < 2 ? 1 : t.shape()[1];
    m.owned_ = std::make_shared<Tensor>(std::move(t));
    m.data_ = m.owned_->data();
    return m;
  }

  bool empty() const { return data_ == nullptr; }
  DType dtype() const { return dtype_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  // Row-major elements of dtype().
  const void* data() const { return data_; }
  template <typename T>
  const T* as() const {
    return static_cast<const T*>(data_);
  }
  // True when data() points into a mapped file.
  bool mapped() const { return data_ != nullptr && owned_ == nullptr; }
  // rows * cols * element size.
  int64_t nbytes() const {
    return data_ == nullptr ? 0 : rows_ * cols_ * static_cast<int64_t>(DTypeSize(dtype_));
  }
  // Bytes this matrix keeps resident: nbytes() for both kinds (a mapped
  // weight is paged in on first use and read on every forward pass).
  int64_t bytes_resident() const { return nbytes(); }

 private:
  DType dtype_ = DType::kF32;
  int64_t rows_ = 0;
  int64_t cols_ = 0;
  const void* data_ = nullptr;
  std::shared_ptr<Tensor> owned_;  // null for views
};

struct LlamaLayerWeights {
  std::vector<float> attn_norm;  // [hidden] (input_layernorm)
  WeightMatrix q;                // [num_heads * head_dim, hidden]
  WeightMatrix k;                // [num_kv_heads * head_dim, hidden]
  WeightMatrix v;                // [num_kv_heads * head_dim, hidden]
  WeightMatrix o;                // [hidden, num_heads * head_dim]
  // Empty unless the config has the bias (qkv_bias, o_bias, mlp_bias).
  std::vector<float> q_bias, k_bias, v_bias, o_bias;
  std::vector<float> ffn_norm;  // [hidden] (post_attention_layernorm)
  WeightMatrix gate;            // [intermediate, hidden]
  WeightMatrix up;              // [intermediate, hidden]
  WeightMatrix down;            // [hidden, intermediate]
  std::vector<float> gate_bias, up_bias, down_bias;
};

struct LlamaWeights {
  WeightMatrix embed;  // [vocab, hidden]
  std::vector<LlamaLayerWeights> layers;
  std::vector<float> final_norm;  // [hidden]
  // [vocab, hidden]; empty when the output projection is the embedding
  // (tied, and no separate lm_head stored).
  WeightMatrix lm_head_untied;

  bool lm_head_tied() const { return lm_head_untied.empty(); }
  const WeightMatrix& lm_head() const { return lm_head_tied() ? embed : lm_head_untied; }
};

// A model ready to run: configuration, weights and whatever keeps the
// weights' memory alive (mapped files). Immutable after loading, so any
// number of backends and threads may read it.
class LoadedModel {
 public:
  LoadedModel() = default;
  LoadedModel(const LoadedModel&) = delete;
  LoadedModel& operator=(const LoadedModel&) = delete;

  LlamaConfig config;
  LlamaWeights weights;
  // How the weights were stored: "bf16", "f16", "f32" (or "mixed"),
  // a quantd format name ("rtn_int", "fp8", ...), or "gguf:<type>" with the
  // type of most matrices.
  std::string source_format;
  // The mapped files and other owners the views point into.
  std::vector<std::shared_ptr<const void>> keep_alive;

  // Bytes of all matrices and vectors (a tied lm_head counted once).
  int64_t bytes_resident() const;
  // Of which owned (dequantized or converted) rather than mapped.
  int64_t bytes_owned() const;
};

}  // namespace quantd

#endif  // QUANTD_CORE_RUNTIME_LLAMA_WEIGHTS_H_
