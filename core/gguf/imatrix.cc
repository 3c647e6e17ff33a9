#include "core/gguf/imatrix.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/gguf/gguf_file.h"
#include "core/util/fs.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace {

constexpr uint64_t kMaxLegacyBytes = 4ull << 30;
constexpr int32_t kMaxNameBytes = 4096;

class Cursor {
 public:
  explicit Cursor(std::string_view b) : b_(b) {}
  bool I32(int32_t* v) {
    if (b_.size() - pos_ < 4) return false;
    std::memcpy(v, b_.data() + pos_, 4);
    pos_ += 4;
    return true;
  }
  bool Take(size_t n, std::string_view* out) {
    if (b_.size() - pos_ < n) return false;
    *out = b_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == b_.size(); }

 private:
  std::string_view b_;
  size_t pos_ = 0;
};

absl::Status CheckValues(const std::string& what, const std::string& name,
                         const std::vector<float>& v) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i]) || v[i] < 0) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": entry ", name, " value ", i, " is ",
                                                     v[i], " (importance must be finite, >= 0)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ImportanceMatrix> ReadGgufImatrix(const std::filesystem::path& path) {
  const std::string what = path.string();
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> f, GgufFile::Open(path));
  ImportanceMatrix m;
  if (const GgufValue* v = f->Find("imatrix.chunk_count")) m.chunk_count = v->AsInt64().value_or(0);
  if (const GgufValue* v = f->Find("imatrix.datasets")) {
    if (const auto* ds = v->GetStringArray()) m.datasets = *ds;
  }
  struct Pair {
    const GgufTensor* sums = nullptr;
    const GgufTensor* counts = nullptr;
  };
  std::map<std::string, Pair> pairs;
  auto strip = [](const std::string& n, std::string_view suffix, std::string* base) {
    if (n.size() <= suffix.size() ||
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) != 0)
      return false;
    *base = n.substr(0, n.size() - suffix.size());
    return true;
  };
  for (const GgufTensor& t : f->tensors()) {
    std::string base;
    if (strip(t.name, ".in_sum2", &base)) {
      pairs[base].sums = &t;
    } else if (strip(t.name, ".counts", &base)) {
      pairs[base].counts = &t;
    }
  }
  if (pairs.empty()) return absl::InvalidArgumentError(what + ": no importance entries");
  for (const auto& [name, p] : pairs) {
    if (p.sums == nullptr || p.counts == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": entry ", name, " lacks its in_sum2 or counts tensor"));
    }
    if (p.sums->type != GgmlType::kF32 || p.counts->type != GgmlType::kF32) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": entry ", name, " is not F32"));
    }
    const size_t nval = p.sums->nbytes / 4, ncounts = p.counts->nbytes / 4;
    if (nval == 0 || ncounts == 0 || nval % ncounts != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": entry ", name, " has ", nval, " sums for ", ncounts, " counts"));
    }
    const size_t ne0 = nval / ncounts;
    std::vector<float> sums(nval), counts(ncounts);
    std::memcpy(sums.data(), f->TensorData(*p.sums), nval * 4);
    std::memcpy(counts.data(), f->TensorData(*p.counts), ncounts * 4);
    std::vector<float> values(nval);
    for (size_t j = 0; j < ncounts; ++j) {
      if (!std::isfinite(counts[j]) || counts[j] < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": entry ", name, " has count ", counts[j]));
      }
      const float count = static_cast<float>(std::lround(counts[j]));
      for (size_t i = 0; i < ne0; ++i) {
        values[j * ne0 + i] = count > 0.0f ? sums[j * ne0 + i] / count : 1.0f;
      }
    }
    RETURN_IF_ERROR(CheckValues(what, name, values));
    m.entries.emplace(name, std::move(values));
  }
  return m;
}

}  // namespace

const std::vector<float>* ImportanceMatrix::Find(std::string_view name) const {
  auto it = entries.find(name);
  return it == entries.end() ? nullptr : &it->second;
}

absl::StatusOr<ImportanceMatrix> ParseLegacyImatrix(std::string_view bytes,
                                                    std::string_view what_v) {
  const std::string what(what_v);
  auto bad = [&](const std::string& msg) { return absl::InvalidArgumentError(what + ": " + msg); };
  Cursor c(bytes);
  int32_t n_entries = 0;
  if (!c.I32(&n_entries) || n_entries < 1) return bad("no importance entries");
  ImportanceMatrix m;
  m.legacy = true;
  for (int32_t e = 0; e < n_entries; ++e) {
    int32_t len = 0, ncall = 0, nval = 0;
    std::string_view name, data;
    if (!c.I32(&len) || len < 1 || len > kMaxNameBytes || !c.Take(len, &name)) {
      return bad(absl::StrCat("entry ", e + 1, ": bad or truncated name"));
    }
    if (!c.I32(&ncall) || !c.I32(&nval) || nval < 1 ||
        !c.Take(static_cast<size_t>(nval) * 4, &data)) {
      return bad(
          absl::StrCat("entry ", e + 1, " (", std::string(name), "): bad or truncated values"));
    }
    std::vector<float> values(nval);
    std::memcpy(values.data(), data.data(), data.size());
    if (ncall > 0) {
      for (float& v : values) v /= static_cast<float>(ncall);
    }
    RETURN_IF_ERROR(CheckValues(what, std::string(name), values));
    if (!m.entries.emplace(std::string(name), std::move(values)).second) {
      return bad(absl::StrCat("entry ", std::string(name), " appears twice"));
    }
  }
  // Optional trailer: chunk count and dataset name.
  int32_t chunks = 0, len = 0;
  std::string_view dataset;
  if (c.I32(&chunks)) {
    m.chunk_count = chunks;
    if (c.I32(&len) && len > 0 && c.Take(static_cast<size_t>(len), &dataset)) {
      m.datasets.emplace_back(dataset);
    }
  }
  return m;
}

absl::StatusOr<ImportanceMatrix> ReadImportanceMatrix(const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path, kMaxLegacyBytes));
  if (bytes.size() >= 4 && bytes.compare(0, 4, "GGUF") == 0) return ReadGgufImatrix(path);
  return ParseLegacyImatrix(bytes, path.string());
}

}  // namespace quantd
