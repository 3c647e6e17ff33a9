#include "core/formats/bnb_int8.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace {

absl::Status CheckPart(const EncodedWeight& e, const char* suffix, DType dtype,
                       const Shape& shape) {
  const Tensor* t = e.Find(suffix);
  if (t == nullptr) return absl::InvalidArgumentError(absl::StrCat("missing part ", suffix));
  if (t->dtype() != dtype || t->shape() != shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        "part ", suffix, " is ", std::string(DTypeName(t->dtype())), " ", ShapeString(t->shape()),
        ", expected ", std::string(DTypeName(dtype)), " ", ShapeString(shape)));
  }
  return absl::OkStatus();
}

absl::Status CheckParts(int64_t rows, int64_t cols, const EncodedWeight& e) {
  RETURN_IF_ERROR(CheckPart(e, kBnbInt8WeightSuffix, DType::kI8, {rows, cols}));
  RETURN_IF_ERROR(CheckPart(e, kBnbInt8ScbSuffix, DType::kF32, {rows}));
  return CheckPart(e, kBnbInt8FormatSuffix, DType::kU8, {});
}

class BnbInt8 final : public WeightFormat {
 public:
  std::string_view name() const override { return "bnb_int8"; }

  absl::Status Check(const FormatParams& p, int64_t rows, int64_t cols) const override {
    if (rows < 1 || cols < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight shape [", rows, ", ", cols, "] has an empty dimension"));
    }
    // kInt8VectorQuant indexes with a C int (row_id * cols).
    if (cols > std::numeric_limits<int32_t>::max() / rows) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight shape [", rows, ", ", cols, "] has more than 2^31 - 1 elements"));
    }
    if (!p.extra.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bnb_int8 has no setting \"", p.extra.begin()->first, "\""));
    }
    return absl::OkStatus();
  }

  EncodedWeight Allocate(const FormatParams& p, int64_t rows, int64_t cols,
                         DType source) const override {
    EncodedWeight e;
    if (!Check(p, rows, cols).ok()) return e;  // Callers must Check() first.
    e.parts.push_back({kBnbInt8WeightSuffix, Tensor::Allocate(DType::kI8, {rows, cols})});
    e.parts.push_back({kBnbInt8ScbSuffix, Tensor::Allocate(DType::kF32, {rows})});
    e.parts.push_back({kBnbInt8FormatSuffix, Tensor::Zeros(DType::kU8, {})});
    return e;
  }

  absl::Status EncodeRowsRef(const FormatParams& p, const TensorView& w, int64_t r0, int64_t r1,
                             EncodedWeight* out) const override {
    if (w.shape.size() != 2) {
      return absl::InvalidArgumentError("weight must be 2-D, got " + ShapeString(w.shape));
    }
    const int64_t rows = w.shape[0], cols = w.shape[1];
    RETURN_IF_ERROR(Check(p, rows, cols));
    if (!IsFloatWeightType(w.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weight dtype ", std::string(DTypeName(w.dtype)), " is not F16, BF16 or F32"));
    }
    if (w.data == nullptr || w.nbytes != static_cast<size_t>(rows * cols) * DTypeSize(w.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat("weight view holds ", w.nbytes,
                                                     " bytes, not those of ", ShapeString(w.shape),
                                                     " ", std::string(DTypeName(w.dtype))));
    }
    if (r0 < 0 || r0 > r1 || r1 > rows) {
      return absl::InvalidArgumentError(
          absl::StrCat("row range [", r0, ", ", r1, ") is outside ", rows, " rows"));
    }
    RETURN_IF_ERROR(CheckParts(rows, cols, *out));
    int8_t* q = out->Find(kBnbInt8WeightSuffix)->as<int8_t>();
    float* scb = out->Find(kBnbInt8ScbSuffix)->as<float>();
    if (r0 == 0) out->Find(kBnbInt8FormatSuffix)->data()[0] = 0;  // "row"
    std::vector<float> h(static_cast<size_t>(cols));
    for (int64_t r = r0; r < r1; ++r) {
      float absmax = 0.0f;
      for (int64_t c = 0; c < cols; ++c) {
        bool finite = true;
        h[c] = bnb_int8::RoundToF16(LoadAsFloat(w, r * cols + c), &finite);
        if (!finite) {
          return absl::InvalidArgumentError(
              absl::StrCat("non-finite value at row ", r, ", column ", c,
                           " in float16 (LLM.int8 quantizes the float16 weight)"));
        }
        absmax = std::max(absmax, h[c] < 0 ? -h[c] : h[c]);
      }
      scb[r] = absmax;
      const float scale = bnb_int8::RowScale(absmax);
      for (int64_t c = 0; c < cols; ++c) q[r * cols + c] = bnb_int8::Code(h[c], scale);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<float>> DecodeRef(const FormatParams& p, const EncodedWeight& e,
                                               int64_t rows, int64_t cols) const override {
    RETURN_IF_ERROR(Check(p, rows, cols));
    RETURN_IF_ERROR(CheckParts(rows, cols, e));
    const int8_t* q = e.Find(kBnbInt8WeightSuffix)->as<int8_t>();
    const float* scb = e.Find(kBnbInt8ScbSuffix)->as<float>();
    std::vector<float> out(static_cast<size_t>(rows * cols));
    // bitsandbytes' int8_vectorwise_dequant: A * stats * 7.874015718698502e-3
    // (float32, left to right).
    constexpr float kInv127 = 7.874015718698502e-3f;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        out[r * cols + c] = static_cast<float>(q[r * cols + c]) * scb[r] * kInv127;
      }
    }
    return out;
  }
};

}  // namespace

const WeightFormat& BnbInt8Format() {
  static const BnbInt8* format = new BnbInt8();
  return *format;
}

}  // namespace quantd
