#include "core/formats/nvfp4.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/tensor/float_bits.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace {

using nvfp4::kBlockSize;
using nvfp4::Layout;

// Packed bytes and block scales per row of a [rows, cols] weight.
struct Dims {
  int64_t rows = 0, cols = 0;
  int64_t packed_cols = 0;  // cols / 2
  int64_t blocks = 0;       // cols / 16
};

Dims MakeDims(int64_t rows, int64_t cols) { return Dims{rows, cols, cols / 2, cols / kBlockSize}; }

// 16 consecutive elements of a F32, F16 or BF16 row as float32 (exact).
void LoadBlock(DType dtype, const uint8_t* src, float (&x)[kBlockSize]) {
  switch (dtype) {
    case DType::kBF16: {
      uint16_t h[kBlockSize];
      std::memcpy(h, src, sizeof(h));
      for (int j = 0; j < kBlockSize; ++j) x[j] = Bf16ToFloat(h[j]);
      break;
    }
    case DType::kF16: {
      uint16_t h[kBlockSize];
      std::memcpy(h, src, sizeof(h));
      for (int j = 0; j < kBlockSize; ++j) x[j] = F16ToFloat(h[j]);
      break;
    }
    default:
      std::memcpy(x, src, sizeof(x));
      break;
  }
}

// Encodes one block: its scale byte and 8 packed bytes.
void EncodeBlock(const float (&x)[kBlockSize], float block_amax, float global, Layout layout,
                 uint8_t* scale, uint8_t* packed) {
  const nvfp4::BlockScale s = nvfp4::MakeBlockScale(block_amax, global, layout);
  *scale = static_cast<uint8_t>(s.code);
  // nvfp4::EncodeElement, written as straight loops that vectorise.
  float a[kBlockSize];
  for (int j = 0; j < kBlockSize; ++j) a[j] = std::fabs(x[j]) / s.divisor;
  uint32_t codes[kBlockSize];
  for (int j = 0; j < kBlockSize; ++j) {
    codes[j] = nvfp4::E2M1MagnitudeRef(a[j]) | (x[j] < 0.0f ? 8u : 0u);
  }
  for (int j = 0; j < kBlockSize / 2; ++j) {
    packed[j] = static_cast<uint8_t>(codes[2 * j] | (codes[2 * j + 1] << 4));
  }
}

// INVALID_ARGUMENT "non-finite value at row R, column C" for the first
// NaN or Inf of rows [r0, r1) of `w` (a valid view), or OK.
absl::Status FirstNonFinite(const TensorView& w, const Dims& d, int64_t r0, int64_t r1) {
  const size_t esize = DTypeSize(w.dtype);
  for (int64_t k = r0 * d.blocks; k < r1 * d.blocks; ++k) {
    float x[kBlockSize];
    LoadBlock(w.dtype, w.data + static_cast<size_t>(k) * kBlockSize * esize, x);
    for (int j = 0; j < kBlockSize; ++j) {
      if (!std::isfinite(x[j])) {
        return absl::InvalidArgumentError(absl::StrCat("non-finite value at row ", k / d.blocks,
                                                       ", column ",
                                                       (k % d.blocks) * kBlockSize + j));
      }
    }
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

Shape GlobalShape(Layout layout) {
  return layout == Layout::kCompressedTensors ? Shape{1} : Shape{};
}

absl::Status CheckParts(const Dims& d, Layout layout, const EncodedWeight& e) {
  const Nvfp4PartNames n = Nvfp4Parts(layout);
  RETURN_IF_ERROR(CheckPart(e, n.packed, DType::kU8, {d.rows, d.packed_cols}));
  RETURN_IF_ERROR(CheckPart(e, n.scale, DType::kF8E4M3, {d.rows, d.blocks}));
  return CheckPart(e, n.global, DType::kF32, GlobalShape(layout));
}

class Nvfp4 final : public WeightFormat {
 public:
  std::string_view name() const override { return "nvfp4"; }

  absl::Status Check(const FormatParams& p, int64_t rows, int64_t cols) const override {
    if (p.bits != 4) return absl::InvalidArgumentError(absl::StrCat("bits ", p.bits, " is not 4"));
    if (p.group_size != kBlockSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("group_size ", p.group_size, " is not ", kBlockSize, " (NVFP4 blocks)"));
    }
    if (!p.symmetric) return absl::InvalidArgumentError("NVFP4 is symmetric only");
    // An infinite tensor_amax (an Inf in the tensor or its fused group)
    // passes: EncodeRowsRef names the value.
    if (std::isnan(p.tensor_amax)) {
      return absl::InvalidArgumentError(absl::StrCat("tensor_amax ", p.tensor_amax, " is NaN"));
    }
    if (rows < 1 || cols < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight shape [", rows, ", ", cols, "] has an empty dimension"));
    }
    if (cols > std::numeric_limits<int64_t>::max() / 4 / rows) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight shape [", rows, ", ", cols, "] is too large"));
    }
    if (cols % kBlockSize != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cols ", cols, " is not a multiple of ", kBlockSize, " (NVFP4 block size)"));
    }
    return Nvfp4LayoutOf(p).status();
  }

  bool NeedsTensorAmax(const FormatParams& p) const override { return true; }

  EncodedWeight Allocate(const FormatParams& p, int64_t rows, int64_t cols,
                         DType source) const override {
    EncodedWeight e;
    if (!Check(p, rows, cols).ok()) return e;  // Callers must Check() first.
    const Layout layout = *Nvfp4LayoutOf(p);
    const Nvfp4PartNames n = Nvfp4Parts(layout);
    const Dims d = MakeDims(rows, cols);
    e.parts.push_back({n.packed, Tensor::Allocate(DType::kU8, {rows, d.packed_cols})});
    e.parts.push_back({n.scale, Tensor::Allocate(DType::kF8E4M3, {rows, d.blocks})});
    e.parts.push_back({n.global, Tensor::Allocate(DType::kF32, GlobalShape(layout))});
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
    const size_t esize = DTypeSize(w.dtype);
    if (w.data == nullptr || w.nbytes != static_cast<size_t>(rows * cols) * esize) {
      return absl::InvalidArgumentError(absl::StrCat("weight view holds ", w.nbytes,
                                                     " bytes, not those of ", ShapeString(w.shape),
                                                     " ", std::string(DTypeName(w.dtype))));
    }
    if (r0 < 0 || r0 > r1 || r1 > rows) {
      return absl::InvalidArgumentError(
          absl::StrCat("row range [", r0, ", ", r1, ") is not within ", rows, " rows"));
    }
    if (std::isinf(p.tensor_amax)) {
      // An Inf in this tensor or in one sharing its scale (the amax comes
      // from AbsMaxRef, which ignores NaN). Every row is scanned, so that
      // each chunk of a parallel encode reports the same (first) value.
      RETURN_IF_ERROR(FirstNonFinite(w, MakeDims(rows, cols), 0, rows));
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor_amax ", p.tensor_amax,
          " is not finite: a tensor sharing this one's scale (fused q/k/v or gate/up) holds a "
          "non-finite value"));
    }
    ASSIGN_OR_RETURN(const float global, Nvfp4GlobalScale(p));
    const Layout layout = *Nvfp4LayoutOf(p);
    const Dims d = MakeDims(rows, cols);
    RETURN_IF_ERROR(CheckParts(d, layout, *out));
    const Nvfp4PartNames n = Nvfp4Parts(layout);
    if (r0 == 0) std::memcpy(out->Find(n.global)->data(), &global, sizeof(global));
    uint8_t* packed = out->Find(n.packed)->data();
    uint8_t* scales = out->Find(n.scale)->data();
    // With cols % 16 == 0 the blocks of the weight are consecutive: block k
    // is elements [16k, 16k + 16), packed bytes [8k, 8k + 8), scale byte k.
    for (int64_t k = r0 * d.blocks; k < r1 * d.blocks; ++k) {
      float x[kBlockSize];
      LoadBlock(w.dtype, w.data + static_cast<size_t>(k) * kBlockSize * esize, x);
      uint32_t mag = 0;
      for (int j = 0; j < kBlockSize; ++j) {
        const uint32_t m = FloatToBits(x[j]) & 0x7fffffffu;
        mag = m > mag ? m : mag;
      }
      if (mag >= 0x7f800000u) {  // Inf or NaN: report the first
        return FirstNonFinite(w, d, k / d.blocks, k / d.blocks + 1);
      }
      EncodeBlock(x, BitsToFloat(mag), global, layout, scales + k, packed + k * (kBlockSize / 2));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<float>> DecodeRef(const FormatParams& p, const EncodedWeight& e,
                                               int64_t rows, int64_t cols) const override {
    RETURN_IF_ERROR(Check(p, rows, cols));
    const Layout layout = *Nvfp4LayoutOf(p);
    const Dims d = MakeDims(rows, cols);
    RETURN_IF_ERROR(CheckParts(d, layout, e));
    const Nvfp4PartNames n = Nvfp4Parts(layout);
    float global;
    std::memcpy(&global, e.Find(n.global)->data(), sizeof(global));
    const uint8_t* packed = e.Find(n.packed)->data();
    const uint8_t* scales = e.Find(n.scale)->data();
    std::vector<float> out(static_cast<size_t>(rows * cols));
    for (int64_t k = 0; k < rows * d.blocks; ++k) {
      const float divisor = nvfp4::BlockDivisor(scales[k], global, layout);
      for (int j = 0; j < kBlockSize; ++j) {
        const uint32_t byte = packed[k * (kBlockSize / 2) + j / 2];
        const uint32_t code = (j % 2 == 0 ? byte : byte >> 4) & 0xfu;
        out[static_cast<size_t>(k * kBlockSize + j)] = nvfp4::E2M1ToFloat(code) * divisor;
      }
    }
    return out;
  }
};

}  // namespace

absl::StatusOr<nvfp4::Layout> Nvfp4LayoutOf(const FormatParams& p) {
  nvfp4::Layout layout = nvfp4::Layout::kCompressedTensors;
  for (const auto& [key, value] : p.extra) {
    if (key != kNvfp4LayoutKey) {
      return absl::InvalidArgumentError(absl::StrCat("nvfp4 has no setting \"", key, "\""));
    }
    if (value == kNvfp4LayoutModelOpt) {
      layout = nvfp4::Layout::kModelOpt;
    } else if (value != kNvfp4LayoutCompressedTensors) {
      return absl::InvalidArgumentError(absl::StrCat("nvfp4 layout \"", value, "\" is not \"",
                                                     kNvfp4LayoutCompressedTensors, "\" or \"",
                                                     kNvfp4LayoutModelOpt, "\""));
    }
  }
  return layout;
}

Nvfp4PartNames Nvfp4Parts(nvfp4::Layout layout) {
  if (layout == nvfp4::Layout::kModelOpt) return {"weight", "weight_scale", "weight_scale_2"};
  return {"weight_packed", "weight_scale", "weight_global_scale"};
}

absl::StatusOr<float> Nvfp4GlobalScale(const FormatParams& p) {
  if (!(p.tensor_amax >= 0.0f) || std::isinf(p.tensor_amax)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor_amax ", p.tensor_amax,
                     " is unset or not finite (NVFP4 needs max |x| over the tensor or its "
                     "fused group)"));
  }
  ASSIGN_OR_RETURN(const nvfp4::Layout layout, Nvfp4LayoutOf(p));
  return nvfp4::GlobalScale(p.tensor_amax, layout);
}

const WeightFormat& Nvfp4Format() {
  static const Nvfp4* format = new Nvfp4();
  return *format;
}

}  // namespace quantd
