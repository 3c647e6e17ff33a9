#include "core/gguf/gguf_file.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/gguf/gguf_checks.h"
#include "core/util/status_macros.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "GGUF is read here with host byte order (little-endian)"
#endif

namespace quantd {

using gguf_internal::AlignmentOf;
using gguf_internal::AlignUp;
using gguf_internal::CheckTensor;
using gguf_internal::IsKnownValueType;
using gguf_internal::kMagic;

// ---------------------------------------------------------------------------
// Reading

// Bounds-checked little-endian reads from the mapped header.
class GgufValueReader {
 public:
  GgufValueReader(const uint8_t* data, uint64_t size) : data_(data), size_(size) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  template <class T>
  absl::Status Read(T* out, const char* what) {
    if (remaining() < sizeof(T)) return Truncated(what);
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return absl::OkStatus();
  }

  absl::Status ReadString(std::string* out, const char* what) {
    uint64_t n = 0;
    RETURN_IF_ERROR(Read(&n, what));
    if (n > remaining()) {
      return absl::InvalidArgumentError(absl::StrCat(what, " of ", n, " bytes at offset ", pos_ - 8,
                                                     " runs past the end of the file"));
    }
    out->assign(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
    pos_ += n;
    return absl::OkStatus();
  }

  // A value of `type` (already read); depth counts enclosing arrays.
  absl::Status ReadValue(GgufValueType type, int depth, GgufValue* v) {
    v->type_ = type;
    if (type == GgufValueType::kString) return ReadString(&v->str_, "string value");
    if (type != GgufValueType::kArray) {
      const size_t b = GgufValue::ScalarBytes(type);
      if (remaining() < b) return Truncated("value");
      v->bits_ = 0;
      std::memcpy(&v->bits_, data_ + pos_, b);
      pos_ += b;
      return absl::OkStatus();
    }
    if (depth + 1 > kGgufMaxArrayDepth) {
      return absl::InvalidArgumentError(
          absl::StrCat("arrays nested deeper than ", kGgufMaxArrayDepth, " at offset ", pos_));
    }
    uint32_t elem = 0;
    uint64_t n = 0;
    RETURN_IF_ERROR(Read(&elem, "array type"));
    if (!IsKnownValueType(elem)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown array element type ", elem, " at offset ", pos_ - 4));
    }
    RETURN_IF_ERROR(Read(&n, "array length"));
    v->elem_type_ = static_cast<GgufValueType>(elem);
    // Each item takes at least this many bytes of the file, which bounds n
    // before anything is allocated.
    const uint64_t min_item = v->elem_type_ == GgufValueType::kString ? 8
                              : v->elem_type_ == GgufValueType::kArray
                                  ? 12
                                  : GgufValue::ScalarBytes(v->elem_type_);
    if (n > remaining() / min_item) {
      return absl::InvalidArgumentError(absl::StrCat("array of ", n, " items at offset ", pos_ - 12,
                                                     " runs past the end of the file"));
    }
    if (v->elem_type_ == GgufValueType::kString) {
      v->strings_.resize(static_cast<size_t>(n));
      for (std::string& s : v->strings_) RETURN_IF_ERROR(ReadString(&s, "string array item"));
    } else if (v->elem_type_ == GgufValueType::kArray) {
      v->arrays_.resize(static_cast<size_t>(n));
      for (GgufValue& item : v->arrays_) {
        RETURN_IF_ERROR(ReadValue(GgufValueType::kArray, depth + 1, &item));
      }
    } else {
      const uint64_t bytes = n * min_item;
      v->packed_.assign(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(bytes));
      pos_ += bytes;
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Truncated(const char* what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("file ends inside the header (reading ", what, " at offset ", pos_, ")"));
  }

  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

namespace {

struct Header {
  uint32_t version = 0;
  std::vector<GgufKv> metadata;
  std::vector<GgufTensor> tensors;
  uint64_t end = 0;  // first byte after the tensor infos
};

absl::StatusOr<Header> ParseHeader(const uint8_t* data, uint64_t size) {
  GgufValueReader r(data, size);
  Header h;
  char magic[4] = {};
  RETURN_IF_ERROR(r.Read(&magic, "magic"));
  if (std::memcmp(magic, kMagic, 4) != 0) return absl::InvalidArgumentError("not a GGUF file");
  RETURN_IF_ERROR(r.Read(&h.version, "version"));
  if (h.version != 2 && h.version != 3) {
    if ((h.version & 0xffffu) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF version ", h.version, " looks byte-swapped (a big-endian file)"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported GGUF version ", h.version, " (2 and 3 are read)"));
  }
  uint64_t n_tensors = 0, n_kv = 0;
  RETURN_IF_ERROR(r.Read(&n_tensors, "tensor count"));
  RETURN_IF_ERROR(r.Read(&n_kv, "metadata count"));
  // A key-value pair takes >= 13 bytes (key length, type, one byte), a
  // tensor info >= 24 (name length, dimension count, type, offset).
  if (n_kv > r.remaining() / 13) {
    return absl::InvalidArgumentError(
        absl::StrCat("metadata count ", n_kv, " does not fit in the file"));
  }
  if (n_tensors > r.remaining() / 24) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor count ", n_tensors, " does not fit in the file"));
  }
  std::set<std::string, std::less<>> keys;
  h.metadata.resize(static_cast<size_t>(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    GgufKv& kv = h.metadata[i];
    RETURN_IF_ERROR(r.ReadString(&kv.key, "key"));
    if (kv.key.empty()) return absl::InvalidArgumentError(absl::StrCat("key ", i, " is empty"));
    if (!keys.insert(kv.key).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate key \"", kv.key, "\""));
    }
    uint32_t type = 0;
    RETURN_IF_ERROR(r.Read(&type, "value type"));
    if (!IsKnownValueType(type)) {
      return absl::InvalidArgumentError(
          absl::StrCat("key \"", kv.key, "\" has unknown value type ", type));
    }
    absl::Status s = r.ReadValue(static_cast<GgufValueType>(type), 0, &kv.value);
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("key \"", kv.key, "\": ", s.message()));
    }
  }
  std::set<std::string, std::less<>> names;
  h.tensors.resize(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor& t = h.tensors[i];
    RETURN_IF_ERROR(r.ReadString(&t.name, "tensor name"));
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate tensor name \"", t.name, "\""));
    }
    uint32_t n_dims = 0;
    RETURN_IF_ERROR(r.Read(&n_dims, "dimension count"));
    if (n_dims > kGgufMaxDims) {
      return absl::InvalidArgumentError(absl::StrCat("tensor \"", t.name, "\" has ", n_dims,
                                                     " dimensions, more than ", kGgufMaxDims));
    }
    if (n_dims == 0) {
      return absl::InvalidArgumentError(absl::StrCat("tensor \"", t.name, "\" has no dimensions"));
    }
    t.ne.resize(n_dims);
    for (int64_t& d : t.ne) RETURN_IF_ERROR(r.Read(&d, "dimension"));
    uint32_t type = 0;
    RETURN_IF_ERROR(r.Read(&type, "tensor type"));
    absl::StatusOr<GgmlType> gt = GgmlTypeFromId(type);
    if (!gt.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor \"", t.name, "\": ", gt.status().message()));
    }
    t.type = *gt;
    RETURN_IF_ERROR(r.Read(&t.offset, "tensor offset"));
    ASSIGN_OR_RETURN(t.nbytes, CheckTensor(t.name, t.type, t.ne));
  }
  h.end = r.pos();
  return h;
}

}  // namespace

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(path));
  const auto fail = [&](const absl::Status& s) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", s.message()));
  };
  absl::StatusOr<Header> h = ParseHeader(file->data(), file->size());
  if (!h.ok()) return fail(h.status());
  std::unique_ptr<GgufFile> g(new GgufFile());
  g->version_ = h->version;
  g->metadata_ = std::move(h->metadata);
  g->tensors_ = std::move(h->tensors);
  for (size_t i = 0; i < g->metadata_.size(); ++i) g->key_index_[g->metadata_[i].key] = i;
  for (size_t i = 0; i < g->tensors_.size(); ++i) g->tensor_index_[g->tensors_[i].name] = i;
  absl::StatusOr<uint32_t> alignment = AlignmentOf(g->Find(kGgufAlignmentKey));
  if (!alignment.ok()) return fail(alignment.status());
  g->alignment_ = *alignment;
  const uint64_t size = file->size();
  if (!AlignUp(h->end, g->alignment_, &g->data_offset_) || g->data_offset_ > size) {
    if (!g->tensors_.empty()) return fail(absl::InvalidArgumentError("no data section"));
    g->data_offset_ = size;
  }
  const uint64_t data_bytes = size - g->data_offset_;
  std::vector<const GgufTensor*> by_offset;
  for (const GgufTensor& t : g->tensors_) {
    if (t.offset % g->alignment_ != 0) {
      return fail(absl::InvalidArgumentError(absl::StrCat(
          "tensor \"", t.name, "\" offset ", t.offset, " is not a multiple of ", g->alignment_)));
    }
    if (t.offset > data_bytes || t.nbytes > data_bytes - t.offset) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat("tensor \"", t.name, "\" (", t.nbytes, " bytes at offset ", t.offset,
                       ") ends beyond the data section of ", data_bytes, " bytes")));
    }
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](const GgufTensor* a, const GgufTensor* b) {
    return a->offset != b->offset ? a->offset < b->offset : a->nbytes < b->nbytes;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensor* a = by_offset[i - 1];
    const GgufTensor* b = by_offset[i];
    if (a->offset + a->nbytes > b->offset) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat("tensors \"", a->name, "\" and \"", b->name, "\" overlap")));
    }
  }
  g->file_ = std::move(file);
  return g;
}

const GgufValue* GgufFile::Find(std::string_view key) const {
  auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].value;
}

const GgufTensor* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* GgufFile::TensorData(const GgufTensor& t) const {
  return file_->data() + data_offset_ + t.offset;
}

}  // namespace quantd
