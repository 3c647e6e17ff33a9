// The nvfp4 reference (core/formats/nvfp4.h), its arithmetic
// (core/formats/nvfp4_layout.h) and the nvfp4 methods.
#include "core/formats/nvfp4.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/formats/nvfp4_layout.h"
#include "core/formats/registry.h"
#include "core/quant/method_registry.h"
#include "core/quant/nvfp4_method.h"
#include "core/tensor/float_bits.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using nvfp4::Layout;

// Worst |x - decoded| of an element, in units of its block's divisor d: the
// largest half-gap of the E2M1 grid (between 4 and 6) is 1; saturation at 6
// adds at most 6 * 2^-4 / (1 - 2^-4) = 0.4 (the E4M3 rounding of a normal
// scale). A subnormal E4M3 scale (code < 8) can be 1/3 below its raw value,
// so up to 9 d saturates to 6 d: 3.
constexpr double kMaxErrorNormalScale = 1.0;
constexpr double kMaxErrorSubnormalScale = 3.0;
// Float rounding of x / d and of value * d, relative to d.
constexpr double kRoundingSlack = 1e-5;
constexpr int kUlpsAroundThresholds = 4096;

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

void Store(Tensor& t, int64_t i, float v) {
  switch (t.dtype()) {
    case DType::kF32:
      t.as<float>()[i] = v;
      break;
    case DType::kF16:
      t.as<uint16_t>()[i] = FloatToF16(v);
      break;
    default:
      t.as<uint16_t>()[i] = FloatToBf16(v);
  }
}

Tensor Weight(DType dtype, int64_t rows, int64_t cols, const std::vector<float>& values) {
  Tensor t = Tensor::Allocate(dtype, {rows, cols});
  for (int64_t i = 0; i < rows * cols; ++i) Store(t, i, values[static_cast<size_t>(i)]);
  return t;
}

EncodedWeight Encode(const FormatParams& p, const Tensor& w) {
  absl::StatusOr<EncodedWeight> e = EncodeRef(Nvfp4Format(), p, w.view());
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *std::move(e) : EncodedWeight{};
}

std::vector<uint8_t> Bytes(const EncodedWeight& e, const char* suffix) {
  const Tensor* t = e.Find(suffix);
  if (t == nullptr) return {};
  return std::vector<uint8_t>(t->data(), t->data() + t->nbytes());
}

float Global(const EncodedWeight& e, Layout l) {
  float g = NAN;
  if (const Tensor* t = e.Find(Nvfp4Parts(l).global)) std::memcpy(&g, t->data(), 4);
  return g;
}

std::vector<float> Decode(const FormatParams& p, const EncodedWeight& e, int64_t rows,
                          int64_t cols) {
  absl::StatusOr<std::vector<float>> d = Nvfp4Format().DecodeRef(p, e, rows, cols);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? *d : std::vector<float>{};
}

// Expects every element within the round-trip bound of its block.
void ExpectRoundTripWithinBound(const FormatParams& p, const Tensor& w) {
  const Layout layout = *Nvfp4LayoutOf(p);
  const int64_t rows = w.shape()[0], cols = w.shape()[1];
  const EncodedWeight e = Encode(p, w);
  const std::vector<float> d = Decode(p, e, rows, cols);
  ASSERT_EQ(d.size(), static_cast<size_t>(rows * cols));
  const std::vector<uint8_t> scales = Bytes(e, Nvfp4Parts(layout).scale);
  const float global = Global(e, layout);
  for (int64_t i = 0; i < rows * cols; ++i) {
    const uint8_t code = scales[static_cast<size_t>(i / 16)];
    const double div = nvfp4::BlockDivisor(code, global, layout);
    const double bound =
        (code < 8 ? kMaxErrorSubnormalScale : kMaxErrorNormalScale) + kRoundingSlack;
    const double x = LoadAsFloat(w.view(), i);
    ASSERT_TRUE(std::isfinite(d[i]));
    ASSERT_LE(std::fabs(x - d[i]), div * bound) << "element " << i << " x " << x;
  }
}

// ---------------------------------------------------------------------------
// Arithmetic

TEST(Nvfp4LayoutTest, E2M1TableIsTheStandardOne) {
  const float want[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  for (uint32_t c = 0; c < 16; ++c) {
    EXPECT_EQ(nvfp4::E2M1ToFloat(c), want[c]) << c;
    EXPECT_EQ(std::signbit(nvfp4::E2M1ToFloat(c)), c >= 8) << c;
  }
}

TEST(Nvfp4LayoutTest, E2M1RoundsToNearestWithTiesToEven) {
  struct Case {
    float a;
    uint32_t code;
  };
  // Ties: .25 -> 0, .75 -> 1, 1.25 -> 1, 1.75 -> 2, 2.5 -> 2, 3.5 -> 4, 5 -> 4.
  const Case cases[] = {{0, 0},     {0.25f, 0}, {0.2501f, 1}, {0.5f, 1},  {0.7499f, 1},
                        {0.75f, 2}, {1.25f, 2}, {1.2501f, 3}, {1.75f, 4}, {2.5f, 4},
                        {2.51f, 5}, {3.49f, 5}, {3.5f, 6},    {5.0f, 6},  {5.01f, 7},
                        {6.0f, 7},  {100, 7},   {INFINITY, 7}};
  for (const Case& c : cases) {
    EXPECT_EQ(nvfp4::E2M1MagnitudeRef(c.a), c.code) << c.a;
    EXPECT_EQ(nvfp4::E2M1Magnitude(c.a), c.code) << c.a;
  }
  EXPECT_EQ(nvfp4::EncodeElement(-0.1f, 1.0f), 8u);  // negative, rounds to -0
  EXPECT_EQ(nvfp4::EncodeElement(-0.0f, 1.0f), 0u);
  EXPECT_EQ(nvfp4::EncodeElement(-6.0f, 1.0f), 15u);
}

TEST(Nvfp4LayoutTest, KernelE2M1FormulationEqualsTheDefinition) {
  const float points[] = {0.25f, 0.5f, 0.75f, 1.0f, 1.25f, 1.5f, 1.75f, 2.0f,  2.5f,
                          3.0f,  3.5f, 4.0f,  5.0f, 6.0f,  8.0f, 16.0f, 1e-38f};
  for (float t : points) {
    float a = t;
    for (int k = 0; k < kUlpsAroundThresholds; ++k) a = std::nextafter(a, 0.0f);
    for (int k = 0; k < 2 * kUlpsAroundThresholds; ++k, a = std::nextafter(a, INFINITY)) {
      ASSERT_EQ(nvfp4::E2M1Magnitude(a), nvfp4::E2M1MagnitudeRef(a)) << a;
    }
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits(0, 0x7f800000u);
  for (int i = 0; i < 1000000; ++i) {
    const float a = BitsToFloat(bits(rng));
    ASSERT_EQ(nvfp4::E2M1Magnitude(a), nvfp4::E2M1MagnitudeRef(a)) << a;
  }
}

TEST(Nvfp4LayoutTest, KernelQuotientEqualsCorrectlyRoundedDivision) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> exp(-100, 99), ulps(-3, 3), pick(0, 6);
  std::uniform_real_distribution<float> uniform(0.0f, 8.0f);
  const float thresholds[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
  int checked = 0;
  for (int i = 0; i < 200000; ++i) {
    const float d = std::ldexp(mant(rng), exp(rng));
    const nvfp4::Quotient q = nvfp4::MakeQuotient(d);
    // Near a threshold (exact ties included) or anywhere in [0, 8 d].
    float x = i % 2 ? thresholds[pick(rng)] * d : uniform(rng) * d;
    for (int k = ulps(rng); k != 0; k += k > 0 ? -1 : 1) {
      x = std::nextafter(x, k > 0 ? INFINITY : 0.0f);
    }
    if (!nvfp4::Fast(q, x)) continue;
    const float exact = nvfp4::DivRn(x, d);
    const float fast = nvfp4::FastQuotient(x, q);
    if (exact >= 0.125f) {
      ASSERT_EQ(FloatToBits(fast), FloatToBits(exact)) << x << " / " << d;
    }
    ASSERT_EQ(nvfp4::E2M1Magnitude(fast), nvfp4::E2M1MagnitudeRef(exact)) << x << " / " << d;
    ++checked;
  }
  EXPECT_GT(checked, 190000);
}

TEST(Nvfp4LayoutTest, ReciprocalDivisionEqualsDivisionEverywhere) {
  std::mt19937 rng(13);
  std::uniform_int_distribution<uint32_t> bits(0, 0x7f7fffffu);  // finite, >= 0
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> exp(-120, 120), ulps(-2, 2);
  for (int i = 0; i < 1000000; ++i) {
    const float d = std::ldexp(mant(rng), exp(rng));
    float a = BitsToFloat(bits(rng));
    if (i % 2) {  // near a short quotient (1.5, 2.75, ...): where rounding turns
      a = std::ldexp(static_cast<float>(1 + i % 64) / 16.0f, exp(rng) / 4) * d;
      for (int k = ulps(rng); k != 0; k += k > 0 ? -1 : 1)
        a = std::nextafter(a, k > 0 ? INFINITY : 0.0f);
      if (!std::isfinite(a)) continue;
    }
    const float y = nvfp4::DivRn(1.0f, d);
    ASSERT_EQ(FloatToBits(nvfp4::DivRnByReciprocal(a, d, y)), FloatToBits(nvfp4::DivRn(a, d)))
        << a << " / " << d;
  }
}

TEST(Nvfp4LayoutTest, KernelBlockScaleCodeEqualsTheDefinition) {
  std::mt19937 rng(17);
  std::uniform_int_distribution<uint32_t> bits(0, 0x7f7fffffu);
  for (float amax : {0.0f, 1e-38f, 1e-30f, 1e-6f, 0.02f, 1.0f, 6.0f, 448.0f, 6e4f, 3e38f}) {
    for (Layout layout : {Layout::kCompressedTensors, Layout::kModelOpt}) {
      const float g = nvfp4::GlobalScale(amax, layout);
      const float div = nvfp4::MulRn(nvfp4::kE2M1Max, g);
      const float div_reciprocal = nvfp4::DivRn(1.0f, div);
      for (int i = 0; i < 100000; ++i) {
        // Block amaxes anywhere, and near the tensor amax.
        float b = BitsToFloat(bits(rng));
        if (i % 2) b = std::fmin(amax * static_cast<float>(i % 1000) / 999.0f, 3.4e38f);
        ASSERT_EQ(nvfp4::BlockScaleCode(b, g, div, div_reciprocal, layout),
                  nvfp4::MakeBlockScale(b, g, layout).code)
            << LayoutName(layout) << " amax " << amax << " b " << b;
      }
    }
  }
}

TEST(Nvfp4LayoutTest, GlobalScalesFollowEachTool) {
  EXPECT_EQ(nvfp4::GlobalScale(6.0f, Layout::kCompressedTensors), 448.0f);
  EXPECT_EQ(nvfp4::GlobalScale(2688.0f, Layout::kModelOpt), 1.0f);
  EXPECT_EQ(nvfp4::GlobalScale(1.0f, Layout::kModelOpt), 1.0f / 2688.0f);
  // Zero and tiny tensors use kMinTensorAmax: finite, normal scales.
  EXPECT_EQ(nvfp4::GlobalScale(0.0f, Layout::kCompressedTensors), 2688.0f * 0x1p100f);
  EXPECT_EQ(nvfp4::GlobalScale(1e-35f, Layout::kModelOpt), 0x1p-100f / 2688.0f);
  // Block scales: 448 at the tensor amax, E4M3-rounded below it.
  const float g = 448.0f;  // compressed-tensors, amax 6
  EXPECT_EQ(nvfp4::MakeBlockScale(6.0f, g, Layout::kCompressedTensors).code, 0x7eu);
  EXPECT_EQ(nvfp4::MakeBlockScale(3.0f, g, Layout::kCompressedTensors).code, 0x76u);  // 224
  EXPECT_EQ(nvfp4::MakeBlockScale(3.0f, g, Layout::kCompressedTensors).divisor, 0.5f);
  EXPECT_EQ(nvfp4::MakeBlockScale(0.0f, g, Layout::kCompressedTensors).code, 0x20u);   // eps
  EXPECT_EQ(nvfp4::MakeBlockScale(60.0f, g, Layout::kCompressedTensors).code, 0x7eu);  // sat
  const float g2 = 1.0f;                                                      // ModelOpt, amax 2688
  EXPECT_EQ(nvfp4::MakeBlockScale(0.0f, g2, Layout::kModelOpt).code, 0x38u);  // 1.0
  EXPECT_EQ(nvfp4::MakeBlockScale(1e-6f, g2, Layout::kModelOpt).code, 0x01u);  // 2^-9
  EXPECT_EQ(nvfp4::MakeBlockScale(6.0f, g2, Layout::kModelOpt).code, 0x38u);
}

// ---------------------------------------------------------------------------
// The format

// One row of two blocks: block 0 has divisor 1 (every tie on the grid),
// block 1 divisor 0.5. tensor_amax 2688 gives G = G2 = 1, so both layouts
// store the same bytes.
const std::vector<float>& HandRow() {
  static const std::vector<float> row = {
      6,     -6,   0.25f, 0.75f,   1.25f,  1.75f,  2.5f,   3.5f,   5,       -0.1f,  0,
      -0.0f, 0.3f, 2.9f,  4.9f,    1.5f,   3,      0.125f, 0.375f, 0.625f,  0.875f, 1.25f,
      1.75f, 2.5f, -3,    -0.125f, 0.126f, 0.374f, 1,      2,      0.0625f, -2.6f};
  return row;
}

TEST(Nvfp4ReferenceTest, HandComputedBlocksInBothLayouts) {
  // Codes block 0: 7 15 0 2 2 4 4 6 6 8 0 0 1 5 6 3
  // Codes block 1: 7 0 2 2 4 4 6 6 15 8 1 1 4 6 0 15
  const std::vector<uint8_t> packed = {0xF7, 0x20, 0x42, 0x64, 0x86, 0x00, 0x51, 0x36,
                                       0x07, 0x22, 0x44, 0x66, 0x8F, 0x11, 0x64, 0xF0};
  for (Layout layout : {Layout::kCompressedTensors, Layout::kModelOpt}) {
    SCOPED_TRACE(LayoutName(layout));
    const FormatParams p = Params(layout, 2688.0f);
    const EncodedWeight e = Encode(p, Weight(DType::kF32, 1, 32, HandRow()));
    const Nvfp4PartNames n = Nvfp4Parts(layout);
    EXPECT_EQ(Bytes(e, n.packed), packed);
    EXPECT_EQ(Bytes(e, n.scale), (std::vector<uint8_t>{0x38, 0x30}));  // 1.0, 0.5
    EXPECT_EQ(Global(e, layout), 1.0f);
    const std::vector<float> want = {6, -6,   0,  1,     1,     2,     2, 4,    4,    -0.0f, 0,
                                     0, 0.5f, 3,  4,     1.5f,  3,     0, 0.5f, 0.5f, 1,     1,
                                     2, 2,    -3, -0.0f, 0.25f, 0.25f, 1, 2,    0,    -3};
    const std::vector<float> got = Decode(p, e, 1, 32);
    EXPECT_EQ(got, want);
  }
}

TEST(Nvfp4ReferenceTest, AllocatesEachToolsPartsInOrder) {
  const EncodedWeight ct =
      Nvfp4Format().Allocate(Params(Layout::kCompressedTensors, 1), 3, 64, DType::kBF16);
  ASSERT_EQ(ct.parts.size(), 3u);
  EXPECT_EQ(ct.parts[0].suffix, "weight_packed");
  EXPECT_EQ(ct.parts[0].tensor.dtype(), DType::kU8);
  EXPECT_EQ(ct.parts[0].tensor.shape(), (Shape{3, 32}));
  EXPECT_EQ(ct.parts[1].suffix, "weight_scale");
  EXPECT_EQ(ct.parts[1].tensor.dtype(), DType::kF8E4M3);
  EXPECT_EQ(ct.parts[1].tensor.shape(), (Shape{3, 4}));
  EXPECT_EQ(ct.parts[2].suffix, "weight_global_scale");
  EXPECT_EQ(ct.parts[2].tensor.dtype(), DType::kF32);
  EXPECT_EQ(ct.parts[2].tensor.shape(), (Shape{1}));
  const EncodedWeight mo = Nvfp4Format().Allocate(Params(Layout::kModelOpt, 1), 3, 64, DType::kF16);
  ASSERT_EQ(mo.parts.size(), 3u);
  EXPECT_EQ(mo.parts[0].suffix, "weight");
  EXPECT_EQ(mo.parts[1].suffix, "weight_scale");
  EXPECT_EQ(mo.parts[2].suffix, "weight_scale_2");
  EXPECT_EQ(mo.parts[2].tensor.shape(), Shape{});
  EXPECT_EQ(mo.parts[2].tensor.nbytes(), 4u);
  EXPECT_TRUE(Nvfp4Format().NeedsTensorAmax(Params(Layout::kModelOpt, -1)));
  EXPECT_EQ(*FindFormat("nvfp4"), &Nvfp4Format());
}

TEST(Nvfp4ReferenceTest, FusedTensorsShareTheGlobalScale) {
  // q (amax 3) and k (amax 6) of one fused group: tensor_amax 6 for both.
  std::vector<float> q(16, 1.0f), k(16, 2.0f);
  q[0] = 3;
  k[5] = -6;
  for (Layout layout : {Layout::kCompressedTensors, Layout::kModelOpt}) {
    SCOPED_TRACE(LayoutName(layout));
    const FormatParams shared = Params(layout, 6.0f);
    const EncodedWeight eq = Encode(shared, Weight(DType::kBF16, 1, 16, q));
    const EncodedWeight ek = Encode(shared, Weight(DType::kBF16, 1, 16, k));
    EXPECT_EQ(Global(eq, layout), Global(ek, layout));
    EXPECT_EQ(Global(eq, layout), nvfp4::GlobalScale(6.0f, layout));
    EXPECT_EQ(Bytes(eq, Nvfp4Parts(layout).scale), std::vector<uint8_t>{0x76});  // 224
    EXPECT_EQ(Bytes(ek, Nvfp4Parts(layout).scale), std::vector<uint8_t>{0x7e});  // 448
    // Alone, q would get its own global scale and the full block scale.
    const EncodedWeight alone = Encode(Params(layout, 3.0f), Weight(DType::kBF16, 1, 16, q));
    EXPECT_NE(Global(alone, layout), Global(eq, layout));
    EXPECT_EQ(Bytes(alone, Nvfp4Parts(layout).scale), std::vector<uint8_t>{0x7e});
  }
}

TEST(Nvfp4ReferenceTest, ZeroBlocksAndZeroTensorsDecodeToZeros) {
  const std::vector<float> zeros(2 * 32, 0.0f);
  for (Layout layout : {Layout::kCompressedTensors, Layout::kModelOpt}) {
    SCOPED_TRACE(LayoutName(layout));
    const FormatParams p = Params(layout, 0.0f);
    const EncodedWeight e = Encode(p, Weight(DType::kBF16, 2, 32, zeros));
    const Nvfp4PartNames n = Nvfp4Parts(layout);
    EXPECT_EQ(Bytes(e, n.packed), std::vector<uint8_t>(32, 0));
    // compressed-tensors: its FP8 eps 0.125; ModelOpt: 1.0.
    const uint8_t scale = layout == Layout::kCompressedTensors ? 0x20 : 0x38;
    EXPECT_EQ(Bytes(e, n.scale), std::vector<uint8_t>(4, scale));
    EXPECT_TRUE(std::isfinite(Global(e, layout)) && Global(e, layout) > 0);
    for (float v : Decode(p, e, 2, 32)) EXPECT_EQ(v, 0.0f);
  }
}

TEST(Nvfp4ReferenceTest, TinyBlocksFollowEachToolsScaleFloor) {
  // Block 0 sets amax 1; block 1 is 4e-7: its raw scale underflows E4M3.
  std::vector<float> x(32, 0.5f);
  x[0] = 1.0f;
  for (int j = 16; j < 32; ++j) x[j] = 4e-7f;
  // compressed-tensors: scale 0 -> eps 0.125, the block rounds to zeros.
  const FormatParams ct = Params(Layout::kCompressedTensors, 1.0f);
  const EncodedWeight ect = Encode(ct, Weight(DType::kF32, 1, 32, x));
  EXPECT_EQ(Bytes(ect, "weight_scale")[1], 0x20);
  EXPECT_EQ(Bytes(ect, "weight_packed")[8], 0x00);
  ExpectRoundTripWithinBound(ct, Weight(DType::kF32, 1, 32, x));
  // ModelOpt: clamped to 2^-9, the block keeps codes of 0.5.
  const FormatParams mo = Params(Layout::kModelOpt, 1.0f);
  const EncodedWeight emo = Encode(mo, Weight(DType::kF32, 1, 32, x));
  EXPECT_EQ(Bytes(emo, "weight_scale")[1], 0x01);
  EXPECT_EQ(Bytes(emo, "weight")[8], 0x11);
  ExpectRoundTripWithinBound(mo, Weight(DType::kF32, 1, 32, x));
}

TEST(Nvfp4ReferenceTest, TooSmallTensorAmaxSaturates) {
  std::vector<float> x(16, 1.0f);
  x[3] = -10.0f;
  for (Layout layout : {Layout::kCompressedTensors, Layout::kModelOpt}) {
    const EncodedWeight e = Encode(Params(layout, 1.0f), Weight(DType::kF32, 1, 16, x));
    EXPECT_EQ(Bytes(e, Nvfp4Parts(layout).scale), std::vector<uint8_t>{0x7e}) << LayoutName(layout);
    EXPECT_EQ(Bytes(e, Nvfp4Parts(layout).packed)[1] >> 4, 15) << LayoutName(layout);  // -6
  }
}

TEST(Nvfp4ReferenceTest, SourcesAgreeOnRepresentableValues) {
  std::vector<float> x = HandRow();
  for (float& v : x) v = Bf16ToFloat(FloatToBf16(v));  // exact in BF16 and F16 too
  for (Layout layout : {Layout::kCompressedTensors, Layout::kModelOpt}) {
    const FormatParams p = Params(layout, 6.0f);
    const EncodedWeight f32 = Encode(p, Weight(DType::kF32, 2, 16, x));
    for (DType dtype : {DType::kBF16, DType::kF16}) {
      const EncodedWeight e = Encode(p, Weight(dtype, 2, 16, x));
      for (size_t i = 0; i < e.parts.size(); ++i) {
        EXPECT_EQ(Bytes(e, e.parts[i].suffix.c_str()), Bytes(f32, f32.parts[i].suffix.c_str()))
            << LayoutName(layout) << " " << DTypeName(dtype) << " " << e.parts[i].suffix;
      }
    }
  }
}

TEST(Nvfp4ReferenceTest, RandomRoundTripsStayWithinBoundsOnAwkwardSizes) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> decade(-6.0f, 2.0f);
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 16}, {17, 48}, {255, 32}, {257, 80}}) {
      std::vector<float> x(static_cast<size_t>(rows * cols));
      for (int64_t r = 0; r < rows; ++r) {
        const float scale = std::pow(10.0f, decade(rng));
        for (int64_t c = 0; c < cols; ++c) x[r * cols + c] = scale * normal(rng);
      }
      const Tensor w = Weight(dtype, rows, cols, x);
      const float amax = AbsMaxRef(w.view());
      for (Layout layout : {Layout::kCompressedTensors, Layout::kModelOpt}) {
        SCOPED_TRACE(testing::Message() << DTypeName(dtype) << " " << rows << "x" << cols << " "
                                        << LayoutName(layout));
        ExpectRoundTripWithinBound(Params(layout, amax), w);
      }
    }
  }
}

TEST(Nvfp4ReferenceTest, ChunkedEncodingEqualsWholeAndChecksRanges) {
  std::vector<float> x(17 * 64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i)) * 3.0f;
  const Tensor w = Weight(DType::kBF16, 17, 64, x);
  for (Layout layout : {Layout::kCompressedTensors, Layout::kModelOpt}) {
    const FormatParams p = Params(layout, AbsMaxRef(w.view()));
    const EncodedWeight whole = Encode(p, w);
    EncodedWeight parts = Nvfp4Format().Allocate(p, 17, 64, DType::kBF16);
    ASSERT_TRUE(Nvfp4Format().EncodeRowsRef(p, w.view(), 5, 17, &parts).ok());
    ASSERT_TRUE(Nvfp4Format().EncodeRowsRef(p, w.view(), 0, 5, &parts).ok());
    for (size_t i = 0; i < whole.parts.size(); ++i) {
      EXPECT_EQ(Bytes(parts, whole.parts[i].suffix.c_str()),
                Bytes(whole, whole.parts[i].suffix.c_str()));
    }
    EXPECT_EQ(Nvfp4Format().EncodeRowsRef(p, w.view(), 5, 18, &parts).code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(Nvfp4ReferenceTest, RejectsNonFiniteValuesNamingRowAndColumn) {
  std::vector<float> x(3 * 32, 0.5f);
  x[1 * 32 + 20] = NAN;
  x[2 * 32 + 1] = -INFINITY;
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    const absl::Status s =
        EncodeRef(Nvfp4Format(), Params(Layout::kModelOpt, 1.0f), Weight(dtype, 3, 32, x).view())
            .status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(), "non-finite value at row 1, column 20") << DTypeName(dtype);
  }
}

TEST(Nvfp4ReferenceTest, CheckRejectsBadParameters) {
  const WeightFormat& f = Nvfp4Format();
  FormatParams p = Params(Layout::kCompressedTensors, -1.0f);  // unset passes Check
  EXPECT_TRUE(f.Check(p, 4, 32).ok());
  EXPECT_EQ(f.Check(p, 4, 24).code(), absl::StatusCode::kInvalidArgument);  // cols % 16
  EXPECT_EQ(f.Check(p, 0, 32).code(), absl::StatusCode::kInvalidArgument);
  FormatParams bad = p;
  bad.bits = 8;
  EXPECT_EQ(f.Check(bad, 4, 32).code(), absl::StatusCode::kInvalidArgument);
  bad = p;
  bad.group_size = 32;
  EXPECT_EQ(f.Check(bad, 4, 32).code(), absl::StatusCode::kInvalidArgument);
  bad = p;
  bad.symmetric = false;
  EXPECT_EQ(f.Check(bad, 4, 32).code(), absl::StatusCode::kInvalidArgument);
  bad = p;
  bad.extra["layout"] = "gguf";
  EXPECT_EQ(f.Check(bad, 4, 32).code(), absl::StatusCode::kInvalidArgument);
  bad = p;
  bad.extra["other"] = "x";
  EXPECT_EQ(f.Check(bad, 4, 32).code(), absl::StatusCode::kInvalidArgument);
  bad = p;
  bad.tensor_amax = NAN;
  EXPECT_EQ(f.Check(bad, 4, 32).code(), absl::StatusCode::kInvalidArgument);
  // Infinite (an Inf in a fused group) passes Check; encoding names it.
  bad.tensor_amax = INFINITY;
  EXPECT_TRUE(f.Check(bad, 4, 32).ok());
  std::vector<float> x(2 * 32, 0.5f);
  x[1 * 32 + 3] = INFINITY;
  EXPECT_EQ(EncodeRef(f, bad, Weight(DType::kF32, 2, 32, x).view()).status().message(),
            "non-finite value at row 1, column 3");
  EXPECT_EQ(EncodeRef(f, bad, Weight(DType::kF32, 2, 32, std::vector<float>(64, 0.5f)).view())
                .status()
                .message(),
            "tensor_amax inf is not finite: a tensor sharing this one's scale (fused q/k/v or "
            "gate/up) holds a non-finite value");
  bad.extra.clear();  // no layout: compressed-tensors
  bad.tensor_amax = 1.0f;
  EXPECT_EQ(*Nvfp4LayoutOf(bad), Layout::kCompressedTensors);
  // Encoding needs tensor_amax.
  const Tensor w = Weight(DType::kBF16, 1, 16, std::vector<float>(16, 1.0f));
  EXPECT_EQ(EncodeRef(f, p, w.view()).status().code(), absl::StatusCode::kInvalidArgument);
  // Decoding checks its parts.
  EncodedWeight e = Encode(Params(Layout::kModelOpt, 1.0f), w);
  EXPECT_EQ(f.DecodeRef(Params(Layout::kCompressedTensors, 1.0f), e, 1, 16).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.DecodeRef(Params(Layout::kModelOpt, 1.0f), e, 2, 16).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// The methods

TEST(Nvfp4MethodTest, ResolvesBothLayouts) {
  v1::QuantizeSpec spec;
  spec.set_method("nvfp4");
  absl::StatusOr<const QuantMethod*> m = FindMethodForSpec(spec);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(*m, &Nvfp4Method());
  absl::StatusOr<MethodPlan> plan = (*m)->Resolve(WithoutLayout(spec));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->format, &Nvfp4Format());
  EXPECT_EQ(plan->params.bits, 4);
  EXPECT_EQ(plan->params.group_size, 16);
  EXPECT_EQ(plan->params.extra.at("layout"), "compressed-tensors");
  EXPECT_TRUE(Nvfp4Format().Check(plan->params, 8, 64).ok());
  EXPECT_EQ(Nvfp4Method().Label(plan->params), "nvfp4-g16");

  (*spec.mutable_options())["layout"] = "modelopt";
  m = FindMethodForSpec(spec);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(*m, &Nvfp4ModelOptMethod());
  plan = (*m)->Resolve(WithoutLayout(spec));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->params.extra.at("layout"), "modelopt");
  (*spec.mutable_options())["layout"] = "compressed-tensors";
  EXPECT_EQ(*FindMethodForSpec(spec), &Nvfp4Method());
  (*spec.mutable_options())["layout"] = "gguf";
  EXPECT_EQ(FindMethodForSpec(spec).status().code(), absl::StatusCode::kInvalidArgument);

  v1::QuantizeSpec bad;
  bad.set_group_size(32);
  EXPECT_EQ(Nvfp4Method().Resolve(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad.set_group_size(16);
  bad.set_symmetric(false);
  EXPECT_EQ(Nvfp4Method().Resolve(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad.clear_symmetric();
  (*bad.mutable_options())["x"] = "y";
  EXPECT_EQ(Nvfp4ModelOptMethod().Resolve(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Nvfp4MethodTest, WritesTheCompressedTensorsNvfp4A16Config) {
  const FormatParams p = Params(Layout::kCompressedTensors, 1.0f);
  const nlohmann::json cfg = Nvfp4Method().QuantizationConfig(p, {"lm_head"});
  EXPECT_EQ(cfg["quant_method"], "compressed-tensors");
  EXPECT_EQ(cfg["format"], "nvfp4-pack-quantized");
  EXPECT_EQ(cfg["quantization_status"], "compressed");
  EXPECT_EQ(cfg["ignore"], nlohmann::json::array({"lm_head"}));
  const nlohmann::json& g = cfg["config_groups"]["group_0"];
  EXPECT_EQ(g["format"], "nvfp4-pack-quantized");
  EXPECT_TRUE(g["input_activations"].is_null());
  EXPECT_EQ(g["targets"], nlohmann::json::array({"Linear"}));
  const nlohmann::json& w = g["weights"];
  EXPECT_EQ(w["num_bits"], 4);
  EXPECT_EQ(w["type"], "float");
  EXPECT_EQ(w["strategy"], "tensor_group");
  EXPECT_EQ(w["group_size"], 16);
  EXPECT_EQ(w["symmetric"], true);
  EXPECT_EQ(w["dynamic"], false);
  EXPECT_FALSE(w.contains("scale_dtype"));
  EXPECT_FALSE(w.contains("zp_dtype"));
  EXPECT_TRUE(Nvfp4Method().ExtraFiles(p, {}).empty());
  EXPECT_EQ(Nvfp4Method().output_format(), "compressed-tensors/nvfp4-pack-quantized");
}

TEST(Nvfp4MethodTest, WritesModelOptConfigAndHfQuantConfig) {
  const FormatParams p = Params(Layout::kModelOpt, 1.0f);
  const std::vector<std::string> ignore = {"lm_head", "model.layers.0.mlp.gate"};
  const auto files = Nvfp4ModelOptMethod().ExtraFiles(p, ignore);
  ASSERT_EQ(files.count("hf_quant_config.json"), 1u);
  const nlohmann::json hf = nlohmann::json::parse(files.at("hf_quant_config.json"));
  EXPECT_EQ(hf["producer"]["name"], "modelopt");
  const nlohmann::json& q = hf["quantization"];
  EXPECT_EQ(q["quant_algo"], "W4A16_NVFP4");
  EXPECT_EQ(q["group_size"], 16);
  ASSERT_TRUE(q.contains("kv_cache_quant_algo"));  // vLLM requires the key
  EXPECT_TRUE(q["kv_cache_quant_algo"].is_null());
  EXPECT_EQ(q["exclude_modules"], nlohmann::json(ignore));
  const nlohmann::json cfg = Nvfp4ModelOptMethod().QuantizationConfig(p, ignore);
  EXPECT_EQ(cfg["quant_method"], "modelopt");
  EXPECT_EQ(cfg["quant_algo"], "W4A16_NVFP4");
  EXPECT_EQ(cfg["ignore"], nlohmann::json(ignore));
  EXPECT_EQ(cfg["config_groups"]["group_0"]["weights"]["type"], "float");
  EXPECT_FALSE(cfg["config_groups"]["group_0"].contains("input_activations"));
}

TEST(Nvfp4MethodTest, NativeOnlyOnBlackwell) {
  v1::DeviceInfo d;
  d.set_type("cuda");
  std::string note;
  for (const char* cc : {"10.0", "10.3", "12.0"}) {
    d.set_compute_capability(cc);
    EXPECT_EQ(Nvfp4Method().SupportOn(d, &note), v1::SUPPORT_NATIVE) << cc;
  }
  for (const char* cc : {"9.0", "8.9", "", "x"}) {
    d.set_compute_capability(cc);
    note.clear();
    EXPECT_EQ(Nvfp4ModelOptMethod().SupportOn(d, &note), v1::SUPPORT_EMULATED) << cc;
    EXPECT_EQ(note, "FP4 weights dequantized for BF16 matmul");
  }
  v1::DeviceInfo cpu;
  cpu.set_type("cpu");
  EXPECT_EQ(Nvfp4Method().SupportOn(cpu, &note), v1::SUPPORT_EMULATED);
}

}  // namespace
}  // namespace quantd
