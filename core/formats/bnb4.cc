#include "core/formats/bnb4.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/tensor/float_bits.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace quantd {
namespace {

using bnb4::QuantType;

// Sources read as float32 (exact). F16 without F16ToFloat's subnormal loop:
// a subnormal half is an integer times 2^-24.
inline float LoadF16(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t em = h & 0x7fffu;
  uint32_t bits = (em << 13) + 0x38000000u;
  bits += em >= 0x7c00u ? 0x38000000u : 0u;  // Inf/NaN -> exponent 255
  const float sub = static_cast<float>(static_cast<int32_t>(em)) * 5.9604644775390625e-08f;
  const float f = em < 0x0400u ? sub : BitsToFloat(bits);
  return BitsToFloat(FloatToBits(f) | sign);
}

// Converts elements [e0, e0 + len) of `w` to float32.
void LoadRange(const TensorView& w, int64_t e0, int64_t len, float* out) {
  switch (w.dtype) {
    case DType::kBF16: {
      const uint16_t* s = w.as<uint16_t>() + e0;
      for (int64_t i = 0; i < len; ++i) out[i] = Bf16ToFloat(s[i]);
      break;
    }
    case DType::kF16: {
      const uint16_t* s = w.as<uint16_t>() + e0;
      for (int64_t i = 0; i < len; ++i) out[i] = LoadF16(s[i]);
      break;
    }
    default:
      std::memcpy(out, w.as<float>() + e0, static_cast<size_t>(len) * sizeof(float));
      break;
  }
}

absl::Status CheckPart(const EncodedWeight& e, const std::string& suffix, DType dtype,
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

// Every part but the quant_state JSON, whose length DecodeRef does not know.
absl::Status CheckParts(const Bnb4Dims& d, const EncodedWeight& e) {
  RETURN_IF_ERROR(CheckPart(e, kBnbWeightSuffix, DType::kU8, {d.packed_bytes, 1}));
  RETURN_IF_ERROR(
      CheckPart(e, kBnbAbsmaxSuffix, d.double_quant ? DType::kU8 : DType::kF32, {d.blocks}));
  RETURN_IF_ERROR(CheckPart(e, kBnbQuantMapSuffix, DType::kF32, {16}));
  if (d.double_quant) {
    RETURN_IF_ERROR(CheckPart(e, kBnbNestedAbsmaxSuffix, DType::kF32, {d.nested_blocks}));
    RETURN_IF_ERROR(CheckPart(e, kBnbNestedQuantMapSuffix, DType::kF32, {256}));
  }
  const Tensor* js = e.Find(BnbQuantStateSuffix(d.type));
  if (js == nullptr || js->dtype() != DType::kU8 || js->shape().size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("missing U8 part ", BnbQuantStateSuffix(d.type)));
  }
  return absl::OkStatus();
}

// The float32 block absmax that EncodeRowsRef writes: the absmax part, or
// with double quantization the scratch tensor (checked).
absl::StatusOr<float*> FloatAbsmax(const Bnb4Dims& d, EncodedWeight* e) {
  if (!d.double_quant) return e->Find(kBnbAbsmaxSuffix)->as<float>();
  Tensor* t = e->FindScratch(kBnbFloatAbsmaxScratch);
  if (t == nullptr || t->dtype() != DType::kF32 || t->shape() != Shape{d.blocks}) {
    return absl::InvalidArgumentError(absl::StrCat("missing F32 scratch ", kBnbFloatAbsmaxScratch,
                                                   " [", d.blocks, "] (double quantization)"));
  }
  return t->as<float>();
}

// Writes `json` into the quant_state part, padded with spaces.
void WriteJson(const std::string& json, Tensor* t) {
  const size_t n = t->nbytes();
  std::memset(t->data(), ' ', n);
  std::memcpy(t->data(), json.data(), std::min(n, json.size()));
}

// Replaces the value of "nested_offset" (the last key) in the quant_state
// part written by WriteJson with `offset`'s repr, keeping the rest (which
// names the source dtype, known to Allocate and EncodeRowsRef only).
absl::Status WriteNestedOffset(float offset, Tensor* t) {
  constexpr std::string_view kKey = "\"nested_offset\": ";
  const std::string_view text(reinterpret_cast<const char*>(t->data()), t->nbytes());
  const size_t at = text.rfind(kKey);
  if (at == std::string_view::npos) {
    return absl::InternalError("quant_state JSON has no nested_offset");
  }
  const std::string tail = PythonFloatRepr(static_cast<double>(offset)) + "}";
  const size_t begin = at + kKey.size();
  if (begin + tail.size() > t->nbytes()) return absl::InternalError("quant_state part too short");
  std::memset(t->data() + begin, ' ', t->nbytes() - begin);
  std::memcpy(t->data() + begin, tail.data(), tail.size());
  return absl::OkStatus();
}

class Bnb4 final : public WeightFormat {
 public:
  std::string_view name() const override { return "bnb4"; }

  absl::Status Check(const FormatParams& p, int64_t rows, int64_t cols) const override {
    return MakeBnb4Dims(p, rows, cols).status();
  }

  int64_t RowGranularity(const FormatParams& p) const override {
    absl::StatusOr<Bnb4Dims> d = MakeBnb4Dims(p, 1, 1);
    if (!d.ok()) return 1;
    // Without cols, blocksize rows is the smallest count that always starts
    // a chunk on a block boundary (blocksize / gcd(cols, blocksize) would do).
    return d->blocksize;
  }

  EncodedWeight Allocate(const FormatParams& p, int64_t rows, int64_t cols,
                         DType source) const override {
    EncodedWeight e;
    absl::StatusOr<Bnb4Dims> dims = MakeBnb4Dims(p, rows, cols);
    if (!dims.ok()) return e;  // Callers must Check() first.
    const Bnb4Dims& d = *dims;
    e.parts.push_back({kBnbWeightSuffix, Tensor::Allocate(DType::kU8, {d.packed_bytes, 1})});
    e.parts.push_back({kBnbAbsmaxSuffix,
                       Tensor::Allocate(d.double_quant ? DType::kU8 : DType::kF32, {d.blocks})});
    e.parts.push_back({kBnbQuantMapSuffix, Tensor::Allocate(DType::kF32, {16})});
    if (d.double_quant) {
      e.parts.push_back({kBnbNestedAbsmaxSuffix, Tensor::Allocate(DType::kF32, {d.nested_blocks})});
      e.parts.push_back({kBnbNestedQuantMapSuffix, Tensor::Allocate(DType::kF32, {256})});
    }
    e.parts.push_back({BnbQuantStateSuffix(d.type),
                       Tensor::Allocate(DType::kU8, {Bnb4QuantStateCapacity(d, source)})});
    if (d.double_quant) {
      e.scratch.push_back({kBnbFloatAbsmaxScratch, Tensor::Allocate(DType::kF32, {d.blocks})});
    }
    // The JSON depends on nothing but the shape and the source dtype (and
    // the nested offset, which FinalizeRef fills in), so every path (a
    // device kernel too) gets it here; EncodeRowsRef writes the same bytes
    // again.
    WriteJson(Bnb4QuantStateJson(d, source, 0.0f), e.Find(BnbQuantStateSuffix(d.type)));
    return e;
  }

  absl::Status EncodeRowsRef(const FormatParams& p, const TensorView& w, int64_t r0, int64_t r1,
                             EncodedWeight* out) const override {
    if (w.shape.size() != 2) {
      return absl::InvalidArgumentError("weight must be 2-D, got " + ShapeString(w.shape));
    }
    const int64_t rows = w.shape[0], cols = w.shape[1];
    ASSIGN_OR_RETURN(const Bnb4Dims d, MakeBnb4Dims(p, rows, cols));
    if (!IsFloatWeightType(w.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weight dtype ", std::string(DTypeName(w.dtype)), " is not F16, BF16 or F32"));
    }
    if (w.data == nullptr || w.nbytes != static_cast<size_t>(d.numel) * DTypeSize(w.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat("weight view holds ", w.nbytes,
                                                     " bytes, not those of ", ShapeString(w.shape),
                                                     " ", std::string(DTypeName(w.dtype))));
    }
    const bool aligned = r0 >= 0 && r0 <= r1 && r1 <= rows && (r0 * cols) % d.blocksize == 0 &&
                         (r1 == rows || (r1 * cols) % d.blocksize == 0);
    if (!aligned) {
      return absl::InvalidArgumentError(
          absl::StrCat("row range [", r0, ", ", r1, ") of ", rows, " x ", cols,
                       " does not start and end on a block of ", d.blocksize));
    }
    RETURN_IF_ERROR(CheckParts(d, *out));
    ASSIGN_OR_RETURN(float* const absmax_out, FloatAbsmax(d, out));
    if (r0 == r1) return absl::OkStatus();
    const int64_t e0 = r0 * cols, e1 = r1 * cols;
    const int64_t b0 = e0 / d.blocksize, b1 = (e1 + d.blocksize - 1) / d.blocksize;
    uint8_t* packed = out->Find(kBnbWeightSuffix)->data();
    std::vector<float> absmax(static_cast<size_t>(b1 - b0));
    std::vector<float> x(static_cast<size_t>(d.blocksize) + 1);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t first = b * d.blocksize;
      const int64_t len = std::min(d.blocksize, d.numel - first);
      LoadRange(w, first, len, x.data());
      float m = 0.0f;
      bool finite = true;
      for (int64_t i = 0; i < len; ++i) {
        finite &= std::isfinite(x[i]);
        m = std::max(m, bnb4::AbsForMax(x[i]));
      }
      if (!finite) {
        for (int64_t i = 0; i < len; ++i) {
          if (!std::isfinite(x[i])) {
            return absl::InvalidArgumentError(absl::StrCat(
                "non-finite value at row ", (first + i) / cols, ", column ", (first + i) % cols));
          }
        }
      }
      absmax[b - b0] = m;
      x[len] = 0.0f;  // bitsandbytes pads an odd count with +0.0
      const float r = bnb4::BlockFactor(m);
      for (int64_t i = 0; i < len; i += 2) {
        packed[(first + i) / 2] = static_cast<uint8_t>(
            bnb4::PackPair(bnb4::Code(x[i], r, d.type), bnb4::Code(x[i + 1], r, d.type)));
      }
    }
    std::memcpy(absmax_out + b0, absmax.data(), absmax.size() * sizeof(float));
    // The JSON names the source dtype, which this call sees for sure.
    if (r0 == 0) {
      WriteJson(Bnb4QuantStateJson(d, w.dtype, 0.0f), out->Find(BnbQuantStateSuffix(d.type)));
    }
    return absl::OkStatus();
  }

  absl::Status FinalizeRef(const FormatParams& p, int64_t rows, int64_t cols,
                           EncodedWeight* out) const override {
    ASSIGN_OR_RETURN(const Bnb4Dims d, MakeBnb4Dims(p, rows, cols));
    RETURN_IF_ERROR(CheckParts(d, *out));
    float* map = out->Find(kBnbQuantMapSuffix)->as<float>();
    for (uint32_t c = 0; c < 16; ++c) map[c] = bnb4::CodeValue(c, d.type);
    if (!d.double_quant) return absl::OkStatus();
    // Double quantization of every block's float32 absmax (the scratch).
    ASSIGN_OR_RETURN(const float* const absmax, FloatAbsmax(d, out));
    const Bnb4DoubleQuant q = Bnb4DoubleQuantize(std::vector<float>(absmax, absmax + d.blocks));
    std::memcpy(out->Find(kBnbAbsmaxSuffix)->data(), q.codes.data(), q.codes.size());
    std::memcpy(out->Find(kBnbNestedAbsmaxSuffix)->data(), q.nested_absmax.data(),
                q.nested_absmax.size() * sizeof(float));
    std::memcpy(out->Find(kBnbNestedQuantMapSuffix)->data(), BnbDynamicMap(), 256 * sizeof(float));
    return WriteNestedOffset(q.offset, out->Find(BnbQuantStateSuffix(d.type)));
  }

  absl::StatusOr<std::vector<float>> DecodeRef(const FormatParams& p, const EncodedWeight& e,
                                               int64_t rows, int64_t cols) const override {
    ASSIGN_OR_RETURN(const Bnb4Dims d, MakeBnb4Dims(p, rows, cols));
    RETURN_IF_ERROR(CheckParts(d, e));
    const Tensor& js = *e.Find(BnbQuantStateSuffix(d.type));
    const nlohmann::json state = nlohmann::json::parse(js.data(), js.data() + js.nbytes(), nullptr,
                                                       /*allow_exceptions=*/false);
    if (state.is_discarded() || !state.is_object()) {
      return absl::InvalidArgumentError("quant_state is not a JSON object");
    }
    std::vector<float> block_absmax(static_cast<size_t>(d.blocks));
    if (d.double_quant) {
      auto it = state.find("nested_offset");
      if (it == state.end() || !it->is_number()) {
        return absl::InvalidArgumentError("quant_state has no nested_offset");
      }
      // bitsandbytes: torch.tensor(float(offset)) (float32), then
      // code[q] * nested_absmax + offset in float32.
      const float offset = static_cast<float>(it->get<double>());
      const uint8_t* q = e.Find(kBnbAbsmaxSuffix)->data();
      const float* nested = e.Find(kBnbNestedAbsmaxSuffix)->as<float>();
      const float* code = e.Find(kBnbNestedQuantMapSuffix)->as<float>();
      for (int64_t b = 0; b < d.blocks; ++b) {
        const float v = code[q[b]] * nested[b / bnb4::kNestedBlockSize];
        block_absmax[b] = v + offset;
      }
    } else {
      std::memcpy(block_absmax.data(), e.Find(kBnbAbsmaxSuffix)->data(),
                  block_absmax.size() * sizeof(float));
    }
    const uint8_t* packed = e.Find(kBnbWeightSuffix)->data();
    const float* map = e.Find(kBnbQuantMapSuffix)->as<float>();
    std::vector<float> out(static_cast<size_t>(d.numel));
    for (int64_t i = 0; i < d.numel; ++i) {
      const uint32_t byte = packed[i / 2];
      const uint32_t c = i % 2 == 0 ? byte >> 4 : byte & 15u;
      out[i] = map[c] * block_absmax[i / d.blocksize];
    }
    return out;
  }
};

}  // namespace

absl::StatusOr<Bnb4Dims> MakeBnb4Dims(const FormatParams& p, int64_t rows, int64_t cols) {
  Bnb4Dims d;
  if (rows < 1 || cols < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight shape [", rows, ", ", cols, "] has an empty dimension"));
  }
  if (cols > bnb4::kMaxElements / rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight shape [", rows, ", ", cols,
                     "] has more than 2^31 - 1 elements (bitsandbytes' "
                     "kernels index with a C int)"));
  }
  d.rows = rows;
  d.cols = cols;
  d.numel = rows * cols;
  d.blocksize = p.group_size == 0 ? 64 : p.group_size;
  if (d.blocksize < bnb4::kMinBlockSize || d.blocksize > bnb4::kMaxBlockSize ||
      (d.blocksize & (d.blocksize - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("group_size (blocksize) ", p.group_size,
                                                   " is not a power of two in [32, 4096]"));
  }
  bool have_type = false;
  for (const auto& [key, value] : p.extra) {
    if (key == "quant_type") {
      if (value != "nf4" && value != "fp4") {
        return absl::InvalidArgumentError(
            absl::StrCat("quant_type \"", value, "\" is not \"nf4\" or \"fp4\""));
      }
      d.type = value == "nf4" ? QuantType::kNf4 : QuantType::kFp4;
      have_type = true;
    } else if (key == "double_quant") {
      if (value != "0" && value != "1") {
        return absl::InvalidArgumentError(
            absl::StrCat("double_quant \"", value, "\" is not \"0\" or \"1\""));
      }
      d.double_quant = value == "1";
    } else if (key == "compute_dtype") {
      if (value != "bfloat16" && value != "float16" && value != "float32") {
        return absl::InvalidArgumentError(absl::StrCat(
            "compute_dtype \"", value, "\" is not \"bfloat16\", \"float16\" or \"float32\""));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("bnb4 has no setting \"", key, "\""));
    }
  }
  if (!have_type) return absl::InvalidArgumentError("bnb4 needs quant_type \"nf4\" or \"fp4\"");
  d.blocks = (d.numel + d.blocksize - 1) / d.blocksize;
  d.packed_bytes = (d.numel + 1) / 2;
  d.nested_blocks =
      d.double_quant ? (d.blocks + bnb4::kNestedBlockSize - 1) / bnb4::kNestedBlockSize : 0;
  return d;
}

const WeightFormat& Bnb4Format() {
  static const Bnb4* format = new Bnb4();
  return *format;
}

}  // namespace quantd
