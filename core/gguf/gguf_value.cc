// GgufValue (declared in gguf_file.h): construction, access, encoding.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "core/gguf/gguf_file.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "GGUF values are little-endian; this code copies them with host byte order"
#endif

namespace quantd {
namespace {

void AppendU32(std::string* out, uint32_t v) { out->append(reinterpret_cast<const char*>(&v), 4); }
void AppendU64(std::string* out, uint64_t v) { out->append(reinterpret_cast<const char*>(&v), 8); }

}  // namespace

std::string_view GgufValueTypeName(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8:
      return "u8";
    case GgufValueType::kI8:
      return "i8";
    case GgufValueType::kU16:
      return "u16";
    case GgufValueType::kI16:
      return "i16";
    case GgufValueType::kU32:
      return "u32";
    case GgufValueType::kI32:
      return "i32";
    case GgufValueType::kF32:
      return "f32";
    case GgufValueType::kBool:
      return "bool";
    case GgufValueType::kString:
      return "string";
    case GgufValueType::kArray:
      return "array";
    case GgufValueType::kU64:
      return "u64";
    case GgufValueType::kI64:
      return "i64";
    case GgufValueType::kF64:
      return "f64";
  }
  return "?";
}

size_t GgufValue::ScalarBytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8:
    case GgufValueType::kI8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kU16:
    case GgufValueType::kI16:
      return 2;
    case GgufValueType::kU32:
    case GgufValueType::kI32:
    case GgufValueType::kF32:
      return 4;
    case GgufValueType::kU64:
    case GgufValueType::kI64:
    case GgufValueType::kF64:
      return 8;
    default:
      return 0;  // string, array
  }
}

#define QUANTD_GGUF_SCALAR(Name, CType, Enum) \
  GgufValue GgufValue::Name(CType v) {        \
    GgufValue out;                            \
    out.type_ = GgufValueType::Enum;          \
    std::memcpy(&out.bits_, &v, sizeof(v));   \
    return out;                               \
  }
QUANTD_GGUF_SCALAR(U8, uint8_t, kU8)
QUANTD_GGUF_SCALAR(I8, int8_t, kI8)
QUANTD_GGUF_SCALAR(U16, uint16_t, kU16)
QUANTD_GGUF_SCALAR(I16, int16_t, kI16)
QUANTD_GGUF_SCALAR(U32, uint32_t, kU32)
QUANTD_GGUF_SCALAR(I32, int32_t, kI32)
QUANTD_GGUF_SCALAR(F32, float, kF32)
QUANTD_GGUF_SCALAR(U64, uint64_t, kU64)
QUANTD_GGUF_SCALAR(I64, int64_t, kI64)
QUANTD_GGUF_SCALAR(F64, double, kF64)
#undef QUANTD_GGUF_SCALAR

GgufValue GgufValue::Bool(bool v) {
  GgufValue out;
  out.type_ = GgufValueType::kBool;
  out.bits_ = v ? 1 : 0;
  return out;
}

GgufValue GgufValue::String(std::string v) {
  GgufValue out;
  out.type_ = GgufValueType::kString;
  out.str_ = std::move(v);
  return out;
}

GgufValue GgufValue::StringArray(std::vector<std::string> items) {
  GgufValue out;
  out.type_ = GgufValueType::kArray;
  out.elem_type_ = GgufValueType::kString;
  out.strings_ = std::move(items);
  return out;
}

GgufValue GgufValue::ArrayOfArrays(std::vector<GgufValue> items) {
  GgufValue out;
  out.type_ = GgufValueType::kArray;
  out.elem_type_ = GgufValueType::kArray;
  out.arrays_ = std::move(items);
  return out;
}

GgufValue GgufValue::EmptyArray(GgufValueType element_type) {
  GgufValue out;
  out.type_ = GgufValueType::kArray;
  out.elem_type_ = element_type;
  return out;
}

const std::string* GgufValue::GetString() const {
  return type_ == GgufValueType::kString ? &str_ : nullptr;
}

std::optional<uint64_t> GgufValue::AsUint64() const {
  switch (type_) {
    case GgufValueType::kU8:
    case GgufValueType::kU16:
    case GgufValueType::kU32:
    case GgufValueType::kU64:
      return bits_;  // zero-extended by construction
    case GgufValueType::kI8:
    case GgufValueType::kI16:
    case GgufValueType::kI32:
    case GgufValueType::kI64: {
      const std::optional<int64_t> v = AsInt64();
      if (!v || *v < 0) return std::nullopt;
      return static_cast<uint64_t>(*v);
    }
    default:
      return std::nullopt;
  }
}

std::optional<int64_t> GgufValue::AsInt64() const {
  switch (type_) {
    case GgufValueType::kI8:
      return *Get<int8_t>();
    case GgufValueType::kI16:
      return *Get<int16_t>();
    case GgufValueType::kI32:
      return *Get<int32_t>();
    case GgufValueType::kI64:
      return *Get<int64_t>();
    case GgufValueType::kU8:
    case GgufValueType::kU16:
    case GgufValueType::kU32:
    case GgufValueType::kU64:
      if (bits_ > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
      return static_cast<int64_t>(bits_);
    default:
      return std::nullopt;
  }
}

std::optional<double> GgufValue::AsDouble() const {
  if (type_ == GgufValueType::kF32) return static_cast<double>(*Get<float>());
  if (type_ == GgufValueType::kF64) return *Get<double>();
  return std::nullopt;
}

size_t GgufValue::array_size() const {
  if (type_ != GgufValueType::kArray) return 0;
  if (elem_type_ == GgufValueType::kString) return strings_.size();
  if (elem_type_ == GgufValueType::kArray) return arrays_.size();
  const size_t b = ScalarBytes(elem_type_);
  return b == 0 ? 0 : packed_.size() / b;
}

const std::vector<std::string>* GgufValue::GetStringArray() const {
  return type_ == GgufValueType::kArray && elem_type_ == GgufValueType::kString ? &strings_
                                                                                : nullptr;
}

const std::vector<GgufValue>* GgufValue::GetArrayOfArrays() const {
  return type_ == GgufValueType::kArray && elem_type_ == GgufValueType::kArray ? &arrays_ : nullptr;
}

GgufValue GgufValue::ArrayItem(size_t i) const {
  if (i >= array_size()) return GgufValue();
  if (elem_type_ == GgufValueType::kString) return String(strings_[i]);
  if (elem_type_ == GgufValueType::kArray) return arrays_[i];
  GgufValue out;
  out.type_ = elem_type_;
  const size_t b = ScalarBytes(elem_type_);
  std::memcpy(&out.bits_, packed_.data() + i * b, b);
  return out;
}

uint64_t GgufValue::EncodedSize() const {
  switch (type_) {
    case GgufValueType::kString:
      return 8 + str_.size();
    case GgufValueType::kArray: {
      uint64_t n = 4 + 8;
      if (elem_type_ == GgufValueType::kString) {
        for (const std::string& s : strings_) n += 8 + s.size();
      } else if (elem_type_ == GgufValueType::kArray) {
        for (const GgufValue& v : arrays_) n += v.EncodedSize();
      } else {
        n += packed_.size();
      }
      return n;
    }
    default:
      return ScalarBytes(type_);
  }
}

void GgufValue::Encode(std::string* out) const {
  switch (type_) {
    case GgufValueType::kString:
      AppendU64(out, str_.size());
      out->append(str_);
      return;
    case GgufValueType::kArray:
      AppendU32(out, static_cast<uint32_t>(elem_type_));
      AppendU64(out, array_size());
      if (elem_type_ == GgufValueType::kString) {
        for (const std::string& s : strings_) {
          AppendU64(out, s.size());
          out->append(s);
        }
      } else if (elem_type_ == GgufValueType::kArray) {
        for (const GgufValue& v : arrays_) v.Encode(out);
      } else {
        out->append(packed_);
      }
      return;
    default:
      out->append(reinterpret_cast<const char*>(&bits_), ScalarBytes(type_));
      return;
  }
}

int GgufValue::Depth() const {
  if (type_ != GgufValueType::kArray) return 0;
  int d = 0;
  for (const GgufValue& v : arrays_) d = std::max(d, v.Depth());
  return 1 + d;
}

bool operator==(const GgufValue& a, const GgufValue& b) {
  if (a.type_ != b.type_) return false;
  switch (a.type_) {
    case GgufValueType::kString:
      return a.str_ == b.str_;
    case GgufValueType::kArray:
      return a.elem_type_ == b.elem_type_ && a.packed_ == b.packed_ && a.strings_ == b.strings_ &&
             a.arrays_ == b.arrays_;
    default:
      return a.bits_ == b.bits_;
  }
}

}  // namespace quantd
