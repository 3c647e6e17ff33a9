// llama.cpp importance matrices (core/gguf/imatrix.h): the legacy binary
// and the GGUF form, and malformed files (never a crash).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/gguf/gguf_file.h"
#include "core/gguf/gguf_writer.h"
#include "core/gguf/imatrix.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;

void PutI32(std::string* s, int32_t v) { s->append(reinterpret_cast<const char*>(&v), 4); }
void PutF32(std::string* s, float v) { s->append(reinterpret_cast<const char*>(&v), 4); }

std::string Legacy(const std::vector<std::pair<std::string, std::vector<float>>>& entries,
                   int32_t ncall, bool trailer) {
  std::string s;
  PutI32(&s, static_cast<int32_t>(entries.size()));
  for (const auto& [name, values] : entries) {
    PutI32(&s, static_cast<int32_t>(name.size()));
    s += name;
    PutI32(&s, ncall);
    PutI32(&s, static_cast<int32_t>(values.size()));
    for (float v : values) PutF32(&s, v);
  }
  if (trailer) {
    PutI32(&s, 100);
    PutI32(&s, 9);
    s += "wiki.txt!";
  }
  return s;
}

TEST(ImatrixTest, LegacyDividesByCalls) {
  auto m = ParseLegacyImatrix(
      Legacy({{"blk.0.attn_q.weight", {2, 4, 6}}, {"output.weight", {1, 0}}}, 2, true), "t");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->legacy);
  EXPECT_EQ(*m->Find("blk.0.attn_q.weight"), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(*m->Find("output.weight"), (std::vector<float>{0.5f, 0}));
  EXPECT_EQ(m->Find("nope"), nullptr);
  EXPECT_EQ(m->chunk_count, 100);
  EXPECT_EQ(m->datasets, std::vector<std::string>{"wiki.txt!"});
  // No trailer, ncall 0: values as stored.
  auto raw = ParseLegacyImatrix(Legacy({{"a", {3}}}, 0, false), "t");
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(*raw->Find("a"), std::vector<float>{3});
}

TEST(ImatrixTest, LegacyMalformedIsInvalidArgument) {
  const std::string good = Legacy({{"a", {1, 2}}}, 1, true);
  // Every truncation before the optional trailer fails cleanly.
  for (size_t n = 0; n < 4 + 4 + 1 + 4 + 4 + 8; ++n) {
    EXPECT_EQ(ParseLegacyImatrix(good.substr(0, n), "t").status().code(),
              absl::StatusCode::kInvalidArgument)
        << n;
  }
  std::string huge;
  PutI32(&huge, 1);
  PutI32(&huge, 1);
  huge += "a";
  PutI32(&huge, 1);
  PutI32(&huge, std::numeric_limits<int32_t>::max());
  EXPECT_FALSE(ParseLegacyImatrix(huge, "t").ok());
  EXPECT_FALSE(ParseLegacyImatrix(Legacy({{"a", {NAN}}}, 1, false), "t").ok());
  EXPECT_FALSE(ParseLegacyImatrix(Legacy({{"a", {-1}}}, 1, false), "t").ok());
  EXPECT_FALSE(ParseLegacyImatrix(Legacy({{"a", {1}}, {"a", {1}}}, 1, false), "t").ok());
  std::string neg;
  PutI32(&neg, -3);
  EXPECT_FALSE(ParseLegacyImatrix(neg, "t").ok());
}

class ImatrixFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/imatrix-XXXXXX";
    dir_ = mkdtemp(tmpl.data());
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(ImatrixFileTest, ReadsGgufAndLegacyFiles) {
  // GGUF: one 2-D entry (ne0 = 4, one matrix) and one with two matrices, one
  // of them never seen (count 0 -> importance 1).
  std::vector<GgufKv> kv = {{"general.type", GgufValue::String("imatrix")},
                            {"imatrix.chunk_count", GgufValue::U32(7)},
                            {"imatrix.chunk_size", GgufValue::U32(512)},
                            {"imatrix.datasets", GgufValue::StringArray({"calib.txt"})}};
  std::vector<GgufTensorInfo> infos = {{"blk.0.ffn_up.weight.in_sum2", GgmlType::kF32, {4, 1}},
                                       {"blk.0.ffn_up.weight.counts", GgmlType::kF32, {1, 1}},
                                       {"blk.0.exps.weight.in_sum2", GgmlType::kF32, {2, 2}},
                                       {"blk.0.exps.weight.counts", GgmlType::kF32, {1, 2}}};
  auto w = GgufWriter::Create(dir_ / "im.gguf", kv, infos);
  ASSERT_TRUE(w.ok()) << w.status();
  const float sums[] = {2, 4, 6, 8}, counts[] = {2}, sums2[] = {3, 3, 5, 5}, counts2[] = {3, 0};
  ASSERT_TRUE((*w)->Write(infos[0].name, sums, sizeof(sums)).ok());
  ASSERT_TRUE((*w)->Write(infos[1].name, counts, sizeof(counts)).ok());
  ASSERT_TRUE((*w)->Write(infos[2].name, sums2, sizeof(sums2)).ok());
  ASSERT_TRUE((*w)->Write(infos[3].name, counts2, sizeof(counts2)).ok());
  ASSERT_TRUE((*w)->Finish().ok());
  auto m = ReadImportanceMatrix(dir_ / "im.gguf");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_FALSE(m->legacy);
  EXPECT_EQ(*m->Find("blk.0.ffn_up.weight"), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(*m->Find("blk.0.exps.weight"), (std::vector<float>{1, 1, 1, 1}));
  EXPECT_EQ(m->chunk_count, 7);
  EXPECT_EQ(m->datasets, std::vector<std::string>{"calib.txt"});

  std::ofstream(dir_ / "im.dat", std::ios::binary) << Legacy({{"x", {4}}}, 4, true);
  auto l = ReadImportanceMatrix(dir_ / "im.dat");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(*l->Find("x"), std::vector<float>{1});
  EXPECT_EQ(ReadImportanceMatrix(dir_ / "missing.dat").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ImatrixFileTest, GgufWithoutCountsIsInvalidArgument) {
  std::vector<GgufTensorInfo> infos = {{"a.in_sum2", GgmlType::kF32, {4}}};
  auto w = GgufWriter::Create(dir_ / "bad.gguf", {}, infos);
  ASSERT_TRUE(w.ok());
  const float sums[] = {1, 2, 3, 4};
  ASSERT_TRUE((*w)->Write("a.in_sum2", sums, sizeof(sums)).ok());
  ASSERT_TRUE((*w)->Finish().ok());
  EXPECT_EQ(ReadImportanceMatrix(dir_ / "bad.gguf").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quantd
