// quantd's reference of ggml's quantizers (core/gguf/ggml_quants.h):
// round-trip error bounds, special rows, golden bytes, and — when ggml
// itself is at hand — byte equality with ggml.
//
// Golden files: tests/golden/gguf/<TYPE>.bin (and <TYPE>_imatrix.bin for the
// types that use an importance matrix) hold QuantizeGgml of GoldenInput()
// (4 x 512, fixed seed). Regenerate them after an intended change with
//   scripts/regen_gguf_golden.sh [build dir]
// (QUANTD_REGENERATE_GOLDEN=1 ggml_quants_test --gtest_filter='*Golden*')
// and review the diff.
//
// ggml oracle: set QUANTD_GGML_LIB to a libggml-base.so built from
// llama.cpp's ggml (scripts/llama_cpp_oracle.sh builds it from the
// llama.cpp that llama-cpp-python's sdist vendors); the oracle tests then
// compare bytes with ggml_quantize_chunk, the function llama-quantize
// calls, with and without an importance matrix, and dequantized values with
// ggml's dequantize_row_<type>. They skip without it (as in CI).
#include "core/gguf/ggml_quants.h"

#include <dlfcn.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/gguf/ggml_types.h"
#include "core/tensor/float_bits.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

// Round-trip RMSE over RMS of the input, worst row of TestMatrix() (17 x
// 512, Gaussian with 1% outliers at 8x): the measured values (with and
// without an importance matrix) plus about 25% headroom. ggml's
// test-quantize-fns keeps such bounds per type too.
constexpr double kQ8_0MaxRelRmse = 0.013;   // measured 0.0103
constexpr double kQ6_KMaxRelRmse = 0.041;   // 0.0325
constexpr double kQ5_0MaxRelRmse = 0.105;   // 0.0838
constexpr double kQ5_1MaxRelRmse = 0.07;    // 0.0558
constexpr double kQ5_KMaxRelRmse = 0.073;   // 0.0583
constexpr double kQ4_0MaxRelRmse = 0.2;     // 0.161
constexpr double kQ4_1MaxRelRmse = 0.14;    // 0.113
constexpr double kQ4_KMaxRelRmse = 0.137;   // 0.110
constexpr double kQ3_KMaxRelRmse = 0.28;    // 0.225
constexpr double kQ2_KMaxRelRmse = 0.55;    // 0.439
constexpr double kF16MaxRelRmse = 4e-4;     // 2.9e-4
constexpr double kBF16MaxRelRmse = 2.8e-3;  // 2.2e-3

double MaxRelRmse(GgmlType t) {
  switch (t) {
    case GgmlType::kQ8_0:
      return kQ8_0MaxRelRmse;
    case GgmlType::kQ6_K:
      return kQ6_KMaxRelRmse;
    case GgmlType::kQ5_0:
      return kQ5_0MaxRelRmse;
    case GgmlType::kQ5_1:
      return kQ5_1MaxRelRmse;
    case GgmlType::kQ5_K:
      return kQ5_KMaxRelRmse;
    case GgmlType::kQ4_0:
      return kQ4_0MaxRelRmse;
    case GgmlType::kQ4_1:
      return kQ4_1MaxRelRmse;
    case GgmlType::kQ4_K:
      return kQ4_KMaxRelRmse;
    case GgmlType::kQ3_K:
      return kQ3_KMaxRelRmse;
    case GgmlType::kQ2_K:
      return kQ2_KMaxRelRmse;
    case GgmlType::kF16:
      return kF16MaxRelRmse;
    case GgmlType::kBF16:
      return kBF16MaxRelRmse;
    default:
      return 0.0;
  }
}

std::vector<GgmlType> EncodableTypes() {
  std::vector<GgmlType> out;
  for (GgmlType t : AllGgmlTypes()) {
    if (CanEncodeGgml(t)) out.push_back(t);
  }
  return out;
}

// Deterministic on every platform: splitmix64 and Irwin-Hall sums (no
// libm), so golden inputs never depend on the standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float Uniform() { return static_cast<float>(Next() >> 40) * (1.0f / 16777216.0f); }
  // Approximately N(0, 1): the sum of 4 uniforms, centred and scaled.
  float Gauss() { return (Uniform() + Uniform() + Uniform() + Uniform() - 2.0f) * 1.7320508f; }

 private:
  uint64_t s_;
};

// rows x cols Gaussian values with row scales spanning 1e-3..1e2, a few
// outliers, and (when special) an all-zero row, a +max row, a -max row, a
// row of tiny (subnormal-range) values and a row with one non-zero.
std::vector<float> TestMatrix(int64_t rows, int64_t cols, uint64_t seed, bool special) {
  Rng rng(seed);
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = 0.001f * static_cast<float>(1 << (r % 17));
    for (int64_t c = 0; c < cols; ++c) {
      float v = rng.Gauss() * scale;
      if (rng.Next() % 97 == 0) v *= 8.0f;  // outliers
      x[r * cols + c] = v;
    }
  }
  if (special && rows >= 6) {
    float* row = x.data();
    for (int64_t c = 0; c < cols; ++c) row[c] = 0.0f;
    row += cols;
    for (int64_t c = 0; c < cols; ++c) row[c] = 65504.0f;
    row += cols;
    for (int64_t c = 0; c < cols; ++c) row[c] = -3.0e4f;
    row += cols;
    for (int64_t c = 0; c < cols; ++c) row[c] = rng.Gauss() * 1e-39f;
    row += cols;
    for (int64_t c = 0; c < cols; ++c) row[c] = c == cols / 3 ? 1.5f : 0.0f;
  }
  return x;
}

// Finite but hostile rows for the oracle: magnitudes near FLT_MAX (whose
// scale searches overflow to inf and NaN inside ggml's arithmetic),
// subnormals, and mixtures of both.
std::vector<float> ExtremeMatrix(int64_t cols, uint64_t seed) {
  Rng rng(seed);
  const float kinds[] = {3.4e38f, 1e38f, 1e-45f, 1e-40f, 1e-30f, 1e20f};
  const int64_t rows = 12;
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const float big = kinds[r % 6];
      const float small = kinds[(r + c) % 6];
      float v = r < 6 ? big * (rng.Uniform() * 2 - 1) : (c % 3 == 0 ? big : small);
      if (rng.Next() % 5 == 0) v = -v;
      x[r * cols + c] = v;
    }
  }
  return x;
}

// Blocks where the order of equal candidates decides the bytes: small
// integers of both signs (ties of +-amax), signed zeros at the minimum or
// maximum, and exact halves for Q8_0's rounding.
std::vector<float> TieMatrix(int64_t cols, uint64_t seed) {
  Rng rng(seed);
  const int64_t rows = 8;
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int k = static_cast<int>(rng.Next() % 9) - 4;
      float v = static_cast<float>(k);
      if (r % 4 == 1) v = k > 0 ? 0.0f : (k == 0 ? -0.0f : v);      // max is a zero
      if (r % 4 == 2) v = k < 0 ? -0.0f : (k == 0 ? 0.0f : v);      // min is a zero
      if (r % 4 == 3) v = (static_cast<float>(k) + 0.5f) / 127.0f;  // halves
      x[r * cols + c] = r >= 4 ? -v : v;
    }
  }
  return x;
}

std::vector<float> Importance(int64_t cols, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> w(static_cast<size_t>(cols));
  for (float& v : w) v = 0.01f + rng.Uniform() * rng.Uniform() * 10.0f;
  return w;
}

std::vector<uint8_t> Quantize(GgmlType t, const std::vector<float>& x, int64_t rows, int64_t cols,
                              const float* importance) {
  std::vector<uint8_t> out(static_cast<size_t>(rows * *RowBytes(t, cols)));
  EXPECT_TRUE(QuantizeGgml(t, x.data(), rows, cols, importance, out.data()).ok());
  return out;
}

std::vector<float> Dequantize(GgmlType t, const std::vector<uint8_t>& q, int64_t rows,
                              int64_t cols) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  EXPECT_TRUE(DequantizeGgml(t, q.data(), rows, cols, out.data()).ok());
  return out;
}

TEST(GgmlQuantsTest, RoundTripErrorWithinBound) {
  for (GgmlType t : EncodableTypes()) {
    if (t == GgmlType::kF32) continue;
    const int64_t rows = 17, cols = 512;
    const std::vector<float> x = TestMatrix(rows, cols, 7, false);
    for (bool imatrix : {false, true}) {
      const std::vector<float> w = Importance(cols, 3);
      const std::vector<float> y =
          Dequantize(t, Quantize(t, x, rows, cols, imatrix ? w.data() : nullptr), rows, cols);
      double worst = 0;
      for (int64_t r = 0; r < rows; ++r) {
        double err = 0, ref = 0;
        for (int64_t c = 0; c < cols; ++c) {
          const double d = static_cast<double>(x[r * cols + c]) - y[r * cols + c];
          err += d * d;
          ref += static_cast<double>(x[r * cols + c]) * x[r * cols + c];
        }
        worst = std::max(worst, std::sqrt(err / ref));
      }
      EXPECT_LE(worst, MaxRelRmse(t)) << GgmlTypeName(t) << (imatrix ? " imatrix" : "");
      if (std::getenv("QUANTD_PRINT_ERRORS")) {
        printf("%s%s %.5f\n", std::string(GgmlTypeName(t)).c_str(), imatrix ? " imatrix" : "",
               worst);
      }
    }
  }
}

TEST(GgmlQuantsTest, SpecialRows) {
  for (GgmlType t : EncodableTypes()) {
    const int64_t rows = 6, cols = 256;
    const std::vector<float> x = TestMatrix(rows, cols, 11, true);
    const std::vector<float> y = Dequantize(t, Quantize(t, x, rows, cols, nullptr), rows, cols);
    for (int64_t c = 0; c < cols; ++c) {
      ASSERT_EQ(y[c], 0.0f) << GgmlTypeName(t) << " zero row, column " << c;
      // Constant rows decode to within a few percent (Q2_K's 2-bit codes
      // with a min represent a constant row only coarsely).
      EXPECT_NEAR(y[cols + c], 65504.0f, 0.15 * 65504.0f) << GgmlTypeName(t) << " column " << c;
      EXPECT_NEAR(y[2 * cols + c], -3.0e4f, 0.15 * 3.0e4f) << GgmlTypeName(t) << " column " << c;
      EXPECT_TRUE(std::isfinite(y[3 * cols + c]));
    }
    EXPECT_NEAR(y[4 * cols + cols / 3], 1.5f, 0.2f) << GgmlTypeName(t);
  }
}

TEST(GgmlQuantsTest, AwkwardSizes) {
  for (GgmlType t : EncodableTypes()) {
    const int64_t block = GgmlTraits(t).block_size == 1 ? 32 : GgmlTraits(t).block_size;
    for (int64_t rows : {1, 3, 17}) {
      for (int64_t blocks : {1, 3, 7}) {
        const int64_t cols = block * blocks;
        const std::vector<float> x = TestMatrix(rows, cols, 5 + rows, false);
        // Rows are independent: quantizing all rows equals quantizing each.
        const std::vector<uint8_t> all = Quantize(t, x, rows, cols, nullptr);
        const int64_t rb = *RowBytes(t, cols);
        const std::vector<float> last(x.end() - cols, x.end());
        const std::vector<uint8_t> one = Quantize(t, last, 1, cols, nullptr);
        EXPECT_EQ(0, std::memcmp(one.data(), all.data() + (rows - 1) * rb, rb))
            << GgmlTypeName(t) << " " << rows << "x" << cols;
      }
    }
  }
}

TEST(GgmlQuantsTest, RejectsBadSizes) {
  std::vector<float> x(512, 1.0f);
  std::vector<uint8_t> out(4096);
  EXPECT_EQ(QuantizeGgml(GgmlType::kQ4_K, x.data(), 1, 100, nullptr, out.data()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QuantizeGgml(GgmlType::kQ4_0, x.data(), 1, 33, nullptr, out.data()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QuantizeGgml(GgmlType::kIQ2_XS, x.data(), 1, 256, nullptr, out.data()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QuantizeGgml(GgmlType::kQ8_0, x.data(), -1, 32, nullptr, out.data()).code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Golden bytes

std::filesystem::path GoldenDir() {
  return std::filesystem::path(__FILE__).parent_path().parent_path() / "golden" / "gguf";
}

std::vector<float> GoldenInput() { return TestMatrix(4, 512, 20240601, false); }
std::vector<float> GoldenImportance() { return Importance(512, 4242); }

TEST(GgmlQuantsTest, GoldenBytes) {
  const bool regenerate = std::getenv("QUANTD_REGENERATE_GOLDEN") != nullptr;
  const std::vector<float> x = GoldenInput();
  const std::vector<float> w = GoldenImportance();
  for (GgmlType t : EncodableTypes()) {
    for (bool imatrix : {false, true}) {
      if (imatrix && !GgmlUsesImportance(t)) continue;
      const std::vector<uint8_t> q = Quantize(t, x, 4, 512, imatrix ? w.data() : nullptr);
      const std::filesystem::path path =
          GoldenDir() /
          absl::StrCat(std::string(GgmlTypeName(t)), imatrix ? "_imatrix" : "", ".bin");
      if (regenerate) {
        std::ofstream(path, std::ios::binary)
            .write(reinterpret_cast<const char*>(q.data()), static_cast<std::streamsize>(q.size()));
        continue;
      }
      std::ifstream in(path, std::ios::binary);
      ASSERT_TRUE(in.good()) << "missing " << path;
      const std::vector<uint8_t> golden((std::istreambuf_iterator<char>(in)),
                                        std::istreambuf_iterator<char>());
      EXPECT_TRUE(golden == q) << path << " differs (see the top of this file to regenerate)";
    }
  }
}

// ---------------------------------------------------------------------------
// Byte equality with ggml (QUANTD_GGML_LIB)

using QuantizeChunkFn = size_t (*)(int, const float*, void*, int64_t, int64_t, int64_t,
                                   const float*);
using DequantizeRowFn = void (*)(const void*, float*, int64_t);
using Fp16RowFn = void (*)(const float*, uint16_t*, int64_t);

class GgmlOracleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* lib = std::getenv("QUANTD_GGML_LIB");
    if (lib == nullptr) GTEST_SKIP() << "QUANTD_GGML_LIB not set";
    handle_ = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(handle_, nullptr) << dlerror();
    quantize_ = reinterpret_cast<QuantizeChunkFn>(dlsym(handle_, "ggml_quantize_chunk"));
    fp16_ = reinterpret_cast<Fp16RowFn>(dlsym(handle_, "ggml_fp32_to_fp16_row"));
    ASSERT_NE(quantize_, nullptr);
    ASSERT_NE(fp16_, nullptr);
  }

  // ggml_quantize_chunk as llama-quantize calls it, over the whole matrix.
  std::vector<uint8_t> Ggml(GgmlType t, const std::vector<float>& x, int64_t rows, int64_t cols,
                            const float* imatrix) {
    std::vector<uint8_t> out(static_cast<size_t>(rows * *RowBytes(t, cols)));
    const size_t n = quantize_(static_cast<int>(t), x.data(), out.data(), 0, rows, cols, imatrix);
    EXPECT_EQ(n, out.size());
    return out;
  }

  void* handle_ = nullptr;
  QuantizeChunkFn quantize_ = nullptr;
  Fp16RowFn fp16_ = nullptr;
};

// Reports the first differing block of two encodings.
std::string FirstDifference(GgmlType t, const std::vector<uint8_t>& a,
                            const std::vector<uint8_t>& b) {
  const size_t block = static_cast<size_t>(GgmlTraits(t).type_size);
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (a[i] != b[i])
      return absl::StrCat("first difference at byte ", i, " (block ", i / block, ")");
  }
  return a.size() == b.size() ? "equal" : "sizes differ";
}

TEST_F(GgmlOracleTest, BytesEqualGgmlQuantizeChunk) {
  for (GgmlType t : EncodableTypes()) {
    for (int64_t cols : {256, 768, 4096}) {
      const int64_t rows = 24;
      const std::vector<float> x = TestMatrix(rows, cols, 1000 + cols, true);
      const std::vector<float> w = Importance(cols, 77 + cols);
      for (bool imatrix : {false, true}) {
        const float* qw = imatrix ? w.data() : nullptr;
        const std::vector<uint8_t> ours = Quantize(t, x, rows, cols, qw);
        const std::vector<uint8_t> theirs = Ggml(t, x, rows, cols, qw);
        EXPECT_TRUE(ours == theirs)
            << GgmlTypeName(t) << " cols " << cols << (imatrix ? " imatrix: " : ": ")
            << FirstDifference(t, ours, theirs);
      }
    }
  }
}

TEST_F(GgmlOracleTest, BytesEqualGgmlOnExtremeValues) {
  for (GgmlType t : EncodableTypes()) {
    const int64_t cols = 512;
    std::vector<float> x = ExtremeMatrix(cols, 5);
    const std::vector<float> ties = TieMatrix(cols, 6);
    x.insert(x.end(), ties.begin(), ties.end());
    const int64_t rows = static_cast<int64_t>(x.size()) / cols;
    const std::vector<float> w = Importance(cols, 8);
    for (bool imatrix : {false, true}) {
      const float* qw = imatrix ? w.data() : nullptr;
      const std::vector<uint8_t> ours = Quantize(t, x, rows, cols, qw);
      const std::vector<uint8_t> theirs = Ggml(t, x, rows, cols, qw);
      EXPECT_TRUE(ours == theirs) << GgmlTypeName(t) << (imatrix ? " imatrix: " : ": ")
                                  << FirstDifference(t, ours, theirs);
    }
  }
}

TEST_F(GgmlOracleTest, DequantizeEqualsGgml) {
  for (GgmlType t : EncodableTypes()) {
    if (!GgmlTraits(t).is_quantized) continue;
    const std::string fn = absl::StrCat("dequantize_row_", std::string(GgmlTraits(t).ggml_name));
    auto* deq = reinterpret_cast<DequantizeRowFn>(dlsym(handle_, fn.c_str()));
    ASSERT_NE(deq, nullptr) << fn;
    const int64_t rows = 8, cols = 512;
    const std::vector<uint8_t> q =
        Quantize(t, TestMatrix(rows, cols, 99, true), rows, cols, nullptr);
    std::vector<float> theirs(static_cast<size_t>(rows * cols));
    deq(q.data(), theirs.data(), rows * cols);
    const std::vector<float> ours = Dequantize(t, q, rows, cols);
    EXPECT_EQ(0, std::memcmp(ours.data(), theirs.data(), ours.size() * 4)) << GgmlTypeName(t);
  }
}

// GGML_FP32_TO_FP16 and FloatToF16 agree on float32 bit patterns (NaNs:
// both keep the sign and give a quiet NaN): every 11th pattern here, to
// stay fast; every pattern was checked once (kStride 1, about 90 s).
TEST_F(GgmlOracleTest, Fp16ConversionEqualsGgmlOnAllFloats) {
  constexpr uint64_t kChunk = 1 << 20;
  constexpr uint64_t kStride = 11;
  std::vector<float> in(kChunk);
  std::vector<uint16_t> theirs(kChunk);
  uint64_t mismatches = 0;
  for (uint64_t base = 0; base < (uint64_t{1} << 32); base += kChunk * kStride) {
    for (uint64_t i = 0; i < kChunk; ++i) {
      in[i] = BitsToFloat(static_cast<uint32_t>(base + i * kStride));
    }
    fp16_(in.data(), theirs.data(), kChunk);
    for (uint64_t i = 0; i < kChunk; ++i) {
      if (FloatToF16(in[i]) != theirs[i] && ++mismatches <= 5) {
        ADD_FAILURE() << "float bits " << std::hex << base + i << ": ours " << FloatToF16(in[i])
                      << ", ggml " << theirs[i];
      }
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

}  // namespace
}  // namespace quantd
