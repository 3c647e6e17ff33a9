// A Hugging Face model folder: config.json plus safetensors weights, either
// one model.safetensors or shards listed by model.safetensors.index.json.
#ifndef QUANTD_CORE_MODEL_HF_MODEL_H_
#define QUANTD_CORE_MODEL_HF_MODEL_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/io/safetensors.h"
#include "core/tensor/tensor.h"
#include "nlohmann/json.hpp"

namespace quantd {

// One weight of the model; the pointers refer into the owning HfModel.
struct ModelTensor {
  std::string name;
  const SafetensorsFile* file = nullptr;
  const SafetensorsEntry* entry = nullptr;

  // The tensor's bytes, borrowed from the mapped file.
  TensorView view() const { return file->View(*entry); }
};

class HfModel {
 public:
  // Opens the model folder `dir`. Weights are taken from, in this order:
  //  1. model.safetensors, if present (other *.safetensors files, such as
  //     Mistral's consolidated.safetensors, are then ignored);
  //  2. model.safetensors.index.json: every shard its "weight_map" names is
  //     opened; tensors a shard holds beyond the map are included too;
  //  3. otherwise every non-hidden *.safetensors file directly in `dir`
  //     (some checkpoints ship differently named single files).
  // Fails with NOT_FOUND if `dir` does not exist; INVALID_ARGUMENT if it is
  // not a folder, if config.json is missing, not JSON or not an object, if the
  // index is not JSON, lacks a string->string "weight_map", names a shard
  // with '/' or "..", or a shard that is missing, or maps a tensor to a shard
  // that does not hold it, if a tensor name appears in two files, or if there
  // are no weights at all ("no model.safetensors or
  // model.safetensors.index.json in <dir>") or no tensors in them; the errors
  // of SafetensorsFile::Open for each weight file; INTERNAL when the folder
  // cannot be listed.
  static absl::StatusOr<std::unique_ptr<HfModel>> Open(const std::filesystem::path& dir);

  HfModel(const HfModel&) = delete;
  HfModel& operator=(const HfModel&) = delete;

  const std::filesystem::path& dir() const { return dir_; }
  // The parsed config.json (an object).
  const nlohmann::json& config() const { return config_; }
  // config["architectures"][0], or "" when absent or not a string.
  std::string architecture() const;
  // Every tensor, in the order of weight_files() and, within a file, of
  // offset.
  const std::vector<ModelTensor>& tensors() const { return tensors_; }
  // The tensor named `name`, or nullptr.
  const ModelTensor* Find(std::string_view name) const;
  // Sum of the byte sizes of tensors().
  uint64_t weight_bytes() const { return weight_bytes_; }
  // The safetensors files the weights come from (shards in name order).
  std::vector<std::filesystem::path> weight_files() const;
  // The regular files (symlinks followed) directly in dir() that a quantized
  // copy of the model should carry over unchanged, sorted: everything except
  // hidden files, config.json, weights (*.safetensors, *.bin, *.pt, *.pth,
  // *.gguf, *.ckpt, *.h5, *.msgpack) and their indexes (e.g.
  // model.safetensors.index.json, pytorch_model.bin.index.json). Typically
  // tokenizer.json, tokenizer_config.json, generation_config.json, README.md.
  // Listed when the model was opened.
  std::vector<std::filesystem::path> AuxiliaryFiles() const { return auxiliary_files_; }

 private:
  HfModel() = default;
  absl::Status AddFile(std::unique_ptr<SafetensorsFile> file);

  std::filesystem::path dir_;
  nlohmann::json config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::vector<ModelTensor> tensors_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> tensors_ index.
  uint64_t weight_bytes_ = 0;
  std::vector<std::filesystem::path> auxiliary_files_;
};

}  // namespace quantd

#endif  // QUANTD_CORE_MODEL_HF_MODEL_H_
