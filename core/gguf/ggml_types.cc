#include "core/gguf/ggml_types.h"

#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/gguf/ggml_blocks.h"

namespace quantd {
namespace {

// Block sizes and bytes per block as ggml's type_traits[] has them (sizes of
// the structs of ggml-common.h; those quantd encodes are asserted in
// ggml_blocks.h).
constexpr GgmlTypeTraits kTraits[] = {
    {GgmlType::kF32, "F32", "f32", 1, 4, false},
    {GgmlType::kF16, "F16", "f16", 1, 2, false},
    {GgmlType::kQ4_0, "Q4_0", "q4_0", ggml::kQK4_0, sizeof(ggml::BlockQ4_0), true},
    {GgmlType::kQ4_1, "Q4_1", "q4_1", ggml::kQK4_1, sizeof(ggml::BlockQ4_1), true},
    {GgmlType::kQ5_0, "Q5_0", "q5_0", ggml::kQK5_0, sizeof(ggml::BlockQ5_0), true},
    {GgmlType::kQ5_1, "Q5_1", "q5_1", ggml::kQK5_1, sizeof(ggml::BlockQ5_1), true},
    {GgmlType::kQ8_0, "Q8_0", "q8_0", ggml::kQK8_0, sizeof(ggml::BlockQ8_0), true},
    {GgmlType::kQ8_1, "Q8_1", "q8_1", 32, 36, true},
    {GgmlType::kQ2_K, "Q2_K", "q2_K", ggml::kQK_K, sizeof(ggml::BlockQ2_K), true},
    {GgmlType::kQ3_K, "Q3_K", "q3_K", ggml::kQK_K, sizeof(ggml::BlockQ3_K), true},
    {GgmlType::kQ4_K, "Q4_K", "q4_K", ggml::kQK_K, sizeof(ggml::BlockQ4_K), true},
    {GgmlType::kQ5_K, "Q5_K", "q5_K", ggml::kQK_K, sizeof(ggml::BlockQ5_K), true},
    {GgmlType::kQ6_K, "Q6_K", "q6_K", ggml::kQK_K, sizeof(ggml::BlockQ6_K), true},
    {GgmlType::kQ8_K, "Q8_K", "q8_K", 256, 292, true},
    {GgmlType::kIQ2_XXS, "IQ2_XXS", "iq2_xxs", 256, 66, true},
    {GgmlType::kIQ2_XS, "IQ2_XS", "iq2_xs", 256, 74, true},
    {GgmlType::kIQ3_XXS, "IQ3_XXS", "iq3_xxs", 256, 98, true},
    {GgmlType::kIQ1_S, "IQ1_S", "iq1_s", 256, 50, true},
    {GgmlType::kIQ4_NL, "IQ4_NL", "iq4_nl", 32, 18, true},
    {GgmlType::kIQ3_S, "IQ3_S", "iq3_s", 256, 110, true},
    {GgmlType::kIQ2_S, "IQ2_S", "iq2_s", 256, 82, true},
    {GgmlType::kIQ4_XS, "IQ4_XS", "iq4_xs", 256, 136, true},
    {GgmlType::kI8, "I8", "i8", 1, 1, false},
    {GgmlType::kI16, "I16", "i16", 1, 2, false},
    {GgmlType::kI32, "I32", "i32", 1, 4, false},
    {GgmlType::kI64, "I64", "i64", 1, 8, false},
    {GgmlType::kF64, "F64", "f64", 1, 8, false},
    {GgmlType::kIQ1_M, "IQ1_M", "iq1_m", 256, 56, true},
    {GgmlType::kBF16, "BF16", "bf16", 1, 2, false},
    {GgmlType::kTQ1_0, "TQ1_0", "tq1_0", 256, 54, true},
    {GgmlType::kTQ2_0, "TQ2_0", "tq2_0", 256, 66, true},
    {GgmlType::kMXFP4, "MXFP4", "mxfp4", 32, 17, true},
    {GgmlType::kNVFP4, "NVFP4", "nvfp4", 64, 36, true},
    {GgmlType::kQ1_0, "Q1_0", "q1_0", 128, 18, true},
    {GgmlType::kQ2_0, "Q2_0", "q2_0", 64, 18, true},
};

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

const GgmlTypeTraits* FindTraits(uint32_t id) {
  for (const GgmlTypeTraits& t : kTraits) {
    if (static_cast<uint32_t>(t.type) == id) return &t;
  }
  return nullptr;
}

}  // namespace

const GgmlTypeTraits& GgmlTraits(GgmlType t) {
  const GgmlTypeTraits* traits = FindTraits(static_cast<uint32_t>(t));
  return traits != nullptr ? *traits : kTraits[0];  // unreachable for enumerators
}

const std::vector<GgmlType>& AllGgmlTypes() {
  static const auto* types = [] {
    auto* v = new std::vector<GgmlType>;
    for (const GgmlTypeTraits& t : kTraits) v->push_back(t.type);
    return v;
  }();
  return *types;
}

absl::StatusOr<GgmlType> GgmlTypeFromId(uint32_t id) {
  const GgmlTypeTraits* t = FindTraits(id);
  if (t == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown ggml type id ", id));
  return t->type;
}

std::string_view GgmlTypeName(GgmlType t) { return GgmlTraits(t).name; }

absl::StatusOr<GgmlType> ParseGgmlType(std::string_view name) {
  for (const GgmlTypeTraits& t : kTraits) {
    if (EqualsIgnoreCase(name, t.name) || EqualsIgnoreCase(name, t.ggml_name)) {
      return t.type;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown ggml type \"", std::string(name), "\""));
}

absl::StatusOr<int64_t> RowBytes(GgmlType t, int64_t cols) {
  const GgmlTypeTraits& tr = GgmlTraits(t);
  if (cols < 0 || cols % tr.block_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(cols, " elements per row is not a multiple of ",
                                                   std::string(tr.name), "'s block size ",
                                                   tr.block_size));
  }
  const int64_t blocks = cols / tr.block_size;
  if (blocks > std::numeric_limits<int64_t>::max() / tr.type_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("row of ", cols, " ", std::string(tr.name), " elements is too large"));
  }
  return blocks * tr.type_size;
}

absl::StatusOr<int64_t> TensorBytes(GgmlType t, const std::vector<int64_t>& ne) {
  if (ne.empty()) return RowBytes(t, 1);
  absl::StatusOr<int64_t> bytes = RowBytes(t, ne[0]);
  if (!bytes.ok()) return bytes.status();
  int64_t n = *bytes;
  for (size_t i = 1; i < ne.size(); ++i) {
    if (ne[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("dimension ", i, " is negative (", ne[i], ")"));
    }
    if (ne[i] != 0 && n > std::numeric_limits<int64_t>::max() / ne[i]) {
      return absl::InvalidArgumentError("tensor byte size overflows int64");
    }
    n *= ne[i];
  }
  return n;
}

bool CanEncodeGgml(GgmlType t) {
  switch (t) {
    case GgmlType::kF32:
    case GgmlType::kF16:
    case GgmlType::kBF16:
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_0:
    case GgmlType::kQ5_1:
    case GgmlType::kQ8_0:
    case GgmlType::kQ2_K:
    case GgmlType::kQ3_K:
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
    case GgmlType::kQ6_K:
      return true;
    default:
      return false;
  }
}

}  // namespace quantd
