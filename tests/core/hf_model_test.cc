#include "core/model/hf_model.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;

class HfModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "quantd_hf_model_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void WriteText(const std::string& name, const std::string& text) {
    std::ofstream out(dir_ / name, std::ios::binary);
    out << text;
  }

  void WriteConfig() {
    WriteText("config.json", R"({"architectures":["LlamaForCausalLM"],"hidden_size":8})");
  }

  // Writes a safetensors file holding an F32 [2, 2] tensor per name.
  void WriteWeights(const std::string& file, const std::vector<std::string>& names) {
    std::vector<Tensor> owned;
    std::vector<std::pair<std::string, TensorView>> tensors;
    owned.reserve(names.size());
    for (const std::string& name : names) {
      owned.push_back(Tensor::Zeros(DType::kF32, {2, 2}));
      tensors.emplace_back(name, owned.back().view());
    }
    ASSERT_TRUE(WriteSafetensors(dir_ / file, tensors, {{"format", "pt"}}).ok());
  }

  void WriteIndex(const std::string& weight_map) {
    WriteText("model.safetensors.index.json",
              R"({"metadata":{"total_size":64},"weight_map":)" + weight_map + "}");
  }

  // Writes a two-shard model with an index.
  void WriteShardedModel() {
    WriteConfig();
    WriteWeights("model-00001-of-00002.safetensors", {"embed", "layer.0.w"});
    WriteWeights("model-00002-of-00002.safetensors", {"layer.1.w", "lm_head"});
    WriteIndex(R"({"embed":"model-00001-of-00002.safetensors",)"
               R"("layer.0.w":"model-00001-of-00002.safetensors",)"
               R"("layer.1.w":"model-00002-of-00002.safetensors",)"
               R"("lm_head":"model-00002-of-00002.safetensors"})");
  }

  absl::StatusCode OpenCode() { return HfModel::Open(dir_).status().code(); }

  static std::vector<std::string> Names(const HfModel& model) {
    std::vector<std::string> names;
    for (const ModelTensor& t : model.tensors()) names.push_back(t.name);
    return names;
  }

  fs::path dir_;
};

TEST_F(HfModelTest, OpensSingleFileModel) {
  WriteConfig();
  WriteWeights("model.safetensors", {"b", "a"});
  WriteWeights("consolidated.safetensors", {"other"});  // Ignored.
  for (const char* aux : {"tokenizer.json", "tokenizer_config.json", "README.md",
                          "generation_config.json", "pytorch_model.bin", "consolidated.pth",
                          "pytorch_model.bin.index.json", ".hidden", "model.gguf"}) {
    WriteText(aux, "x");
  }
  fs::create_directory(dir_ / "original");

  absl::StatusOr<std::unique_ptr<HfModel>> model = HfModel::Open(dir_);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->architecture(), "LlamaForCausalLM");
  EXPECT_EQ((*model)->config()["hidden_size"], 8);
  EXPECT_EQ(Names(**model), (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ((*model)->weight_bytes(), 32u);
  EXPECT_EQ((*model)->weight_files(), std::vector<fs::path>{dir_ / "model.safetensors"});
  ASSERT_NE((*model)->Find("a"), nullptr);
  EXPECT_EQ((*model)->Find("a")->view().nbytes, 16u);
  EXPECT_EQ((*model)->Find("other"), nullptr);
  EXPECT_EQ((*model)->AuxiliaryFiles(),
            (std::vector<fs::path>{dir_ / "README.md", dir_ / "generation_config.json",
                                   dir_ / "tokenizer.json", dir_ / "tokenizer_config.json"}));
}

TEST_F(HfModelTest, OpensShardedModelWithIndex) {
  WriteShardedModel();
  absl::StatusOr<std::unique_ptr<HfModel>> model = HfModel::Open(dir_);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(Names(**model),
            (std::vector<std::string>{"embed", "layer.0.w", "layer.1.w", "lm_head"}));
  EXPECT_EQ((*model)->weight_files(),
            (std::vector<fs::path>{dir_ / "model-00001-of-00002.safetensors",
                                   dir_ / "model-00002-of-00002.safetensors"}));
  EXPECT_EQ((*model)->Find("lm_head")->file->path(), dir_ / "model-00002-of-00002.safetensors");
  EXPECT_EQ((*model)->weight_bytes(), 64u);
  EXPECT_TRUE((*model)->AuxiliaryFiles().empty());
}

TEST_F(HfModelTest, FollowsSymlinkedShardsLikeTheHubCache) {
  fs::create_directory(dir_ / "blobs");
  fs::create_directory(dir_ / "snapshot");
  const fs::path model_dir = dir_ / "snapshot";
  WriteWeights("blobs/abc", {"w"});
  fs::create_symlink("../blobs/abc", model_dir / "model.safetensors");
  WriteText("snapshot/config.json", "{}");
  absl::StatusOr<std::unique_ptr<HfModel>> model = HfModel::Open(model_dir);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(Names(**model), std::vector<std::string>{"w"});
  EXPECT_EQ((*model)->architecture(), "");
}

TEST_F(HfModelTest, IncludesShardTensorsMissingFromTheIndex) {
  WriteConfig();
  WriteWeights("s1.safetensors", {"a", "extra"});
  WriteIndex(R"({"a":"s1.safetensors"})");
  absl::StatusOr<std::unique_ptr<HfModel>> model = HfModel::Open(dir_);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(Names(**model), (std::vector<std::string>{"a", "extra"}));
}

TEST_F(HfModelTest, RejectsMissingShard) {
  WriteShardedModel();
  fs::remove(dir_ / "model-00002-of-00002.safetensors");
  absl::Status status = HfModel::Open(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("model-00002-of-00002.safetensors"), absl::string_view::npos);
}

TEST_F(HfModelTest, RejectsTensorMissingFromItsShard) {
  WriteShardedModel();
  WriteIndex(R"({"embed":"model-00001-of-00002.safetensors",)"
             R"("ghost":"model-00002-of-00002.safetensors"})");
  absl::Status status = HfModel::Open(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("ghost"), absl::string_view::npos) << status;
}

TEST_F(HfModelTest, RejectsTensorMappedToTheWrongShard) {
  WriteShardedModel();
  WriteIndex(R"({"embed":"model-00002-of-00002.safetensors",)"
             R"("lm_head":"model-00001-of-00002.safetensors"})");
  EXPECT_EQ(OpenCode(), absl::StatusCode::kInvalidArgument);
}

TEST_F(HfModelTest, RejectsDuplicateTensorsAcrossShards) {
  WriteConfig();
  WriteWeights("s1.safetensors", {"a", "dup"});
  WriteWeights("s2.safetensors", {"dup", "b"});
  WriteIndex(R"({"a":"s1.safetensors","b":"s2.safetensors"})");
  absl::Status status = HfModel::Open(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("dup"), absl::string_view::npos) << status;
}

TEST_F(HfModelTest, RejectsShardNamesOutsideTheFolder) {
  WriteConfig();
  WriteWeights("s1.safetensors", {"a"});
  for (const char* shard : {"../s1.safetensors", "sub/s1.safetensors", "", "/etc/passwd"}) {
    WriteIndex(std::string(R"({"a":")") + shard + R"("})");
    EXPECT_EQ(OpenCode(), absl::StatusCode::kInvalidArgument) << shard;
  }
}

TEST_F(HfModelTest, RejectsMalformedIndex) {
  WriteConfig();
  WriteWeights("s1.safetensors", {"a"});
  for (const char* index : {"not json", "[]", R"({"weight_map":[]})", R"({"weight_map":{"a":1}})",
                            R"({"metadata":{}})", R"({"weight_map":{}})"}) {
    WriteText("model.safetensors.index.json", index);
    EXPECT_EQ(OpenCode(), absl::StatusCode::kInvalidArgument) << index;
  }
}

TEST_F(HfModelTest, RejectsMissingOrInvalidConfig) {
  WriteWeights("model.safetensors", {"a"});
  absl::Status status = HfModel::Open(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("config.json"), absl::string_view::npos) << status;
  for (const char* config : {"", "{", "[1]", "\"x\"", "{\"a\":\"\xff\"}"}) {
    WriteText("config.json", config);
    EXPECT_EQ(OpenCode(), absl::StatusCode::kInvalidArgument) << config;
  }
  WriteText("config.json", std::string(1000, '[') + std::string(1000, ']'));
  EXPECT_EQ(OpenCode(), absl::StatusCode::kInvalidArgument);
}

TEST_F(HfModelTest, RejectsFolderWithoutWeights) {
  WriteConfig();
  WriteText("pytorch_model.bin", "x");
  absl::Status status = HfModel::Open(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("no model.safetensors or model.safetensors.index.json in"),
            absl::string_view::npos)
      << status;
}

TEST_F(HfModelTest, RejectsWeightsWithoutTensors) {
  WriteConfig();
  WriteWeights("model.safetensors", {});
  EXPECT_EQ(OpenCode(), absl::StatusCode::kInvalidArgument);
}

TEST_F(HfModelTest, AcceptsOtherSafetensorsFilesWhenNoStandardOneExists) {
  WriteConfig();
  WriteWeights("consolidated.safetensors", {"a"});
  WriteWeights("extra.safetensors", {"b"});
  absl::StatusOr<std::unique_ptr<HfModel>> model = HfModel::Open(dir_);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(Names(**model), (std::vector<std::string>{"a", "b"}));
}

TEST_F(HfModelTest, PassesOnCorruptWeightFileErrors) {
  WriteConfig();
  WriteText("model.safetensors", "garbage");
  absl::Status status = HfModel::Open(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("model.safetensors"), absl::string_view::npos) << status;
}

TEST_F(HfModelTest, ReportsMissingFolderAsNotFound) {
  EXPECT_EQ(HfModel::Open(dir_ / "missing").status().code(), absl::StatusCode::kNotFound);
  WriteText("file", "x");
  EXPECT_EQ(HfModel::Open(dir_ / "file").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quantd
