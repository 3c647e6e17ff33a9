// The safetensors format: an 8-byte little-endian header length N, N bytes
// of JSON header, then the data section. The header maps each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
// data section), plus an optional "__metadata__" string->string map. The
// JSON may be padded with trailing spaces; quantd's writer pads it so that
// the data section starts at a multiple of 8 bytes.
#ifndef QUANTD_CORE_IO_SAFETENSORS_H_
#define QUANTD_CORE_IO_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/io/mapped_file.h"
#include "core/tensor/tensor.h"
#include "core/util/fs.h"

namespace quantd {

// Limits applied when reading (and, so that what we write we can read back,
// when writing). The header limit is the one the reference implementation
// uses.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;
inline constexpr size_t kSafetensorsMaxRank = 8;

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  // Byte range in the data section.
  uint64_t begin = 0;
  uint64_t end = 0;

  uint64_t nbytes() const { return end - begin; }
};

// A validated, memory-mapped safetensors file. Immutable after Open(), so
// it may be read from several threads.
class SafetensorsFile {
 public:
  // Maps and validates the file at `path`. Errors from MappedFile::Open
  // (NOT_FOUND, ...) pass through; every malformation is INVALID_ARGUMENT
  // with a message starting with the path: a file shorter than 8 bytes; a
  // header length beyond the file or over kSafetensorsMaxHeaderBytes; a
  // header that is not a JSON object (or not UTF-8, or nested deeper than a
  // header can be); an entry that is not an object, lacks or mistypes dtype,
  // shape or data_offsets, or has any other field; an unknown dtype; a shape
  // with more than kSafetensorsMaxRank dimensions, a dimension that is not a
  // non-negative integer, or whose element or byte count overflows int64;
  // data_offsets that are not two non-negative integers begin <= end, whose
  // span differs from the shape's byte size, or that end beyond the data
  // section; two tensors overlapping; a "__metadata__" that is not a
  // string->string object. Gaps between tensors are allowed.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_->path(); }
  // Every tensor, sorted by begin offset.
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The entry named `name`, or nullptr.
  const SafetensorsEntry* Find(std::string_view name) const;
  // A view of the bytes of `entry`, which must be one of entries(). The
  // view borrows from this object. Its data is aligned only as far as the
  // writer aligned it (check before reinterpreting as wider types).
  TensorView View(const SafetensorsEntry& entry) const;
  // The view of the tensor named `name`; NOT_FOUND (naming the tensor and
  // the file) if there is none.
  absl::StatusOr<TensorView> Get(std::string_view name) const;
  // Size of the data section: file size - 8 - header length.
  uint64_t data_bytes() const { return data_bytes_; }
  // Where the data section starts in the file (8 + header length).
  uint64_t data_offset() const { return data_offset_; }
  // The mapping, e.g. for MappedFile::AdviseWillNeed (offsets in the file).
  const MappedFile& mapped() const { return *file_; }

 private:
  SafetensorsFile() = default;

  std::unique_ptr<MappedFile> file_;
  uint64_t data_offset_ = 0;
  uint64_t data_bytes_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> entries_ index.
  std::map<std::string, std::string> metadata_;
};

struct TensorMeta {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
};

// Writes a safetensors file without holding it in memory: the header is
// written by Create(), then each tensor's bytes in turn. The file is created
// new (see FileSink) and removed again if Finish() is not reached.
class SafetensorsWriter {
 public:
  // Creates `path` and writes the header for `tensors`, laid out in the order
  // given, with "__metadata__" first when `metadata` is non-empty.
  // INVALID_ARGUMENT for an empty, duplicate or "__metadata__" tensor name,
  // a shape that the reader would reject, or names or metadata that are not
  // valid UTF-8; otherwise the errors of FileSink::Create and Write.
  static absl::StatusOr<std::unique_ptr<SafetensorsWriter>> Create(
      const std::filesystem::path& path, std::vector<TensorMeta> tensors,
      const std::map<std::string, std::string>& metadata);

  // Writes all the bytes of the next tensor. FAILED_PRECONDITION, naming the
  // tensor, if `name` is not the next tensor in order or `nbytes` is not its
  // exact size (the writer is then unusable); errors of FileSink::Write.
  absl::Status Write(std::string_view name, const void* data, size_t nbytes);

  // Completes the file (flush, fsync, close) and returns its digest.
  // FAILED_PRECONDITION naming the first tensor not written; errors of
  // FileSink::Finish.
  absl::StatusOr<FileDigest> Finish();

  const std::filesystem::path& path() const { return sink_->path(); }

 private:
  SafetensorsWriter() = default;

  std::unique_ptr<FileSink> sink_;
  std::vector<TensorMeta> tensors_;
  std::vector<uint64_t> sizes_;  // Bytes of each tensor.
  size_t next_ = 0;
  absl::Status status_;
};

// Writes `tensors` (in order) and `metadata` to the new file `path`. Errors
// of SafetensorsWriter; FAILED_PRECONDITION if a view's nbytes does not match
// its shape and dtype.
absl::StatusOr<FileDigest> WriteSafetensors(
    const std::filesystem::path& path,
    const std::vector<std::pair<std::string, TensorView>>& tensors,
    const std::map<std::string, std::string>& metadata);

}  // namespace quantd

#endif  // QUANTD_CORE_IO_SAFETENSORS_H_
