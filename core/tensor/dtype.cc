#include "core/tensor/dtype.h"

#include <array>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace quantd {
namespace {

struct DTypeInfo {
  DType type;
  std::string_view name;
  size_t size;
};

constexpr std::array<DTypeInfo, 15> kDTypes = {{
    {DType::kBool, "BOOL", 1},
    {DType::kU8, "U8", 1},
    {DType::kI8, "I8", 1},
    {DType::kU16, "U16", 2},
    {DType::kI16, "I16", 2},
    {DType::kU32, "U32", 4},
    {DType::kI32, "I32", 4},
    {DType::kU64, "U64", 8},
    {DType::kI64, "I64", 8},
    {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2},
    {DType::kF32, "F32", 4},
    {DType::kF64, "F64", 8},
    {DType::kF8E4M3, "F8_E4M3", 1},
    {DType::kF8E5M2, "F8_E5M2", 1},
}};

const DTypeInfo& Info(DType t) { return kDTypes[static_cast<size_t>(t)]; }

}  // namespace

size_t DTypeSize(DType t) { return Info(t).size; }

std::string_view DTypeName(DType t) { return Info(t).name; }

absl::StatusOr<DType> ParseDType(std::string_view name) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.name == name) return info.type;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown dtype \"", std::string(name), "\""));
}

bool IsFloatWeightType(DType t) {
  return t == DType::kF16 || t == DType::kBF16 || t == DType::kF32;
}

}  // namespace quantd
