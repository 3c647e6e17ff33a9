// Resolution of names given by users (in requests) to paths under a
// configured root folder, so that no request can reach outside it.
#ifndef QUANTD_CORE_UTIL_PATHS_H_
#define QUANTD_CORE_UTIL_PATHS_H_

#include <filesystem>
#include <string_view>

#include "absl/status/statusor.h"

namespace quantd {

enum class PathMode {
  kMustExist,    // The named file or folder must exist.
  kMayNotExist,  // It may be missing (an output about to be created).
};

// Resolves the relative `name` (e.g. "llama-3-8b" or "org/model") under
// `root` and returns the absolute path with every symlink of every existing
// component resolved. Symlinks are followed, so a link inside the root to a
// place inside the root is fine.
//
// Fails with:
//  - INVALID_ARGUMENT when `name` is empty, contains a NUL byte, is absolute,
//    has a ".." component, names the root itself ("." or "./"), leads through
//    a dangling symlink, or resolves (after symlinks) outside canonical(root);
//    the message quotes `name`.
//  - NOT_FOUND when `mode` is kMustExist and the path does not exist.
//  - FAILED_PRECONDITION when `root` itself cannot be resolved (missing).
//  - INTERNAL on other file-system errors.
// The answer is only as good as the moment it was computed: a component
// replaced by a symlink afterwards is not detected.
absl::StatusOr<std::filesystem::path> ResolveUnderRoot(const std::filesystem::path& root,
                                                       std::string_view name, PathMode mode);

// True when `path` is `root` or lies below it, compared component by
// component without touching the file system (both should be canonical).
bool IsWithin(const std::filesystem::path& path, const std::filesystem::path& root);

}  // namespace quantd

#endif  // QUANTD_CORE_UTIL_PATHS_H_
