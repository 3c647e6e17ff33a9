#include "core/io/safetensors.h"

#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;

constexpr DType kAllDTypes[] = {
    DType::kBool, DType::kU8,  DType::kI8,  DType::kU16,    DType::kI16,
    DType::kU32,  DType::kI32, DType::kU64, DType::kI64,    DType::kF16,
    DType::kBF16, DType::kF32, DType::kF64, DType::kF8E4M3, DType::kF8E5M2,
};

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "quantd_safetensors_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Writes `bytes` verbatim to a new file and returns its path.
  fs::path WriteBytes(const std::string& name, const std::string& bytes) {
    fs::path path = dir_ / name;
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  // A file with an 8-byte length for `header`, then `header`, then
  // `data_bytes` bytes of data.
  fs::path WriteRaw(const std::string& name, const std::string& header, size_t data_bytes) {
    return WriteBytes(name, LengthPrefix(header.size()) + header + std::string(data_bytes, '\x5a'));
  }

  static std::string LengthPrefix(uint64_t n) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(n >> (8 * i));
    return s;
  }

  // Expects Open() to fail with INVALID_ARGUMENT whose message starts with
  // the path.
  static void ExpectInvalid(const fs::path& path, const std::string& label) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
    ASSERT_FALSE(file.ok()) << label;
    EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument)
        << label << ": " << file.status();
    EXPECT_EQ(file.status().message().substr(0, path.string().size()), path.string())
        << label << ": " << file.status();
  }

  fs::path dir_;
};

// A tensor of `shape` whose bytes count up from `seed`.
Tensor Pattern(DType dtype, Shape shape, uint8_t seed) {
  Tensor t = Tensor::Allocate(dtype, std::move(shape));
  for (size_t i = 0; i < t.nbytes(); ++i) t.data()[i] = static_cast<uint8_t>(seed + i * 7);
  return t;
}

TEST_F(SafetensorsTest, RoundTripsEveryDTypeWithScalarsAndEmptyTensors) {
  std::vector<Tensor> owned;
  std::vector<std::pair<std::string, TensorView>> tensors;
  uint8_t seed = 1;
  for (DType dtype : kAllDTypes) {
    const std::string name(DTypeName(dtype));
    for (const auto& [suffix, shape] : std::vector<std::pair<std::string, Shape>>{
             {".matrix", {3, 5}}, {".scalar", {}}, {".empty", {0, 4}}, {".rank3", {2, 1, 3}}}) {
      owned.push_back(Pattern(dtype, shape, seed++));
      tensors.emplace_back(name + suffix, owned.back().view());
    }
  }
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"quantd", "1"}};
  const fs::path path = dir_ / "all.safetensors";
  absl::StatusOr<FileDigest> digest = WriteSafetensors(path, tensors, metadata);
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(digest->size, fs::file_size(path));
  EXPECT_EQ(digest->sha256.size(), 64u);

  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata(), metadata);
  ASSERT_EQ((*file)->entries().size(), tensors.size());
  uint64_t total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, expected] = tensors[i];
    // Laid out in the order given, so entries() (by offset) keeps it.
    EXPECT_EQ((*file)->entries()[i].name, name);
    absl::StatusOr<TensorView> got = (*file)->Get(name);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->dtype, expected.dtype) << name;
    EXPECT_EQ(got->shape, expected.shape) << name;
    ASSERT_EQ(got->nbytes, expected.nbytes) << name;
    EXPECT_EQ(std::memcmp(got->data, expected.data, expected.nbytes), 0) << name;
    total += expected.nbytes;
  }
  EXPECT_EQ((*file)->data_bytes(), total);
  EXPECT_EQ((*file)->data_offset() + (*file)->data_bytes(), fs::file_size(path));
}

TEST_F(SafetensorsTest, AlignsDataSectionTo8BytesWithSpaces) {
  for (size_t name_len = 1; name_len <= 16; ++name_len) {
    Tensor t = Pattern(DType::kF32, {2}, 3);
    const fs::path path = dir_ / ("aligned" + std::to_string(name_len));
    ASSERT_TRUE(WriteSafetensors(path, {{std::string(name_len, 'w'), t.view()}}, {}).ok());
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ((*file)->data_offset() % 8, 0u);
    const uint8_t* bytes = (*file)->mapped().data();
    const uint64_t header_end = (*file)->data_offset();
    EXPECT_TRUE(bytes[header_end - 1] == '}' || bytes[header_end - 1] == ' ');
    EXPECT_EQ(bytes[8], '{');
  }
}

TEST_F(SafetensorsTest, WritesMetadataFirstThenTensorsInOrder) {
  Tensor a = Pattern(DType::kF16, {2}, 0);
  Tensor b = Pattern(DType::kF16, {2}, 1);
  const fs::path path = dir_ / "order.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {{"zeta", a.view()}, {"alpha", b.view()}}, {{"k", "v"}}).ok());
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t meta = bytes.find("__metadata__");
  const size_t zeta = bytes.find("zeta");
  const size_t alpha = bytes.find("alpha");
  ASSERT_NE(meta, std::string::npos);
  EXPECT_LT(meta, zeta);
  EXPECT_LT(zeta, alpha);
}

TEST_F(SafetensorsTest, ReadsUnpaddedHeadersAndToleratesHoles) {
  const fs::path path = WriteRaw(
      "holes.safetensors",
      R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]},)"
      R"("a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
      9);
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ((*file)->entries().size(), 3u);
  EXPECT_EQ((*file)->entries()[0].name, "a");
  EXPECT_EQ((*file)->entries()[1].name, "e");
  EXPECT_EQ((*file)->entries()[2].name, "b");
  EXPECT_EQ((*file)->data_bytes(), 9u);
  EXPECT_TRUE((*file)->metadata().empty());
}

TEST_F(SafetensorsTest, GetReportsMissingTensorAsNotFound) {
  Tensor t = Pattern(DType::kU8, {1}, 0);
  const fs::path path = dir_ / "one.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {{"x", t.view()}}, {}).ok());
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ((*file)->Find("y"), nullptr);
  EXPECT_EQ((*file)->Get("y").status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE((*file)->Find("x"), nullptr);
}

TEST_F(SafetensorsTest, WritesAndReadsAFileWithoutTensors) {
  const fs::path path = dir_ / "none.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {}, {}).ok());
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE((*file)->entries().empty());
}

TEST_F(SafetensorsTest, MissingFileIsNotFound) {
  EXPECT_EQ(SafetensorsFile::Open(dir_ / "nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(SafetensorsFile::Open(dir_).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SafetensorsTest, WriterRejectsOutOfOrderWrongSizeAndMissingTensors) {
  Tensor a = Pattern(DType::kF32, {4}, 0);
  const std::vector<TensorMeta> metas = {{"a", DType::kF32, {4}}, {"b", DType::kF32, {2}}};
  {
    auto writer = SafetensorsWriter::Create(dir_ / "w1", metas, {});
    ASSERT_TRUE(writer.ok()) << writer.status();
    absl::Status s = (*writer)->Write("b", a.data(), 8);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(s.message().find("\"b\""), absl::string_view::npos) << s;
    // The writer stays failed.
    EXPECT_FALSE((*writer)->Write("a", a.data(), a.nbytes()).ok());
  }
  EXPECT_FALSE(fs::exists(dir_ / "w1"));  // The partial file is removed.
  {
    auto writer = SafetensorsWriter::Create(dir_ / "w2", metas, {});
    ASSERT_TRUE(writer.ok());
    EXPECT_EQ((*writer)->Write("a", a.data(), 12).code(), absl::StatusCode::kFailedPrecondition);
  }
  {
    auto writer = SafetensorsWriter::Create(dir_ / "w3", metas, {});
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Write("a", a.data(), a.nbytes()).ok());
    absl::StatusOr<FileDigest> done = (*writer)->Finish();
    EXPECT_EQ(done.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(done.status().message().find("\"b\""), absl::string_view::npos);
  }
  EXPECT_FALSE(fs::exists(dir_ / "w3"));
  {
    auto writer = SafetensorsWriter::Create(dir_ / "w4", metas, {});
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Write("a", a.data(), a.nbytes()).ok());
    ASSERT_TRUE((*writer)->Write("b", a.data(), 8).ok());
    EXPECT_EQ((*writer)->Write("c", a.data(), 0).code(), absl::StatusCode::kFailedPrecondition);
  }
}

TEST_F(SafetensorsTest, WriterRejectsBadTensorLists) {
  const auto code = [&](std::vector<TensorMeta> metas,
                        const std::map<std::string, std::string>& md) {
    return SafetensorsWriter::Create(dir_ / "bad", std::move(metas), md).status().code();
  };
  EXPECT_EQ(code({{"a", DType::kU8, {1}}, {"a", DType::kU8, {1}}}, {}),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({{"__metadata__", DType::kU8, {1}}}, {}), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({{"", DType::kU8, {1}}}, {}), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({{"a", DType::kU8, {-1}}}, {}), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({{"a", DType::kU8, {int64_t{1} << 40, int64_t{1} << 40}}}, {}),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({{"a", DType::kU8, Shape(9, 1)}}, {}), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({{"bad\xff", DType::kU8, {1}}}, {}), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({}, {{"k", "\xc3"}}), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(dir_ / "bad"));
}

TEST_F(SafetensorsTest, WriterRefusesExistingFile) {
  WriteBytes("exists", "x");
  EXPECT_EQ(WriteSafetensors(dir_ / "exists", {}, {}).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(SafetensorsTest, RejectsTruncatedFilesAndBadHeaderLengths) {
  ExpectInvalid(WriteBytes("empty", ""), "empty file");
  ExpectInvalid(WriteBytes("seven", "1234567"), "7 bytes");
  ExpectInvalid(WriteBytes("len_only", LengthPrefix(0)), "zero-length header");
  ExpectInvalid(WriteBytes("too_long", LengthPrefix(100) + "{}"), "length beyond file");
  ExpectInvalid(WriteBytes("huge", LengthPrefix(~uint64_t{0}) + "{}"), "length 2^64-1");
  // A (sparse) file big enough for a header just over the limit.
  const fs::path big = WriteBytes("big", LengthPrefix(kSafetensorsMaxHeaderBytes + 1) + "{}");
  fs::resize_file(big, 8 + kSafetensorsMaxHeaderBytes + 1);
  ExpectInvalid(big, "header over 100 MB");

  // Every prefix of a valid file is rejected, never crashes.
  Tensor t = Pattern(DType::kF32, {3}, 1);
  const fs::path whole = dir_ / "whole";
  ASSERT_TRUE(WriteSafetensors(whole, {{"t", t.view()}}, {{"a", "b"}}).ok());
  std::ifstream in(whole, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (size_t n = 0; n < bytes.size(); ++n) {
    ExpectInvalid(WriteBytes("prefix" + std::to_string(n), bytes.substr(0, n)),
                  "prefix of " + std::to_string(n));
  }
}

TEST_F(SafetensorsTest, RejectsMalformedHeaders) {
  const std::string f32 = R"("dtype":"F32","shape":[2],"data_offsets":[0,8])";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json", "not json"},
      {"truncated json", R"({"a":{)"},
      {"empty header", ""},
      {"array", "[]"},
      {"string", R"("x")"},
      {"invalid utf8 key", "{\"\xff\":{" + f32 + "}}"},
      {"nul byte", std::string("{\0}", 3)},
      {"deep nesting", std::string(100000, '[') + std::string(100000, ']')},
      {"entry not object", R"({"a":1})"},
      {"entry array", R"({"a":[1]})"},
      {"missing dtype", R"({"a":{"shape":[2],"data_offsets":[0,8]}})"},
      {"missing shape", R"({"a":{"dtype":"F32","data_offsets":[0,8]}})"},
      {"missing offsets", R"({"a":{"dtype":"F32","shape":[2]}})"},
      {"dtype not string", R"({"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})"},
      {"unknown dtype", R"({"a":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}})"},
      {"lower-case dtype", R"({"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}})"},
      {"extra field", "{\"a\":{" + f32 + R"(,"extra":1}})"},
      {"shape not array", R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})"},
      {"negative dim", R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})"},
      {"fractional dim", R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}})"},
      {"float dim", R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})"},
      {"string dim", R"({"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})"},
      {"nested dim", R"({"a":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}})"},
      {"absurd shape", R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776],)"
                       R"("data_offsets":[0,8]}})"},
      {"bytes overflow", R"({"a":{"dtype":"F64","shape":[2305843009213693952],)"
                         R"("data_offsets":[0,8]}})"},
      {"dim over int64", R"({"a":{"dtype":"U8","shape":[9223372036854775808],)"
                         R"("data_offsets":[0,8]}})"},
      {"dim over uint64", R"({"a":{"dtype":"U8","shape":[99999999999999999999],)"
                          R"("data_offsets":[0,8]}})"},
      {"rank 9", R"({"a":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,8],"data_offsets":[0,8]}})"},
      {"offsets not array", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":0}})"},
      {"one offset", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})"},
      {"three offsets", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}})"},
      {"negative offset", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})"},
      {"string offsets", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":["0","8"]}})"},
      {"float offset", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8.0]}})"},
      {"begin after end", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})"},
      {"size mismatch", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})"},
      {"end out of range", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[60,68]}})"},
      {"offset overflow", R"({"a":{"dtype":"U8","shape":[2],)"
                          R"("data_offsets":[18446744073709551615,1]}})"},
      {"overlap", "{\"a\":{" + f32 + R"(},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})"},
      {"same range", "{\"a\":{" + f32 + "},\"b\":{" + f32 + "}}"},
      {"contained", R"({"a":{"dtype":"U8","shape":[32],"data_offsets":[0,32]},)"
                    R"("b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}})"},
      {"metadata not object", R"({"__metadata__":"x"})"},
      {"metadata int value", R"({"__metadata__":{"k":1}})"},
      {"metadata null value", R"({"__metadata__":{"k":null}})"},
  };
  int i = 0;
  for (const auto& [label, header] : cases) {
    ExpectInvalid(WriteRaw("case" + std::to_string(i++), header, 64), label);
  }
}

}  // namespace
}  // namespace quantd
