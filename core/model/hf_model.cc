#include "core/model/hf_model.h"

#include <algorithm>
#include <array>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/util/fs.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace fs = std::filesystem;
namespace {

using nlohmann::json;

constexpr std::string_view kConfigFile = "config.json";
constexpr std::string_view kSingleWeightsFile = "model.safetensors";
constexpr std::string_view kIndexFile = "model.safetensors.index.json";
constexpr uint64_t kMaxJsonFileBytes = uint64_t{64} << 20;
// Deeper JSON is refused: copying or dumping it recurses once per level.
constexpr int kMaxJsonDepth = 64;
// Extensions of weight files that a quantized copy must not carry over.
constexpr std::array<std::string_view, 8> kWeightExtensions = {
    ".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack"};

std::string Quoted(std::string_view s) {
  return absl::StrCat("\"", absl::CHexEscape(absl::string_view(s.data(), s.size())), "\"");
}

// Depth of the deepest array or object in `root`, walked without recursion.
int JsonDepth(const json& root) {
  int max_depth = 0;
  std::vector<std::pair<const json*, int>> stack = {{&root, 0}};
  while (!stack.empty()) {
    const auto [node, depth] = stack.back();
    stack.pop_back();
    if (!node->is_structured()) continue;
    max_depth = std::max(max_depth, depth + 1);
    for (const json& child : *node) stack.emplace_back(&child, depth + 1);
  }
  return max_depth;
}

// Reads and parses a small JSON file that must hold an object.
absl::StatusOr<json> ReadJsonObject(const fs::path& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path, kMaxJsonFileBytes);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) {
      return absl::InvalidArgumentError(absl::StrCat("missing ", path.string()));
    }
    return text.status();
  }
  json parsed;
  try {
    parsed = json::parse(*text);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), " is not valid JSON: ", e.what()));
  }
  if (!parsed.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), " is not a JSON object"));
  }
  if (JsonDepth(parsed) > kMaxJsonDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), " is nested deeper than ", kMaxJsonDepth, " levels"));
  }
  return parsed;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool IsWeightOrIndexFile(std::string_view name) {
  constexpr std::string_view kIndexSuffix = ".index.json";
  if (EndsWith(name, kIndexSuffix)) name.remove_suffix(kIndexSuffix.size());
  for (std::string_view ext : kWeightExtensions) {
    if (EndsWith(name, ext)) return true;
  }
  return false;
}

// Regular files (symlinks followed) directly in `dir` whose names are not
// hidden, sorted by name.
absl::StatusOr<std::vector<fs::path>> ListFiles(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    std::error_code st_ec;
    if (fs::is_regular_file(it->status(st_ec))) files.push_back(it->path());
  }
  if (ec) return ErrnoStatus(ec.value(), absl::StrCat("cannot list ", dir.string()));
  std::sort(files.begin(), files.end());
  return files;
}

// The shard file names of the index's weight_map, with the map itself.
absl::StatusOr<std::map<std::string, std::string>> ReadWeightMap(const fs::path& index_path) {
  ASSIGN_OR_RETURN(const json index, ReadJsonObject(index_path));
  const auto weight_map = index.find("weight_map");
  if (weight_map == index.end() || !weight_map->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path.string(), ": \"weight_map\" missing or not an object"));
  }
  std::map<std::string, std::string> result;
  for (const auto& [tensor, shard] : weight_map->items()) {
    if (!shard.is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(index_path.string(), ": shard of tensor ",
                                                     Quoted(tensor), " is not a string"));
    }
    const std::string& name = shard.get_ref<const std::string&>();
    if (name.empty() || name.find('/') != std::string::npos ||
        name.find("..") != std::string::npos || name.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path.string(), ": invalid shard name ", Quoted(name)));
    }
    result.emplace(tensor, name);
  }
  return result;
}

}  // namespace

absl::Status HfModel::AddFile(std::unique_ptr<SafetensorsFile> file) {
  for (const SafetensorsEntry& entry : file->entries()) {
    const auto [it, inserted] = index_.emplace(entry.name, tensors_.size());
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", Quoted(entry.name), " is in both ",
                                                     tensors_[it->second].file->path().string(),
                                                     " and ", file->path().string()));
    }
    tensors_.push_back(ModelTensor{entry.name, file.get(), &entry});
    weight_bytes_ += entry.nbytes();
  }
  files_.push_back(std::move(file));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<HfModel>> HfModel::Open(const fs::path& dir) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (!fs::exists(st)) {
    return absl::NotFoundError(absl::StrCat("model folder ", dir.string(), " does not exist"));
  }
  if (!fs::is_directory(st)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model path ", dir.string(), " is not a folder"));
  }
  auto model = std::unique_ptr<HfModel>(new HfModel());
  model->dir_ = dir;
  ASSIGN_OR_RETURN(model->config_, ReadJsonObject(dir / kConfigFile));
  ASSIGN_OR_RETURN(const std::vector<fs::path> files, ListFiles(dir));

  const auto has_file = [&files, &dir](std::string_view name) {
    return std::binary_search(files.begin(), files.end(), dir / name);
  };
  std::map<std::string, std::string> weight_map;
  std::vector<fs::path> weight_paths;
  if (has_file(kSingleWeightsFile)) {
    weight_paths.push_back(dir / kSingleWeightsFile);
  } else if (has_file(kIndexFile)) {
    ASSIGN_OR_RETURN(weight_map, ReadWeightMap(dir / kIndexFile));
    std::set<std::string> shards;
    for (const auto& [tensor, shard] : weight_map) shards.insert(shard);
    for (const std::string& shard : shards) {
      if (!has_file(shard)) {
        return absl::InvalidArgumentError(absl::StrCat("shard ", Quoted(shard), " listed in ",
                                                       (dir / kIndexFile).string(), " is missing"));
      }
      weight_paths.push_back(dir / shard);
    }
  } else {
    for (const fs::path& file : files) {
      if (file.extension() == ".safetensors") weight_paths.push_back(file);
    }
  }
  if (weight_paths.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("no ", std::string(kSingleWeightsFile), " or ",
                                                   std::string(kIndexFile), " in ", dir.string()));
  }

  for (const fs::path& path : weight_paths) {
    ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(path));
    RETURN_IF_ERROR(model->AddFile(std::move(file)));
  }
  for (const auto& [tensor, shard] : weight_map) {
    const ModelTensor* found = model->Find(tensor);
    if (found == nullptr || found->file->path().filename() != shard) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", Quoted(tensor), " listed in ",
                                                     (dir / kIndexFile).string(), " is not in ",
                                                     Quoted(shard)));
    }
  }
  if (model->tensors_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("no tensors in the weights of ", dir.string()));
  }

  for (const fs::path& file : files) {
    const std::string name = file.filename().string();
    if (name != kConfigFile && !IsWeightOrIndexFile(name)) model->auxiliary_files_.push_back(file);
  }
  return model;
}

std::string HfModel::architecture() const {
  const auto archs = config_.find("architectures");
  if (archs == config_.end() || !archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
    return "";
  }
  return (*archs)[0].get<std::string>();
}

const ModelTensor* HfModel::Find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

std::vector<fs::path> HfModel::weight_files() const {
  std::vector<fs::path> paths;
  paths.reserve(files_.size());
  for (const auto& file : files_) paths.push_back(file->path());
  return paths;
}

}  // namespace quantd
