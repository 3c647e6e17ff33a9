// End to end for method "gguf": quantd as a real process, driven by
// quantctl, writes one llama.cpp GGUF file for a generated tiny Llama model.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/gguf/gguf_file.h"
#include "core/util/fs.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/server_process.h"
#include "tests/fixtures/tiny_model.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string Binary(const char* env, const char* built) {
  const char* v = std::getenv(env);
  return v && *v ? v : built;
}

class GgufEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/quantd-gguf-e2e-XXXXXX";
    root_ = mkdtemp(tmpl.data());
    fs::create_directories(root_ / "models");
    fs::create_directories(root_ / "outputs");
    TinyLlamaOptions o;  // rows of 256: the K-quants need no fallback
    o.hidden = 256;
    o.intermediate = 512;
    o.layers = 4;
    ASSERT_TRUE(WriteTinyLlama(root_ / "models" / "tiny", o).ok());
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(root_);
  }

  void StartServer(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--gpus",        "none",
                                     "--model-root",  (root_ / "models").string(),
                                     "--output-root", (root_ / "outputs").string(),
                                     "--cpu-workers", "1",
                                     "--cpu-threads", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto s = ServerProcess::Start(Binary("QUANTD_BIN", QUANTD_BIN), root_ / "data", args);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }

  std::string Quantctl(const std::string& args, int* exit_code) {
    auto [rc, out] = RunCommand(absl::StrCat(Binary("QUANTCTL_BIN", QUANTCTL_BIN), " --server ",
                                             server_->grpc_address(), " ", args, " 2>/dev/null"));
    *exit_code = rc;
    return out;
  }

  fs::path root_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(GgufEndToEndTest, QuantctlWritesOneGgufFile) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  int rc;
  std::string out = Quantctl(
      "-o json quantize --model tiny --method gguf --gguf-type Q4_K_M --output tiny-q4 --wait",
      &rc);
  ASSERT_EQ(rc, 0) << out;
  json job = json::parse(out, nullptr, false);
  ASSERT_TRUE(job.is_object()) << out;
  ASSERT_EQ(job["state"], "JOB_STATE_SUCCEEDED") << out;
  const json& result = job["result"];
  EXPECT_EQ(result["output"], "tiny-q4.gguf");
  ASSERT_EQ(result["files"].size(), 1u);
  const fs::path file = root_ / "outputs" / "tiny-q4.gguf";
  auto digest = HashFile(file);
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(result["files"][0]["path"], "tiny-q4.gguf");
  EXPECT_EQ(result["files"][0]["sha256"], digest->sha256);
  EXPECT_EQ(result["parameters"]["gguf_type"], "Q4_K_M");
  EXPECT_EQ(result["parameters"]["imatrix"], "no");
  const double bpw = result["metrics"]["bits_per_weight"];
  EXPECT_GT(bpw, 4.5);
  EXPECT_LT(bpw, 7.0);

  auto f = GgufFile::Open(file);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*(*f)->Find("general.architecture")->GetString(), "llama");
  EXPECT_EQ((*f)->Find("general.file_type")->Get<uint32_t>(), 15u);
  EXPECT_NE((*f)->Find("tokenizer.chat_template"), nullptr);
  std::map<std::string, std::string> reported;
  for (const json& t : result["tensors"]) reported[t["name"]] = t["encoding"];
  for (const GgufTensor& t : (*f)->tensors()) {
    EXPECT_EQ(reported[t.name], GgmlTypeName(t.type)) << t.name;
  }
  EXPECT_EQ((*f)->FindTensor("output.weight")->type, GgmlType::kQ6_K);
  EXPECT_EQ((*f)->FindTensor("blk.3.attn_v.weight")->type, GgmlType::kQ6_K);
  EXPECT_EQ((*f)->FindTensor("blk.1.attn_v.weight")->type, GgmlType::kQ4_K);
  EXPECT_EQ((*f)->FindTensor("blk.1.attn_norm.weight")->type, GgmlType::kF32);
  for (const auto& e : fs::directory_iterator(root_ / "outputs")) {
    EXPECT_FALSE(absl::StrContains(e.path().filename().string(), "quantd-tmp"));
  }
  // The same name again is refused unless overwritten.
  Quantctl("quantize --model tiny --method gguf --output tiny-q4.gguf --wait", &rc);
  EXPECT_EQ(rc, 3);
}

TEST_F(GgufEndToEndTest, ImatrixAndOverrides) {
  // A legacy imatrix naming two tensors.
  std::string im;
  auto i32 = [&](int32_t v) { im.append(reinterpret_cast<const char*>(&v), 4); };
  i32(2);
  for (const std::string name : {"blk.0.ffn_down.weight", "blk.0.attn_q.weight"}) {
    const int32_t cols = absl::StrContains(name, "ffn_down") ? 512 : 256;
    i32(static_cast<int32_t>(name.size()));
    im += name;
    i32(1);
    i32(cols);
    for (int32_t c = 0; c < cols; ++c) {
      const float v = 1.0f + static_cast<float>(c % 7);
      im.append(reinterpret_cast<const char*>(&v), 4);
    }
  }
  std::ofstream(root_ / "models" / "tiny.imatrix", std::ios::binary) << im;
  ASSERT_NO_FATAL_FAILURE(StartServer());
  int rc;
  std::string out = Quantctl(
      "-o json quantize --model tiny --method gguf --gguf-type q4_0 --imatrix tiny.imatrix "
      "--option override=ffn_up=Q8_0 --output withim --wait",
      &rc);
  ASSERT_EQ(rc, 0) << out;
  json job = json::parse(out, nullptr, false);
  ASSERT_EQ(job["state"], "JOB_STATE_SUCCEEDED") << out;
  EXPECT_EQ(job["result"]["parameters"]["imatrix"], "yes");
  EXPECT_EQ(job["result"]["metrics"]["imatrix_tensors"], 2.0);
  auto f = GgufFile::Open(root_ / "outputs" / "withim.gguf");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->FindTensor("blk.2.ffn_up.weight")->type, GgmlType::kQ8_0);
  EXPECT_EQ((*f)->FindTensor("blk.2.ffn_gate.weight")->type, GgmlType::kQ4_0);
  // An imatrix entry whose length is not the row length is refused.
  im.clear();
  i32(1);
  i32(19);
  im += "blk.0.attn_q.weight";
  i32(1);
  i32(3);
  for (int i = 0; i < 3; ++i) i32(0x3f800000);  // 1.0f
  std::ofstream(root_ / "models" / "bad.imatrix", std::ios::binary) << im;
  Quantctl("quantize --model tiny --method gguf --imatrix bad.imatrix --output bad --wait", &rc);
  EXPECT_EQ(rc, 3);
}

TEST_F(GgufEndToEndTest, RefusesUnsupportedArchitectureAndBadTypes) {
  fs::create_directories(root_ / "models" / "gpt2");
  fs::copy(root_ / "models" / "tiny", root_ / "models" / "gpt2",
           fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  json config = json::parse(std::ifstream(root_ / "models" / "gpt2" / "config.json"));
  config["architectures"] = {"GPT2LMHeadModel"};
  std::ofstream(root_ / "models" / "gpt2" / "config.json") << config.dump();
  ASSERT_NO_FATAL_FAILURE(StartServer());
  int rc;
  Quantctl("quantize --model gpt2 --method gguf --output g --wait", &rc);
  EXPECT_EQ(rc, 3);
  Quantctl("quantize --model tiny --method gguf --gguf-type IQ2_XS --output g --wait", &rc);
  EXPECT_EQ(rc, 3);
  Quantctl("quantize --model tiny --method gguf --group-size 32 --output g --wait", &rc);
  EXPECT_EQ(rc, 3);
  EXPECT_FALSE(fs::exists(root_ / "outputs" / "g.gguf"));
}

TEST_F(GgufEndToEndTest, CancelledJobLeavesNoFile) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--debug-step-delay-ms", "200"}));
  int rc;
  std::string id = Quantctl("quantize --model tiny --method gguf --output slow", &rc);
  ASSERT_EQ(rc, 0);
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  Quantctl("cancel " + id, &rc);
  EXPECT_EQ(rc, 0);
  std::string out = Quantctl("-o json watch " + id, &rc);
  json job = json::parse(out, nullptr, false);
  EXPECT_EQ(job["state"], "JOB_STATE_CANCELLED") << out;
  EXPECT_FALSE(fs::exists(root_ / "outputs" / "slow.gguf"));
  for (const auto& e : fs::directory_iterator(root_ / "outputs")) {
    EXPECT_FALSE(absl::StrContains(e.path().filename().string(), "quantd-tmp"));
  }
}

}  // namespace
}  // namespace quantd
