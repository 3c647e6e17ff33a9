// The fp8 format's CPU and CUDA paths must produce the scalar reference's
// bytes exactly. The CUDA tests skip themselves without a CUDA device (and,
// in builds without CUDA, are not compiled).
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/formats/fp8.h"
#include "core/formats/fp8_e4m3.h"
#include "core/formats/fp8_layout.h"
#include "gtest/gtest.h"
#include "kernels/devices.h"
#include "kernels/encoders.h"
#include "tests/kernels/rtn_test_util.h"

#if QUANTD_HAVE_CUDA
#include "kernels/cuda/cuda_encoder.h"
#include "kernels/cuda/fp8.cuh"
#endif

namespace quantd {
namespace {

using fp8::Strategy;
using testing_rtn::ExpectSameBytes;
using testing_rtn::RandomWeight;

const Strategy kStrategies[] = {Strategy::kTensor, Strategy::kChannel, Strategy::kBlock};
const DType kDtypes[] = {DType::kBF16, DType::kF16, DType::kF32};

std::string Label(Strategy s, DType scale, const Tensor& w) {
  return absl::StrCat(std::string(Fp8StrategyName(s)), "_", std::string(DTypeName(w.dtype())),
                      "_scale_", std::string(DTypeName(scale)), "_", w.shape()[0], "x",
                      w.shape()[1]);
}

// Parameters for `w`: the tensor strategy gets the weight's own amax,
// scaled by `amax_factor` (a fused group with a larger member).
FormatParams ParamsFor(Strategy s, DType scale, const Tensor& w, float amax_factor = 1.0f) {
  FormatParams p = Fp8Params(s, scale);
  if (s == Strategy::kTensor) p.tensor_amax = AbsMaxRef(w.view()) * amax_factor;
  return p;
}

// F32 weights whose quotients x / S lie on or within a few ulps of the
// midpoints between neighbouring E4M3 values (where rounding turns), with
// row scales across the whole float range: the first column of each row
// is the row's amax (448 * 2^e), so the channel scale is 2^e, exact.
[[maybe_unused]] Tensor NearTieWeight(int64_t rows, int64_t cols, uint32_t seed) {
  Tensor t = Tensor::Allocate(DType::kF32, {rows, cols});
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> code(0, 0x7d), ulps(-3, 3);
  for (int64_t r = 0; r < rows; ++r) {
    const int e = -126 + static_cast<int>(r * 240 / std::max<int64_t>(1, rows - 1));
    const float s = std::ldexp(1.0f, std::min(e, 118));
    float* row = t.as<float>() + r * cols;
    row[0] = e4m3::kMax * s;
    for (int64_t c = 1; c < cols; ++c) {
      const int k = code(rng);
      const float mid = (e4m3::E4m3ToFloat(static_cast<uint8_t>(k)) +
                         e4m3::E4m3ToFloat(static_cast<uint8_t>(k + 1))) /
                        2;
      float x = mid * s;
      for (int u = ulps(rng); u != 0; u += u > 0 ? -1 : 1) {
        x = std::nextafter(x, u > 0 ? INFINITY : -INFINITY);
      }
      row[c] = c % 2 ? -x : x;
    }
  }
  return t;
}

TEST(Fp8CpuEncoderTest, MatchesReferenceOnAwkwardSizes) {
  std::unique_ptr<WeightEncoder> enc = MakeCpuEncoder(4);
  uint32_t seed = 1;
  for (DType dt : kDtypes) {
    for (int64_t rows : {1, 17, 255, 257, 1025}) {
      for (int64_t cols : {8, 17, 200, 1032}) {
        const Tensor w = RandomWeight(rows, cols, dt, seed++);
        for (Strategy s : kStrategies) {
          const FormatParams p = ParamsFor(s, dt, w);
          absl::StatusOr<EncodedWeight> want = EncodeRef(Fp8Format(), p, w.view());
          ASSERT_TRUE(want.ok()) << want.status();
          CancelToken cancel;
          absl::StatusOr<EncodedWeight> got = enc->Encode(Fp8Format(), p, w.view(), cancel);
          ASSERT_TRUE(got.ok()) << got.status();
          ExpectSameBytes(*want, *got, w, Label(s, dt, w));
        }
      }
    }
  }
}

TEST(Fp8CpuEncoderTest, ReportsFirstNonFiniteValueLikeReference) {
  std::unique_ptr<WeightEncoder> enc = MakeCpuEncoder(4);
  Tensor w = RandomWeight(1025, 256, DType::kBF16, 9);
  w.as<uint16_t>()[1000 * 256 + 3] = 0x7fc0;   // NaN, later rows
  w.as<uint16_t>()[600 * 256 + 200] = 0xff80;  // -Inf, second block column
  w.as<uint16_t>()[601 * 256 + 17] = 0x7f80;   // +Inf, later row, first block column
  for (Strategy s : kStrategies) {
    FormatParams p = Fp8Params(s, DType::kBF16);
    p.tensor_amax = 1.0f;
    CancelToken cancel;
    absl::Status got = enc->Encode(Fp8Format(), p, w.view(), cancel).status();
    EXPECT_EQ(got.message(), "non-finite value at row 600, column 200") << Fp8StrategyName(s);
    EXPECT_EQ(EncodeRef(Fp8Format(), p, w.view()).status(), got);
  }
  // An infinite fused amax (tensor strategy): every chunk scans the whole
  // tensor, so the first value is named whichever chunk reports.
  FormatParams p = Fp8Params(Strategy::kTensor, DType::kBF16);
  p.tensor_amax = INFINITY;
  CancelToken cancel;
  EXPECT_EQ(enc->Encode(Fp8Format(), p, w.view(), cancel).status().message(),
            "non-finite value at row 600, column 200");
  const Tensor clean = RandomWeight(1025, 256, DType::kBF16, 9);
  EXPECT_EQ(enc->Encode(Fp8Format(), p, clean.view(), cancel).status().message(),
            "tensor_amax inf is not finite: a tensor sharing this one's scale (fused q/k/v or "
            "gate/up) holds a non-finite value");
}

#if QUANTD_HAVE_CUDA

class Fp8CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (ListCudaDevices().empty()) GTEST_SKIP() << "no CUDA device";
  }

  static std::unique_ptr<CudaEncoder> Make(size_t chunk_bytes = size_t{64} << 20) {
    CudaEncoderOptions o;
    o.chunk_bytes = chunk_bytes;
    absl::StatusOr<std::unique_ptr<CudaEncoder>> e = CudaEncoder::Create(o);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *std::move(e) : nullptr;
  }

  // Encodes `w` with `p` on the device and the reference; expects the same
  // bytes and (when `on_device`) that the device kernel ran.
  static void Compare(CudaEncoder& enc, const Tensor& w, const FormatParams& p,
                      const std::string& what, bool on_device = true) {
    absl::StatusOr<EncodedWeight> want = EncodeRef(Fp8Format(), p, w.view());
    ASSERT_TRUE(want.ok()) << what << ": " << want.status();
    CancelToken cancel;
    absl::StatusOr<EncodedWeight> got = enc.Encode(Fp8Format(), p, w.view(), cancel);
    ASSERT_TRUE(got.ok()) << what << ": " << got.status();
    EXPECT_EQ(enc.last_ran_on_device(), on_device) << what;
    ExpectSameBytes(*want, *got, w, what);
  }
};

TEST_F(Fp8CudaTest, MatchesReferenceOnAwkwardSizes) {
  auto enc = Make();
  ASSERT_NE(enc, nullptr);
  uint32_t seed = 1;
  for (DType dt : kDtypes) {
    for (int64_t rows : {1, 17, 127, 128, 129, 255, 257, 1025}) {
      for (int64_t cols : {8, 120, 128, 136, 200, 5120, 5136}) {
        const Tensor w = RandomWeight(rows, cols, dt, seed++);
        for (Strategy s : kStrategies) {
          Compare(*enc, w, ParamsFor(s, dt, w), Label(s, dt, w));
        }
      }
    }
  }
}

TEST_F(Fp8CudaTest, MatchesReferenceAcrossManySmallChunks) {
  auto enc = Make(64 << 10);  // 64 KiB of input per chunk (at least one 128-row strip)
  ASSERT_NE(enc, nullptr);
  const Tensor w = RandomWeight(1100, 5120, DType::kBF16, 77);
  for (Strategy s : kStrategies) {
    Compare(*enc, w, ParamsFor(s, DType::kBF16, w), Label(s, DType::kBF16, w) + "_chunked");
  }
}

TEST_F(Fp8CudaTest, MatchesReferenceForLongRowsAndFusedAmax) {
  auto enc = Make();
  ASSERT_NE(enc, nullptr);
  // Rows longer than the channel kernel's register cache (16384 elements).
  const Tensor w = RandomWeight(33, 20008, DType::kBF16, 5);
  for (Strategy s : kStrategies) {
    Compare(*enc, w, ParamsFor(s, DType::kBF16, w), Label(s, DType::kBF16, w));
  }
  // A fused group's amax larger than the tensor's own (5 rows: RandomWeight
  // adds no +-max row, whose amax times 3.5 would overflow to Inf).
  const Tensor small = RandomWeight(5, 20008, DType::kBF16, 6);
  Compare(*enc, small, ParamsFor(Strategy::kTensor, DType::kBF16, small, 3.5f),
          "tensor_fused_amax");
}

TEST_F(Fp8CudaTest, MatchesReferenceWithOtherScaleDtypes) {
  auto enc = Make();
  ASSERT_NE(enc, nullptr);
  const Tensor w = RandomWeight(300, 520, DType::kF32, 11);  // +-FLT_MAX row: F16 scales clamp
  for (DType scale : {DType::kF16, DType::kBF16, DType::kF32}) {
    for (Strategy s : kStrategies) Compare(*enc, w, ParamsFor(s, scale, w), Label(s, scale, w));
  }
}

TEST_F(Fp8CudaTest, MatchesReferenceNearRoundingTies) {
  auto enc = Make();
  ASSERT_NE(enc, nullptr);
  const Tensor w = NearTieWeight(512, 1024, 21);
  for (Strategy s : kStrategies) {
    for (DType scale : kDtypes) Compare(*enc, w, ParamsFor(s, scale, w), Label(s, scale, w));
  }
}

TEST_F(Fp8CudaTest, FallsBackToCpuForColumnsNotMultipleOf8AndBadAmax) {
  auto enc = Make();
  ASSERT_NE(enc, nullptr);
  const Tensor w = RandomWeight(17, 20, DType::kBF16, 3);
  for (Strategy s : kStrategies) {
    Compare(*enc, w, ParamsFor(s, DType::kBF16, w), Label(s, DType::kBF16, w),
            /*on_device=*/false);
  }
  const Tensor v = RandomWeight(17, 64, DType::kBF16, 4);
  FormatParams p = Fp8Params(Strategy::kTensor, DType::kBF16);  // tensor_amax unset
  CancelToken cancel;
  absl::Status got = enc->Encode(Fp8Format(), p, v.view(), cancel).status();
  EXPECT_EQ(got.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(got, EncodeRef(Fp8Format(), p, v.view()).status());
}

TEST_F(Fp8CudaTest, HardwareE4m3ConversionEqualsReferenceOnAllFloats) {
  absl::StatusOr<uint64_t> mismatches = CountE4m3CvtMismatches();
  ASSERT_TRUE(mismatches.ok()) << mismatches.status();
  EXPECT_EQ(*mismatches, 0u);
}

TEST_F(Fp8CudaTest, ReportsFirstNonFiniteValueLikeReference) {
  auto enc = Make(64 << 10);
  ASSERT_NE(enc, nullptr);
  for (DType dt : kDtypes) {
    Tensor w = RandomWeight(1025, 256, dt, 9);
    auto poison = [&](int64_t r, int64_t c, bool nan) {
      if (dt == DType::kF32) {
        w.as<uint32_t>()[r * 256 + c] = nan ? 0x7fc00000u : 0xff800000u;
      } else if (dt == DType::kBF16) {
        w.as<uint16_t>()[r * 256 + c] = nan ? 0x7fc0 : 0xff80;
      } else {
        w.as<uint16_t>()[r * 256 + c] = nan ? 0x7e00 : 0xfc00;
      }
    };
    poison(1000, 3, true);    // later chunk
    poison(600, 200, false);  // reported: second block column
    poison(601, 17, true);    // later row, first block column
    for (Strategy s : kStrategies) {
      FormatParams p = Fp8Params(s, dt);
      p.tensor_amax = 1.0f;
      CancelToken cancel;
      absl::Status got = enc->Encode(Fp8Format(), p, w.view(), cancel).status();
      EXPECT_EQ(got.message(), "non-finite value at row 600, column 200")
          << Fp8StrategyName(s) << " " << DTypeName(dt);
      EXPECT_EQ(EncodeRef(Fp8Format(), p, w.view()).status(), got);
    }
  }
  // The encoder is still usable afterwards.
  const Tensor ok = RandomWeight(64, 256, DType::kBF16, 10);
  Compare(*enc, ok, ParamsFor(Strategy::kBlock, DType::kBF16, ok), "after_error");
}

#endif  // QUANTD_HAVE_CUDA

}  // namespace
}  // namespace quantd
