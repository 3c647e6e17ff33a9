#include "core/util/paths.h"

#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace quantd {
namespace fs = std::filesystem;
namespace {

// `name` quoted and escaped for an error message.
std::string Quoted(std::string_view name) {
  return absl::StrCat("\"", absl::CHexEscape(absl::string_view(name.data(), name.size())), "\"");
}

absl::Status BadName(std::string_view name, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid name ", Quoted(name), ": ", std::string(why)));
}

// Components of `p` without "." and the empty component of a trailing "/".
std::vector<fs::path> Components(const fs::path& p) {
  std::vector<fs::path> parts;
  for (const fs::path& part : p) {
    if (part.empty() || part == ".") continue;
    parts.push_back(part);
  }
  return parts;
}

}  // namespace

bool IsWithin(const fs::path& path, const fs::path& root) {
  const std::vector<fs::path> p = Components(path);
  const std::vector<fs::path> r = Components(root);
  if (p.size() < r.size()) return false;
  for (size_t i = 0; i < r.size(); ++i) {
    if (p[i] != r[i]) return false;
  }
  return true;
}

absl::StatusOr<fs::path> ResolveUnderRoot(const fs::path& root, std::string_view name,
                                          PathMode mode) {
  if (name.empty()) return BadName(name, "empty");
  if (name.find('\0') != std::string_view::npos) return BadName(name, "contains a NUL byte");
  const fs::path rel(std::string{name});
  if (rel.is_absolute() || rel.has_root_directory() || rel.has_root_name()) {
    return BadName(name, "must be relative");
  }
  const std::vector<fs::path> parts = Components(rel);
  for (const fs::path& part : parts) {
    if (part == "..") return BadName(name, "must not contain \"..\"");
  }
  if (parts.empty()) return BadName(name, "names the root folder itself");

  std::error_code ec;
  const fs::path canonical_root = fs::canonical(root, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("root folder ", root.string(), " cannot be resolved: ", ec.message()));
  }

  // Walk the components: while they exist, resolve symlinks with canonical();
  // once one is missing, the rest is appended as written.
  fs::path resolved = canonical_root;
  bool exists = true;
  for (const fs::path& part : parts) {
    resolved /= part;
    if (!exists) continue;
    // A missing component (ENOENT, or ENOTDIR below a file) is not_found.
    const fs::file_status st = fs::symlink_status(resolved, ec);
    if (st.type() == fs::file_type::not_found) {
      exists = false;
      continue;
    }
    if (ec) {
      return absl::InternalError(absl::StrCat("cannot inspect ", resolved.string(), " for ",
                                              Quoted(name), ": ", ec.message()));
    }
    fs::path next = fs::canonical(resolved, ec);
    if (ec) {
      if (fs::is_symlink(st)) return BadName(name, "leads through a dangling symlink");
      return absl::InternalError(absl::StrCat("cannot resolve ", resolved.string(), " for ",
                                              Quoted(name), ": ", ec.message()));
    }
    resolved = std::move(next);
  }

  if (!IsWithin(resolved, canonical_root)) {
    return BadName(name,
                   absl::StrCat("resolves outside the root folder ", canonical_root.string()));
  }
  if (Components(resolved).size() == Components(canonical_root).size()) {
    return BadName(name, "resolves to the root folder itself");
  }
  if (!exists && mode == PathMode::kMustExist) {
    return absl::NotFoundError(
        absl::StrCat(Quoted(name), " does not exist under ", canonical_root.string()));
  }
  return resolved;
}

}  // namespace quantd
