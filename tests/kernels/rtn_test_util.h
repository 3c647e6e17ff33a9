// Shared by the rtn_int encoder tests: seeded weights with special rows, the
// parameter sets and sizes compared, and a bit-for-bit comparison that
// writes failing tensors to a file.
#ifndef QUANTD_TESTS_KERNELS_RTN_TEST_UTIL_H_
#define QUANTD_TESTS_KERNELS_RTN_TEST_UTIL_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/formats/format.h"
#include "core/formats/rtn_int.h"
#include "core/tensor/float_bits.h"
#include "core/tensor/tensor.h"
#include "gtest/gtest.h"

namespace quantd {
namespace testing_rtn {

// A named FormatParams (scale_dtype is set to the source dtype per case).
struct ParamCase {
  const char* label;
  int bits;
  int64_t group_size;
  bool symmetric;
};

inline const std::vector<ParamCase>& ParamCases() {
  static const std::vector<ParamCase> cases = {
      {"int4-g32-sym", 4, 32, true},    {"int4-g64-asym", 4, 64, false},
      {"int4-g128-sym", 4, 128, true},  {"int4-g128-asym", 4, 128, false},
      {"int4-channel-sym", 4, 0, true}, {"int4-channel-asym", 4, 0, false},
      {"int8-channel-sym", 8, 0, true}, {"int8-g128-sym", 8, 128, true},
  };
  return cases;
}

inline const std::vector<int64_t>& AwkwardRows() {
  static const std::vector<int64_t> rows = {1, 17, 255, 257, 1025};
  return rows;
}

inline FormatParams MakeParams(const ParamCase& c, DType scale_dtype) {
  FormatParams p;
  p.bits = c.bits;
  p.group_size = c.group_size;
  p.symmetric = c.symmetric;
  p.scale_dtype = scale_dtype;
  return p;
}

inline void StoreFloat(Tensor& t, int64_t i, float v) {
  switch (t.dtype()) {
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

// Largest finite value of a weight dtype.
inline float MaxFinite(DType t) {
  switch (t) {
    case DType::kF16:
      return 65504.0f;
    case DType::kBF16:
      return Bf16ToFloat(0x7f7f);
    default:
      return BitsToFloat(0x7f7fffffu);
  }
}

// A [rows, cols] weight of `dtype`: normal values with per-row scale spread
// over six decades, forced non-zero (|x| >= 1e-3 of the row scale), plus
// special rows where they fit: row 0 all zero, row 1 alternating +-max,
// row 2 subnormal-sized values, row 3 one constant, row 4 a single outlier.
inline Tensor RandomWeight(int64_t rows, int64_t cols, DType dtype, uint32_t seed) {
  Tensor t = Tensor::Allocate(dtype, {rows, cols});
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> decade(-4.0f, 2.0f);
  const float tiny = dtype == DType::kF16 ? 3e-6f : 1e-39f;
  for (int64_t r = 0; r < rows; ++r) {
    const float row_scale = std::pow(10.0f, decade(rng));
    for (int64_t c = 0; c < cols; ++c) {
      float v = normal(rng);
      if (std::fabs(v) < 1e-3f) v = v < 0 ? -1e-3f : 1e-3f;
      v *= row_scale;
      if (rows > 5) {
        if (r == 0) v = 0.0f;
        if (r == 1) v = (c % 2 ? -1.0f : 1.0f) * MaxFinite(dtype);
        if (r == 2) v = tiny * static_cast<float>((c % 7) - 3);
        if (r == 3) v = -0.375f;
        if (r == 4) v = c == cols / 2 ? 1000.0f : 0.01f * normal(rng);
      }
      StoreFloat(t, r * cols + c, v);
    }
  }
  return t;
}

// Writes `t`'s bytes to a file in the test temp dir; returns its path.
inline std::string DumpTensor(const std::string& name, const Tensor& t) {
  const std::string path = ::testing::TempDir() + name + ".bin";
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(t.data()), static_cast<std::streamsize>(t.nbytes()));
  return path;
}

// Expects `got` to equal `want` byte for byte, part by part; on a mismatch
// reports the first differing byte and dumps input and both parts.
inline void ExpectSameBytes(const EncodedWeight& want, const EncodedWeight& got,
                            const Tensor& input, const std::string& what) {
  ASSERT_EQ(want.parts.size(), got.parts.size()) << what;
  for (size_t i = 0; i < want.parts.size(); ++i) {
    const Tensor& a = want.parts[i].tensor;
    const Tensor& b = got.parts[i].tensor;
    ASSERT_EQ(want.parts[i].suffix, got.parts[i].suffix) << what;
    ASSERT_EQ(a.dtype(), b.dtype()) << what << " " << want.parts[i].suffix;
    ASSERT_EQ(a.shape(), b.shape()) << what << " " << want.parts[i].suffix;
    if (std::memcmp(a.data(), b.data(), a.nbytes()) == 0) continue;
    size_t k = 0;
    while (k < a.nbytes() && a.data()[k] == b.data()[k]) ++k;
    std::string name = what + "_" + want.parts[i].suffix;
    for (char& ch : name) {
      if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
    }
    ADD_FAILURE() << what << ": part " << want.parts[i].suffix << " differs first at byte " << k
                  << " of " << a.nbytes() << " (want 0x" << std::hex << int{a.data()[k]}
                  << ", got 0x" << int{b.data()[k]} << std::dec << "); dumped "
                  << DumpTensor(name + "_input", input) << ", " << DumpTensor(name + "_want", a)
                  << ", " << DumpTensor(name + "_got", b);
  }
}

}  // namespace testing_rtn
}  // namespace quantd

#endif  // QUANTD_TESTS_KERNELS_RTN_TEST_UTIL_H_
