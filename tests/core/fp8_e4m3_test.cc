// FP8 E4M3 conversions (core/formats/fp8_e4m3.h) against an independent
// definition: values from the bit layout via ldexp, rounding by searching
// the nearest representable value in double precision.
#include "core/formats/fp8_e4m3.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "core/tensor/float_bits.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using e4m3::E4m3ToFloat;

// The code as an int (gtest prints uint8_t as a character).
int FloatToE4m3(float x) { return e4m3::FloatToE4m3(x); }

// The value of a finite code from the OCP definition (NaN for 0x7f/0xff).
double DefinedValue(int code) {
  const int sign = code >> 7, e = (code >> 3) & 0xf, m = code & 7;
  if (e == 15 && m == 7) return std::numeric_limits<double>::quiet_NaN();
  const double mag = e == 0 ? std::ldexp(m, -9) : std::ldexp(8 + m, e - 10);
  return sign ? -mag : mag;
}

// Round-to-nearest-even, saturating reference: the non-negative code whose
// value is nearest |x| (ties to the even code, i.e. even mantissa), +-448
// beyond the range, NaN for NaN.
int ReferenceEncode(float x) {
  if (std::isnan(x)) return std::signbit(x) ? 0xff : 0x7f;
  const int sign = std::signbit(x) ? 0x80 : 0;
  const double a = std::fabs(static_cast<double>(x));
  int best = 0;
  double best_err = a;
  for (int c = 1; c <= 0x7e; ++c) {
    const double err = std::fabs(DefinedValue(c) - a);
    if (err < best_err || (err == best_err && (c & 1) == 0)) {
      best = c;
      best_err = err;
    }
  }
  return sign | best;
}

constexpr int kNumCodes = 256;

TEST(E4m3Test, DecodesEveryCodeAsDefined) {
  for (int c = 0; c < kNumCodes; ++c) {
    const float got = E4m3ToFloat(static_cast<uint8_t>(c));
    const double want = DefinedValue(c);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << c;
      EXPECT_EQ(std::signbit(got), c >= 0x80) << c;
    } else {
      EXPECT_EQ(static_cast<double>(got), want) << c;
      EXPECT_EQ(std::signbit(got), c >= 0x80) << c;  // -0 for 0x80
    }
  }
}

TEST(E4m3Test, NamedBoundsMatchTheirCodes) {
  EXPECT_EQ(E4m3ToFloat(e4m3::kMaxCode), e4m3::kMax);
  EXPECT_EQ(E4m3ToFloat(0x08), e4m3::kMinNormal);
  EXPECT_EQ(E4m3ToFloat(0x01), e4m3::kMinSubnormal);
  EXPECT_EQ(e4m3::kMax, 448.0f);
  EXPECT_EQ(e4m3::kMinNormal, std::ldexp(1.0f, -6));
  EXPECT_EQ(e4m3::kMinSubnormal, std::ldexp(1.0f, -9));
}

TEST(E4m3Test, EveryFiniteCodeRoundTrips) {
  for (int c = 0; c < kNumCodes; ++c) {
    if ((c & 0x7f) == 0x7f) continue;
    EXPECT_EQ(FloatToE4m3(E4m3ToFloat(static_cast<uint8_t>(c))), c) << c;
  }
}

TEST(E4m3Test, HandComputedEncodes) {
  struct Case {
    float x;
    int code;
  };
  const Case cases[] = {
      {0.0f, 0x00},          {-0.0f, 0x80},         {1.0f, 0x38},  // e = 7
      {-2.0f, 0xc0},         {0.5f, 0x30},          {3.5f, 0x46},  // 1.75 * 2
      {240.0f, 0x77},        {448.0f, 0x7e},        {-448.0f, 0xfe},
      {0.013671875f, 0x07},  {0.015625f, 0x08},     {1.0625f, 0x38},  // tie -> even
      {1.0625001f, 0x39},    {1.1875f, 0x3a},       {0.3f, 0x2a},     // 0.3 -> 0.3125
      {0.0009765625f, 0x00}, {0.0009765626f, 0x01}, {0.0029296875f, 0x02},
      {0.0048828125f, 0x02}, {0.0146484375f, 0x08}, {-0.0146484375f, 0x88},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(FloatToE4m3(c.x), c.code) << c.x;
    EXPECT_EQ(ReferenceEncode(c.x), c.code) << c.x;  // the reference agrees
  }
}

TEST(E4m3Test, TiesBetweenNeighboursGoToTheEvenCode) {
  for (int c = 0; c < 0x7e; ++c) {
    const double lo = DefinedValue(c), hi = DefinedValue(c + 1);
    const float mid = static_cast<float>((lo + hi) / 2);  // exact in float32
    ASSERT_EQ(static_cast<double>(mid), (lo + hi) / 2);
    const int even = (c & 1) == 0 ? c : c + 1;
    EXPECT_EQ(FloatToE4m3(mid), even) << mid;
    EXPECT_EQ(FloatToE4m3(-mid), 0x80 | even) << -mid;
    EXPECT_EQ(FloatToE4m3(std::nextafter(mid, 0.0f)), c) << mid;
    EXPECT_EQ(FloatToE4m3(std::nextafter(mid, 1000.0f)), c + 1) << mid;
  }
}

TEST(E4m3Test, SaturatesInsteadOfNan) {
  const float inf = std::numeric_limits<float>::infinity();
  const float big[] = {std::nextafter(448.0f, 1000.0f),
                       464.0f,
                       std::nextafter(464.0f, 1000.0f),
                       470.0f,
                       480.0f,
                       1e6f,
                       3.0e38f,
                       std::numeric_limits<float>::max(),
                       inf};
  for (float x : big) {
    EXPECT_EQ(FloatToE4m3(x), 0x7e) << x;
    EXPECT_EQ(FloatToE4m3(-x), 0xfe) << -x;
  }
  EXPECT_EQ(FloatToE4m3(std::numeric_limits<float>::quiet_NaN()), 0x7f);
  EXPECT_EQ(FloatToE4m3(-std::numeric_limits<float>::quiet_NaN()), 0xff);
  EXPECT_EQ(FloatToE4m3(BitsToFloat(0x7f800001u)), 0x7f);  // signalling NaN
}

TEST(E4m3Test, Float32SubnormalsAndTinyValuesRoundToZero) {
  for (uint32_t bits : {0x00000001u, 0x007fffffu, 0x00800000u, 0x3a7fffffu, 0x3a800000u}) {
    EXPECT_EQ(FloatToE4m3(BitsToFloat(bits)), 0x00) << std::hex << bits;
    EXPECT_EQ(FloatToE4m3(BitsToFloat(bits | 0x80000000u)), 0x80) << std::hex << bits;
  }
  EXPECT_EQ(FloatToE4m3(BitsToFloat(0x3a800001u)), 0x01);  // just above 2^-10
}

// Every exponent, the top 12 mantissa bits exhaustively (the rounding bit
// of normal and subnormal results lies among them) and low bits 0, 1, all
// ones and around the half: covers ties, one ulp either side, and carries.
TEST(E4m3Test, MatchesReferenceAcrossFloat32) {
  const uint32_t kLow[] = {0x000, 0x001, 0x3ff, 0x400, 0x401, 0x7fe, 0x7ff};
  int64_t checked = 0;
  for (uint32_t exp = 0; exp < 255; ++exp) {
    for (uint32_t top = 0; top < 4096; ++top) {
      for (uint32_t low : kLow) {
        const uint32_t bits = (exp << 23) | (top << 11) | low;
        const float x = BitsToFloat(bits);
        const int got = FloatToE4m3(x);
        // Far outside the range the answer is obvious; the search is only
        // needed near representable values.
        int want;
        if (exp < 110) {
          want = 0;
        } else if (exp > 136) {
          want = 0x7e;
        } else {
          want = ReferenceEncode(x);
        }
        ASSERT_EQ(got, want) << std::hex << "bits 0x" << bits;
        ASSERT_EQ(FloatToE4m3(-x), 0x80 | want) << std::hex << "bits 0x" << (bits | 0x80000000u);
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, int64_t{255} * 4096 * 7);
}

TEST(E4m3Test, RoundTripErrorIsWithinHalfAStep) {
  // Relative error of a normal result <= 2^-4 (half of a 3-bit mantissa
  // step); absolute error of a subnormal result <= 2^-10.
  constexpr double kNormalRelError = 1.0 / 16;
  constexpr double kSubnormalAbsError = 1.0 / 1024;
  for (float x = 1e-4f; x < 448.0f; x *= 1.0037f) {
    const double back = E4m3ToFloat(FloatToE4m3(x));
    if (x >= e4m3::kMinNormal) {
      EXPECT_LE(std::fabs(back - x) / x, kNormalRelError) << x;
    } else {
      EXPECT_LE(std::fabs(back - x), kSubnormalAbsError) << x;
    }
  }
}

}  // namespace
}  // namespace quantd
