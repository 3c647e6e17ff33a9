#include "core/util/fs.h"

#include <errno.h>
#include <stdlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/util/sha256.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;

constexpr char kAbcSha256[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

class FsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "quantd_fs_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static void WriteText(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
  }
  static std::string ReadText(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  // Names in `dir`, sorted.
  static std::vector<std::string> List(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
};

TEST_F(FsTest, Sha256MatchesKnownDigests) {
  EXPECT_EQ(Sha256Hex("abc"), kAbcSha256);
  EXPECT_EQ(Sha256Hex(""), kEmptySha256);
  Sha256 sha;
  sha.Update("a", 1);
  sha.Update(nullptr, 0);
  sha.Update("bc", 2);
  EXPECT_EQ(sha.HexDigest(), kAbcSha256);
  // HexDigest() starts over.
  EXPECT_EQ(sha.HexDigest(), kEmptySha256);
  Sha256 moved = std::move(sha);
  moved.Update("abc", 3);
  EXPECT_EQ(moved.HexDigest(), kAbcSha256);
}

TEST_F(FsTest, FileSinkHashEqualsHashFile) {
  // Chunks below, at and above the 8 MiB buffer, in an awkward order.
  std::mt19937 rng(42);
  std::string data(size_t{27} << 20, '\0');
  for (size_t i = 0; i < data.size(); i += 4) {
    const uint32_t word = rng();
    std::memcpy(&data[i], &word, 4);
  }
  const std::vector<size_t> chunks = {
      1, 17, (size_t{8} << 20) - 18, 5, size_t{9} << 20, 4096, size_t{8} << 20};
  const fs::path path = dir_ / "sink.bin";
  absl::StatusOr<std::unique_ptr<FileSink>> sink = FileSink::Create(path);
  ASSERT_TRUE(sink.ok()) << sink.status();
  size_t pos = 0;
  for (size_t n : chunks) {
    n = std::min(n, data.size() - pos);
    ASSERT_TRUE((*sink)->Write(data.data() + pos, n).ok());
    pos += n;
  }
  ASSERT_TRUE((*sink)->Write(data.data() + pos, data.size() - pos).ok());
  EXPECT_EQ((*sink)->bytes_written(), data.size());
  absl::StatusOr<FileDigest> written = (*sink)->Finish();
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ((*sink)->Write("x", 1).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*sink)->Finish().status().code(), absl::StatusCode::kFailedPrecondition);
  sink->reset();
  ASSERT_TRUE(fs::exists(path));  // Kept once finished.

  absl::StatusOr<FileDigest> hashed = HashFile(path);
  ASSERT_TRUE(hashed.ok()) << hashed.status();
  EXPECT_EQ(written->size, data.size());
  EXPECT_EQ(hashed->size, data.size());
  EXPECT_EQ(written->sha256, hashed->sha256);
  EXPECT_EQ(written->sha256, Sha256Hex(data));
}

TEST_F(FsTest, FileSinkRefusesExistingFilesAndMissingFolders) {
  WriteText(dir_ / "exists", "x");
  EXPECT_EQ(FileSink::Create(dir_ / "exists").status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReadText(dir_ / "exists"), "x");
  EXPECT_EQ(FileSink::Create(dir_ / "no" / "file").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(FsTest, FileSinkRemovesUnfinishedFile) {
  {
    absl::StatusOr<std::unique_ptr<FileSink>> sink = FileSink::Create(dir_ / "partial");
    ASSERT_TRUE(sink.ok());
    ASSERT_TRUE((*sink)->Write("abc", 3).ok());
    EXPECT_TRUE(fs::exists(dir_ / "partial"));
  }
  EXPECT_FALSE(fs::exists(dir_ / "partial"));
}

TEST_F(FsTest, MapsErrnoToStatusCodes) {
  EXPECT_EQ(ErrnoStatus(ENOSPC, "x").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoStatus(EDQUOT, "x").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoStatus(ENOENT, "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrnoStatus(EEXIST, "x").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrnoStatus(EACCES, "x").code(), absl::StatusCode::kPermissionDenied);
  absl::Status io = ErrnoStatus(EIO, "reading f");
  EXPECT_EQ(io.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(io.message(), "reading f: Input/output error");
}

TEST_F(FsTest, HashFileReportsMissingAndNonRegularFiles) {
  EXPECT_EQ(HashFile(dir_ / "absent").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(HashFile(dir_).status().code(), absl::StatusCode::kInvalidArgument);
  WriteText(dir_ / "abc", "abc");
  absl::StatusOr<FileDigest> d = HashFile(dir_ / "abc");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->size, 3u);
  EXPECT_EQ(d->sha256, kAbcSha256);
}

TEST_F(FsTest, ReadFileToStringEnforcesTheLimit) {
  WriteText(dir_ / "f", "hello");
  EXPECT_EQ(*ReadFileToString(dir_ / "f", 5), "hello");
  EXPECT_EQ(ReadFileToString(dir_ / "f", 4).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(FsTest, CopyFileDurablyCopiesAndHashes) {
  WriteText(dir_ / "src", "abc");
  absl::StatusOr<FileDigest> d = CopyFileDurably(dir_ / "src", dir_ / "dst");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->sha256, kAbcSha256);
  EXPECT_EQ(ReadText(dir_ / "dst"), "abc");
  EXPECT_EQ(CopyFileDurably(dir_ / "src", dir_ / "dst").status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(CopyFileDurably(dir_ / "absent", dir_ / "dst2").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(dir_ / "dst2"));
  EXPECT_EQ(CopyFileDurably(dir_, dir_ / "dst3").status().code(),
            absl::StatusCode::kInvalidArgument);
  WriteText(dir_ / "empty", "");
  d = CopyFileDurably(dir_ / "empty", dir_ / "empty2");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->size, 0u);
  EXPECT_EQ(d->sha256, kEmptySha256);
}

TEST_F(FsTest, AtomicOutputCommitsAFolder) {
  const fs::path target = dir_ / "out" / "model";  // The parent is created.
  absl::StatusOr<AtomicOutput> out = AtomicOutput::Create(target, "job1", true, false);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->temp_path(), dir_ / "out" / ".model.quantd-tmp-job1");
  EXPECT_TRUE(fs::is_directory(out->temp_path()));
  WriteText(out->temp_path() / "a.txt", "a");
  EXPECT_FALSE(fs::exists(target));
  ASSERT_TRUE(out->Commit().ok());
  EXPECT_TRUE(out->committed());
  EXPECT_EQ(ReadText(target / "a.txt"), "a");
  EXPECT_EQ(List(dir_ / "out"), std::vector<std::string>{"model"});
  EXPECT_EQ(out->Commit().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(FsTest, AtomicOutputCommitsASingleFile) {
  const fs::path target = dir_ / "file.safetensors";
  absl::StatusOr<AtomicOutput> out = AtomicOutput::Create(target, "t", false, false);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->Commit().code(), absl::StatusCode::kFailedPrecondition);  // Nothing written.
  absl::StatusOr<std::unique_ptr<FileSink>> sink = FileSink::Create(out->temp_path());
  ASSERT_TRUE(sink.ok());
  ASSERT_TRUE((*sink)->Write("abc", 3).ok());
  ASSERT_TRUE((*sink)->Finish().ok());
  ASSERT_TRUE(out->Commit().ok());
  EXPECT_EQ(ReadText(target), "abc");
  EXPECT_EQ(List(dir_), std::vector<std::string>{"file.safetensors"});
}

TEST_F(FsTest, AtomicOutputRemovesTheTempWhenAbandoned) {
  const fs::path target = dir_ / "model";
  {
    absl::StatusOr<AtomicOutput> out = AtomicOutput::Create(target, "t", true, false);
    ASSERT_TRUE(out.ok());
    WriteText(out->temp_path() / "a", "a");
  }
  EXPECT_TRUE(List(dir_).empty());
  absl::StatusOr<AtomicOutput> out = AtomicOutput::Create(target, "t", true, false);
  ASSERT_TRUE(out.ok());
  out->Abandon();
  out->Abandon();
  EXPECT_TRUE(List(dir_).empty());
  EXPECT_EQ(out->Commit().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(fs::exists(target));
}

TEST_F(FsTest, AtomicOutputRefusesAnExistingTargetWithoutOverwrite) {
  fs::create_directory(dir_ / "model");
  EXPECT_EQ(AtomicOutput::Create(dir_ / "model", "t", true, false).status().code(),
            absl::StatusCode::kAlreadyExists);
  // A target that appears between Create and Commit is not clobbered.
  absl::StatusOr<AtomicOutput> out = AtomicOutput::Create(dir_ / "late", "t", false, false);
  ASSERT_TRUE(out.ok());
  WriteText(out->temp_path(), "new");
  WriteText(dir_ / "late", "old");
  EXPECT_EQ(out->Commit().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReadText(dir_ / "late"), "old");
}

TEST_F(FsTest, AtomicOutputOverwritesAnExistingTarget) {
  fs::create_directory(dir_ / "model");
  WriteText(dir_ / "model" / "old.txt", "old");
  absl::StatusOr<AtomicOutput> out = AtomicOutput::Create(dir_ / "model", "t", true, true);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(fs::exists(dir_ / "model" / "old.txt"));  // Untouched until Commit.
  WriteText(out->temp_path() / "new.txt", "new");
  ASSERT_TRUE(out->Commit().ok());
  EXPECT_EQ(List(dir_ / "model"), std::vector<std::string>{"new.txt"});
  EXPECT_EQ(List(dir_), std::vector<std::string>{"model"});

  // A file replaced by a folder, and a file by a file.
  WriteText(dir_ / "f", "old");
  out = AtomicOutput::Create(dir_ / "f", "t", true, true);
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(out->Commit().ok());
  EXPECT_TRUE(fs::is_directory(dir_ / "f"));
  WriteText(dir_ / "g", "old");
  out = AtomicOutput::Create(dir_ / "g", "t", false, true);
  ASSERT_TRUE(out.ok());
  WriteText(out->temp_path(), "new");
  ASSERT_TRUE(out->Commit().ok());
  EXPECT_EQ(ReadText(dir_ / "g"), "new");
  EXPECT_EQ(List(dir_), (std::vector<std::string>{"f", "g", "model"}));
}

TEST_F(FsTest, AtomicOutputRemovesAStaleTempOfTheSameToken) {
  fs::create_directories(dir_ / ".model.quantd-tmp-t" / "sub");
  WriteText(dir_ / ".model.quantd-tmp-t" / "sub" / "stale", "x");
  absl::StatusOr<AtomicOutput> out = AtomicOutput::Create(dir_ / "model", "t", true, false);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(List(out->temp_path()).empty());
}

TEST_F(FsTest, AtomicOutputMovesOwnership) {
  absl::StatusOr<AtomicOutput> out = AtomicOutput::Create(dir_ / "model", "t", true, false);
  ASSERT_TRUE(out.ok());
  AtomicOutput moved = std::move(*out);
  out = absl::InternalError("replaced");  // Destroys the moved-from object.
  EXPECT_TRUE(fs::is_directory(moved.temp_path()));
  ASSERT_TRUE(moved.Commit().ok());
  EXPECT_TRUE(fs::is_directory(dir_ / "model"));
}

TEST_F(FsTest, AtomicOutputRejectsBadTokensAndTargets) {
  for (const char* token : {"", "a/b", "..x/", "a b"}) {
    EXPECT_EQ(AtomicOutput::Create(dir_ / "m", token, true, false).status().code(),
              absl::StatusCode::kInvalidArgument)
        << token;
  }
  EXPECT_EQ(AtomicOutput::Create(dir_ / "m" / "..", "t", true, false).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(List(dir_).empty());
}

TEST_F(FsTest, RemoveStaleTempsRemovesOnlyMatchingNames) {
  fs::create_directories(dir_ / "a" / "b");
  fs::create_directories(dir_ / ".m.quantd-tmp-1" / "inner");
  WriteText(dir_ / "a" / ".f.quantd-tmp-2", "x");
  WriteText(dir_ / "a" / "b" / ".g.quantd-tmp-3.old", "x");
  WriteText(dir_ / "a" / "keep.quantd-tmp-", "x");
  WriteText(dir_ / "a" / "b" / "keep.quantd-tmp-x", "x");  // No leading dot.
  WriteText(dir_ / "a" / ".keep", "x");
  fs::create_directory(dir_ / "outside");
  WriteText(dir_ / "outside" / ".o.quantd-tmp-4", "x");
  fs::create_directory_symlink(dir_ / "outside", dir_ / "a" / "link");  // Not followed.

  ASSERT_TRUE(RemoveStaleTemps(dir_ / "a").ok());
  ASSERT_TRUE(RemoveStaleTemps(dir_ / ".m.quantd-tmp-1" / "inner").ok());
  EXPECT_EQ(List(dir_ / "a"), (std::vector<std::string>{".keep", "b", "keep.quantd-tmp-", "link"}));
  EXPECT_EQ(List(dir_ / "a" / "b"), std::vector<std::string>{"keep.quantd-tmp-x"});
  EXPECT_TRUE(fs::exists(dir_ / "outside" / ".o.quantd-tmp-4"));
  ASSERT_TRUE(RemoveStaleTemps(dir_).ok());
  EXPECT_FALSE(fs::exists(dir_ / ".m.quantd-tmp-1"));
  EXPECT_FALSE(fs::exists(dir_ / "outside" / ".o.quantd-tmp-4"));
  EXPECT_EQ(RemoveStaleTemps(dir_ / "absent").code(), absl::StatusCode::kNotFound);
}

TEST_F(FsTest, SyncDirectoryReportsMissingFolders) {
  EXPECT_TRUE(SyncDirectory(dir_).ok());
  EXPECT_EQ(SyncDirectory(dir_ / "absent").code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace quantd
