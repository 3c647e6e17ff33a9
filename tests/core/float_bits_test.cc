// FloatToF16: the branch-free host conversion equals binary16 round to
// nearest even as defined by the straightforward rules below, around every
// rounding boundary of every exponent and on a sweep of all float32 patterns.
#include "core/tensor/float_bits.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace quantd {
namespace {

// IEEE float32 -> binary16, round to nearest even, by cases.
uint16_t ByCases(float f) {
  const uint32_t u = FloatToBits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (abs < 0x38800000u) {
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = abs - 0x38000000u;
  r += 0xfffu + ((r >> 13) & 1u);
  return static_cast<uint16_t>(sign | (r >> 13));
}

TEST(FloatBitsTest, FloatToF16RoundsToNearestEvenEverywhere) {
  int64_t checked = 0;
  // Every sign and exponent with the low 13 significand bits at and around
  // the rounding points (binary16 keeps 10 of float32's 23).
  const uint32_t lows[] = {0x0000, 0x0001, 0x0fff, 0x1000, 0x1001, 0x1fff};
  for (uint32_t high = 0; high < (1u << 19); ++high) {
    for (uint32_t low : lows) {
      const float f = BitsToFloat((high << 13) | low);
      ASSERT_EQ(FloatToF16(f), ByCases(f)) << std::hex << FloatToBits(f);
      ++checked;
    }
  }
  // A sweep over all 2^32 patterns with a stride coprime to 2.
  for (uint64_t u = 0; u < (1ull << 32); u += 97) {
    const float f = BitsToFloat(static_cast<uint32_t>(u));
    ASSERT_EQ(FloatToF16(f), ByCases(f)) << std::hex << u;
    ++checked;
  }
  EXPECT_GT(checked, 40000000);
  EXPECT_EQ(FloatToF16(65504.0f), 0x7bffu);
  EXPECT_EQ(FloatToF16(65520.0f), 0x7c00u);  // rounds to infinity
  EXPECT_EQ(FloatToF16(-0.0f), 0x8000u);
  EXPECT_EQ(FloatToF16(5.9604645e-8f), 0x0001u);  // smallest subnormal
}

}  // namespace
}  // namespace quantd
