// Element types of stored tensors, named as safetensors names them.
#ifndef QUANTD_CORE_TENSOR_DTYPE_H_
#define QUANTD_CORE_TENSOR_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"

namespace quantd {

enum class DType : uint8_t {
  kBool,
  kU8,
  kI8,
  kU16,
  kI16,
  kU32,
  kI32,
  kU64,
  kI64,
  kF16,
  kBF16,
  kF32,
  kF64,
  kF8E4M3,
  kF8E5M2,
};

// Bytes per element (all types here are whole bytes).
size_t DTypeSize(DType t);
// The safetensors name: "F32", "BF16", "F8_E4M3", ...
std::string_view DTypeName(DType t);
// Parses a safetensors dtype name; INVALID_ARGUMENT for an unknown name.
absl::StatusOr<DType> ParseDType(std::string_view name);
// True for F16, BF16 and F32: the types model weights are read from.
bool IsFloatWeightType(DType t);

}  // namespace quantd

#endif  // QUANTD_CORE_TENSOR_DTYPE_H_
