#include "core/formats/fp8.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/formats/fp8_cpu.h"
#include "core/tensor/float_bits.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace {

using fp8_cpu::Bf16Src;
using fp8_cpu::F16Src;
using fp8_cpu::F32Src;
using fp8_cpu::FirstNonFinite;
using fp8_cpu::MaxMagnitude;
using fp8_cpu::QuantizeRun;

using fp8::ScaleType;
using fp8::Strategy;

// Sizes derived from FormatParams for a [rows, cols] weight; valid only
// after Check().
struct Dims {
  Strategy strategy = Strategy::kChannel;
  int64_t rows = 0, cols = 0;
  int64_t block_rows = 0, block_cols = 0;  // blocks down and across (block strategy)
};

Dims MakeDims(Strategy s, int64_t rows, int64_t cols) {
  Dims d;
  d.strategy = s;
  d.rows = rows;
  d.cols = cols;
  d.block_rows = (rows + fp8::kBlockRows - 1) / fp8::kBlockRows;
  d.block_cols = (cols + fp8::kBlockCols - 1) / fp8::kBlockCols;
  return d;
}

absl::Status NonFiniteError(int64_t row, int64_t col) {
  return absl::InvalidArgumentError(
      absl::StrCat("non-finite value at row ", row, ", column ", col));
}

struct Outputs {
  uint8_t* codes = nullptr;
  uint8_t* scales = nullptr;  // scale_bytes per element
  int scale_bytes = 2;
};

void StoreScaleBits(const Outputs& o, int64_t index, uint32_t bits) {
  if (o.scale_bytes == 4) {
    std::memcpy(o.scales + 4 * index, &bits, 4);
  } else {
    const uint16_t h = static_cast<uint16_t>(bits);
    std::memcpy(o.scales + 2 * index, &h, 2);
  }
}

template <class Src>
absl::Status EncodeRowsPerRow(const Dims& d, ScaleType st, float tensor_scale,
                              const typename Src::Bits* w, int64_t r0, int64_t r1,
                              const Outputs& o) {
  for (int64_t r = r0; r < r1; ++r) {
    const typename Src::Bits* row = w + r * d.cols;
    const typename Src::Signed m = MaxMagnitude<Src>(row, d.cols);
    if (m >= Src::kNonFinite) return NonFiniteError(r, FirstNonFinite<Src>(row, d.cols));
    float scale = tensor_scale;
    if (d.strategy == Strategy::kChannel) {
      const fp8::StoredScale s =
          fp8::ScaleForAmax(Src::ToFloat(static_cast<typename Src::Bits>(m)), st);
      StoreScaleBits(o, r, s.bits);
      scale = s.value;
    }
    QuantizeRun<Src>(row, d.cols, scale, o.codes + r * d.cols);
  }
  return absl::OkStatus();
}

// Rows [r0, r1) are whole strips of kBlockRows rows (the last may be short).
template <class Src>
absl::Status EncodeRowsBlock(const Dims& d, ScaleType st, const typename Src::Bits* w, int64_t r0,
                             int64_t r1, const Outputs& o) {
  using S = typename Src::Signed;
  std::vector<S> amax(static_cast<size_t>(d.block_cols));
  std::vector<float> scale(static_cast<size_t>(d.block_cols));
  for (int64_t s0 = r0; s0 < r1; s0 += fp8::kBlockRows) {
    const int64_t s1 = std::min(r1, s0 + fp8::kBlockRows);
    std::fill(amax.begin(), amax.end(), S{0});
    S strip_max = 0;
    for (int64_t r = s0; r < s1; ++r) {
      for (int64_t b = 0; b < d.block_cols; ++b) {
        const int64_t c0 = b * fp8::kBlockCols;
        const S m = MaxMagnitude<Src>(w + r * d.cols + c0, std::min(fp8::kBlockCols, d.cols - c0));
        amax[b] = m > amax[b] ? m : amax[b];
        strip_max = m > strip_max ? m : strip_max;
      }
    }
    if (strip_max >= Src::kNonFinite) {
      // Name the first in row-major order, not the first block's.
      for (int64_t r = s0; r < s1; ++r) {
        const int64_t c = FirstNonFinite<Src>(w + r * d.cols, d.cols);
        if (c >= 0) return NonFiniteError(r, c);
      }
    }
    for (int64_t b = 0; b < d.block_cols; ++b) {
      const fp8::StoredScale s =
          fp8::ScaleForAmax(Src::ToFloat(static_cast<typename Src::Bits>(amax[b])), st);
      StoreScaleBits(o, (s0 / fp8::kBlockRows) * d.block_cols + b, s.bits);
      scale[b] = s.value;
    }
    for (int64_t r = s0; r < s1; ++r) {
      for (int64_t b = 0; b < d.block_cols; ++b) {
        const int64_t c0 = b * fp8::kBlockCols;
        QuantizeRun<Src>(w + r * d.cols + c0, std::min(fp8::kBlockCols, d.cols - c0), scale[b],
                         o.codes + r * d.cols + c0);
      }
    }
  }
  return absl::OkStatus();
}

template <class Src>
absl::Status EncodeRowsSrc(const Dims& d, ScaleType st, float tensor_scale, const uint8_t* data,
                           int64_t r0, int64_t r1, const Outputs& o) {
  const auto* w = reinterpret_cast<const typename Src::Bits*>(data);
  if (d.strategy == Strategy::kBlock) return EncodeRowsBlock<Src>(d, st, w, r0, r1, o);
  return EncodeRowsPerRow<Src>(d, st, tensor_scale, w, r0, r1, o);
}

// The first non-finite value of rows [r0, r1), as an error, or OK.
template <class Src>
absl::Status FindNonFinite(const Dims& d, const uint8_t* data, int64_t r0, int64_t r1) {
  const auto* w = reinterpret_cast<const typename Src::Bits*>(data);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t c = FirstNonFinite<Src>(w + r * d.cols, d.cols);
    if (c >= 0) return NonFiniteError(r, c);
  }
  return absl::OkStatus();
}

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

absl::Status CheckParts(const Dims& d, DType scale_dtype, const EncodedWeight& e) {
  RETURN_IF_ERROR(CheckPart(e, kFp8WeightSuffix, DType::kF8E4M3, {d.rows, d.cols}));
  return CheckPart(e, kFp8ScaleSuffix, scale_dtype, Fp8ScaleShape(d.strategy, d.rows, d.cols));
}

class Fp8 final : public WeightFormat {
 public:
  std::string_view name() const override { return "fp8"; }

  absl::Status Check(const FormatParams& p, int64_t rows, int64_t cols) const override {
    if (p.bits != 8) {
      return absl::InvalidArgumentError(absl::StrCat("bits ", p.bits, " is not 8 (FP8 E4M3)"));
    }
    if (p.group_size != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("group_size ", p.group_size, " is not 0 (fp8 groups by its strategy)"));
    }
    if (!p.symmetric) return absl::InvalidArgumentError("fp8 weights are symmetric only");
    if (rows < 1 || cols < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight shape [", rows, ", ", cols, "] has an empty dimension"));
    }
    if (cols > std::numeric_limits<int64_t>::max() / 4 / rows) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight shape [", rows, ", ", cols, "] is too large"));
    }
    RETURN_IF_ERROR(Fp8ScaleType(p.scale_dtype).status());
    for (const auto& [key, value] : p.extra) {
      if (key != kFp8StrategyKey && key != kFp8WholeBlocksKey) {
        return absl::InvalidArgumentError(absl::StrCat("fp8 has no setting \"", key, "\""));
      }
    }
    ASSIGN_OR_RETURN(const Strategy strategy, Fp8StrategyOf(p));
    const auto whole = p.extra.find(kFp8WholeBlocksKey);
    if (strategy == Strategy::kBlock && whole != p.extra.end() && whole->second == "1" &&
        (rows % fp8::kBlockRows != 0 || cols % fp8::kBlockCols != 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight shape [", rows, ", ", cols, "] is not a multiple of ",
                       fp8::kBlockRows, " x ", fp8::kBlockCols,
                       ": compressed-tensors cannot load a partial FP8 block; use "
                       "options.strategy channel or tensor"));
    }
    return absl::OkStatus();
  }

  int64_t RowGranularity(const FormatParams& p) const override {
    absl::StatusOr<Strategy> s = Fp8StrategyOf(p);
    return s.ok() && *s == Strategy::kBlock ? fp8::kBlockRows : 1;
  }

  bool NeedsTensorAmax(const FormatParams& p) const override {
    absl::StatusOr<Strategy> s = Fp8StrategyOf(p);
    return s.ok() && *s == Strategy::kTensor;
  }

  EncodedWeight Allocate(const FormatParams& p, int64_t rows, int64_t cols,
                         DType source) const override {
    EncodedWeight e;
    if (!Check(p, rows, cols).ok()) return e;  // Callers must Check() first.
    e.parts.push_back({kFp8WeightSuffix, Tensor::Allocate(DType::kF8E4M3, {rows, cols})});
    e.parts.push_back(
        {kFp8ScaleSuffix,
         Tensor::Allocate(p.scale_dtype, Fp8ScaleShape(*Fp8StrategyOf(p), rows, cols))});
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
    const int64_t gran = RowGranularity(p);
    if (r0 < 0 || r0 > r1 || r1 > rows || r0 % gran != 0 || (r1 % gran != 0 && r1 != rows)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "row range [", r0, ", ", r1, ") is not aligned to ", gran, " in ", rows, " rows"));
    }
    const Dims d = MakeDims(*Fp8StrategyOf(p), rows, cols);
    RETURN_IF_ERROR(CheckParts(d, p.scale_dtype, *out));
    ASSIGN_OR_RETURN(const ScaleType st, Fp8ScaleType(p.scale_dtype));
    Outputs o;
    o.codes = out->Find(kFp8WeightSuffix)->data();
    o.scales = out->Find(kFp8ScaleSuffix)->data();
    o.scale_bytes = static_cast<int>(DTypeSize(p.scale_dtype));
    float tensor_scale = 0.0f;
    if (d.strategy == Strategy::kTensor) {
      if (p.tensor_amax < 0.0f) {
        return absl::InvalidArgumentError("tensor_amax is unset (the tensor strategy needs it)");
      }
      if (!std::isfinite(p.tensor_amax)) {
        // Scan every row, not just this call's, so that each chunk of a
        // parallel encode reports the same (first) value.
        RETURN_IF_ERROR(FindNonFiniteIn(w, d, 0, rows));
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor_amax ", p.tensor_amax,
            " is not finite: a tensor sharing this one's scale (fused q/k/v or gate/up) holds "
            "a non-finite value"));
      }
      const fp8::StoredScale s = fp8::ScaleForAmax(p.tensor_amax, st);
      if (r0 == 0) StoreScaleBits(o, 0, s.bits);
      tensor_scale = s.value;
    }
    if (r0 == r1) return absl::OkStatus();
    switch (w.dtype) {
      case DType::kBF16:
        return EncodeRowsSrc<Bf16Src>(d, st, tensor_scale, w.data, r0, r1, o);
      case DType::kF16:
        return EncodeRowsSrc<F16Src>(d, st, tensor_scale, w.data, r0, r1, o);
      default:
        return EncodeRowsSrc<F32Src>(d, st, tensor_scale, w.data, r0, r1, o);
    }
  }

  absl::StatusOr<std::vector<float>> DecodeRef(const FormatParams& p, const EncodedWeight& e,
                                               int64_t rows, int64_t cols) const override {
    RETURN_IF_ERROR(Check(p, rows, cols));
    const Dims d = MakeDims(*Fp8StrategyOf(p), rows, cols);
    RETURN_IF_ERROR(CheckParts(d, p.scale_dtype, e));
    const uint8_t* codes = e.Find(kFp8WeightSuffix)->data();
    const TensorView scales = e.Find(kFp8ScaleSuffix)->view();
    std::vector<float> out(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        int64_t si = 0;  // tensor
        if (d.strategy == Strategy::kChannel) {
          si = r;
        } else if (d.strategy == Strategy::kBlock) {
          si = (r / fp8::kBlockRows) * d.block_cols + c / fp8::kBlockCols;
        }
        out[r * cols + c] = fp8::DecodeValue(codes[r * cols + c], LoadAsFloat(scales, si));
      }
    }
    return out;
  }

 private:
  static absl::Status FindNonFiniteIn(const TensorView& w, const Dims& d, int64_t r0, int64_t r1) {
    switch (w.dtype) {
      case DType::kBF16:
        return FindNonFinite<Bf16Src>(d, w.data, r0, r1);
      case DType::kF16:
        return FindNonFinite<F16Src>(d, w.data, r0, r1);
      default:
        return FindNonFinite<F32Src>(d, w.data, r0, r1);
    }
  }
};

}  // namespace

absl::StatusOr<Strategy> Fp8StrategyOf(const FormatParams& p) {
  auto it = p.extra.find(kFp8StrategyKey);
  if (it == p.extra.end() || it->second == "channel") return Strategy::kChannel;
  if (it->second == "tensor") return Strategy::kTensor;
  if (it->second == "block") return Strategy::kBlock;
  return absl::InvalidArgumentError(
      absl::StrCat("fp8 strategy \"", it->second, "\" is not one of tensor, channel, block"));
}

std::string_view Fp8StrategyName(Strategy s) {
  switch (s) {
    case Strategy::kTensor:
      return "tensor";
    case Strategy::kBlock:
      return "block";
    default:
      return "channel";
  }
}

absl::StatusOr<ScaleType> Fp8ScaleType(DType scale_dtype) {
  switch (scale_dtype) {
    case DType::kF32:
      return ScaleType::kF32;
    case DType::kF16:
      return ScaleType::kF16;
    case DType::kBF16:
      return ScaleType::kBF16;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "scale_dtype ", std::string(DTypeName(scale_dtype)), " is not F16, BF16 or F32"));
  }
}

Shape Fp8ScaleShape(Strategy s, int64_t rows, int64_t cols) {
  switch (s) {
    case Strategy::kTensor:
      return {1};
    case Strategy::kBlock:
      return {(rows + fp8::kBlockRows - 1) / fp8::kBlockRows,
              (cols + fp8::kBlockCols - 1) / fp8::kBlockCols};
    default:
      return {rows, 1};
  }
}

FormatParams Fp8Params(Strategy strategy, DType scale_dtype) {
  FormatParams p;
  p.bits = 8;
  p.group_size = 0;
  p.symmetric = true;
  p.scale_dtype = scale_dtype;
  p.extra[kFp8StrategyKey] = std::string(Fp8StrategyName(strategy));
  return p;
}

const WeightFormat& Fp8Format() {
  static const Fp8* format = new Fp8();
  return *format;
}

}  // namespace quantd
