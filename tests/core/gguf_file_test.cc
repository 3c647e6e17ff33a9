// GGUF v3 container (core/gguf/gguf_file.h): the writer's files read back
// with every metadata value type, alignments, and corrupt or hostile inputs
// (truncated anywhere, wrong counts, huge lengths, offsets out of range or
// misaligned, bad alignment values, bad types) rejected with
// INVALID_ARGUMENT, never a crash or a huge allocation.
#include "core/gguf/gguf_file.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/gguf/gguf_writer.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;

// Little-endian byte builder for hand-made headers.
struct Bytes {
  std::string s;
  Bytes& U32(uint32_t v) { return Put(&v, 4); }
  Bytes& U64(uint64_t v) { return Put(&v, 8); }
  Bytes& I64(int64_t v) { return Put(&v, 8); }
  Bytes& Str(const std::string& v) {
    U64(v.size());
    s += v;
    return *this;
  }
  Bytes& Put(const void* p, size_t n) {
    s.append(static_cast<const char*>(p), n);
    return *this;
  }
  Bytes& PadTo(size_t align) {
    while (s.size() % align != 0) s.push_back('\0');
    return *this;
  }
};

// One tensor info as written by hand.
struct RawTensor {
  std::string name;
  std::vector<int64_t> ne;
  uint32_t type = 0;
  uint64_t offset = 0;
};

// "GGUF" v3 with `n_kv` key-values already encoded in `kvs` and the tensor
// infos; the data section (`data_bytes` of 0x5a) after padding to `align`.
std::string Header(uint64_t n_kv, const std::string& kvs, const std::vector<RawTensor>& tensors,
                   size_t align, size_t data_bytes, uint32_t version = 3,
                   int64_t n_tensors_override = -1) {
  Bytes b;
  b.Put("GGUF", 4).U32(version);
  b.U64(n_tensors_override >= 0 ? static_cast<uint64_t>(n_tensors_override) : tensors.size());
  b.U64(n_kv);
  b.s += kvs;
  for (const RawTensor& t : tensors) {
    b.Str(t.name).U32(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) b.I64(d);
    b.U32(t.type).U64(t.offset);
  }
  b.PadTo(align);
  b.s.append(data_bytes, '\x5a');
  return b.s;
}

std::string KvU32(const std::string& key, uint32_t v) {
  return Bytes().Str(key).U32(static_cast<uint32_t>(GgufValueType::kU32)).U32(v).s;
}

std::string KvString(const std::string& key, const std::string& v) {
  return Bytes().Str(key).U32(static_cast<uint32_t>(GgufValueType::kString)).Str(v).s;
}

// A valid file: one F32 [32] tensor at 0 and one F16 [64] at 128.
std::vector<RawTensor> TwoTensors() { return {{"a", {32}, 0, 0}, {"b", {64}, 1, 128}}; }

class GgufFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat("gguf_file_test_", ::testing::UnitTest::GetInstance()->random_seed(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path Put(const std::string& bytes) {
    const fs::path p = dir_ / absl::StrCat("f", n_++, ".gguf");
    std::ofstream(p, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return p;
  }

  // Opens `bytes`; expects INVALID_ARGUMENT whose message contains `what`.
  void ExpectRejected(const std::string& bytes, const std::string& what) {
    absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(Put(bytes));
    ASSERT_FALSE(f.ok()) << "accepted; expected: " << what;
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << f.status();
    EXPECT_TRUE(absl::StrContains(f.status().message(), what)) << f.status();
  }

  fs::path dir_;
  int n_ = 0;
};

TEST_F(GgufFileTest, HandMadeFileIsAccepted) {
  const std::string kvs = KvU32("general.alignment", 32) + KvString("general.name", "x");
  absl::StatusOr<std::unique_ptr<GgufFile>> f =
      GgufFile::Open(Put(Header(2, kvs, TwoTensors(), 32, 256)));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->version(), 3u);
  ASSERT_EQ((*f)->tensors().size(), 2u);
  EXPECT_EQ((*f)->tensors()[1].nbytes, 128u);
  EXPECT_EQ(*(*f)->Find("general.name")->GetString(), "x");
}

TEST_F(GgufFileTest, WriterRoundTripsEveryValueTypeAndAlignment) {
  std::vector<GgufKv> kv = {
      {"general.alignment", GgufValue::U32(64)},
      {"u8", GgufValue::U8(200)},
      {"i8", GgufValue::I8(-100)},
      {"u16", GgufValue::U16(60000)},
      {"i16", GgufValue::I16(-30000)},
      {"u32", GgufValue::U32(4000000000u)},
      {"i32", GgufValue::I32(-2000000000)},
      {"f32", GgufValue::F32(1.5f)},
      {"bool", GgufValue::Bool(true)},
      {"str", GgufValue::String(std::string("h\0llo", 5))},
      {"u64", GgufValue::U64(std::numeric_limits<uint64_t>::max())},
      {"i64", GgufValue::I64(std::numeric_limits<int64_t>::min())},
      {"f64", GgufValue::F64(-0.25)},
      {"arr.f32", GgufValue::Array<float>({1.0f, -2.0f, 3.5f})},
      {"arr.i64", GgufValue::Array<int64_t>({-1, 2})},
      {"arr.bool", GgufValue::Array<bool>({true, false, true})},
      {"arr.str", GgufValue::StringArray({"a", "", "ccc"})},
      {"arr.empty", GgufValue::EmptyArray(GgufValueType::kI32)},
      {"arr.nested", GgufValue::ArrayOfArrays(
                         {GgufValue::Array<uint8_t>({1, 2}), GgufValue::StringArray({"x"})})},
  };
  std::vector<GgufTensorInfo> infos = {
      {"w.q4k", GgmlType::kQ4_K, {256, 3}},
      {"w.q80", GgmlType::kQ8_0, {64, 2}},
      {"norm", GgmlType::kF32, {7}},
  };
  const fs::path path = dir_ / "rt.gguf";
  absl::StatusOr<std::unique_ptr<GgufWriter>> w = GgufWriter::Create(path, kv, infos);
  ASSERT_TRUE(w.ok()) << w.status();
  std::vector<std::string> payloads;
  for (size_t i = 0; i < infos.size(); ++i) {
    std::string p(static_cast<size_t>((*w)->layout().nbytes[i]), '\0');
    for (size_t j = 0; j < p.size(); ++j) p[j] = static_cast<char>(j * 7 + i);
    // In two pieces, as the pipeline may write.
    ASSERT_TRUE((*w)->Write(infos[i].name, p.data(), p.size() / 2).ok());
    ASSERT_TRUE((*w)->Write(infos[i].name, p.data() + p.size() / 2, p.size() - p.size() / 2).ok());
    payloads.push_back(p);
  }
  absl::StatusOr<FileDigest> d = (*w)->Finish();
  ASSERT_TRUE(d.ok()) << d.status();

  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->alignment(), 64u);
  EXPECT_EQ((*f)->data_offset() % 64, 0u);
  ASSERT_EQ((*f)->metadata().size(), kv.size());
  for (size_t i = 0; i < kv.size(); ++i) {
    EXPECT_EQ((*f)->metadata()[i].key, kv[i].key);
    EXPECT_TRUE((*f)->metadata()[i].value == kv[i].value) << kv[i].key;
  }
  EXPECT_EQ(*(*f)->Find("i64")->Get<int64_t>(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ((*f)->Find("arr.nested")->Depth(), 2);
  ASSERT_EQ((*f)->tensors().size(), infos.size());
  for (size_t i = 0; i < infos.size(); ++i) {
    const GgufTensor& t = (*f)->tensors()[i];
    EXPECT_EQ(t.name, infos[i].name);
    EXPECT_EQ(t.type, infos[i].type);
    EXPECT_EQ(t.ne, infos[i].ne);
    EXPECT_EQ(t.offset % 64, 0u);
    EXPECT_EQ(0, std::memcmp((*f)->TensorData(t), payloads[i].data(), payloads[i].size()));
  }
}

TEST_F(GgufFileTest, EveryTruncationIsRejected) {
  // The last tensor ends exactly at the end of the file (no final padding),
  // so every shorter prefix lacks something.
  const std::string kvs = KvU32("general.alignment", 32) + KvString("k", "value");
  const std::string full = Header(2, kvs, TwoTensors(), 32, 256);
  ASSERT_TRUE(GgufFile::Open(Put(full)).ok());
  for (size_t n = 0; n < full.size(); ++n) {
    absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(Put(full.substr(0, n)));
    ASSERT_FALSE(f.ok()) << "prefix of " << n << " bytes accepted";
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << n << ": " << f.status();
    fs::remove(dir_ / absl::StrCat("f", n_ - 1, ".gguf"));
  }
}

TEST_F(GgufFileTest, WrongCountsAreRejected) {
  const std::string kvs = KvU32("general.alignment", 32);
  // Counts far beyond what the file could hold: refused before allocating.
  ExpectRejected(Header(uint64_t{1} << 60, kvs, TwoTensors(), 32, 256), "metadata count");
  ExpectRejected(Header(1, kvs, TwoTensors(), 32, 256, 3, int64_t{1} << 60), "tensor count");
  // One more key than present: the tensor infos are read as a key.
  ExpectRejected(Header(2, kvs, TwoTensors(), 32, 256), "");
  // One more tensor than present: the file ends inside the infos (data
  // bytes 0x5a read as a name length run past the end).
  ExpectRejected(Header(1, kvs, TwoTensors(), 32, 256, 3, 3), "");
}

TEST_F(GgufFileTest, HugeLengthsAreRejected) {
  const std::string key_huge =
      Bytes().U64(uint64_t{1} << 62).s + std::string(16, 'k');  // key length
  ExpectRejected(Header(1, key_huge, {}, 32, 0), "runs past the end");
  const std::string str_huge = Bytes()
                                   .Str("s")
                                   .U32(static_cast<uint32_t>(GgufValueType::kString))
                                   .U64(std::numeric_limits<uint64_t>::max())
                                   .s;
  ExpectRejected(Header(1, str_huge, {}, 32, 0), "runs past the end");
  for (GgufValueType elem :
       {GgufValueType::kU8, GgufValueType::kU64, GgufValueType::kString, GgufValueType::kArray}) {
    const std::string arr = Bytes()
                                .Str("a")
                                .U32(static_cast<uint32_t>(GgufValueType::kArray))
                                .U32(static_cast<uint32_t>(elem))
                                .U64(uint64_t{1} << 61)
                                .s;
    ExpectRejected(Header(1, arr, {}, 32, 64), "runs past the end");
  }
  const std::string name_huge = Bytes().U64(uint64_t{1} << 40).s;  // a tensor name length
  Bytes b;
  b.Put("GGUF", 4).U32(3).U64(1).U64(0);
  b.s += name_huge;
  b.s.append(64, '\0');
  ExpectRejected(b.s, "runs past the end");
}

TEST_F(GgufFileTest, OffsetsOutOfRangeOrOverlappingAreRejected) {
  const std::string kvs = KvU32("general.alignment", 32);
  ExpectRejected(Header(1, kvs, {{"a", {32}, 0, 0}, {"b", {64}, 1, 256}}, 32, 256),
                 "ends beyond the data section");
  ExpectRejected(Header(1, kvs, {{"a", {32}, 0, 0}, {"b", {64}, 1, 160}}, 32, 256),
                 "ends beyond the data section");
  // offset + nbytes overflows uint64.
  ExpectRejected(
      Header(1, kvs, {{"a", {32}, 0, std::numeric_limits<uint64_t>::max() - 31}}, 32, 256),
      "ends beyond the data section");
  ExpectRejected(Header(1, kvs, {{"a", {32}, 0, 0}, {"b", {64}, 1, 96}}, 32, 256), "overlap");
  // A data section missing entirely.
  ExpectRejected(Header(1, kvs, {{"a", {32}, 0, 0}}, 1, 0), "");
}

TEST_F(GgufFileTest, BadAlignmentIsRejected) {
  ExpectRejected(Header(1, KvU32("general.alignment", 48), TwoTensors(), 32, 256),
                 "not a power of two");
  ExpectRejected(Header(1, KvU32("general.alignment", 0), TwoTensors(), 32, 256),
                 "not a power of two");
  const std::string as_u64 =
      Bytes().Str("general.alignment").U32(static_cast<uint32_t>(GgufValueType::kU64)).U64(32).s;
  ExpectRejected(Header(1, as_u64, TwoTensors(), 32, 256), "not u32");
  // Offsets that are multiples of 32 but not of the declared 256.
  ExpectRejected(Header(1, KvU32("general.alignment", 256), TwoTensors(), 256, 512),
                 "is not a multiple of 256");
  // Offset not a multiple of the default 32.
  ExpectRejected(Header(0, "", {{"a", {32}, 0, 0}, {"b", {64}, 1, 132}}, 32, 512),
                 "is not a multiple of 32");
}

TEST_F(GgufFileTest, BadHeaderFieldsAreRejected) {
  const std::string kvs = KvU32("general.alignment", 32);
  std::string bad_magic = Header(1, kvs, TwoTensors(), 32, 256);
  bad_magic[0] = 'X';
  ExpectRejected(bad_magic, "not a GGUF file");
  ExpectRejected(Header(1, kvs, TwoTensors(), 32, 256, 1), "unsupported GGUF version 1");
  ExpectRejected(Header(1, kvs, TwoTensors(), 32, 256, 4), "unsupported GGUF version 4");
  ExpectRejected(Header(1, kvs, TwoTensors(), 32, 256, 0x03000000u), "byte-swapped");
  const std::string bad_type = Bytes().Str("k").U32(13).U32(0).s;
  ExpectRejected(Header(1, bad_type, {}, 32, 0), "unknown value type 13");
  const std::string bad_elem = Bytes().Str("k").U32(9).U32(99).U64(0).s;
  ExpectRejected(Header(1, bad_elem, {}, 32, 0), "unknown array element type 99");
  ExpectRejected(Header(2, kvs + KvU32("general.alignment", 32), {}, 32, 0), "duplicate key");
  ExpectRejected(Header(1, KvU32("", 1), {}, 32, 0), "is empty");
  // Arrays nested deeper than kGgufMaxArrayDepth.
  Bytes deep;
  deep.Str("deep").U32(9);
  for (int i = 0; i < kGgufMaxArrayDepth + 1; ++i) deep.U32(9).U64(1);
  deep.U32(0).U64(0);
  ExpectRejected(Header(1, deep.s, {}, 32, 64), "nested deeper");
  // Tensor infos.
  ExpectRejected(Header(0, "", {{"a", {32}, 99, 0}}, 32, 128), "a");
  ExpectRejected(Header(0, "", {{"a", {32}, 4, 0}}, 32, 128), "a");  // removed Q4_2
  ExpectRejected(Header(0, "", {{"a", {1, 1, 1, 1, 1}, 0, 0}}, 32, 32), "5 dimensions");
  ExpectRejected(Header(0, "", {{"a", {}, 0, 0}}, 32, 32), "no dimensions");
  ExpectRejected(Header(0, "", {{"a", {-4}, 0, 0}}, 32, 32), "negative");
  ExpectRejected(Header(0, "", {{"a", {33}, 8, 0}}, 32, 64), "a");  // Q8_0 row of 33
  ExpectRejected(Header(0, "", {{"a", {int64_t{1} << 40, int64_t{1} << 40}, 0, 0}}, 32, 32), "a");
  ExpectRejected(Header(0, "", {{std::string(64, 'n'), {8}, 0, 0}}, 32, 32), "64 bytes");
  ExpectRejected(Header(0, "", {{"", {8}, 0, 0}}, 32, 32), "empty tensor name");
  ExpectRejected(Header(0, "", {{"a", {8}, 0, 0}, {"a", {8}, 0, 32}}, 32, 64),
                 "duplicate tensor name");
}

// Random byte changes in the header: each file is either accepted (and then
// every tensor lies inside the file) or rejected with INVALID_ARGUMENT.
TEST_F(GgufFileTest, RandomCorruptionNeverCrashes) {
  const std::string kvs = KvU32("general.alignment", 32) + KvString("name", "abcdef") +
                          Bytes().Str("arr").U32(9).U32(8).U64(2).Str("xy").Str("z").s;
  const std::string full = Header(3, kvs, TwoTensors(), 32, 256);
  const size_t header_bytes = full.size() - 256;
  std::mt19937 rng(42);
  const fs::path p = dir_ / "fuzz.gguf";
  for (int iter = 0; iter < 3000; ++iter) {
    std::string bytes = full;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      const size_t at = rng() % header_bytes;
      bytes[at] = static_cast<char>(rng() % 3 == 0 ? 0xff : rng());
    }
    std::ofstream(p, std::ios::binary | std::ios::trunc)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(p);
    if (!f.ok()) {
      ASSERT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << f.status();
      continue;
    }
    for (const GgufTensor& t : (*f)->tensors()) {
      ASSERT_LE((*f)->data_offset() + t.offset + t.nbytes, bytes.size());
    }
  }
}

}  // namespace
}  // namespace quantd
