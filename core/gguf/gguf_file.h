// GGUF files (version 3, little-endian), the container llama.cpp loads:
//
//   "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x      { string key | u32 value type | value }
//   n_tensors x { string name | u32 n_dims | n_dims x i64 ne | u32 ggml type | u64 offset }
//   zero padding to `alignment`, then the data section: each tensor's bytes at its offset
//   (relative to the data section's start, a multiple of `alignment`), zero padded to the
//   next multiple of `alignment`.
//
// A string is u64 length + bytes (no terminator). An array value is u32 element type +
// u64 count + elements. `alignment` is the u32 value of "general.alignment", 32 when absent.
//
// Shapes: GGUF stores ggml's `ne`, innermost dimension first: ne[0] is the number of elements
// of a row (contiguous), ne[1] the number of rows, ... A PyTorch / numpy weight of shape
// [out, in] is a GGUF tensor with ne = {in, out} (the numpy shape reversed), as gguf-py's
// writer does. Quantized types block along ne[0].
//
// Compatibility notes: llama.cpp's own reader (ggml/src/gguf.cpp) rejects nested arrays
// (arrays of arrays, which gguf-py and this code accept), tensor names of 64 bytes or more
// (both sides here reject them), duplicate keys or tensor names, and data not laid out
// tensor after tensor in info order with each padded to the alignment, which is how
// GgufWriter (gguf_writer.h) lays it out (the reader here accepts any aligned, non-overlapping
// layout).
#ifndef QUANTD_CORE_GGUF_GGUF_FILE_H_
#define QUANTD_CORE_GGUF_GGUF_FILE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/gguf/ggml_types.h"
#include "core/io/mapped_file.h"
#include "core/util/fs.h"

namespace quantd {

inline constexpr uint32_t kGgufVersion = 3;
inline constexpr uint32_t kGgufDefaultAlignment = 32;
inline constexpr char kGgufAlignmentKey[] = "general.alignment";
// ggml's GGML_MAX_DIMS and GGML_MAX_NAME (a name needs < 64 bytes).
inline constexpr size_t kGgufMaxDims = 4;
inline constexpr size_t kGgufMaxNameBytes = 63;
// Arrays nested deeper than this (an array of arrays is depth 2) are rejected.
inline constexpr int kGgufMaxArrayDepth = 8;

// Value type ids as GGUF stores them (gguf_type).
enum class GgufValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// "u8", "string", "array", ... ("?" for an id that is not a type).
std::string_view GgufValueTypeName(GgufValueType t);

// One metadata value: a scalar, a string, or an array of one element type
// (numbers, bools, strings, or arrays). Numeric arrays are held packed
// (little-endian bytes), so a value read from a file takes about as much
// memory as its bytes in the file. Copyable; compares by type and content
// (floats bitwise).
class GgufValue {
 public:
  // U8 0.
  GgufValue() = default;

  static GgufValue U8(uint8_t v);
  static GgufValue I8(int8_t v);
  static GgufValue U16(uint16_t v);
  static GgufValue I16(int16_t v);
  static GgufValue U32(uint32_t v);
  static GgufValue I32(int32_t v);
  static GgufValue F32(float v);
  static GgufValue Bool(bool v);
  static GgufValue String(std::string v);
  static GgufValue U64(uint64_t v);
  static GgufValue I64(int64_t v);
  static GgufValue F64(double v);

  // An array of scalars. T is one of uint8_t, int8_t, uint16_t, int16_t,
  // uint32_t, int32_t, float, bool, uint64_t, int64_t, double (each maps to
  // the GGUF type of its name).
  template <class T>
  static GgufValue Array(const std::vector<T>& items);
  static GgufValue StringArray(std::vector<std::string> items);
  // An array of arrays (each item must be an array). Not readable by
  // llama.cpp; gguf-py reads it.
  static GgufValue ArrayOfArrays(std::vector<GgufValue> items);
  // An empty array of `element_type`.
  static GgufValue EmptyArray(GgufValueType element_type);

  GgufValueType type() const { return type_; }
  bool is_array() const { return type_ == GgufValueType::kArray; }

  // Scalar access with exact type match: the value when type() is the GGUF
  // type of T (as for Array), else nullopt.
  template <class T>
  std::optional<T> Get() const;
  // The string, or nullptr when not a string.
  const std::string* GetString() const;
  // Any integer type (u8..i64) whose value fits the result; nullopt
  // otherwise (including bool and floats).
  std::optional<uint64_t> AsUint64() const;
  std::optional<int64_t> AsInt64() const;
  // F32 or F64 (F32 widened exactly); nullopt otherwise.
  std::optional<double> AsDouble() const;

  // Arrays (all 0 / nullopt / nullptr when not an array):
  GgufValueType array_type() const { return elem_type_; }
  size_t array_size() const;
  // The items when the element type is the GGUF type of T.
  template <class T>
  std::optional<std::vector<T>> GetArray() const;
  // The items of a string array, or nullptr.
  const std::vector<std::string>* GetStringArray() const;
  // The items of an array of arrays, or nullptr.
  const std::vector<GgufValue>* GetArrayOfArrays() const;
  // Item i (< array_size()) as a value of its own.
  GgufValue ArrayItem(size_t i) const;

  // Bytes of this value as GGUF encodes it, after the type id.
  uint64_t EncodedSize() const;
  // Appends that encoding to `out`.
  void Encode(std::string* out) const;
  // Array nesting depth: 0 for a scalar or string, 1 for an array of them.
  int Depth() const;

  friend bool operator==(const GgufValue& a, const GgufValue& b);
  friend bool operator!=(const GgufValue& a, const GgufValue& b) { return !(a == b); }

 private:
  friend class GgufValueReader;

  template <class T>
  static constexpr GgufValueType TypeOf();
  static size_t ScalarBytes(GgufValueType t);

  GgufValueType type_ = GgufValueType::kU8;
  uint64_t bits_ = 0;  // scalar payload: the value's bytes, little-endian
  std::string str_;    // kString
  // Arrays: element type, and items in exactly one of:
  GgufValueType elem_type_ = GgufValueType::kU8;
  std::string packed_;                // numeric and bool items, little-endian
  std::vector<std::string> strings_;  // string items
  std::vector<GgufValue> arrays_;     // array items
};

// One metadata entry.
struct GgufKv {
  std::string key;
  GgufValue value;
};

// A tensor of a file read.
struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::kF32;
  std::vector<int64_t> ne;
  uint64_t offset = 0;  // in the data section
  uint64_t nbytes = 0;  // TensorBytes(type, ne)
};

// A validated, memory-mapped GGUF file (version 2 or 3). Immutable after
// Open(); may be read from several threads.
class GgufFile {
 public:
  // Maps and validates the file at `path`. Errors of MappedFile::Open pass
  // through; every malformation is INVALID_ARGUMENT naming the path and
  // what is wrong: bad magic, an unsupported or byte-swapped version, a
  // count, string or array that runs past the end of the file, a key or
  // tensor name that is empty, duplicated or (names) over
  // kGgufMaxNameBytes, an unknown value type or ggml type, arrays nested
  // deeper than kGgufMaxArrayDepth, a "general.alignment" that is not a U32
  // power of two, more than kGgufMaxDims or zero dimensions, a negative
  // dimension, a row not a multiple of the type's block, sizes that
  // overflow, an offset not a multiple of the alignment, tensor data
  // beyond the end of the file or overlapping another tensor's. Memory held
  // is bounded by a small multiple of the file's header size.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::filesystem::path& path);

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  // Metadata in file order.
  const std::vector<GgufKv>& metadata() const { return metadata_; }
  // The value of `key`, or nullptr.
  const GgufValue* Find(std::string_view key) const;
  // Tensors in file (info) order.
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  // The tensor named `name`, or nullptr.
  const GgufTensor* FindTensor(std::string_view name) const;
  // The bytes of `t` (one of tensors()), t.nbytes long, borrowed from the
  // mapping (aligned to alignment() relative to the file start).
  const uint8_t* TensorData(const GgufTensor& t) const;
  // Where the data section starts in the file.
  uint64_t data_offset() const { return data_offset_; }
  const MappedFile& mapped() const { return *file_; }

 private:
  GgufFile() = default;

  std::unique_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<GgufKv> metadata_;
  std::map<std::string, size_t, std::less<>> key_index_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// ---------------------------------------------------------------------------
// Implementation of the templates.

template <class T>
constexpr GgufValueType GgufValue::TypeOf() {
  if constexpr (std::is_same_v<T, uint8_t>) return GgufValueType::kU8;
  if constexpr (std::is_same_v<T, int8_t>) return GgufValueType::kI8;
  if constexpr (std::is_same_v<T, uint16_t>) return GgufValueType::kU16;
  if constexpr (std::is_same_v<T, int16_t>) return GgufValueType::kI16;
  if constexpr (std::is_same_v<T, uint32_t>) return GgufValueType::kU32;
  if constexpr (std::is_same_v<T, int32_t>) return GgufValueType::kI32;
  if constexpr (std::is_same_v<T, float>) return GgufValueType::kF32;
  if constexpr (std::is_same_v<T, bool>) return GgufValueType::kBool;
  if constexpr (std::is_same_v<T, uint64_t>) return GgufValueType::kU64;
  if constexpr (std::is_same_v<T, int64_t>) return GgufValueType::kI64;
  if constexpr (std::is_same_v<T, double>) return GgufValueType::kF64;
}

template <class T>
GgufValue GgufValue::Array(const std::vector<T>& items) {
  constexpr GgufValueType kType = TypeOf<T>();
  static_assert(std::is_arithmetic_v<T>, "use StringArray or ArrayOfArrays");
  GgufValue v;
  v.type_ = GgufValueType::kArray;
  v.elem_type_ = kType;
  v.packed_.resize(items.size() * sizeof(T));
  for (size_t i = 0; i < items.size(); ++i) {
    if constexpr (std::is_same_v<T, bool>) {
      v.packed_[i] = items[i] ? 1 : 0;
    } else {
      std::memcpy(&v.packed_[i * sizeof(T)], &items[i], sizeof(T));
    }
  }
  return v;
}

template <class T>
std::optional<T> GgufValue::Get() const {
  static_assert(std::is_arithmetic_v<T>, "use GetString for strings");
  if (type_ != TypeOf<T>()) return std::nullopt;
  if constexpr (std::is_same_v<T, bool>) {
    return bits_ != 0;
  } else {
    T out;
    std::memcpy(&out, &bits_, sizeof(T));
    return out;
  }
}

template <class T>
std::optional<std::vector<T>> GgufValue::GetArray() const {
  static_assert(std::is_arithmetic_v<T>, "use GetStringArray for strings");
  if (type_ != GgufValueType::kArray || elem_type_ != TypeOf<T>()) return std::nullopt;
  const size_t n = packed_.size() / sizeof(T);
  std::vector<T> out(n);
  for (size_t i = 0; i < n; ++i) {
    if constexpr (std::is_same_v<T, bool>) {
      out[i] = packed_[i] != 0;
    } else {
      std::memcpy(&out[i], &packed_[i * sizeof(T)], sizeof(T));
    }
  }
  return out;
}

}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_GGUF_FILE_H_
