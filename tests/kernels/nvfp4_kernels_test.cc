// The CPU and CUDA paths of the nvfp4 format must produce the scalar
// reference's bytes exactly. The CUDA tests skip themselves without a CUDA
// device.
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/formats/nvfp4.h"
#include "core/formats/nvfp4_layout.h"
#include "core/tensor/float_bits.h"
#include "gtest/gtest.h"
#include "kernels/devices.h"
#include "kernels/encoders.h"
#include "tests/kernels/rtn_test_util.h"

#if QUANTD_HAVE_CUDA
#include "kernels/cuda/cuda_encoder.h"
#endif

namespace quantd {
namespace {

using nvfp4::Layout;
using testing_rtn::ExpectSameBytes;
using testing_rtn::RandomWeight;

constexpr Layout kLayouts[] = {Layout::kCompressedTensors, Layout::kModelOpt};

const char* LayoutName(Layout l) {
  return l == Layout::kModelOpt ? kNvfp4LayoutModelOpt : kNvfp4LayoutCompressedTensors;
}

FormatParams Params(Layout layout, float tensor_amax) {
  FormatParams p;
  p.bits = 4;
  p.group_size = 16;
  p.tensor_amax = tensor_amax;
  p.extra[kNvfp4LayoutKey] = LayoutName(layout);
  return p;
}

std::string Label(Layout layout, const Tensor& w, const std::string& what) {
  return absl::StrCat(LayoutName(layout), "_", std::string(DTypeName(w.dtype())), "_", w.shape()[0],
                      "x", w.shape()[1], "_", what);
}

// F32 weights whose element quotients x / d lie on or within a few ulps of
// the E2M1 rounding thresholds, for block divisors across the whole range
// (rows sweep the tensor scale, blocks the block scale), plus blocks whose
// scales are tiny, zero or saturated.
Tensor NearTieWeight(int64_t rows, int64_t cols, Layout layout, float tensor_amax, uint32_t seed) {
  Tensor t = Tensor::Allocate(DType::kF32, {rows, cols});
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> frac(0.0f, 1.0f);
  std::uniform_int_distribution<int> pick(0, 6), ulps(-3, 3);
  const float thresholds[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
  const float global = nvfp4::GlobalScale(tensor_amax, layout);
  float* x = t.as<float>();
  for (int64_t k = 0; k < rows * cols / 16; ++k) {
    // Block amax: a power-law fraction of the tensor amax (sometimes 0).
    const float b = k % 17 == 0 ? 0.0f : tensor_amax * std::pow(frac(rng), 8.0f);
    const float d = nvfp4::MakeBlockScale(b, global, layout).divisor;
    x[16 * k] = k % 2 ? b : -b;
    for (int j = 1; j < 16; ++j) {
      float v = std::fmin(thresholds[pick(rng)] * d, b);
      for (int u = ulps(rng); u != 0; u += u > 0 ? -1 : 1)
        v = std::nextafter(v, u > 0 ? INFINITY : 0.0f);
      x[16 * k + j] = std::fmin(v, b) * (j % 3 ? 1.0f : -1.0f);
    }
  }
  return t;
}

// The CUDA kernel's element code (kernels/cuda/nvfp4.cu, PackCodes) for a
// block with largest magnitude b and divisor d: the quotient by
// FastQuotient where Fast holds, else by division; the code by
// E2M1Magnitude; sign 8 for x < 0.
uint32_t KernelCode(float x, const nvfp4::Quotient& q, bool fast) {
  const float ax = std::fabs(x);
  const float a = fast ? nvfp4::FastQuotient(ax, q) : nvfp4::DivRn(ax, q.d);
  return nvfp4::E2M1Magnitude(a) + (x < 0.0f ? 8u : 0u);
}

// The CUDA kernel's arithmetic (kernels/cuda/nvfp4.cu: BlockScaleCode and
// the per-code quotients) run on the host, block by block, so that it is
// checked against the reference even where no GPU is present. Returns the
// packed bytes and scale bytes.
void EmulateKernel(const FormatParams& p, const Tensor& w, std::vector<uint8_t>* packed,
                   std::vector<uint8_t>* scales) {
  const Layout layout = *Nvfp4LayoutOf(p);
  const float global = *Nvfp4GlobalScale(p);
  const float div = nvfp4::MulRn(nvfp4::kE2M1Max, global);
  const float div_reciprocal = nvfp4::DivRn(1.0f, div);
  const int64_t blocks = w.numel() / 16;
  packed->assign(static_cast<size_t>(blocks * 8), 0);
  scales->assign(static_cast<size_t>(blocks), 0);
  for (int64_t k = 0; k < blocks; ++k) {
    float x[16];
    float b = 0.0f;
    for (int j = 0; j < 16; ++j) {
      x[j] = LoadAsFloat(w.view(), 16 * k + j);
      b = std::fmax(b, std::fabs(x[j]));
    }
    const uint32_t code = nvfp4::BlockScaleCode(b, global, div, div_reciprocal, layout);
    const nvfp4::Quotient q = nvfp4::MakeQuotient(nvfp4::BlockDivisor(code, global, layout));
    const bool fast = nvfp4::Fast(q, b);
    (*scales)[static_cast<size_t>(k)] = static_cast<uint8_t>(code);
    for (int j = 0; j < 16; ++j) {
      const uint32_t c = KernelCode(x[j], q, fast);
      (*packed)[static_cast<size_t>(8 * k + j / 2)] |= static_cast<uint8_t>(c << (4 * (j % 2)));
    }
  }
}

// Every BF16 value (both signs) against nvfp4::EncodeElement, for every
// scale code that can occur and both layouts, across tensor scales, in a
// block whose largest magnitude is the value itself or 6 d (Fast permitting).
TEST(Nvfp4KernelArithmeticTest, KernelCodesEqualReferenceOnEveryBf16Value) {
  for (Layout layout : kLayouts) {
    for (float amax : {0.0f, 1e-30f, 0.02f, 7.5f, 3.3895e38f}) {
      const float global = nvfp4::GlobalScale(amax, layout);
      for (uint32_t code = 1; code < 0x7f; ++code) {
        const float d = nvfp4::BlockDivisor(code, global, layout);
        const nvfp4::Quotient q = nvfp4::MakeQuotient(d);
        int mismatches = 0;
        for (uint32_t h = 0; h < 0x10000; ++h) {
          const float x = Bf16ToFloat(static_cast<uint16_t>(h));
          if (!std::isfinite(x)) continue;
          const bool fast = nvfp4::Fast(q, std::fmax(std::fabs(x), 6.0f * d));
          if (KernelCode(x, q, fast) != nvfp4::EncodeElement(x, d)) ++mismatches;
        }
        ASSERT_EQ(mismatches, 0) << LayoutName(layout) << " amax " << amax << " code " << code;
      }
    }
  }
}

void ExpectKernelArithmeticMatchesReference(const FormatParams& p, const Tensor& w,
                                            const std::string& what) {
  absl::StatusOr<EncodedWeight> want = EncodeRef(Nvfp4Format(), p, w.view());
  ASSERT_TRUE(want.ok()) << what << ": " << want.status();
  std::vector<uint8_t> packed, scales;
  EmulateKernel(p, w, &packed, &scales);
  const Nvfp4PartNames n = Nvfp4Parts(*Nvfp4LayoutOf(p));
  const Tensor* wp = want->Find(n.packed);
  const Tensor* ws = want->Find(n.scale);
  ASSERT_EQ(std::vector<uint8_t>(ws->data(), ws->data() + ws->nbytes()), scales) << what;
  ASSERT_EQ(std::vector<uint8_t>(wp->data(), wp->data() + wp->nbytes()), packed) << what;
}

TEST(Nvfp4KernelArithmeticTest, MatchesReferenceNearRoundingTies) {
  uint32_t seed = 21;
  for (float amax : {0.0f, 1e-35f, 1e-20f, 3e-3f, 1.0f, 448.0f, 6e4f, 1e30f, 3e38f}) {
    for (Layout layout : kLayouts) {
      const Tensor w = NearTieWeight(64, 512, layout, amax, seed++);
      ExpectKernelArithmeticMatchesReference(Params(layout, amax), w,
                                             Label(layout, w, absl::StrCat("amax_", amax)));
    }
  }
}

TEST(Nvfp4KernelArithmeticTest, MatchesReferenceOnRandomAndSpecialRows) {
  uint32_t seed = 5;
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    const Tensor w = RandomWeight(257, 1040, dtype, seed++);
    for (Layout layout : kLayouts) {
      for (float amax : {AbsMaxRef(w.view()), 1.0f, 0.0f}) {  // exact, too small
        ExpectKernelArithmeticMatchesReference(Params(layout, amax), w,
                                               Label(layout, w, absl::StrCat("amax_", amax)));
      }
    }
  }
}

// ---------------------------------------------------------------------------
// CPU path

TEST(Nvfp4CpuEncoderTest, MatchesReferenceOnAwkwardSizes) {
  auto enc = MakeCpuEncoder(3);
  uint32_t seed = 1;
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (int64_t rows : {1, 17, 255, 257}) {
      for (int64_t cols : {16, 48, 1040}) {
        const Tensor w = RandomWeight(rows, cols, dtype, seed++);
        for (Layout layout : kLayouts) {
          const FormatParams p = Params(layout, AbsMaxRef(w.view()));
          absl::StatusOr<EncodedWeight> want = EncodeRef(Nvfp4Format(), p, w.view());
          ASSERT_TRUE(want.ok()) << want.status();
          CancelToken cancel;
          absl::StatusOr<EncodedWeight> got = enc->Encode(Nvfp4Format(), p, w.view(), cancel);
          ASSERT_TRUE(got.ok()) << got.status();
          ExpectSameBytes(*want, *got, w, Label(layout, w, "cpu"));
        }
      }
    }
  }
}

TEST(Nvfp4CpuEncoderTest, ReportsFirstNonFiniteValueInRowOrder) {
  auto enc = MakeCpuEncoder(4);
  Tensor w = RandomWeight(1025, 256, DType::kBF16, 9);
  w.as<uint16_t>()[1000 * 256 + 3] = 0x7fc0;  // NaN, late
  w.as<uint16_t>()[600 * 256 + 17] = 0xff80;  // -Inf, earlier
  for (Layout layout : kLayouts) {
    CancelToken cancel;
    absl::StatusOr<EncodedWeight> got =
        enc->Encode(Nvfp4Format(), Params(layout, 1.0f), w.view(), cancel);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().message(), "non-finite value at row 600, column 17");
    // The -Inf makes the (fused) tensor amax infinite: every chunk scans the
    // whole tensor, so the first value is still the one named.
    got = enc->Encode(Nvfp4Format(), Params(layout, INFINITY), w.view(), cancel);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().message(), "non-finite value at row 600, column 17");
  }
  // An infinite amax from a fused tensor, this one finite: said so.
  const Tensor clean = RandomWeight(1025, 256, DType::kBF16, 9);
  CancelToken cancel;
  const absl::Status s =
      enc->Encode(Nvfp4Format(), Params(Layout::kModelOpt, INFINITY), clean.view(), cancel)
          .status();
  EXPECT_EQ(s.message(),
            "tensor_amax inf is not finite: a tensor sharing this one's scale (fused q/k/v or "
            "gate/up) holds a non-finite value");
}

#if QUANTD_HAVE_CUDA

// ---------------------------------------------------------------------------
// CUDA path

class Nvfp4CudaEncoderTest : public ::testing::Test {
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

  // Encodes `w` on the device and with the reference; expects the same bytes
  // and that the device kernel ran.
  static void Compare(CudaEncoder& enc, const Tensor& w, const FormatParams& p,
                      const std::string& what) {
    absl::StatusOr<EncodedWeight> want = EncodeRef(Nvfp4Format(), p, w.view());
    ASSERT_TRUE(want.ok()) << what << ": " << want.status();
    CancelToken cancel;
    absl::StatusOr<EncodedWeight> got = enc.Encode(Nvfp4Format(), p, w.view(), cancel);
    ASSERT_TRUE(got.ok()) << what << ": " << got.status();
    EXPECT_TRUE(enc.last_ran_on_device()) << what;
    ExpectSameBytes(*want, *got, w, what);
  }
};

TEST_F(Nvfp4CudaEncoderTest, MatchesReferenceOnAwkwardSizes) {
  auto enc = Make();
  ASSERT_NE(enc, nullptr);
  uint32_t seed = 1;
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (int64_t rows : testing_rtn::AwkwardRows()) {
      for (int64_t cols : {16, 48, 1040, 5120, 5136}) {
        const Tensor w = RandomWeight(rows, cols, dtype, seed++);
        for (Layout layout : kLayouts) {
          Compare(*enc, w, Params(layout, AbsMaxRef(w.view())), Label(layout, w, "awkward"));
        }
      }
    }
  }
}

TEST_F(Nvfp4CudaEncoderTest, MatchesReferenceAcrossManySmallChunks) {
  auto enc = Make(64 << 10);  // 64 KiB of input per chunk
  ASSERT_NE(enc, nullptr);
  const Tensor w = RandomWeight(1025, 5120, DType::kBF16, 77);
  for (Layout layout : kLayouts) {
    Compare(*enc, w, Params(layout, AbsMaxRef(w.view())), Label(layout, w, "chunked"));
  }
}

TEST_F(Nvfp4CudaEncoderTest, MatchesReferenceNearRoundingTies) {
  auto enc = Make();
  ASSERT_NE(enc, nullptr);
  uint32_t seed = 21;
  // Tensor scales from tiny (kMinTensorAmax clamps) to huge.
  for (float amax : {0.0f, 1e-35f, 1e-20f, 3e-3f, 1.0f, 448.0f, 6e4f, 1e30f, 3e38f}) {
    for (Layout layout : kLayouts) {
      const Tensor w = NearTieWeight(64, 512, layout, amax, seed++);
      Compare(*enc, w, Params(layout, amax), Label(layout, w, absl::StrCat("ties_amax_", amax)));
    }
  }
}

TEST_F(Nvfp4CudaEncoderTest, MatchesReferenceWhenTensorAmaxIsTooSmall) {
  auto enc = Make();
  ASSERT_NE(enc, nullptr);
  const Tensor w = RandomWeight(65, 512, DType::kF32, 11);  // has a +-FLT_MAX row
  for (Layout layout : kLayouts) {
    for (float amax : {0.0f, 1e-3f, 1.0f}) {  // saturating block scales and codes
      Compare(*enc, w, Params(layout, amax), Label(layout, w, absl::StrCat("amax_", amax)));
    }
  }
}

TEST_F(Nvfp4CudaEncoderTest, ReportsFirstNonFiniteValueLikeReference) {
  auto enc = Make(64 << 10);
  ASSERT_NE(enc, nullptr);
  Tensor w = RandomWeight(1025, 256, DType::kBF16, 9);
  w.as<uint16_t>()[1000 * 256 + 3] = 0x7fc0;   // NaN, later chunk
  w.as<uint16_t>()[600 * 256 + 17] = 0xff80;   // -Inf
  w.as<uint16_t>()[600 * 256 + 200] = 0x7f80;  // +Inf, same row, later column
  for (Layout layout : kLayouts) {
    const FormatParams p = Params(layout, 1.0f);
    CancelToken cancel;
    absl::StatusOr<EncodedWeight> got = enc->Encode(Nvfp4Format(), p, w.view(), cancel);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().message(), "non-finite value at row 600, column 17");
    EXPECT_EQ(EncodeRef(Nvfp4Format(), p, w.view()).status(), got.status());
  }
  const Tensor ok = RandomWeight(64, 256, DType::kBF16, 10);
  Compare(*enc, ok, Params(Layout::kModelOpt, AbsMaxRef(ok.view())), "after_error");
}

TEST_F(Nvfp4CudaEncoderTest, UnsetTensorAmaxFailsLikeReference) {
  auto enc = Make();
  ASSERT_NE(enc, nullptr);
  const Tensor w = RandomWeight(17, 64, DType::kBF16, 4);
  const FormatParams p = Params(Layout::kCompressedTensors, -1.0f);
  CancelToken cancel;
  absl::StatusOr<EncodedWeight> got = enc->Encode(Nvfp4Format(), p, w.view(), cancel);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(enc->last_ran_on_device());
}

#else  // !QUANTD_HAVE_CUDA

TEST(Nvfp4CudaEncoderTest, UnavailableWithoutCuda) {
  EXPECT_EQ(MakeCudaEncoder(0).status().code(), absl::StatusCode::kUnavailable);
}

#endif  // QUANTD_HAVE_CUDA

}  // namespace
}  // namespace quantd
