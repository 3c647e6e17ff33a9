// llama.cpp importance matrices (llama-imatrix output) as per-tensor
// importance vectors, read as llama.cpp's common/imatrix-loader.cpp and
// tools/quantize/quantize.cpp do (docs/research/gguf_conversion.md §5):
//
//  - legacy binary (.dat): int32 n_entries; per entry int32 len, name bytes,
//    int32 ncall, int32 nval, float values[nval]; then optionally int32
//    chunk count, int32 len, dataset name. Importance = value / ncall
//    (the value itself when ncall is 0).
//  - GGUF: tensors "<name>.in_sum2" and "<name>.counts" (F32); importance
//    [j * ne0 + i] = in_sum2 / counts[j], or 1 where counts[j] is 0.
//
// Names are GGUF tensor names ("blk.0.attn_q.weight").
#ifndef QUANTD_CORE_GGUF_IMATRIX_H_
#define QUANTD_CORE_GGUF_IMATRIX_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace quantd {

struct ImportanceMatrix {
  // Tensor name -> importance of each input column (all finite, >= 0).
  std::map<std::string, std::vector<float>, std::less<>> entries;
  bool legacy = false;
  int64_t chunk_count = 0;
  std::vector<std::string> datasets;

  // The vector for `name`, or nullptr.
  const std::vector<float>* Find(std::string_view name) const;
};

// Reads the file at `path`, GGUF when it starts with "GGUF", else legacy.
// Errors of reading the file pass through (NOT_FOUND, ...); INVALID_ARGUMENT
// naming the path for anything malformed: no entries, a negative or huge
// count or length, a truncated file, an entry repeated, a GGUF entry without
// both in_sum2 and counts or not F32 or whose sizes do not divide, and any
// NaN, infinite or negative importance. Never reads beyond the file.
absl::StatusOr<ImportanceMatrix> ReadImportanceMatrix(const std::filesystem::path& path);

// The same for a legacy file's bytes (`what` names it in errors).
absl::StatusOr<ImportanceMatrix> ParseLegacyImatrix(std::string_view bytes, std::string_view what);

}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_IMATRIX_H_
