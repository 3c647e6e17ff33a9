// Tokenizers into GGUF keys (core/gguf/gguf_tokenizer.h): SentencePiece
// from a hand-encoded tokenizer.model, SPM-kind and byte-level BPE
// tokenizer.json, special ids, add_* flags, chat templates, pre-tokenizer
// names, malformed input.
#include "core/gguf/gguf_tokenizer.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "nlohmann/json.hpp"

namespace quantd {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Protobuf encoding helpers for a sentencepiece ModelProto.
std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
  return out;
}
std::string Field(int field, int wt) { return Varint(static_cast<uint64_t>(field) << 3 | wt); }
std::string Bytes(int field, const std::string& b) {
  return Field(field, 2) + Varint(b.size()) + b;
}
std::string Piece(const std::string& text, float score, int type) {
  std::string p = Bytes(1, text) + Field(2, 5);
  char f[4];
  std::memcpy(f, &score, 4);
  p.append(f, 4);
  if (type != 1) p += Field(3, 0) + Varint(type);
  return Bytes(1, p);
}

class GgufTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/gguf-tok-XXXXXX";
    dir_ = mkdtemp(tmpl.data());
  }
  void TearDown() override { fs::remove_all(dir_); }

  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  void WriteJson(const std::string& name, const json& j) { Write(name, j.dump()); }

  // A byte-level BPE tokenizer.json with `pre` as pre_tokenizer.
  json BpeTokenizer(const json& pre) {
    json vocab = {{"a", 0}, {"b", 1}, {"ab", 2}, {"\xc4\xa0", 3}};
    return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"a b"})}}},
            {"added_tokens",
             json::array({{{"id", 4}, {"content", "<|begin_of_text|>"}, {"special", true}},
                          {{"id", 5}, {"content", "<|eot_id|>"}, {"special", true}},
                          {{"id", 6}, {"content", "hello world"}, {"special", false}}})},
            {"pre_tokenizer", pre},
            {"decoder", {{"type", "ByteLevel"}}}};
  }

  fs::path dir_;
};

TEST_F(GgufTokenizerTest, SentencePieceModelWithTypesScoresAndPadding) {
  std::string model = Piece("<unk>", 0, 2) + Piece("<s>", 0, 3) + Piece("</s>", 0, 3) +
                      Piece("<0x0A>", 0, 6) +
                      Piece(
                          "\xe2\x96\x81"
                          "a",
                          -1.5f, 1) +
                      Piece("<custom>", 0, 4) + Piece("<unused0>", 0, 5);
  // normalizer_spec { add_dummy_prefix: false }
  model += Bytes(3, Field(3, 0) + Varint(0));
  // trainer_spec (field 2) with a field we do not read.
  model += Bytes(2, Field(3, 0) + Varint(2));
  Write("tokenizer.model", model);
  WriteJson("tokenizer_config.json",
            {{"add_bos_token", true},
             {"add_eos_token", false},
             {"bos_token", "<s>"},
             {"chat_template", "{{ messages }}"},
             {"added_tokens_decoder", {{"7", {{"content", "<|im_end|>"}, {"special", true}}}}}});
  json config = {{"vocab_size", 10}, {"bos_token_id", 1}, {"eos_token_id", 2}};
  auto v = LoadGgufVocab(dir_, config, VocabFlavor::kLlama);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->model, "llama");
  EXPECT_EQ(v->pre, "default");
  ASSERT_EQ(v->tokens.size(), 10u);
  EXPECT_EQ(v->tokens[4],
            "\xe2\x96\x81"
            "a");
  EXPECT_FLOAT_EQ(v->scores[4], -1.5f);
  EXPECT_EQ(v->types[0], GgufTokenType::kUnknown);
  EXPECT_EQ(v->types[1], GgufTokenType::kControl);
  EXPECT_EQ(v->types[3], GgufTokenType::kByte);
  EXPECT_EQ(v->types[4], GgufTokenType::kNormal);
  EXPECT_EQ(v->types[5], GgufTokenType::kNormal);  // user-defined -> normal, as convert does
  EXPECT_EQ(v->types[6], GgufTokenType::kUnused);
  EXPECT_EQ(v->tokens[7], "<|im_end|>");
  EXPECT_EQ(v->types[7], GgufTokenType::kControl);
  EXPECT_FLOAT_EQ(v->scores[7], -1000.0f);
  EXPECT_EQ(v->tokens[9], "[PAD9]");
  EXPECT_EQ(v->types[9], GgufTokenType::kUnused);
  // No tokenizer.json: the ids come from config.json.
  EXPECT_EQ(v->special_ids.at("bos"), 1);
  EXPECT_EQ(v->special_ids.at("eos"), 2);
  EXPECT_EQ(v->special_ids.at("eot"), 7);  // found by text, as llama.cpp does
  EXPECT_TRUE(v->add_special.at("bos"));
  EXPECT_FALSE(v->add_special.at("eos"));
  EXPECT_EQ(v->add_space_prefix, false);
  EXPECT_EQ(v->chat_template, "{{ messages }}");
}

TEST_F(GgufTokenizerTest, MalformedSentencePieceIsInvalidArgument) {
  for (const std::string& bad : {std::string("\x0a\x05\x0a\x09", 4), std::string("\xff\xff"),
                                 Piece("x", 0, 9), std::string()}) {
    auto m = ParseSentencePieceModel(bad);
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  }
  Write("tokenizer.model", "not a protobuf at all \xff\xff\xff");
  auto v = LoadGgufVocab(dir_, json::object(), VocabFlavor::kLlama);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(v.status().message().find("tokenizer.model"), std::string::npos);
}

TEST_F(GgufTokenizerTest, ByteLevelBpeWithLlama3PreTokenizer) {
  json pre = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array(
           {{{"type", "Split"},
             {"pattern",
              {{"Regex",
                R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
             {"behavior", "Isolated"}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
  json tok = BpeTokenizer(pre);
  tok["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       json::array({{{"type", "ByteLevel"}},
                    {{"type", "TemplateProcessing"},
                     {"single", json::array({{{"SpecialToken", {{"id", "<|begin_of_text|>"}}}},
                                             {{"Sequence", {{"id", "A"}}}}})}}})}};
  WriteJson("tokenizer.json", tok);
  WriteJson("tokenizer_config.json",
            {{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|eot_id|>"}});
  Write("chat_template.jinja", "{{ bos_token }}");
  auto v = LoadGgufVocab(dir_, {{"vocab_size", 8}}, VocabFlavor::kLlama);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->model, "gpt2");
  EXPECT_EQ(v->pre, "llama-bpe");
  EXPECT_TRUE(v->scores.empty());
  ASSERT_EQ(v->tokens.size(), 8u);
  EXPECT_EQ(v->merges, std::vector<std::string>{"a b"});
  EXPECT_EQ(v->types[0], GgufTokenType::kNormal);
  EXPECT_EQ(v->types[4], GgufTokenType::kControl);
  EXPECT_EQ(v->types[6], GgufTokenType::kUserDefined);
  EXPECT_EQ(v->tokens[7], "[PAD7]");
  EXPECT_EQ(v->special_ids.at("bos"), 4);
  EXPECT_EQ(v->special_ids.at("eos"), 5);
  EXPECT_EQ(v->special_ids.at("eot"), 5);
  EXPECT_TRUE(v->add_special.at("bos"));  // from TemplateProcessing
  EXPECT_EQ(v->chat_template, "{{ bos_token }}");
  EXPECT_TRUE(v->warnings.empty()) << v->warnings[0];
}

TEST_F(GgufTokenizerTest, RecognizesPreTokenizers) {
  auto split = [](const std::string& re) {
    return json{{"type", "Sequence"},
                {"pretokenizers", json::array({{{"type", "Split"}, {"pattern", {{"Regex", re}}}},
                                               {{"type", "ByteLevel"}, {"use_regex", false}}})}};
  };
  EXPECT_EQ(
      DetectBpePreTokenizer(BpeTokenizer(split(
          R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"))),
      "qwen2");
  EXPECT_EQ(DetectBpePreTokenizer(BpeTokenizer(split("\\s+"))), "");
  EXPECT_EQ(DetectBpePreTokenizer(BpeTokenizer({{"type", "ByteLevel"}, {"use_regex", true}})),
            "gpt-2");
  EXPECT_EQ(DetectBpePreTokenizer(BpeTokenizer(
                {{"type", "Sequence"},
                 {"pretokenizers", json::array({{{"type", "Digits"}, {"individual_digits", true}},
                                                {{"type", "ByteLevel"}, {"use_regex", true}}})}})),
            "smollm");
  // Unknown: "default" and a warning.
  WriteJson("tokenizer.json", BpeTokenizer(split("\\s+")));
  auto v = LoadGgufVocab(dir_, json::object(), VocabFlavor::kQwen2);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->pre, "default");
  ASSERT_FALSE(v->warnings.empty());
  EXPECT_NE(v->warnings[0].find("pre-tokenizer"), std::string::npos);
  EXPECT_EQ(v->tokens.size(), 7u);  // no vocab_size: up to the largest id
}

TEST_F(GgufTokenizerTest, SentencePieceKindTokenizerJsonScoresFollowMergeRanks) {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}, {"<0x41>", 3},        {"\xe2\x96\x81", 4},
                {"t", 5},     {"h", 6},   {"th", 7},   {"\xe2\x96\x81th", 8}};
  json tok = {
      {"model",
       {{"type", "BPE"},
        {"byte_fallback", true},
        {"unk_token", "<unk>"},
        {"vocab", vocab},
        {"merges", json::array({"t h", "\xe2\x96\x81 th"})}}},
      {"added_tokens", json::array({{{"id", 1}, {"content", "<s>"}, {"special", true}},
                                    {{"id", 2}, {"content", "</s>"}, {"special", true}},
                                    {{"id", 9}, {"content", "<tool>"}, {"special", false}}})},
      {"decoder", {{"type", "Sequence"}, {"decoders", json::array()}}}};
  WriteJson("tokenizer.json", tok);
  WriteJson("tokenizer_config.json", {{"bos_token", "<s>"}, {"eos_token", "</s>"}});
  auto v = LoadGgufVocab(dir_, {{"vocab_size", 10}}, VocabFlavor::kLlama);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->model, "llama");
  EXPECT_EQ(v->types[0], GgufTokenType::kUnknown);
  EXPECT_EQ(v->types[1], GgufTokenType::kControl);
  EXPECT_EQ(v->types[3], GgufTokenType::kByte);
  EXPECT_EQ(v->types[9], GgufTokenType::kUserDefined);
  EXPECT_FLOAT_EQ(v->scores[7], -1.0f);  // first merge
  EXPECT_FLOAT_EQ(v->scores[8], -2.0f);
  EXPECT_FLOAT_EQ(v->scores[5], 0.0f);
  EXPECT_FLOAT_EQ(v->scores[9], -1000.0f);
  EXPECT_EQ(v->special_ids.at("bos"), 1);
  EXPECT_EQ(v->special_ids.at("eos"), 2);
  // The same file for Qwen2 is read as byte-level BPE.
  auto q = LoadGgufVocab(dir_, {{"vocab_size", 10}}, VocabFlavor::kQwen2);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->model, "gpt2");
}

TEST_F(GgufTokenizerTest, RejectsBadVocabularies) {
  auto v = LoadGgufVocab(dir_, json::object(), VocabFlavor::kLlama);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  WriteJson("tokenizer.json", BpeTokenizer({{"type", "ByteLevel"}}));
  // vocab_size smaller than the ids used.
  EXPECT_EQ(LoadGgufVocab(dir_, {{"vocab_size", 3}}, VocabFlavor::kLlama).status().code(),
            absl::StatusCode::kInvalidArgument);
  json dup = BpeTokenizer({{"type", "ByteLevel"}});
  dup["model"]["vocab"]["c"] = 1;
  WriteJson("tokenizer.json", dup);
  EXPECT_EQ(LoadGgufVocab(dir_, json::object(), VocabFlavor::kLlama).status().code(),
            absl::StatusCode::kInvalidArgument);
  Write("tokenizer.json", "{not json");
  EXPECT_EQ(LoadGgufVocab(dir_, json::object(), VocabFlavor::kLlama).status().code(),
            absl::StatusCode::kInvalidArgument);
  WriteJson("tokenizer.json", {{"model", {{"type", "Unigram"}}}});
  EXPECT_EQ(LoadGgufVocab(dir_, json::object(), VocabFlavor::kLlama).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(GgufTokenizerTest, ChatTemplateListAndMissingEosWarn) {
  WriteJson("tokenizer.json", BpeTokenizer({{"type", "ByteLevel"}, {"use_regex", true}}));
  WriteJson("tokenizer_config.json",
            {{"chat_template", json::array({{{"name", "default"}, {"template", "D"}},
                                            {{"name", "tool use"}, {"template", "T"}}})}});
  auto v = LoadGgufVocab(dir_, json::object(), VocabFlavor::kLlama);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->chat_template, "D");
  ASSERT_EQ(v->named_chat_templates.size(), 1u);
  EXPECT_EQ(v->named_chat_templates[0].first, "tool_use");
  bool warned = false;
  for (const std::string& w : v->warnings) warned |= w.find("eos") != std::string::npos;
  EXPECT_TRUE(warned);
}

}  // namespace
}  // namespace quantd
