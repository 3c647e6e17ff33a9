// The CPU path must produce the scalar reference's bytes exactly.
#include <limits>
#include <memory>

#include "core/formats/rtn_int.h"
#include "gtest/gtest.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/encoders.h"
#include "tests/kernels/rtn_test_util.h"

namespace quantd {
namespace {

using testing_rtn::ExpectSameBytes;
using testing_rtn::MakeParams;
using testing_rtn::ParamCases;
using testing_rtn::RandomWeight;

class CpuEncoderTest : public ::testing::Test {
 protected:
  void CompareWithReference(WeightEncoder& enc, int64_t rows, int64_t cols, DType dtype,
                            uint32_t seed) {
    const Tensor w = RandomWeight(rows, cols, dtype, seed);
    for (const auto& c : ParamCases()) {
      const FormatParams p = MakeParams(c, dtype);
      const std::string what =
          absl::StrCat(c.label, "_", std::string(DTypeName(dtype)), "_", rows, "x", cols);
      absl::StatusOr<EncodedWeight> want = EncodeRef(RtnIntFormat(), p, w.view());
      ASSERT_TRUE(want.ok()) << what << ": " << want.status();
      CancelToken cancel;
      absl::StatusOr<EncodedWeight> got = enc.Encode(RtnIntFormat(), p, w.view(), cancel);
      ASSERT_TRUE(got.ok()) << what << ": " << got.status();
      ExpectSameBytes(*want, *got, w, what);
    }
  }
};

TEST_F(CpuEncoderTest, MatchesReferenceOnAwkwardSizesBf16) {
  auto enc = MakeCpuEncoder(3);
  EXPECT_EQ(enc->device(), "cpu");
  uint32_t seed = 1;
  for (int64_t rows : testing_rtn::AwkwardRows()) {
    for (int64_t cols : {128, 256, 5120}) {
      if (rows * cols > 1025 * 256 && rows != 1025) continue;
      CompareWithReference(*enc, rows, cols, DType::kBF16, seed++);
    }
  }
  CompareWithReference(*enc, 1025, 5120, DType::kBF16, seed++);
}

TEST_F(CpuEncoderTest, MatchesReferenceF16AndF32) {
  auto enc = MakeCpuEncoder(2);
  uint32_t seed = 100;
  for (DType dtype : {DType::kF16, DType::kF32}) {
    for (int64_t rows : {1, 17, 257}) {
      for (int64_t cols : {128, 5120}) CompareWithReference(*enc, rows, cols, dtype, seed++);
    }
  }
}

TEST_F(CpuEncoderTest, SingleThreadMatchesReference) {
  auto enc = MakeCpuEncoder(1);
  CompareWithReference(*enc, 255, 256, DType::kBF16, 7);
}

TEST_F(CpuEncoderTest, ReportsFirstNonFiniteValueInRowOrder) {
  auto enc = MakeCpuEncoder(4);
  Tensor w = RandomWeight(1025, 256, DType::kBF16, 9);
  w.as<uint16_t>()[1000 * 256 + 3] = 0x7fc0;  // NaN, late
  w.as<uint16_t>()[600 * 256 + 17] = 0xff80;  // -Inf, earlier
  for (const auto& c : ParamCases()) {
    const FormatParams p = MakeParams(c, DType::kBF16);
    CancelToken cancel;
    absl::StatusOr<EncodedWeight> got = enc->Encode(RtnIntFormat(), p, w.view(), cancel);
    ASSERT_FALSE(got.ok()) << c.label;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(got.status().message(), "non-finite value at row 600, column 17") << c.label;
  }
}

TEST_F(CpuEncoderTest, ReturnsCancelled) {
  auto enc = MakeCpuEncoder(2);
  const Tensor w = RandomWeight(64, 128, DType::kBF16, 3);
  CancelToken cancel;
  cancel.Cancel();
  absl::StatusOr<EncodedWeight> got =
      enc->Encode(RtnIntFormat(), MakeParams(ParamCases()[0], DType::kBF16), w.view(), cancel);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kCancelled);
}

TEST_F(CpuEncoderTest, RejectsBadInputWithoutCrashing) {
  auto enc = MakeCpuEncoder(2);
  const Tensor w = RandomWeight(8, 12, DType::kBF16, 3);  // 12 % 8 != 0 for int4
  CancelToken cancel;
  FormatParams p = MakeParams(ParamCases()[4], DType::kBF16);
  EXPECT_EQ(enc->Encode(RtnIntFormat(), p, w.view(), cancel).status().code(),
            absl::StatusCode::kInvalidArgument);
  TensorView flat = w.view();
  flat.shape = {96};
  EXPECT_EQ(enc->Encode(RtnIntFormat(), p, flat, cancel).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ThreadPoolTest, RunsEveryIndexOnce) {
  ThreadPool pool(4);
  EXPECT_EQ(pool.size(), 4);
  for (int64_t n : {0, 1, 3, 1000}) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    pool.ParallelFor(n, [&](int64_t i) { hits[static_cast<size_t>(i)]++; });
    for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  }
}

}  // namespace
}  // namespace quantd
