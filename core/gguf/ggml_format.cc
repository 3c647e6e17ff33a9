#include "core/gguf/ggml_format.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/gguf/ggml_quants.h"
#include "core/tensor/float_bits.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace {

// Row `r` of `w` as float32 (exact conversions); INVALID_ARGUMENT naming
// the first non-finite value.
absl::Status LoadRow(const TensorView& w, int64_t r, int64_t cols, float* out) {
  const size_t offset = static_cast<size_t>(r * cols);
  switch (w.dtype) {
    case DType::kF32:
      std::memcpy(out, w.data + offset * 4, static_cast<size_t>(cols) * 4);
      break;
    case DType::kF16:
    case DType::kBF16: {
      const uint8_t* src = w.data + offset * 2;
      for (int64_t c = 0; c < cols; ++c) {
        uint16_t h;
        std::memcpy(&h, src + 2 * c, 2);
        out[c] = w.dtype == DType::kF16 ? F16ToFloat(h) : Bf16ToFloat(h);
      }
      break;
    }
    default:
      return absl::InvalidArgumentError("unsupported weight dtype");
  }
  for (int64_t c = 0; c < cols; ++c) {
    if ((FloatToBits(out[c]) & 0x7fffffffu) >= 0x7f800000u) {
      return absl::InvalidArgumentError(
          absl::StrCat("non-finite value at row ", r, ", column ", c));
    }
  }
  return absl::OkStatus();
}

class Ggml final : public WeightFormat {
 public:
  std::string_view name() const override { return kGgmlFormatName; }

  absl::Status Check(const FormatParams& p, int64_t rows, int64_t cols) const override {
    ASSIGN_OR_RETURN(const GgmlType t, GgmlFormatType(p));
    for (const auto& [key, value] : p.extra) {
      if (key != kGgmlTypeKey) {
        return absl::InvalidArgumentError(absl::StrCat("ggml has no setting \"", key, "\""));
      }
    }
    if (rows < 1 || cols < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight shape [", rows, ", ", cols, "] has an empty dimension"));
    }
    if (cols > std::numeric_limits<int64_t>::max() / 8 / rows) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight shape [", rows, ", ", cols, "] is too large"));
    }
    absl::StatusOr<int64_t> row_bytes = RowBytes(t, cols);
    if (!row_bytes.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cols ", cols, ": ", row_bytes.status().message()));
    }
    if (p.importance != nullptr && GgmlUsesImportance(t)) {
      for (int64_t c = 0; c < cols; ++c) {
        if (!std::isfinite(p.importance[c]) || p.importance[c] < 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "importance of column ", c, " is ", p.importance[c], " (must be finite, >= 0)"));
        }
      }
    }
    return absl::OkStatus();
  }

  EncodedWeight Allocate(const FormatParams& p, int64_t rows, int64_t cols,
                         DType source) const override {
    EncodedWeight e;
    if (!Check(p, rows, cols).ok()) return e;  // Callers must Check() first.
    const GgmlType t = *GgmlFormatType(p);
    e.parts.push_back({kGgmlDataSuffix, Tensor::Allocate(DType::kU8, {rows, *RowBytes(t, cols)})});
    return e;
  }

  absl::Status EncodeRowsRef(const FormatParams& p, const TensorView& w, int64_t r0, int64_t r1,
                             EncodedWeight* out) const override {
    if (w.shape.size() != 2) {
      return absl::InvalidArgumentError("weight must be 2-D, got " + ShapeString(w.shape));
    }
    const int64_t rows = w.shape[0], cols = w.shape[1];
    RETURN_IF_ERROR(Check(p, rows, cols));
    const GgmlType t = *GgmlFormatType(p);
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
    const int64_t row_bytes = *RowBytes(t, cols);
    Tensor* data = out->Find(kGgmlDataSuffix);
    if (data == nullptr || data->dtype() != DType::kU8 || data->shape() != Shape{rows, row_bytes}) {
      return absl::InvalidArgumentError("encoded weight does not come from Allocate()");
    }
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = r0; r < r1; ++r) {
      RETURN_IF_ERROR(LoadRow(w, r, cols, row.data()));
      RETURN_IF_ERROR(
          QuantizeGgml(t, row.data(), 1, cols, p.importance, data->data() + r * row_bytes));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<float>> DecodeRef(const FormatParams& p, const EncodedWeight& e,
                                               int64_t rows, int64_t cols) const override {
    RETURN_IF_ERROR(Check(p, rows, cols));
    const GgmlType t = *GgmlFormatType(p);
    const Tensor* data = e.Find(kGgmlDataSuffix);
    const Shape want = {rows, *RowBytes(t, cols)};
    if (data == nullptr || data->dtype() != DType::kU8 || data->shape() != want) {
      return absl::InvalidArgumentError(
          absl::StrCat("part \"data\" must be U8 ", ShapeString(want)));
    }
    std::vector<float> out(static_cast<size_t>(rows * cols));
    RETURN_IF_ERROR(DequantizeGgml(t, data->data(), rows, cols, out.data()));
    return out;
  }
};

}  // namespace

FormatParams GgmlFormatParams(GgmlType type, const float* importance) {
  FormatParams p;
  p.extra[kGgmlTypeKey] = std::string(GgmlTypeName(type));
  p.importance = importance;
  return p;
}

absl::StatusOr<GgmlType> GgmlFormatType(const FormatParams& p) {
  auto it = p.extra.find(kGgmlTypeKey);
  if (it == p.extra.end()) {
    return absl::InvalidArgumentError("ggml format needs extra[\"type\"] (e.g. \"Q4_K\")");
  }
  ASSIGN_OR_RETURN(const GgmlType t, ParseGgmlType(it->second));
  if (!CanEncodeGgml(t)) {
    return absl::InvalidArgumentError(
        absl::StrCat("quantd cannot encode ggml type ", std::string(GgmlTypeName(t))));
  }
  return t;
}

const WeightFormat& GgmlFormat() {
  static const Ggml* format = new Ggml();
  return *format;
}

}  // namespace quantd
