// The "ggml" format through the encoders: the CPU path and (with a device)
// the CUDA path must give the scalar reference's bytes exactly, for every
// type, source dtype and awkward size; non-finite inputs are rejected the
// same way. The CUDA tests skip without a device.
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/formats/format.h"
#include "core/formats/registry.h"
#include "core/gguf/ggml_format.h"
#include "core/gguf/ggml_quants.h"
#include "core/gguf/ggml_types.h"
#include "core/tensor/float_bits.h"
#include "gtest/gtest.h"
#include "kernels/devices.h"
#include "kernels/encoders.h"

#if QUANTD_HAVE_CUDA
#include "kernels/cuda/cuda_encoder.h"
#endif

namespace quantd {
namespace {

std::vector<GgmlType> EncodableTypes() {
  std::vector<GgmlType> out;
  for (GgmlType t : AllGgmlTypes()) {
    if (CanEncodeGgml(t)) out.push_back(t);
  }
  return out;
}

// Seeded weights, never all zero, with an all-zero row, a +-max row and
// rows of very different scales.
Tensor RandomWeight(int64_t rows, int64_t cols, DType dtype, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Tensor t = Tensor::Allocate(dtype, {rows, cols});
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = std::ldexp(1.0f, static_cast<int>(r % 13) - 8);
    for (int64_t c = 0; c < cols; ++c) {
      float v = normal(gen) * scale;
      if (r == 1 && rows > 2) v = 0.0f;
      if (r == 2 && rows > 2)
        v = (c % 2 ? 1.0f : -1.0f) * (dtype == DType::kF16 ? 65504.0f : 3e38f);
      const int64_t i = r * cols + c;
      switch (dtype) {
        case DType::kF32:
          t.as<float>()[i] = v;
          break;
        case DType::kF16:
          t.as<uint16_t>()[i] = FloatToF16(v);
          break;
        default:
          t.as<uint16_t>()[i] = FloatToBf16(v);
          break;
      }
    }
  }
  return t;
}

// Seeded positive importances (one per column) spanning two decades, with
// a few zeros as imatrix files have for never-activated columns.
std::vector<float> RandomImportance(int64_t cols, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) w[c] = c % 97 == 5 ? 0.0f : std::pow(10.0f, u(gen));
  return w;
}

// Expects equal bytes; on a mismatch writes both to a file for inspection.
void ExpectSameBytes(const EncodedWeight& want, const EncodedWeight& got, const std::string& what) {
  const Tensor* a = want.Find(kGgmlDataSuffix);
  const Tensor* b = got.Find(kGgmlDataSuffix);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(a->shape(), b->shape()) << what;
  if (std::memcmp(a->data(), b->data(), a->nbytes()) != 0) {
    size_t i = 0;
    while (a->data()[i] == b->data()[i]) ++i;
    const std::string path = ::testing::TempDir() + "ggml_mismatch_" + what + ".bin";
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(a->data()), static_cast<std::streamsize>(a->nbytes()));
    f.write(reinterpret_cast<const char*>(b->data()), static_cast<std::streamsize>(b->nbytes()));
    ADD_FAILURE() << what << ": first differing byte " << i << " (reference then encoder bytes in "
                  << path << ")";
  }
}

TEST(GgmlFormatTest, Registered) {
  absl::StatusOr<const WeightFormat*> f = FindFormat("ggml");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f, &GgmlFormat());
}

TEST(GgmlFormatTest, CheckRejectsBadParams) {
  const WeightFormat& f = GgmlFormat();
  FormatParams p;
  EXPECT_FALSE(f.Check(p, 4, 256).ok());  // no type
  p.extra["type"] = "Q4_K";
  EXPECT_TRUE(f.Check(p, 4, 256).ok());
  EXPECT_FALSE(f.Check(p, 4, 250).ok());
  EXPECT_FALSE(f.Check(p, 0, 256).ok());
  p.extra["type"] = "IQ2_XS";
  EXPECT_FALSE(f.Check(p, 4, 256).ok());
  p.extra["type"] = "nonsense";
  EXPECT_FALSE(f.Check(p, 4, 256).ok());
  p.extra["type"] = "q8_0";
  p.extra["group_size"] = "32";
  EXPECT_FALSE(f.Check(p, 4, 256).ok());
  std::vector<float> imp(256, 1.0f);
  imp[7] = NAN;
  FormatParams q = GgmlFormatParams(GgmlType::kQ4_K, imp.data());
  EXPECT_FALSE(f.Check(q, 4, 256).ok());
}

TEST(GgmlFormatTest, NonFiniteNamesRowAndColumn) {
  Tensor w = RandomWeight(5, 512, DType::kBF16, 3);
  w.as<uint16_t>()[3 * 512 + 300] = 0x7f80;  // +inf
  for (GgmlType t : EncodableTypes()) {
    absl::StatusOr<EncodedWeight> e = EncodeRef(GgmlFormat(), GgmlFormatParams(t), w.view());
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(e.status().message().find("row 3, column 300"), std::string::npos) << e.status();
  }
}

TEST(GgmlFormatTest, DecodeRefMatchesDequantize) {
  const Tensor w = RandomWeight(3, 768, DType::kF32, 9);
  for (GgmlType t : EncodableTypes()) {
    const FormatParams p = GgmlFormatParams(t);
    absl::StatusOr<EncodedWeight> e = EncodeRef(GgmlFormat(), p, w.view());
    ASSERT_TRUE(e.ok()) << e.status();
    absl::StatusOr<std::vector<float>> d = GgmlFormat().DecodeRef(p, *e, 3, 768);
    ASSERT_TRUE(d.ok());
    std::vector<float> want(3 * 768);
    ASSERT_TRUE(DequantizeGgml(t, e->Find("data")->data(), 3, 768, want.data()).ok());
    EXPECT_EQ(0, std::memcmp(want.data(), d->data(), want.size() * 4)) << GgmlTypeName(t);
  }
}

TEST(GgmlCpuEncoderTest, MatchesReference) {
  std::unique_ptr<WeightEncoder> enc = MakeCpuEncoder(3);
  std::vector<float> importance(1024);
  for (size_t i = 0; i < importance.size(); ++i) importance[i] = 0.5f + static_cast<float>(i % 7);
  uint32_t seed = 1;
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (int64_t rows : {1, 17, 257}) {
      const Tensor w = RandomWeight(rows, 1024, dtype, seed++);
      for (GgmlType t : EncodableTypes()) {
        for (bool imatrix : {false, true}) {
          const FormatParams p = GgmlFormatParams(t, imatrix ? importance.data() : nullptr);
          absl::StatusOr<EncodedWeight> want = EncodeRef(GgmlFormat(), p, w.view());
          ASSERT_TRUE(want.ok()) << want.status();
          CancelToken cancel;
          absl::StatusOr<EncodedWeight> got = enc->Encode(GgmlFormat(), p, w.view(), cancel);
          ASSERT_TRUE(got.ok()) << got.status();
          ExpectSameBytes(*want, *got,
                          absl::StrCat(std::string(GgmlTypeName(t)), imatrix ? "_imatrix_" : "_",
                                       std::string(DTypeName(dtype)), "_", rows));
        }
      }
    }
  }
}

#if QUANTD_HAVE_CUDA

class GgmlCudaTest : public ::testing::Test {
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
  static void Compare(CudaEncoder& enc, const Tensor& w, const FormatParams& p,
                      const std::string& what, bool on_device) {
    absl::StatusOr<EncodedWeight> want = EncodeRef(GgmlFormat(), p, w.view());
    ASSERT_TRUE(want.ok()) << what << ": " << want.status();
    CancelToken cancel;
    absl::StatusOr<EncodedWeight> got = enc.Encode(GgmlFormat(), p, w.view(), cancel);
    ASSERT_TRUE(got.ok()) << what << ": " << got.status();
    EXPECT_EQ(enc.last_ran_on_device(), on_device) << what;
    ExpectSameBytes(*want, *got, what);
  }
};

TEST_F(GgmlCudaTest, MatchesReferenceBitForBit) {
  auto enc = Make();
  ASSERT_NE(enc, nullptr);
  uint32_t seed = 100;
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (int64_t rows : {1, 17, 255, 257}) {
      for (int64_t cols : {256, 768, 5120}) {
        const Tensor w = RandomWeight(rows, cols, dtype, seed++);
        const std::vector<float> importance = RandomImportance(cols, seed++);
        for (GgmlType t : EncodableTypes()) {
          for (bool imatrix : {false, true}) {
            Compare(*enc, w, GgmlFormatParams(t, imatrix ? importance.data() : nullptr),
                    absl::StrCat(std::string(GgmlTypeName(t)), imatrix ? "_imatrix_" : "_",
                                 std::string(DTypeName(dtype)), "_", rows, "x", cols),
                    true);
          }
        }
      }
    }
  }
}

// Chunks of a few rows (the importance indexed by column in every chunk,
// the legacy types' row sigma2 per chunk row) and a row of 14336 (ffn_down).
TEST_F(GgmlCudaTest, ManySmallChunksWithAndWithoutImatrix) {
  auto enc = Make(64 << 10);
  ASSERT_NE(enc, nullptr);
  for (int64_t cols : {4096, 14336}) {
    const Tensor w = RandomWeight(1025, cols, DType::kBF16, 7);
    const std::vector<float> importance = RandomImportance(cols, 8);
    for (GgmlType t : {GgmlType::kQ4_K, GgmlType::kQ6_K, GgmlType::kQ8_0, GgmlType::kQ4_0,
                       GgmlType::kQ5_1, GgmlType::kQ2_K}) {
      const std::string what = absl::StrCat(std::string(GgmlTypeName(t)), "_", cols);
      Compare(*enc, w, GgmlFormatParams(t), what, true);
      Compare(*enc, w, GgmlFormatParams(t, importance.data()), what + "_imatrix", true);
    }
  }
}

TEST_F(GgmlCudaTest, NonFiniteNamesRowAndColumn) {
  auto enc = Make();
  ASSERT_NE(enc, nullptr);
  Tensor w = RandomWeight(9, 512, DType::kF32, 5);
  w.as<float>()[6 * 512 + 77] = NAN;
  for (GgmlType t : EncodableTypes()) {
    CancelToken cancel;
    absl::StatusOr<EncodedWeight> got =
        enc->Encode(GgmlFormat(), GgmlFormatParams(t), w.view(), cancel);
    ASSERT_FALSE(got.ok()) << GgmlTypeName(t);
    EXPECT_NE(got.status().message().find("row 6, column 77"), std::string::npos) << got.status();
  }
}

#endif  // QUANTD_HAVE_CUDA

}  // namespace
}  // namespace quantd
