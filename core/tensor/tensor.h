// Tensors as byte buffers: TensorView borrows (e.g. from a mapped
// safetensors file), Tensor owns. Row-major and contiguous.
#ifndef QUANTD_CORE_TENSOR_TENSOR_H_
#define QUANTD_CORE_TENSOR_TENSOR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor/dtype.h"

namespace quantd {

using Shape = std::vector<int64_t>;

// Product of the dimensions (1 for a scalar).
int64_t NumElements(const Shape& shape);
// "[4096, 14336]".
std::string ShapeString(const Shape& shape);

struct TensorView {
  DType dtype = DType::kF32;
  Shape shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const { return NumElements(shape); }
  int64_t rows() const { return shape.empty() ? 1 : shape[0]; }
  // Elements per row: the product of every dimension after the first.
  int64_t cols() const;
  template <typename T>
  const T* as() const {
    return reinterpret_cast<const T*>(data);
  }
};

// An owning tensor. The buffer is not zero-initialised by Allocate().
class Tensor {
 public:
  Tensor() = default;
  // A tensor of `shape` whose bytes are uninitialised.
  static Tensor Allocate(DType dtype, Shape shape);
  // A tensor of `shape` whose bytes are zero.
  static Tensor Zeros(DType dtype, Shape shape);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  size_t nbytes() const { return nbytes_; }
  int64_t numel() const { return NumElements(shape_); }
  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  template <typename T>
  T* as() {
    return reinterpret_cast<T*>(data_.get());
  }
  template <typename T>
  const T* as() const {
    return reinterpret_cast<const T*>(data_.get());
  }
  TensorView view() const { return TensorView{dtype_, shape_, data_.get(), nbytes_}; }

 private:
  DType dtype_ = DType::kF32;
  Shape shape_;
  size_t nbytes_ = 0;
  std::unique_ptr<uint8_t[]> data_;
};

// Reads element i of a F32, F16 or BF16 view as float32 (exact).
float LoadAsFloat(const TensorView& v, int64_t i);

}  // namespace quantd

#endif  // QUANTD_CORE_TENSOR_TENSOR_H_
