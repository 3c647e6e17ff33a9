#include "core/formats/format.h"

#include <cmath>

#include "core/util/status_macros.h"

namespace quantd {

Tensor* EncodedWeight::Find(std::string_view suffix) {
  for (EncodedPart& p : parts) {
    if (p.suffix == suffix) return &p.tensor;
  }
  return nullptr;
}

const Tensor* EncodedWeight::Find(std::string_view suffix) const {
  for (const EncodedPart& p : parts) {
    if (p.suffix == suffix) return &p.tensor;
  }
  return nullptr;
}

Tensor* EncodedWeight::FindScratch(std::string_view suffix) {
  for (EncodedPart& p : scratch) {
    if (p.suffix == suffix) return &p.tensor;
  }
  return nullptr;
}

size_t EncodedWeight::nbytes() const {
  size_t n = 0;
  for (const EncodedPart& p : parts) n += p.tensor.nbytes();
  return n;
}

float AbsMaxRef(const TensorView& w) {
  float m = 0.0f;
  const int64_t n = w.numel();
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(LoadAsFloat(w, i));
    if (a > m) m = a;  // false for NaN
  }
  return m;
}

absl::StatusOr<EncodedWeight> EncodeRef(const WeightFormat& f, const FormatParams& p,
                                        const TensorView& w) {
  if (w.shape.size() != 2) {
    return absl::InvalidArgumentError("weight must be 2-D, got " + ShapeString(w.shape));
  }
  RETURN_IF_ERROR(f.Check(p, w.rows(), w.cols()));
  EncodedWeight out = f.Allocate(p, w.rows(), w.cols(), w.dtype);
  RETURN_IF_ERROR(f.EncodeRowsRef(p, w, 0, w.rows(), &out));
  RETURN_IF_ERROR(f.FinalizeRef(p, w.rows(), w.cols(), &out));
  out.scratch.clear();
  return out;
}

}  // namespace quantd
