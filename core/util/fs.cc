#include "core/util/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace fs = std::filesystem;
namespace {

constexpr size_t kSinkBufferBytes = size_t{8} << 20;
constexpr size_t kReadChunkBytes = size_t{8} << 20;
// Larger single write()/read() calls are split (Linux caps them near 2 GiB).
constexpr size_t kMaxIoBytes = size_t{1} << 30;

// strerror_r comes in a GNU (char*) and an XSI (int) flavour.
[[maybe_unused]] std::string PickMessage(const char* message, const char* /*buf*/) {
  return message;
}
[[maybe_unused]] std::string PickMessage(int rc, const char* buf) {
  return rc == 0 ? std::string(buf) : std::string("unknown error");
}

std::string ErrnoMessage(int err) {
  char buf[256] = {0};
  return PickMessage(strerror_r(err, buf, sizeof(buf)), buf);
}

// Closes a file descriptor when it goes out of scope.
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Opens an existing regular file for reading. O_NONBLOCK keeps a FIFO from
// blocking the open; it has no effect on regular files.
absl::StatusOr<int> OpenRegularForRead(const fs::path& path) {
  int fd;
  do {
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("cannot open ", path.string()));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return ErrnoStatus(err, absl::StrCat("cannot stat ", path.string()));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path.string(), " is not a regular file"));
  }
  return fd;
}

// Reads up to `n` bytes; returns the count (0 at end of file).
absl::StatusOr<size_t> ReadSome(int fd, uint8_t* buf, size_t n, const fs::path& path) {
  while (true) {
    const ssize_t got = read(fd, buf, std::min(n, kMaxIoBytes));
    if (got >= 0) return static_cast<size_t>(got);
    if (errno != EINTR) return ErrnoStatus(errno, absl::StrCat("error reading ", path.string()));
  }
}

absl::Status WriteError(int err, const fs::path& path) {
  if (err == ENOSPC || err == EDQUOT) {
    return absl::ResourceExhaustedError(absl::StrCat("disk full writing ", path.string()));
  }
  return absl::InternalError(
      absl::StrCat("error writing ", path.string(), ": ", ErrnoMessage(err)));
}

absl::Status FsyncPath(const fs::path& path, int flags) {
  int fd;
  do {
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | flags);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("cannot open ", path.string()));
  UniqueFd closer(fd);
  // Some file systems cannot sync folders and say EINVAL: nothing to do then.
  if (fsync(fd) != 0 && errno != EINVAL) return WriteError(errno, path);
  return absl::OkStatus();
}

absl::Status FsError(const std::error_code& ec, std::string_view what, const fs::path& path) {
  return ErrnoStatus(ec.value(), absl::StrCat(std::string(what), " ", path.string()));
}

bool IsTokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// rename() that fails with EEXIST instead of replacing an existing `to`.
// Falls back to rename() where the file system lacks RENAME_NOREPLACE.
int RenameNoReplace(const fs::path& from, const fs::path& to) {
  if (renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) return -1;
  return rename(from.c_str(), to.c_str());
}

}  // namespace

absl::Status ErrnoStatus(int err, std::string_view context) {
  const std::string message = absl::StrCat(std::string(context), ": ", ErrnoMessage(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EEXIST:
      return absl::AlreadyExistsError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::StatusOr<FileDigest> HashFile(const fs::path& path) {
  ASSIGN_OR_RETURN(const int fd, OpenRegularForRead(path));
  UniqueFd closer(fd);
  std::unique_ptr<uint8_t[]> buf(new uint8_t[kReadChunkBytes]);
  Sha256 sha;
  FileDigest digest;
  while (true) {
    ASSIGN_OR_RETURN(const size_t got, ReadSome(fd, buf.get(), kReadChunkBytes, path));
    if (got == 0) break;
    sha.Update(buf.get(), got);
    digest.size += got;
  }
  digest.sha256 = sha.HexDigest();
  return digest;
}

absl::StatusOr<std::string> ReadFileToString(const fs::path& path, uint64_t max_bytes) {
  ASSIGN_OR_RETURN(const int fd, OpenRegularForRead(path));
  UniqueFd closer(fd);
  std::string out;
  char buf[64 << 10];
  while (true) {
    ASSIGN_OR_RETURN(const size_t got,
                     ReadSome(fd, reinterpret_cast<uint8_t*>(buf), sizeof(buf), path));
    if (got == 0) break;
    if (out.size() + got > max_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path.string(), " is larger than ", max_bytes, " bytes"));
    }
    out.append(buf, got);
  }
  return out;
}

absl::StatusOr<FileDigest> CopyFileDurably(const fs::path& from, const fs::path& to) {
  ASSIGN_OR_RETURN(const int fd, OpenRegularForRead(from));
  UniqueFd closer(fd);
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);  // A hint: errors do not matter.
  ASSIGN_OR_RETURN(std::unique_ptr<FileSink> sink, FileSink::Create(to));
  std::unique_ptr<uint8_t[]> buf(new uint8_t[kReadChunkBytes]);
  while (true) {
    ASSIGN_OR_RETURN(const size_t got, ReadSome(fd, buf.get(), kReadChunkBytes, from));
    if (got == 0) break;
    RETURN_IF_ERROR(sink->Write(buf.get(), got));
  }
  return sink->Finish();
}

absl::Status SyncDirectory(const fs::path& dir) { return FsyncPath(dir, O_DIRECTORY); }

// ---------------------------------------------------------------- FileSink

FileSink::FileSink(fs::path path, int fd)
    : path_(std::move(path)), fd_(fd), buffer_(new uint8_t[kSinkBufferBytes]) {}

FileSink::~FileSink() {
  if (fd_ >= 0) close(fd_);
  if (!finished_ || !status_.ok()) unlink(path_.c_str());
}

absl::StatusOr<std::unique_ptr<FileSink>> FileSink::Create(const fs::path& path) {
  int fd;
  do {
    fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("cannot create ", path.string()));
  return std::unique_ptr<FileSink>(new FileSink(path, fd));
}

absl::Status FileSink::Fail(absl::Status status) {
  status_ = status;
  return status;
}

absl::Status FileSink::WriteFully(const uint8_t* data, size_t n) {
  while (n > 0) {
    const ssize_t put = write(fd_, data, std::min(n, kMaxIoBytes));
    if (put < 0) {
      if (errno == EINTR) continue;
      return Fail(WriteError(errno, path_));
    }
    if (put == 0) return Fail(WriteError(EIO, path_));
    data += put;
    n -= static_cast<size_t>(put);
  }
  return absl::OkStatus();
}

absl::Status FileSink::Flush() {
  if (buffered_ == 0) return absl::OkStatus();
  const size_t n = buffered_;
  buffered_ = 0;
  return WriteFully(buffer_.get(), n);
}

absl::Status FileSink::Write(const void* data, size_t n) {
  if (finished_) {
    return absl::FailedPreconditionError(
        absl::StrCat("write to ", path_.string(), " after Finish()"));
  }
  if (!status_.ok()) return status_;
  if (n == 0) return absl::OkStatus();
  const uint8_t* bytes = static_cast<const uint8_t*>(data);
  sha_.Update(bytes, n);
  size_ += n;
  if (buffered_ + n < kSinkBufferBytes) {
    std::memcpy(buffer_.get() + buffered_, bytes, n);
    buffered_ += n;
    return absl::OkStatus();
  }
  // Top a partly filled buffer up and flush it; write large remainders
  // directly rather than through the buffer.
  if (buffered_ > 0) {
    const size_t fill = kSinkBufferBytes - buffered_;
    std::memcpy(buffer_.get() + buffered_, bytes, fill);
    buffered_ = kSinkBufferBytes;
    RETURN_IF_ERROR(Flush());
    bytes += fill;
    n -= fill;
  }
  if (n >= kSinkBufferBytes) return WriteFully(bytes, n);
  std::memcpy(buffer_.get(), bytes, n);
  buffered_ = n;
  return absl::OkStatus();
}

absl::StatusOr<FileDigest> FileSink::Finish() {
  if (finished_) {
    return absl::FailedPreconditionError(absl::StrCat("Finish() called twice on ", path_.string()));
  }
  finished_ = true;
  if (!status_.ok()) return status_;
  RETURN_IF_ERROR(Flush());
  if (fsync(fd_) != 0) return Fail(WriteError(errno, path_));
  const int fd = fd_;
  fd_ = -1;
  // After close() fails the descriptor is gone either way; do not retry.
  if (close(fd) != 0 && errno != EINTR) return Fail(WriteError(errno, path_));
  return FileDigest{size_, sha_.HexDigest()};
}

// ------------------------------------------------------------ AtomicOutput

absl::StatusOr<AtomicOutput> AtomicOutput::Create(const fs::path& target, std::string_view token,
                                                  bool is_directory, bool overwrite) {
  if (token.empty() || !std::all_of(token.begin(), token.end(), IsTokenChar)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid output token \"", std::string(token),
                                                   "\" for ", target.string(),
                                                   ": must be non-empty [A-Za-z0-9._-]"));
  }
  const fs::path normal = target.lexically_normal();
  const fs::path filename = normal.filename();
  if (filename.empty() || filename == "." || filename == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("output path ", target.string(), " has no file name"));
  }
  fs::path parent = normal.parent_path();
  if (parent.empty()) parent = ".";
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) return FsError(ec, "cannot create folder", parent);

  const fs::file_status st = fs::symlink_status(normal, ec);
  if (ec && st.type() != fs::file_type::not_found) return FsError(ec, "cannot inspect", normal);
  if (fs::exists(st) && !overwrite) {
    return absl::AlreadyExistsError(absl::StrCat("output ", normal.string(), " already exists"));
  }

  AtomicOutput out;
  out.target_ = normal;
  out.temp_ = parent / absl::StrCat(".", filename.string(), ".quantd-tmp-", std::string(token));
  out.is_directory_ = is_directory;
  out.overwrite_ = overwrite;
  for (const fs::path& stale : {out.temp_, fs::path(out.temp_.string() + ".old")}) {
    fs::remove_all(stale, ec);
    if (ec) {
      out.temp_.clear();  // Not ours to remove.
      return FsError(ec, "cannot remove stale temporary", stale);
    }
  }
  if (is_directory) {
    fs::create_directory(out.temp_, ec);
    if (ec) return FsError(ec, "cannot create folder", out.temp_);
  }
  return out;
}

AtomicOutput::AtomicOutput(AtomicOutput&& other) noexcept
    : target_(std::move(other.target_)),
      temp_(std::exchange(other.temp_, fs::path())),
      is_directory_(other.is_directory_),
      overwrite_(other.overwrite_),
      committed_(other.committed_) {}

AtomicOutput& AtomicOutput::operator=(AtomicOutput&& other) noexcept {
  if (this != &other) {
    Abandon();
    target_ = std::move(other.target_);
    temp_ = std::exchange(other.temp_, fs::path());
    is_directory_ = other.is_directory_;
    overwrite_ = other.overwrite_;
    committed_ = other.committed_;
  }
  return *this;
}

AtomicOutput::~AtomicOutput() { Abandon(); }

void AtomicOutput::Abandon() {
  if (committed_ || temp_.empty()) return;
  std::error_code ec;
  fs::remove_all(temp_, ec);  // Best effort; RemoveStaleTemps is the backstop.
  temp_.clear();
}

absl::Status AtomicOutput::Commit() {
  if (committed_) {
    return absl::FailedPreconditionError(
        absl::StrCat("output ", target_.string(), " already committed"));
  }
  if (temp_.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("output ", target_.string(), " was abandoned"));
  }
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(temp_, ec))) {
    return absl::FailedPreconditionError(
        absl::StrCat("nothing was written to ", temp_.string(), " for ", target_.string()));
  }
  RETURN_IF_ERROR(FsyncPath(temp_, is_directory_ ? O_DIRECTORY : 0));

  const bool target_exists = fs::exists(fs::symlink_status(target_, ec));
  if (target_exists && !overwrite_) {
    return absl::AlreadyExistsError(absl::StrCat("output ", target_.string(), " already exists"));
  }
  fs::path old;  // Where the replaced target ended up, to delete.
  if (!target_exists) {
    if (RenameNoReplace(temp_, target_) != 0) {
      const int err = errno;
      if (err == EEXIST || err == ENOTEMPTY) {
        return absl::AlreadyExistsError(
            absl::StrCat("output ", target_.string(), " already exists"));
      }
      return ErrnoStatus(err,
                         absl::StrCat("cannot rename ", temp_.string(), " to ", target_.string()));
    }
  } else if (renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, target_.c_str(), RENAME_EXCHANGE) == 0) {
    old = temp_;  // The two were swapped: the old target now sits at temp_.
  } else {
    if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
      return ErrnoStatus(
          errno, absl::StrCat("cannot exchange ", temp_.string(), " and ", target_.string()));
    }
    const fs::path aside = temp_.string() + ".old";
    if (rename(target_.c_str(), aside.c_str()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("cannot move ", target_.string(), " aside"));
    }
    if (rename(temp_.c_str(), target_.c_str()) != 0) {
      const int err = errno;
      rename(aside.c_str(), target_.c_str());  // Put the old target back.
      return ErrnoStatus(err,
                         absl::StrCat("cannot rename ", temp_.string(), " to ", target_.string()));
    }
    old = aside;
  }
  committed_ = true;
  if (!old.empty()) fs::remove_all(old, ec);  // Left for RemoveStaleTemps on failure.
  fs::path parent = target_.parent_path();
  if (parent.empty()) parent = ".";
  return SyncDirectory(parent);
}

// -------------------------------------------------------- RemoveStaleTemps

bool IsQuantdTempName(std::string_view filename) {
  constexpr std::string_view kMarker = ".quantd-tmp-";
  if (filename.size() < 2 || filename[0] != '.') return false;
  const size_t pos = filename.find(kMarker);
  return pos != std::string_view::npos && pos + kMarker.size() < filename.size();
}

absl::Status RemoveStaleTemps(const fs::path& root) {
  std::error_code ec;
  const fs::file_status st = fs::status(root, ec);
  if (!fs::exists(st)) return absl::NotFoundError(absl::StrCat(root.string(), " does not exist"));
  if (!fs::is_directory(st)) {
    return absl::InvalidArgumentError(absl::StrCat(root.string(), " is not a folder"));
  }
  absl::Status first_error;
  std::vector<fs::path> doomed;
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (IsQuantdTempName(it->path().filename().string())) {
      doomed.push_back(it->path());
      it.disable_recursion_pending();
    }
  }
  if (ec) first_error = FsError(ec, "cannot list", root);
  for (const fs::path& path : doomed) {
    fs::remove_all(path, ec);
    if (ec && first_error.ok()) first_error = FsError(ec, "cannot remove", path);
  }
  return first_error;
}

}  // namespace quantd
