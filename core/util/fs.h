// Durable file output: hashed, fsync'ed writes, and outputs that appear at
// their final path only once complete (written under a temporary name beside
// the target, then renamed).
#ifndef QUANTD_CORE_UTIL_FS_H_
#define QUANTD_CORE_UTIL_FS_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/util/sha256.h"

namespace quantd {

struct FileDigest {
  uint64_t size = 0;
  std::string sha256;  // Lower-case hex.
};

// Maps an errno value to a Status whose message is "<context>: <strerror>":
// ENOENT/ENOTDIR -> NOT_FOUND, EEXIST -> ALREADY_EXISTS, EACCES/EPERM/EROFS
// -> PERMISSION_DENIED, ENOSPC/EDQUOT -> RESOURCE_EXHAUSTED, others INTERNAL.
absl::Status ErrnoStatus(int err, std::string_view context);

// Returns the size and SHA-256 of the file at `path`. NOT_FOUND if missing,
// INVALID_ARGUMENT if not a regular file, INTERNAL (or the errno mapping
// above) on read errors.
absl::StatusOr<FileDigest> HashFile(const std::filesystem::path& path);

// Returns the whole content of the regular file at `path`. NOT_FOUND if
// missing, INVALID_ARGUMENT if not a regular file or larger than `max_bytes`,
// INTERNAL on read errors.
absl::StatusOr<std::string> ReadFileToString(const std::filesystem::path& path, uint64_t max_bytes);

// Copies the regular file `from` to the new file `to`, hashing while copying,
// and fsyncs `to` (not its folder: see SyncDirectory). Returns the digest of
// the bytes written. ALREADY_EXISTS if `to` exists; NOT_FOUND if `from` is
// missing; INVALID_ARGUMENT if it is not a regular file; RESOURCE_EXHAUSTED
// when the disk is full; INTERNAL on other errors. A partial `to` is removed.
absl::StatusOr<FileDigest> CopyFileDurably(const std::filesystem::path& from,
                                           const std::filesystem::path& to);

// Fsyncs the folder `dir` so that entries created, renamed or removed in it
// are durable. NOT_FOUND if missing; INTERNAL on other errors.
absl::Status SyncDirectory(const std::filesystem::path& dir);

// A new file written through an 8 MiB buffer and hashed as it is written.
// Not thread-safe. If Finish() is not called or fails, the destructor
// removes the partial file.
class FileSink {
 public:
  // Creates `path`, which must not exist (O_CREAT | O_EXCL, mode 0644).
  // ALREADY_EXISTS if it does, NOT_FOUND if its folder is missing,
  // RESOURCE_EXHAUSTED if the disk is full, INTERNAL otherwise.
  static absl::StatusOr<std::unique_ptr<FileSink>> Create(const std::filesystem::path& path);

  ~FileSink();
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  // Appends `n` bytes. RESOURCE_EXHAUSTED ("disk full writing <path>") on
  // ENOSPC/EDQUOT, INTERNAL with the path and strerror on other errors,
  // FAILED_PRECONDITION after Finish(). After an error every later call
  // returns that error.
  absl::Status Write(const void* data, size_t n);

  // Flushes, fsyncs and closes the file; returns the size and SHA-256 of
  // everything written. Errors as for Write(). Call at most once.
  absl::StatusOr<FileDigest> Finish();

  const std::filesystem::path& path() const { return path_; }
  // Bytes accepted by Write() so far.
  uint64_t bytes_written() const { return size_; }

 private:
  FileSink(std::filesystem::path path, int fd);
  absl::Status WriteFully(const uint8_t* data, size_t n);
  absl::Status Flush();
  absl::Status Fail(absl::Status status);

  std::filesystem::path path_;
  int fd_ = -1;
  std::unique_ptr<uint8_t[]> buffer_;
  size_t buffered_ = 0;
  uint64_t size_ = 0;
  Sha256 sha_;
  absl::Status status_;
  bool finished_ = false;
};

// An output (a folder, or a single file) written under the temporary name
// ".<target filename>.quantd-tmp-<token>" beside `target`, and renamed onto
// `target` only by Commit(). Until then, `target` is untouched. If not
// committed, the destructor (or Abandon()) removes the temporary. Movable,
// not copyable.
class AtomicOutput {
 public:
  // Prepares the output. Creates the parent folders of `target` if missing,
  // removes a stale temporary left by an earlier run with the same `token`,
  // and, when `is_directory`, creates the temporary folder (a single file is
  // left for the caller to create at temp_path(), e.g. with FileSink).
  // INVALID_ARGUMENT if `target` has no file name or `token` is empty or has
  // characters other than [A-Za-z0-9._-]; ALREADY_EXISTS if `target` exists
  // and !overwrite; INTERNAL (or the errno mapping) on file-system errors.
  static absl::StatusOr<AtomicOutput> Create(const std::filesystem::path& target,
                                             std::string_view token, bool is_directory,
                                             bool overwrite);

  AtomicOutput(AtomicOutput&& other) noexcept;
  // Abandons this object's own uncommitted temporary first.
  AtomicOutput& operator=(AtomicOutput&& other) noexcept;
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;
  ~AtomicOutput();

  const std::filesystem::path& target() const { return target_; }
  const std::filesystem::path& temp_path() const { return temp_; }
  bool committed() const { return committed_; }

  // Moves the output into place: fsyncs the temporary (a folder's entries;
  // files inside are expected to be synced already, as FileSink does), then
  // renames it onto `target`. When overwriting an existing target, the two
  // are exchanged atomically (renameat2 RENAME_EXCHANGE) where the file
  // system allows, else the old target is first renamed aside to
  // "<temp>.old"; the old content is then deleted (a failure to delete it is
  // ignored: RemoveStaleTemps collects it later). Finally fsyncs the parent
  // folder. ALREADY_EXISTS if `target` appeared meanwhile and !overwrite;
  // FAILED_PRECONDITION if already committed or abandoned, or if a single-
  // file temporary was never created; INTERNAL on file-system errors (the
  // temporary is then kept for the destructor to remove).
  absl::Status Commit();

  // Removes the temporary unless committed. Idempotent.
  void Abandon();

 private:
  AtomicOutput() = default;

  std::filesystem::path target_;
  std::filesystem::path temp_;  // Empty once abandoned or moved from.
  bool is_directory_ = false;
  bool overwrite_ = false;
  bool committed_ = false;
};

// True for names AtomicOutput gives its temporaries: a leading "." and
// ".quantd-tmp-" followed by at least one character.
bool IsQuantdTempName(std::string_view filename);

// Removes every entry whose name matches IsQuantdTempName() in `root` or in
// any folder below it (symlinks are not followed; a matching folder is
// removed whole, a matching symlink is removed, not its target). Meant for
// server start, when no output is being written. NOT_FOUND if `root` is
// missing; otherwise returns the first error met (INTERNAL) after trying
// every entry.
absl::Status RemoveStaleTemps(const std::filesystem::path& root);

}  // namespace quantd

#endif  // QUANTD_CORE_UTIL_FS_H_
