#include "core/tensor/tensor.h"

#include <cstring>

#include "absl/strings/str_join.h"
#include "core/tensor/float_bits.h"

namespace quantd {

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeString(const Shape& shape) { return "[" + absl::StrJoin(shape, ", ") + "]"; }

int64_t TensorView::cols() const {
  int64_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  return n;
}

Tensor Tensor::Allocate(DType dtype, Shape shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.nbytes_ = static_cast<size_t>(NumElements(shape)) * DTypeSize(dtype);
  t.shape_ = std::move(shape);
  t.data_.reset(new uint8_t[t.nbytes_ == 0 ? 1 : t.nbytes_]);
  return t;
}

Tensor Tensor::Zeros(DType dtype, Shape shape) {
  Tensor t = Allocate(dtype, std::move(shape));
  std::memset(t.data(), 0, t.nbytes());
  return t;
}

float LoadAsFloat(const TensorView& v, int64_t i) {
  switch (v.dtype) {
    case DType::kF32:
      return v.as<float>()[i];
    case DType::kBF16:
      return Bf16ToFloat(v.as<uint16_t>()[i]);
    case DType::kF16:
      return F16ToFloat(v.as<uint16_t>()[i]);
    default:
      return 0.0f;
  }
}

}  // namespace quantd
