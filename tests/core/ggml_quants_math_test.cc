// The host shortcuts in core/gguf/ggml_quants_math.h and
// ggml_quants_legacy_impl.h against what they stand for: RoundToInt8X86
// against libm's roundf, the four-lane SignedAbsMax/MinMax against the
// sequential loops, on special values, sweeps and ties.
#include "core/gguf/ggml_quants_math.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/gguf/ggml_quants_legacy_impl.h"
#include "gtest/gtest.h"

namespace quantd {
namespace ggml {
namespace {

float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// What ggml computes: (int8_t)roundf(v), the conversion being cvttss2si.
int Expected(float v) { return TruncToInt8X86(std::roundf(v)); }

TEST(GgmlQuantsMathTest, RoundToInt8MatchesRoundfOnSpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  const float specials[] = {
      0.0f,          -0.0f,          0.5f,          -0.5f,          1.5f,       -1.5f,
      2.5f,          -2.5f,          0.49999997f,   -0.49999997f,   127.5f,     -127.5f,
      127.49999f,    -128.5f,        8388607.5f,    -8388607.5f,    8388608.0f, 16777217.0f,
      2147483520.0f, -2147483648.0f, 2147483648.0f, -2147483904.0f, 1e30f,      -1e30f,
      inf,           -inf,           std::nanf(""), -std::nanf(""), 1e-45f,     -1e-45f};
  for (float v : specials) EXPECT_EQ(RoundToInt8X86(v), Expected(v)) << v;
}

TEST(GgmlQuantsMathTest, RoundToInt8MatchesRoundfOnBitPatternSweep) {
  int64_t mismatches = 0;
  // A prime stride visits ~17M patterns of every exponent and both signs.
  for (uint64_t u = 0; u <= 0xffffffffull; u += 251) {
    const float v = FromBits(static_cast<uint32_t>(u));
    if (RoundToInt8X86(v) != Expected(v)) ++mismatches;
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(GgmlQuantsMathTest, RoundToInt8MatchesRoundfAroundEveryHalf) {
  // Every value within a few ulps of k + 0.5 for the Q8_0 range and beyond.
  for (int k = -300; k <= 300; ++k) {
    float v = static_cast<float>(k) + 0.5f;
    for (int s = 0; s < 4; ++s) v = std::nextafterf(v, -1e9f);
    for (int s = 0; s < 9; ++s, v = std::nextafterf(v, 1e9f)) {
      EXPECT_EQ(RoundToInt8X86(v), Expected(v)) << v;
    }
  }
}

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Blocks of 32 drawn from a small alphabet so that ties (+-amax, signed
// zeros at the extremes) are common, plus NaN and infinities.
std::vector<float> TieBlock(std::mt19937* rng) {
  const float inf = std::numeric_limits<float>::infinity();
  const float alphabet[] = {0.0f,    -0.0f, 1.0f,  -1.0f, 2.5f, -2.5f,        1e-45f,
                            -1e-45f, 3.0f,  -3.0f, inf,   -inf, std::nanf("")};
  const int kinds = static_cast<int>((*rng)() % 4);
  std::vector<float> x(32);
  for (float& v : x) {
    const uint32_t pick = (*rng)();
    if (kinds == 0) {
      v = alphabet[pick % 13];
    } else if (kinds == 1) {
      v = alphabet[pick % 6];  // zeros and +-1, +-2.5
    } else if (kinds == 2) {
      v = alphabet[pick % 2];  // only zeros
    } else {
      v = std::ldexp(static_cast<float>(static_cast<int>(pick % 2001) - 1000), -10);
    }
  }
  return x;
}

TEST(GgmlQuantsMathTest, LaneReductionsEqualSequentialLoops) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200000; ++trial) {
    const std::vector<float> x = TieBlock(&rng);
    float a0, m0, a1, m1;
    SignedAbsMax(x.data(), 32, &a0, &m0);
    SignedAbsMaxSeq(x.data(), 32, &a1, &m1);
    ASSERT_EQ(Bits(a0), Bits(a1)) << trial;
    ASSERT_EQ(Bits(m0), Bits(m1)) << trial;
    MinMax(x.data(), 32, &a0, &m0);
    MinMaxSeq(x.data(), 32, &a1, &m1);
    ASSERT_EQ(Bits(a0), Bits(a1)) << trial;
    ASSERT_EQ(Bits(m0), Bits(m1)) << trial;
  }
}

}  // namespace
}  // namespace ggml
}  // namespace quantd
