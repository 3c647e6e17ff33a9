// The CUDA path must produce the scalar reference's bytes exactly. Skipped
// without a CUDA device (and, in builds without CUDA, reduced to checking
// that MakeCudaEncoder says UNAVAILABLE).
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>

#include "core/formats/rtn_int.h"
#include "core/formats/rtn_int_layout.h"
#include "gtest/gtest.h"
#include "kernels/devices.h"
#include "kernels/encoders.h"
#include "tests/kernels/rtn_test_util.h"

#if QUANTD_HAVE_CUDA
#include "kernels/cuda/cuda_encoder.h"
#endif

namespace quantd {
namespace {

using testing_rtn::ExpectSameBytes;
using testing_rtn::MakeParams;
using testing_rtn::ParamCase;
using testing_rtn::ParamCases;
using testing_rtn::RandomWeight;

#if QUANTD_HAVE_CUDA

class CudaEncoderTest : public ::testing::Test {
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
    absl::StatusOr<EncodedWeight> want = EncodeRef(RtnIntFormat(), p, w.view());
    ASSERT_TRUE(want.ok()) << what << ": " << want.status();
    CancelToken cancel;
    absl::StatusOr<EncodedWeight> got = enc.Encode(RtnIntFormat(), p, w.view(), cancel);
    ASSERT_TRUE(got.ok()) << what << ": " << got.status();
    EXPECT_EQ(enc.last_ran_on_device(), on_device) << what;
    ExpectSameBytes(*want, *got, w, what);
  }
};

TEST_F(CudaEncoderTest, MatchesReferenceOnAwkwardSizes) {
  auto enc = Make();
  ASSERT_NE(enc, nullptr);
  EXPECT_EQ(enc->device(), "cuda:0");
  uint32_t seed = 1;
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (int64_t rows : testing_rtn::AwkwardRows()) {
      for (int64_t cols : {128, 256, 5120}) {
        const Tensor w = RandomWeight(rows, cols, dtype, seed++);
        for (const ParamCase& c : ParamCases()) {
          Compare(*enc, w, MakeParams(c, dtype),
                  absl::StrCat(c.label, "_", std::string(DTypeName(dtype)), "_", rows, "x", cols));
        }
      }
    }
  }
}

TEST_F(CudaEncoderTest, MatchesReferenceAcrossManySmallChunks) {
  auto enc = Make(64 << 10);  // 64 KiB of input per chunk
  ASSERT_NE(enc, nullptr);
  const Tensor w = RandomWeight(1025, 5120, DType::kBF16, 77);
  for (const ParamCase& c : ParamCases()) {
    Compare(*enc, w, MakeParams(c, DType::kBF16), absl::StrCat(c.label, "_chunked"));
  }
}

TEST_F(CudaEncoderTest, MatchesReferenceForEveryKernelShape) {
  auto enc = Make(1 << 20);
  ASSERT_NE(enc, nullptr);
  // Team kernel: groups of 8..256; block kernel: 384, 512, per channel.
  const Tensor w = RandomWeight(257, 3072, DType::kBF16, 5);
  for (int64_t g : {8, 16, 32, 64, 128, 256, 384, 512, 0}) {
    for (auto [bits, sym] : {std::pair{4, true}, std::pair{4, false}, std::pair{8, true}}) {
      FormatParams p;
      p.bits = bits;
      p.group_size = g;
      p.symmetric = sym;
      p.scale_dtype = DType::kBF16;
      Compare(*enc, w, p, absl::StrCat("int", bits, "_g", g, sym ? "_sym" : "_asym"));
    }
  }
}

TEST_F(CudaEncoderTest, MatchesReferenceWithOtherScaleDtypes) {
  auto enc = Make();
  ASSERT_NE(enc, nullptr);
  const Tensor w = RandomWeight(65, 512, DType::kF32, 11);  // +-FLT_MAX row: F16 scales clamp
  for (DType scale : {DType::kF16, DType::kBF16}) {
    for (const ParamCase& c : ParamCases()) {
      Compare(*enc, w, MakeParams(c, scale),
              absl::StrCat(c.label, "_F32_scale_", std::string(DTypeName(scale))));
    }
  }
}

// F32 weights whose quotients x / S lie on or within a few ulps of the
// half-integers where rounding turns, for scales across the whole range
// (the kernel divides differently inside and outside [2^-100, 2^100]).
Tensor NearTieWeight(int64_t rows, int64_t cols, DType scale_dtype, uint32_t seed) {
  Tensor t = Tensor::Allocate(DType::kF32, {rows, cols});
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> code(-8, 7), ulps(-3, 3);
  const int lo_exp = scale_dtype == DType::kF16 ? -14 : -126;
  const int hi_exp = scale_dtype == DType::kF16 ? 12 : 123;
  const rtn::ScaleType st = *RtnScaleType(scale_dtype);
  for (int64_t r = 0; r < rows; ++r) {
    const int e = lo_exp + static_cast<int>(r * (hi_exp - lo_exp) / std::max<int64_t>(1, rows - 1));
    const float absmax = std::ldexp(mant(rng), e) * 7.5f;
    const float s = rtn::SymmetricParams(absmax, 4, st).scale.value;
    float* row = t.as<float>() + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      if (c % 32 == 0) {
        row[c] = c % 64 == 0 ? absmax : -absmax;
        continue;
      }
      float x = (static_cast<float>(code(rng)) + 0.5f) * s;
      for (int k = ulps(rng); k != 0; k += k > 0 ? -1 : 1) {
        x = std::nextafter(x, k > 0 ? INFINITY : -INFINITY);
      }
      row[c] = x;
    }
  }
  return t;
}

TEST_F(CudaEncoderTest, MatchesReferenceNearRoundingTies) {
  auto enc = Make();
  ASSERT_NE(enc, nullptr);
  for (DType scale : {DType::kF32, DType::kBF16, DType::kF16}) {
    const Tensor w = NearTieWeight(256, 512, scale, 21);
    for (const ParamCase& c : ParamCases()) {
      Compare(*enc, w, MakeParams(c, scale),
              absl::StrCat(c.label, "_ties_scale_", std::string(DTypeName(scale))));
    }
  }
}

TEST_F(CudaEncoderTest, FallsBackToCpuForGroupsNotMultipleOf8) {
  auto enc = Make();
  ASSERT_NE(enc, nullptr);
  const Tensor w = RandomWeight(17, 24, DType::kBF16, 3);
  FormatParams p;
  p.bits = 8;
  p.group_size = 12;
  p.scale_dtype = DType::kBF16;
  Compare(*enc, w, p, "int8_g12", /*on_device=*/false);
}

TEST_F(CudaEncoderTest, ReportsFirstNonFiniteValueLikeReference) {
  auto enc = Make(64 << 10);
  ASSERT_NE(enc, nullptr);
  Tensor w = RandomWeight(1025, 256, DType::kBF16, 9);
  w.as<uint16_t>()[1000 * 256 + 3] = 0x7fc0;   // NaN, later chunk
  w.as<uint16_t>()[600 * 256 + 17] = 0xff80;   // -Inf
  w.as<uint16_t>()[600 * 256 + 200] = 0x7f80;  // +Inf, same row, later column
  for (const ParamCase& c : ParamCases()) {
    const FormatParams p = MakeParams(c, DType::kBF16);
    CancelToken cancel;
    absl::StatusOr<EncodedWeight> got = enc->Encode(RtnIntFormat(), p, w.view(), cancel);
    ASSERT_FALSE(got.ok()) << c.label;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(got.status().message(), "non-finite value at row 600, column 17") << c.label;
    EXPECT_EQ(EncodeRef(RtnIntFormat(), p, w.view()).status(), got.status()) << c.label;
  }
  // The encoder is still usable afterwards.
  const Tensor ok = RandomWeight(64, 256, DType::kBF16, 10);
  Compare(*enc, ok, MakeParams(ParamCases()[2], DType::kBF16), "after_error");
}

TEST_F(CudaEncoderTest, ReturnsCancelled) {
  auto enc = Make();
  ASSERT_NE(enc, nullptr);
  const Tensor w = RandomWeight(64, 128, DType::kBF16, 3);
  CancelToken cancel;
  cancel.Cancel();
  EXPECT_EQ(enc->Encode(RtnIntFormat(), MakeParams(ParamCases()[0], DType::kBF16), w.view(), cancel)
                .status()
                .code(),
            absl::StatusCode::kCancelled);
}

TEST_F(CudaEncoderTest, MakeCudaEncoderWorks) {
  absl::StatusOr<std::unique_ptr<WeightEncoder>> enc = MakeCudaEncoder(0);
  ASSERT_TRUE(enc.ok()) << enc.status();
  const Tensor w = RandomWeight(17, 128, DType::kBF16, 4);
  const FormatParams p = MakeParams(ParamCases()[3], DType::kBF16);
  CancelToken cancel;
  absl::StatusOr<EncodedWeight> got = (*enc)->Encode(RtnIntFormat(), p, w.view(), cancel);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSameBytes(*EncodeRef(RtnIntFormat(), p, w.view()), *got, w, "make_cuda_encoder");
}

#else  // !QUANTD_HAVE_CUDA

TEST(CudaEncoderTest, UnavailableWithoutCuda) {
  EXPECT_EQ(MakeCudaEncoder(0).status().code(), absl::StatusCode::kUnavailable);
}

#endif  // QUANTD_HAVE_CUDA

}  // namespace
}  // namespace quantd
