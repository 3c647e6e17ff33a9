// A read-only memory map of a whole file, the way checkpoints are read: the
// kernel pages weights in on demand and drops them under memory pressure.
#ifndef QUANTD_CORE_IO_MAPPED_FILE_H_
#define QUANTD_CORE_IO_MAPPED_FILE_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>

#include "absl/status/statusor.h"

namespace quantd {

class MappedFile {
 public:
  // Maps the regular file at `path` (symlinks followed) with PROT_READ and
  // MAP_PRIVATE. A zero-length file maps to data() == nullptr, size() == 0.
  // NOT_FOUND if missing, INVALID_ARGUMENT if not a regular file,
  // PERMISSION_DENIED if unreadable, INTERNAL on other errors.
  // Caution: if another process truncates the file while it is mapped,
  // reading the lost pages raises SIGBUS; quantd's own outputs are never
  // rewritten in place (see AtomicOutput).
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::filesystem::path& path);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

  // Hints that the file will be read front to back (MADV_SEQUENTIAL).
  // Advisory: errors are ignored.
  void AdviseSequential() const;
  // Hints that bytes [offset, offset + len) will be read soon
  // (MADV_WILLNEED), clamped to the file. Advisory: errors are ignored.
  void AdviseWillNeed(uint64_t offset, uint64_t len) const;

 private:
  MappedFile(std::filesystem::path path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}

  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace quantd

#endif  // QUANTD_CORE_IO_MAPPED_FILE_H_
