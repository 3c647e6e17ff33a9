// Writing GGUF files (the format is described in gguf_file.h): PlanGguf
// validates metadata and tensor infos and lays the file out; GgufWriter
// streams the header and the tensors' bytes to disk.
#ifndef QUANTD_CORE_GGUF_GGUF_WRITER_H_
#define QUANTD_CORE_GGUF_GGUF_WRITER_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/gguf/ggml_types.h"
#include "core/gguf/gguf_file.h"
#include "core/util/fs.h"

namespace quantd {

// A tensor to write.
struct GgufTensorInfo {
  std::string name;  // 1..kGgufMaxNameBytes bytes, unique in the file
  GgmlType type = GgmlType::kF32;
  // ggml dimensions, innermost first (see the top of this file): 1 to
  // kGgufMaxDims entries, each >= 0; ne[0] a multiple of the type's block.
  std::vector<int64_t> ne;
};

// Where each tensor goes, for a header of `metadata` and `tensors`: the
// alignment, the header's size (where the data section starts), each
// tensor's offset in the data section and the total file size.
struct GgufLayout {
  uint32_t alignment = kGgufDefaultAlignment;
  uint64_t data_offset = 0;
  std::vector<uint64_t> offsets;
  std::vector<uint64_t> nbytes;
  uint64_t file_size = 0;
};

// Validates metadata and tensor infos as GgufWriter::Create does and
// computes their layout. INVALID_ARGUMENT for an empty or duplicate key or
// tensor name, a name over kGgufMaxNameBytes, a "general.alignment" that is
// not a U32 power of two, arrays nested deeper than kGgufMaxArrayDepth, an
// array of arrays whose items are not arrays, a tensor type quantd does not
// know, or dimensions as TensorBytes rejects them (or more than
// kGgufMaxDims, or none).
absl::StatusOr<GgufLayout> PlanGguf(const std::vector<GgufKv>& metadata,
                                    const std::vector<GgufTensorInfo>& tensors);

// Writes a GGUF file without holding its data in memory: Create() writes the
// header (metadata in the order given, tensor infos, padding), then the
// tensors' bytes are written in info order, each followed by its padding.
// The file is created new (FileSink) and removed unless Finish() succeeds.
class GgufWriter {
 public:
  // Errors of PlanGguf and FileSink::Create / Write.
  static absl::StatusOr<std::unique_ptr<GgufWriter>> Create(const std::filesystem::path& path,
                                                            std::vector<GgufKv> metadata,
                                                            std::vector<GgufTensorInfo> tensors);

  // Appends `nbytes` bytes of tensor `name`, which must be the tensor being
  // written (the next one in info order until all of its bytes came). A
  // tensor may come in several calls. FAILED_PRECONDITION, naming the
  // tensor, if `name` is not that tensor or the bytes exceed its size (the
  // writer is then unusable); errors of FileSink::Write.
  absl::Status Write(std::string_view name, const void* data, size_t nbytes);

  // Completes the file (last padding, fsync, close) and returns its digest.
  // FAILED_PRECONDITION naming the first tensor not completely written.
  absl::StatusOr<FileDigest> Finish();

  const GgufLayout& layout() const { return layout_; }
  const std::filesystem::path& path() const { return sink_->path(); }

 private:
  GgufWriter() = default;
  absl::Status Pad(uint64_t to);

  std::unique_ptr<FileSink> sink_;
  std::vector<GgufTensorInfo> tensors_;
  GgufLayout layout_;
  size_t next_ = 0;       // tensor being written
  uint64_t written_ = 0;  // bytes of it written so far
  absl::Status status_;
};

}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_GGUF_WRITER_H_
