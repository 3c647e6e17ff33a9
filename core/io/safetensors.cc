#include "core/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace quantd {
namespace fs = std::filesystem;
namespace {

using nlohmann::json;

constexpr std::string_view kMetadataKey = "__metadata__";
// A valid header nests at most 3 deep (header, entry, shape); allow a little
// more so that a mistyped field gets its own message.
constexpr int kMaxJsonDepth = 8;

// Name quoted and escaped for an error message.
std::string Quoted(std::string_view name) {
  return absl::StrCat("\"", absl::CHexEscape(absl::string_view(name.data(), name.size())), "\"");
}

template <typename... Args>
absl::Status Malformed(const fs::path& path, const Args&... args) {
  return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", args...));
}

// Rejects JSON nested deeper than kMaxJsonDepth before it is parsed, so that
// a hostile header cannot make the parser build a huge tree.
bool NestingWithinLimit(std::string_view text) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth) return false;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return true;
}

// A JSON integer >= 0 (a float such as 2.0 is not one).
bool GetNonNegative(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i < 0) return false;
    *out = static_cast<uint64_t>(i);
    return true;
  }
  return false;
}

// The byte size of `shape` of `dtype`; fails on an overflow of int64 or a
// rank over kSafetensorsMaxRank.
absl::StatusOr<uint64_t> ShapeBytes(const Shape& shape, DType dtype) {
  if (shape.size() > kSafetensorsMaxRank) {
    return absl::InvalidArgumentError(absl::StrCat("shape ", ShapeString(shape), " has more than ",
                                                   kSafetensorsMaxRank, " dimensions"));
  }
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape ", ShapeString(shape), " has a negative dimension"));
    }
    if (__builtin_mul_overflow(numel, d, &numel)) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape ", ShapeString(shape), " has too many elements"));
    }
  }
  int64_t bytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<int64_t>(DTypeSize(dtype)), &bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("shape ", ShapeString(shape), " has too many bytes"));
  }
  return static_cast<uint64_t>(bytes);
}

// Parses and checks one tensor entry against a data section of `data_bytes`.
absl::StatusOr<SafetensorsEntry> ParseEntry(const fs::path& path, const std::string& name,
                                            const json& value, uint64_t data_bytes) {
  const std::string what = absl::StrCat("tensor ", Quoted(name), ": ");
  if (!value.is_object()) return Malformed(path, what, "entry is not an object");
  for (const auto& [key, unused] : value.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return Malformed(path, what, "unknown field ", Quoted(key));
    }
  }
  SafetensorsEntry entry;
  entry.name = name;

  const auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) {
    return Malformed(path, what, "\"dtype\" missing or not a string");
  }
  absl::StatusOr<DType> parsed = ParseDType(dtype->get_ref<const std::string&>());
  if (!parsed.ok()) return Malformed(path, what, parsed.status().message());
  entry.dtype = *parsed;

  const auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array()) {
    return Malformed(path, what, "\"shape\" missing or not an array");
  }
  if (shape->size() > kSafetensorsMaxRank) {
    return Malformed(path, what, "shape has ", shape->size(), " dimensions, more than ",
                     kSafetensorsMaxRank);
  }
  for (const json& dim : *shape) {
    uint64_t d = 0;
    if (!GetNonNegative(dim, &d) ||
        d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Malformed(path, what, "shape dimension ", dim.dump(), " is not an integer >= 0");
    }
    entry.shape.push_back(static_cast<int64_t>(d));
  }
  absl::StatusOr<uint64_t> bytes = ShapeBytes(entry.shape, entry.dtype);
  if (!bytes.ok()) return Malformed(path, what, bytes.status().message());

  const auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 ||
      !GetNonNegative((*offsets)[0], &entry.begin) || !GetNonNegative((*offsets)[1], &entry.end) ||
      entry.begin > entry.end) {
    return Malformed(path, what,
                     "\"data_offsets\" must be [begin, end] with integers 0 <= begin <= end");
  }
  if (entry.end - entry.begin != *bytes) {
    return Malformed(path, what, "data_offsets [", entry.begin, ", ", entry.end, "] span ",
                     entry.end - entry.begin, " bytes but ", std::string(DTypeName(entry.dtype)),
                     " ", ShapeString(entry.shape), " needs ", *bytes);
  }
  if (entry.end > data_bytes) {
    return Malformed(path, what, "data_offsets end ", entry.end, " is beyond the data section of ",
                     data_bytes, " bytes");
  }
  return entry;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const fs::path& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mapped, MappedFile::Open(path));
  const uint64_t size = mapped->size();
  if (size < 8) {
    return Malformed(path, "file is ", size, " bytes, shorter than the 8-byte header length");
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | mapped->data()[i];
  if (header_len > size - 8) {
    return Malformed(path, "header length ", header_len, " exceeds the ", size - 8,
                     " bytes after it");
  }
  if (header_len > kSafetensorsMaxHeaderBytes) {
    return Malformed(path, "header length ", header_len, " exceeds the limit of ",
                     kSafetensorsMaxHeaderBytes);
  }
  const std::string_view text(reinterpret_cast<const char*>(mapped->data()) + 8, header_len);
  if (!NestingWithinLimit(text)) {
    return Malformed(path, "header JSON is nested deeper than ", kMaxJsonDepth, " levels");
  }
  json header;
  try {
    header = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    return Malformed(path, "header is not valid JSON: ", e.what());
  }
  if (!header.is_object()) return Malformed(path, "header is not a JSON object");

  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  file->data_offset_ = 8 + header_len;
  file->data_bytes_ = size - file->data_offset_;
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) {
      if (!value.is_object()) return Malformed(path, "\"__metadata__\" is not an object");
      for (const auto& [key, v] : value.items()) {
        if (!v.is_string()) {
          return Malformed(path, "\"__metadata__\" value for ", Quoted(key), " is not a string");
        }
        file->metadata_.emplace(key, v.get<std::string>());
      }
      continue;
    }
    ASSIGN_OR_RETURN(SafetensorsEntry entry, ParseEntry(path, name, value, file->data_bytes_));
    file->entries_.push_back(std::move(entry));
  }
  std::sort(file->entries_.begin(), file->entries_.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  // Sorted by begin, a tensor overlaps an earlier one iff it begins before
  // the furthest end so far. Empty tensors hold no bytes and overlap nothing.
  const SafetensorsEntry* furthest = nullptr;
  for (const SafetensorsEntry& e : file->entries_) {
    if (e.begin == e.end) continue;
    if (furthest != nullptr && e.begin < furthest->end) {
      return Malformed(path, "tensors ", Quoted(furthest->name), " [", furthest->begin, ", ",
                       furthest->end, ") and ", Quoted(e.name), " [", e.begin, ", ", e.end,
                       ") overlap");
    }
    if (furthest == nullptr || e.end > furthest->end) furthest = &e;
  }
  for (size_t i = 0; i < file->entries_.size(); ++i)
    file->index_.emplace(file->entries_[i].name, i);
  file->file_ = std::move(mapped);
  return file;
}

const SafetensorsEntry* SafetensorsFile::Find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

TensorView SafetensorsFile::View(const SafetensorsEntry& entry) const {
  return TensorView{entry.dtype, entry.shape, file_->data() + data_offset_ + entry.begin,
                    static_cast<size_t>(entry.nbytes())};
}

absl::StatusOr<TensorView> SafetensorsFile::Get(std::string_view name) const {
  const SafetensorsEntry* entry = Find(name);
  if (entry == nullptr) {
    return absl::NotFoundError(absl::StrCat("no tensor ", Quoted(name), " in ", path().string()));
  }
  return View(*entry);
}

// -------------------------------------------------------- SafetensorsWriter

absl::StatusOr<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::Create(
    const fs::path& path, std::vector<TensorMeta> tensors,
    const std::map<std::string, std::string>& metadata) {
  auto writer = std::unique_ptr<SafetensorsWriter>(new SafetensorsWriter());
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[std::string(kMetadataKey)] = metadata;
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (const TensorMeta& t : tensors) {
    const std::string what = absl::StrCat(path.string(), ": tensor ", Quoted(t.name), ": ");
    if (t.name.empty() || t.name == kMetadataKey) {
      return absl::InvalidArgumentError(absl::StrCat(what, "reserved or empty name"));
    }
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(absl::StrCat(what, "duplicate name"));
    }
    absl::StatusOr<uint64_t> bytes = ShapeBytes(t.shape, t.dtype);
    if (!bytes.ok())
      return absl::InvalidArgumentError(absl::StrCat(what, bytes.status().message()));
    if (*bytes > std::numeric_limits<uint64_t>::max() - offset) {
      return absl::InvalidArgumentError(absl::StrCat(what, "total size overflows"));
    }
    header[t.name] = {{"dtype", std::string(DTypeName(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + *bytes}}};
    offset += *bytes;
    writer->sizes_.push_back(*bytes);
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": tensor names or metadata are not valid UTF-8: ", e.what()));
  }
  // Pad with spaces so that the data section (after 8 + text) is 8-aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(uint64_t{text.size()} >> (8 * i));

  ASSIGN_OR_RETURN(writer->sink_, FileSink::Create(path));
  RETURN_IF_ERROR(writer->sink_->Write(len, sizeof(len)));
  RETURN_IF_ERROR(writer->sink_->Write(text.data(), text.size()));
  writer->tensors_ = std::move(tensors);
  return writer;
}

absl::Status SafetensorsWriter::Write(std::string_view name, const void* data, size_t nbytes) {
  if (!status_.ok()) return status_;
  const std::string file = sink_->path().string();
  if (next_ >= tensors_.size()) {
    status_ = absl::FailedPreconditionError(absl::StrCat(
        file, ": tensor ", Quoted(name), " written after all ", tensors_.size(), " tensors"));
  } else if (name != tensors_[next_].name) {
    status_ = absl::FailedPreconditionError(absl::StrCat(file, ": tensor ", Quoted(name),
                                                         " written out of order; expected ",
                                                         Quoted(tensors_[next_].name)));
  } else if (nbytes != sizes_[next_]) {
    status_ = absl::FailedPreconditionError(absl::StrCat(file, ": tensor ", Quoted(name), " given ",
                                                         nbytes, " bytes; its shape needs ",
                                                         sizes_[next_]));
  } else {
    status_ = sink_->Write(data, nbytes);
    ++next_;
  }
  return status_;
}

absl::StatusOr<FileDigest> SafetensorsWriter::Finish() {
  if (!status_.ok()) return status_;
  if (next_ < tensors_.size()) {
    status_ = absl::FailedPreconditionError(
        absl::StrCat(sink_->path().string(), ": tensor ", Quoted(tensors_[next_].name),
                     " was not written (", next_, " of ", tensors_.size(), " written)"));
    return status_;
  }
  return sink_->Finish();
}

absl::StatusOr<FileDigest> WriteSafetensors(
    const fs::path& path, const std::vector<std::pair<std::string, TensorView>>& tensors,
    const std::map<std::string, std::string>& metadata) {
  std::vector<TensorMeta> metas;
  metas.reserve(tensors.size());
  for (const auto& [name, view] : tensors) metas.push_back({name, view.dtype, view.shape});
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsWriter> writer,
                   SafetensorsWriter::Create(path, std::move(metas), metadata));
  for (const auto& [name, view] : tensors) {
    RETURN_IF_ERROR(writer->Write(name, view.data, view.nbytes));
  }
  return writer->Finish();
}

}  // namespace quantd
