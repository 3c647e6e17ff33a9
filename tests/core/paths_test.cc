#include "core/util/paths.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;

class PathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "quantd_paths_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    base_ = fs::canonical(tmpl);
    root_ = base_ / "root";
    outside_ = base_ / "outside";
    fs::create_directories(root_ / "models" / "llama");
    fs::create_directories(outside_);
    std::ofstream(root_ / "models" / "llama" / "config.json") << "{}";
    std::ofstream(outside_ / "secret") << "x";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  absl::StatusCode Code(std::string_view name, PathMode mode = PathMode::kMayNotExist) {
    return ResolveUnderRoot(root_, name, mode).status().code();
  }

  fs::path base_;
  fs::path root_;
  fs::path outside_;
};

TEST_F(PathsTest, ResolvesExistingNames) {
  absl::StatusOr<fs::path> p = ResolveUnderRoot(root_, "models/llama", PathMode::kMustExist);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, root_ / "models" / "llama");
  p = ResolveUnderRoot(root_, "./models//llama/./config.json", PathMode::kMustExist);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, root_ / "models" / "llama" / "config.json");
  p = ResolveUnderRoot(root_, "models/llama/", PathMode::kMustExist);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, root_ / "models" / "llama");
}

TEST_F(PathsTest, AcceptsMissingNamesWhenAllowed) {
  absl::StatusOr<fs::path> p = ResolveUnderRoot(root_, "out/new-model", PathMode::kMayNotExist);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, root_ / "out" / "new-model");
}

TEST_F(PathsTest, ReportsMissingNamesAsNotFoundWhenRequired) {
  absl::Status s = ResolveUnderRoot(root_, "models/absent", PathMode::kMustExist).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("models/absent"), absl::string_view::npos) << s;
  // Below a regular file nothing can exist.
  EXPECT_EQ(Code("models/llama/config.json/x", PathMode::kMustExist), absl::StatusCode::kNotFound);
}

TEST_F(PathsTest, RejectsEmptyAbsoluteAndNulNames) {
  EXPECT_EQ(Code(""), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("/etc/passwd"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(root_.string() + "/models"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(std::string("models\0/x", 9)), absl::StatusCode::kInvalidArgument);
}

TEST_F(PathsTest, RejectsDotDotComponents) {
  for (const char* name :
       {"..", "../outside/secret", "models/../models", "models/..", "a/b/../../c"}) {
    absl::Status s = ResolveUnderRoot(root_, name, PathMode::kMayNotExist).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_NE(s.message().find(name), absl::string_view::npos) << s;
  }
  // ".." inside a component is just a name.
  EXPECT_EQ(Code("models..v2"), absl::StatusCode::kOk);
}

TEST_F(PathsTest, RejectsTheRootItself) {
  EXPECT_EQ(Code("."), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("./"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(".//."), absl::StatusCode::kInvalidArgument);
}

TEST_F(PathsTest, RejectsSymlinksEscapingTheRoot) {
  fs::create_directory_symlink(outside_, root_ / "escape");
  fs::create_symlink(outside_ / "secret", root_ / "models" / "secret-link");
  fs::create_directory_symlink("../../outside", root_ / "models" / "relative-escape");
  fs::create_directory_symlink(root_, root_ / "self");
  for (const char* name : {"escape", "escape/secret", "escape/new-file", "models/secret-link",
                           "models/relative-escape/secret", "self"}) {
    absl::Status s = ResolveUnderRoot(root_, name, PathMode::kMayNotExist).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_NE(s.message().find(name), absl::string_view::npos) << s;
  }
}

TEST_F(PathsTest, RejectsDanglingSymlinks) {
  // Writing through it would create a file outside the root.
  fs::create_symlink(outside_ / "not-yet", root_ / "dangling");
  EXPECT_EQ(Code("dangling"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("dangling/x"), absl::StatusCode::kInvalidArgument);
}

TEST_F(PathsTest, FollowsSymlinksInsideTheRoot) {
  fs::create_directory_symlink("models/llama", root_ / "alias");
  absl::StatusOr<fs::path> p = ResolveUnderRoot(root_, "alias/config.json", PathMode::kMustExist);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, root_ / "models" / "llama" / "config.json");
}

TEST_F(PathsTest, ResolvesASymlinkedRoot) {
  fs::create_directory_symlink(root_, base_ / "root-link");
  absl::StatusOr<fs::path> p =
      ResolveUnderRoot(base_ / "root-link", "models/llama", PathMode::kMustExist);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, root_ / "models" / "llama");
}

TEST_F(PathsTest, ReportsAMissingRoot) {
  EXPECT_EQ(ResolveUnderRoot(base_ / "no-root", "x", PathMode::kMayNotExist).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(PathsTest, ComparesPathsByComponent) {
  EXPECT_TRUE(IsWithin("/a/b/c", "/a/b"));
  EXPECT_TRUE(IsWithin("/a/b", "/a/b/"));
  EXPECT_FALSE(IsWithin("/a/bc", "/a/b"));
  EXPECT_FALSE(IsWithin("/a", "/a/b"));
}

}  // namespace
}  // namespace quantd
