#include "core/gguf/gguf_writer.h"

#include <algorithm>
#include <limits>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/gguf/gguf_checks.h"
#include "core/util/status_macros.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "GGUF is written here with host byte order (little-endian)"
#endif

namespace quantd {

using gguf_internal::AlignmentOf;
using gguf_internal::AlignUp;
using gguf_internal::CheckTensor;
using gguf_internal::kMagic;

absl::StatusOr<GgufLayout> PlanGguf(const std::vector<GgufKv>& metadata,
                                    const std::vector<GgufTensorInfo>& tensors) {
  GgufLayout layout;
  uint64_t header = 4 + 4 + 8 + 8;
  std::set<std::string, std::less<>> keys;
  const GgufValue* alignment = nullptr;
  for (const GgufKv& kv : metadata) {
    if (kv.key.empty()) return absl::InvalidArgumentError("empty metadata key");
    if (!keys.insert(kv.key).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate metadata key \"", kv.key, "\""));
    }
    if (kv.value.Depth() > kGgufMaxArrayDepth) {
      return absl::InvalidArgumentError(
          absl::StrCat("metadata \"", kv.key, "\" nests arrays deeper than ", kGgufMaxArrayDepth));
    }
    if (const std::vector<GgufValue>* items = kv.value.GetArrayOfArrays()) {
      for (const GgufValue& item : *items) {
        if (!item.is_array()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "metadata \"", kv.key, "\" is an array of arrays with a non-array item"));
        }
      }
    }
    if (kv.key == kGgufAlignmentKey) alignment = &kv.value;
    header += 8 + kv.key.size() + 4 + kv.value.EncodedSize();
  }
  ASSIGN_OR_RETURN(layout.alignment, AlignmentOf(alignment));
  std::set<std::string, std::less<>> names;
  for (const GgufTensorInfo& t : tensors) {
    if (t.ne.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor \"", t.name, "\" has no dimensions"));
    }
    if (!GgmlTypeFromId(static_cast<uint32_t>(t.type)).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor \"", t.name, "\" has unknown type ", static_cast<uint32_t>(t.type)));
    }
    ASSIGN_OR_RETURN(const uint64_t nbytes, CheckTensor(t.name, t.type, t.ne));
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate tensor name \"", t.name, "\""));
    }
    header += 8 + t.name.size() + 4 + 8 * t.ne.size() + 4 + 8;
    layout.nbytes.push_back(nbytes);
  }
  if (!AlignUp(header, layout.alignment, &layout.data_offset)) {
    return absl::InvalidArgumentError("header too large");
  }
  uint64_t offset = 0;
  for (uint64_t n : layout.nbytes) {
    layout.offsets.push_back(offset);
    if (n > std::numeric_limits<uint64_t>::max() - offset ||
        !AlignUp(offset + n, layout.alignment, &offset) ||
        offset > std::numeric_limits<uint64_t>::max() - layout.data_offset) {
      return absl::InvalidArgumentError("tensor data too large");
    }
  }
  layout.file_size = layout.data_offset + offset;
  return layout;
}

absl::StatusOr<std::unique_ptr<GgufWriter>> GgufWriter::Create(
    const std::filesystem::path& path, std::vector<GgufKv> metadata,
    std::vector<GgufTensorInfo> tensors) {
  ASSIGN_OR_RETURN(GgufLayout layout, PlanGguf(metadata, tensors));
  std::string header;
  header.append(kMagic, 4);
  const uint32_t version = kGgufVersion;
  const uint64_t n_tensors = tensors.size(), n_kv = metadata.size();
  header.append(reinterpret_cast<const char*>(&version), 4);
  header.append(reinterpret_cast<const char*>(&n_tensors), 8);
  header.append(reinterpret_cast<const char*>(&n_kv), 8);
  for (const GgufKv& kv : metadata) {
    const uint64_t n = kv.key.size();
    header.append(reinterpret_cast<const char*>(&n), 8);
    header.append(kv.key);
    const uint32_t type = static_cast<uint32_t>(kv.value.type());
    header.append(reinterpret_cast<const char*>(&type), 4);
    kv.value.Encode(&header);
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    const GgufTensorInfo& t = tensors[i];
    const uint64_t n = t.name.size();
    header.append(reinterpret_cast<const char*>(&n), 8);
    header.append(t.name);
    const uint32_t n_dims = static_cast<uint32_t>(t.ne.size());
    header.append(reinterpret_cast<const char*>(&n_dims), 4);
    for (int64_t d : t.ne) header.append(reinterpret_cast<const char*>(&d), 8);
    const uint32_t type = static_cast<uint32_t>(t.type);
    header.append(reinterpret_cast<const char*>(&type), 4);
    header.append(reinterpret_cast<const char*>(&layout.offsets[i]), 8);
  }
  header.resize(static_cast<size_t>(layout.data_offset), '\0');
  std::unique_ptr<GgufWriter> w(new GgufWriter());
  ASSIGN_OR_RETURN(w->sink_, FileSink::Create(path));
  RETURN_IF_ERROR(w->sink_->Write(header.data(), header.size()));
  w->tensors_ = std::move(tensors);
  w->layout_ = std::move(layout);
  return w;
}

absl::Status GgufWriter::Pad(uint64_t to) {
  static const char kZeros[256] = {};
  while (sink_->bytes_written() < to) {
    const uint64_t n = std::min<uint64_t>(sizeof(kZeros), to - sink_->bytes_written());
    RETURN_IF_ERROR(sink_->Write(kZeros, static_cast<size_t>(n)));
  }
  return absl::OkStatus();
}

absl::Status GgufWriter::Write(std::string_view name, const void* data, size_t nbytes) {
  if (!status_.ok()) return status_;
  // Zero-byte tensors need no call.
  while (next_ < tensors_.size() && layout_.nbytes[next_] == 0 && written_ == 0 &&
         tensors_[next_].name != name) {
    ++next_;
  }
  if (next_ >= tensors_.size() || tensors_[next_].name != name) {
    status_ = absl::FailedPreconditionError(
        absl::StrCat("GGUF tensor \"", std::string(name), "\" written out of order (expected ",
                     next_ < tensors_.size() ? "\"" + tensors_[next_].name + "\"" : "none", ")"));
    return status_;
  }
  const uint64_t size = layout_.nbytes[next_];
  if (nbytes > size - written_) {
    status_ = absl::FailedPreconditionError(absl::StrCat(
        "GGUF tensor \"", std::string(name), "\" given more than its ", size, " bytes"));
    return status_;
  }
  if (absl::Status s = sink_->Write(data, nbytes); !s.ok()) {
    status_ = s;
    return s;
  }
  written_ += nbytes;
  if (written_ == size) {
    const uint64_t end = layout_.data_offset + layout_.offsets[next_] + size;
    uint64_t padded = end;
    AlignUp(end, layout_.alignment, &padded);  // PlanGguf checked overflow
    if (absl::Status s = Pad(padded); !s.ok()) {
      status_ = s;
      return s;
    }
    ++next_;
    written_ = 0;
    // Zero-byte tensors that follow are complete already.
    while (next_ < tensors_.size() && layout_.nbytes[next_] == 0) ++next_;
  }
  return absl::OkStatus();
}

absl::StatusOr<FileDigest> GgufWriter::Finish() {
  if (!status_.ok()) return status_;
  while (next_ < tensors_.size() && layout_.nbytes[next_] == 0) ++next_;
  if (next_ < tensors_.size()) {
    return absl::FailedPreconditionError(absl::StrCat("GGUF tensor \"", tensors_[next_].name,
                                                      "\" not completely written (", written_,
                                                      " of ", layout_.nbytes[next_], " bytes)"));
  }
  return sink_->Finish();
}

}  // namespace quantd
