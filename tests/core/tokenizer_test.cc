// Tokenizer ids against Hugging Face `tokenizers`: golden files written by
// tests/golden/tokenizer/make_golden.py (see there to regenerate), the
// tokenizer.model path against the same ids, and cases a script hands over
// through QUANTD_TOKENIZER_CASES (tests/interop/tokenizer_fuzz.py).
#include "core/tokenizer/tokenizer.h"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/util/fs.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace quantd {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

fs::path GoldenDir() {
  if (const char* dir = std::getenv("QUANTD_TOKENIZER_GOLDEN_DIR")) return dir;
  return fs::path(__FILE__).parent_path().parent_path() / "golden" / "tokenizer";
}

fs::path SharedDir() {
  if (const char* dir = std::getenv("QUANTD_SHARED_DIR")) return dir;
  return fs::path(__FILE__).parent_path().parent_path().parent_path().parent_path() / "shared";
}

Json ReadJson(const fs::path& path) {
  auto text = ReadFileToString(path, 64 << 20);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? Json::parse(*text) : Json();
}

const Json& Golden() {
  static const Json* golden = new Json(ReadJson(GoldenDir() / "golden_ids.json"));
  return *golden;
}

// Compares `tokenizer` with one tokenizer's golden cases (`texts` indexed by
// each case's "text", or the case's own "text" string).
void ExpectMatchesCases(const Tokenizer& tokenizer, const Json& cases, const Json& texts,
                        const std::string& label) {
  int failures = 0;
  for (const Json& c : cases) {
    const std::string text = c["text"].is_string()
                                 ? c["text"].get<std::string>()
                                 : texts[c["text"].get<size_t>()].get<std::string>();
    SCOPED_TRACE(label + " text: " + Json(text).dump());
    auto ids = tokenizer.Encode(text, /*add_special_tokens=*/true);
    ASSERT_TRUE(ids.ok()) << ids.status();
    const auto expected = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(*ids, expected);
    auto plain = tokenizer.Encode(text, /*add_special_tokens=*/false);
    ASSERT_TRUE(plain.ok()) << plain.status();
    EXPECT_EQ(*plain, c["ids_no_special"].get<std::vector<int32_t>>());
    EXPECT_EQ(tokenizer.Decode(expected, /*skip_special=*/false), c["decoded"].get<std::string>());
    EXPECT_EQ(tokenizer.Decode(expected, /*skip_special=*/true),
              c["decoded_skip_special"].get<std::string>());
    if (::testing::Test::HasFailure() && ++failures >= 5) return;
  }
}

class TokenizerGoldenTest : public ::testing::TestWithParam<const char*> {};

TEST_P(TokenizerGoldenTest, MatchesHuggingFaceIdsAndDecoding) {
  const Json& expected = Golden()["tokenizers"][GetParam()];
  ASSERT_TRUE(expected.is_object()) << "no golden entry for " << GetParam();
  auto tokenizer = Tokenizer::FromModelDir(GoldenDir() / GetParam());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->kind(), "hf_bpe");
  EXPECT_EQ((*tokenizer)->bos_id(), expected["bos_id"].get<int32_t>());
  EXPECT_EQ((*tokenizer)->eos_id(), expected["eos_id"].get<int32_t>());
  EXPECT_EQ((*tokenizer)->vocab_size(), expected["vocab_size"].get<int32_t>());
  ExpectMatchesCases(**tokenizer, expected["cases"], Golden()["texts"], GetParam());
}

INSTANTIATE_TEST_SUITE_P(Golden, TokenizerGoldenTest,
                         ::testing::Values("llama2", "gpt2_bpe", "llama3_bpe", "qwen2_bpe",
                                           "smollm_bpe", "spm_bpe", "spm_legacy_bpe"));

class TokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "quantd_tokenizer_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void Copy(const fs::path& from, const std::string& name) {
    fs::copy_file(from, dir_ / name, fs::copy_options::overwrite_existing);
  }
  void Write(const std::string& name, const std::string& text) {
    FILE* f = std::fopen((dir_ / name).c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }

  fs::path dir_;
};

TEST_F(TokenizerTest, SentencePieceModelGivesTheIdsOfTokenizerJson) {
  Copy(GoldenDir() / "llama2" / "tokenizer.model", "tokenizer.model");
  Copy(GoldenDir() / "llama2" / "tokenizer_config.json", "tokenizer_config.json");
  auto tokenizer = Tokenizer::FromModelDir(dir_);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->kind(), "sentencepiece_bpe");
  EXPECT_EQ((*tokenizer)->bos_id(), 1);
  EXPECT_EQ((*tokenizer)->eos_id(), 2);
  EXPECT_EQ((*tokenizer)->vocab_size(), 32000);
  ExpectMatchesCases(**tokenizer, Golden()["tokenizers"]["llama2"]["cases"], Golden()["texts"],
                     "tokenizer.model");
}

TEST_F(TokenizerTest, SentencePieceModelWithoutConfigUsesItsControlPieces) {
  Copy(GoldenDir() / "llama2" / "tokenizer.model", "tokenizer.model");
  auto tokenizer = Tokenizer::FromModelDir(dir_);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->bos_id(), 1);
  EXPECT_EQ((*tokenizer)->eos_id(), 2);
  ExpectMatchesCases(**tokenizer, Golden()["tokenizers"]["llama2"]["cases"], Golden()["texts"],
                     "tokenizer.model without config");
}

TEST_F(TokenizerTest, ReferenceModelFolder) {
  const fs::path model = SharedDir() / "models" / "quantd-ref-llama-31m";
  if (!fs::exists(model / "tokenizer.json")) GTEST_SKIP() << "no " << model;
  auto tokenizer = Tokenizer::FromModelDir(model);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  ExpectMatchesCases(**tokenizer, Golden()["tokenizers"]["llama2"]["cases"], Golden()["texts"],
                     "reference model");
  EXPECT_EQ((*tokenizer)->eos_ids(), std::vector<int32_t>({2}));
}

TEST_F(TokenizerTest, PrefersTokenizerJson) {
  Copy(GoldenDir() / "llama2" / "tokenizer.model", "tokenizer.model");
  Copy(GoldenDir() / "llama2" / "tokenizer.json", "tokenizer.json");
  auto tokenizer = Tokenizer::FromModelDir(dir_);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->kind(), "hf_bpe");
}

TEST_F(TokenizerTest, ConfigAddBosAndEosReplaceTheTemplate) {
  Copy(GoldenDir() / "llama2" / "tokenizer.json", "tokenizer.json");
  Write("tokenizer_config.json",
        R"({"add_bos_token": false, "add_eos_token": true, "bos_token": "<s>",
            "eos_token": {"content": "</s>", "__type": "AddedToken"}})");
  Write("generation_config.json", R"({"eos_token_id": [2, 7]})");
  auto tokenizer = Tokenizer::FromModelDir(dir_);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  auto ids = (*tokenizer)->Encode("Hello world", true);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, std::vector<int32_t>({15043, 3186, 2}));
  EXPECT_EQ((*tokenizer)->eos_ids(), std::vector<int32_t>({2, 7}));
}

// Byte-level BPE without a normalizer loses nothing, except the whitespace
// that an added token's lstrip/rstrip absorbs (gpt2_bpe's "<mask>" and
// "[NEW]"; `tokenizers` drops it too).
TEST_F(TokenizerTest, ByteLevelDecodeRoundTrips) {
  for (const char* name : {"gpt2_bpe", "llama3_bpe", "smollm_bpe"}) {
    auto tokenizer = Tokenizer::FromModelDir(GoldenDir() / name);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    int checked = 0;
    for (const Json& text : Golden()["texts"]) {
      const std::string s = text.get<std::string>();
      if (std::string(name) == "gpt2_bpe" &&
          (s.find("<mask>") != std::string::npos || s.find("[NEW]") != std::string::npos)) {
        continue;
      }
      auto ids = (*tokenizer)->Encode(s, false);
      ASSERT_TRUE(ids.ok());
      EXPECT_EQ((*tokenizer)->Decode(*ids, false), s) << name;
      ++checked;
    }
    EXPECT_GE(checked, 18) << name;
  }
}

TEST_F(TokenizerTest, Llama2DecodeRoundTripsPlainText) {
  auto tokenizer = Tokenizer::FromModelDir(GoldenDir() / "llama2");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  for (const char* text :
       {"Hello world", " Hello  world ", "日本語 👋🏽\n\tcode", "a\r\nb"}) {
    auto ids = (*tokenizer)->Encode(text, true);
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ((*tokenizer)->Decode(*ids, true), text);
  }
}

// Cases written by tests/interop/tokenizer_fuzz.py: {"tokenizers": {name:
// {"dir": ..., "cases": [{"text": "...", "ids": ..., ...}]}}}.
TEST(TokenizerExternalCases, MatchHuggingFace) {
  const char* path = std::getenv("QUANTD_TOKENIZER_CASES");
  if (path == nullptr) GTEST_SKIP() << "QUANTD_TOKENIZER_CASES is not set";
  const Json cases = ReadJson(path);
  ASSERT_TRUE(cases.contains("tokenizers"));
  for (const auto& [name, entry] : cases["tokenizers"].items()) {
    auto tokenizer = Tokenizer::FromModelDir(entry["dir"].get<std::string>());
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    ExpectMatchesCases(**tokenizer, entry["cases"], Json::array(), name);
  }
}

}  // namespace
}  // namespace quantd
