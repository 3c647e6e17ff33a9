// Checks shared by the GGUF reader (gguf_file.cc) and writer
// (gguf_writer.cc); internal to core/gguf.
#ifndef QUANTD_CORE_GGUF_GGUF_CHECKS_H_
#define QUANTD_CORE_GGUF_GGUF_CHECKS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/gguf/ggml_types.h"
#include "core/gguf/gguf_file.h"

namespace quantd {
namespace gguf_internal {

inline constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};

bool IsPowerOfTwo(uint64_t v);

// a rounded up to a multiple of `align`; false on overflow.
bool AlignUp(uint64_t a, uint64_t align, uint64_t* out);

// Whether `t` is a GGUF value type id.
bool IsKnownValueType(uint32_t t);

// The alignment "general.alignment" asks for (kGgufDefaultAlignment when
// `v` is null); INVALID_ARGUMENT when it is not a U32 power of two.
absl::StatusOr<uint32_t> AlignmentOf(const GgufValue* v);

// Checks one tensor's name, type and dimensions; returns its byte size.
// INVALID_ARGUMENT naming the tensor for an empty or over-long name, more
// than kGgufMaxDims dimensions, a negative dimension, an element count
// over int64, or dimensions TensorBytes rejects.
absl::StatusOr<uint64_t> CheckTensor(const std::string& name, GgmlType type,
                                     const std::vector<int64_t>& ne);

}  // namespace gguf_internal
}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_GGUF_CHECKS_H_
