#include "core/gguf/gguf_checks.h"

#include <limits>
#include <optional>

#include "absl/strings/str_cat.h"

namespace quantd {
namespace gguf_internal {

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

bool AlignUp(uint64_t a, uint64_t align, uint64_t* out) {
  const uint64_t rem = a % align;
  if (rem == 0) {
    *out = a;
    return true;
  }
  if (a > std::numeric_limits<uint64_t>::max() - (align - rem)) return false;
  *out = a + (align - rem);
  return true;
}

bool IsKnownValueType(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::kF64); }

absl::StatusOr<uint32_t> AlignmentOf(const GgufValue* v) {
  if (v == nullptr) return kGgufDefaultAlignment;
  const std::optional<uint32_t> a = v->Get<uint32_t>();
  if (!a) {
    return absl::InvalidArgumentError(absl::StrCat(
        kGgufAlignmentKey, " is of type ", std::string(GgufValueTypeName(v->type())), ", not u32"));
  }
  if (!IsPowerOfTwo(*a)) {
    return absl::InvalidArgumentError(
        absl::StrCat(kGgufAlignmentKey, " ", *a, " is not a power of two"));
  }
  return *a;
}

absl::StatusOr<uint64_t> CheckTensor(const std::string& name, GgmlType type,
                                     const std::vector<int64_t>& ne) {
  if (name.empty()) return absl::InvalidArgumentError("empty tensor name");
  if (name.size() > kGgufMaxNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat("tensor name \"", name, "\" is ", name.size(),
                                                   " bytes, more than ", kGgufMaxNameBytes));
  }
  if (ne.size() > kGgufMaxDims) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\" has ", ne.size(),
                                                   " dimensions, more than ", kGgufMaxDims));
  }
  int64_t elements = 1;
  for (size_t i = 0; i < ne.size(); ++i) {
    if (ne[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor \"", name, "\" dimension ", i, " is negative (", ne[i], ")"));
    }
    if (ne[i] != 0 && elements > std::numeric_limits<int64_t>::max() / ne[i]) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor \"", name, "\" has more elements than int64 holds"));
    }
    elements *= ne[i];
  }
  absl::StatusOr<int64_t> bytes = TensorBytes(type, ne.empty() ? std::vector<int64_t>{1} : ne);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor \"", name, "\": ", bytes.status().message()));
  }
  return static_cast<uint64_t>(*bytes);
}

}  // namespace gguf_internal
}  // namespace quantd
