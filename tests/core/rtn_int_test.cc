// The rtn_int reference (core/formats/rtn_int.h) and the int4/int8 methods.
#include "core/formats/rtn_int.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/quant/compressed_tensors.h"
#include "core/quant/rtn_int_method.h"
#include "core/tensor/float_bits.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

// Worst |x - decoded| of a group, in units of its stored scale S: half a
// code step, plus the saturation of the extreme that lands on +7.5 (+127.5)
// codes when S was rounded down by up to the scale dtype's unit roundoff u:
// 0.5 + (qmax - qmin) * u.
constexpr double kUnitRoundoffBf16 = 1.0 / 256;
constexpr double kUnitRoundoffF16 = 1.0 / 2048;
constexpr double kUnitRoundoffF32 = 1.0 / 16777216;
constexpr double kInt4RoundTripMaxErrorBf16 = 0.5 + 15 * kUnitRoundoffBf16;
constexpr double kInt4RoundTripMaxErrorF16 = 0.5 + 15 * kUnitRoundoffF16;
constexpr double kInt4RoundTripMaxErrorF32 = 0.5 + 15 * kUnitRoundoffF32;
constexpr double kInt8RoundTripMaxErrorBf16 = 0.5 + 255 * kUnitRoundoffBf16;
constexpr double kInt8RoundTripMaxErrorF16 = 0.5 + 255 * kUnitRoundoffF16;
constexpr double kInt8RoundTripMaxErrorF32 = 0.5 + 255 * kUnitRoundoffF32;
// Float rounding of x / S and of (q - zp) * S, relative to S.
constexpr double kRoundingSlack = 1e-5;

double MaxErrorInScales(int bits, DType scale) {
  switch (scale) {
    case DType::kBF16:
      return bits == 4 ? kInt4RoundTripMaxErrorBf16 : kInt8RoundTripMaxErrorBf16;
    case DType::kF16:
      return bits == 4 ? kInt4RoundTripMaxErrorF16 : kInt8RoundTripMaxErrorF16;
    default:
      return bits == 4 ? kInt4RoundTripMaxErrorF32 : kInt8RoundTripMaxErrorF32;
  }
}

FormatParams Params(int bits, int64_t group, bool symmetric, DType scale) {
  FormatParams p;
  p.bits = bits;
  p.group_size = group;
  p.symmetric = symmetric;
  p.scale_dtype = scale;
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
  absl::StatusOr<EncodedWeight> e = EncodeRef(RtnIntFormat(), p, w.view());
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *std::move(e) : EncodedWeight{};
}

std::vector<uint32_t> Words(const EncodedWeight& e, const char* suffix) {
  const Tensor* t = e.Find(suffix);
  if (t == nullptr) return {};
  std::vector<uint32_t> out(t->nbytes() / 4);
  std::memcpy(out.data(), t->data(), t->nbytes());
  return out;
}

std::vector<uint16_t> Halves(const EncodedWeight& e, const char* suffix) {
  const Tensor* t = e.Find(suffix);
  std::vector<uint16_t> out(t->nbytes() / 2);
  std::memcpy(out.data(), t->data(), t->nbytes());
  return out;
}

std::vector<float> Decode(const FormatParams& p, const EncodedWeight& e, int64_t rows,
                          int64_t cols) {
  absl::StatusOr<std::vector<float>> d = RtnIntFormat().DecodeRef(p, e, rows, cols);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? *d : std::vector<float>{};
}

// Expects every element within the round-trip bound of its group's scale,
// and every scale finite. With `allow_overflow`, decoded values may be
// infinite: -8 * S overflows float32 when absmax is within 7% of FLT_MAX.
void ExpectRoundTripWithinBound(const FormatParams& p, const Tensor& w,
                                bool allow_overflow = false) {
  const int64_t rows = w.shape()[0], cols = w.shape()[1];
  const EncodedWeight e = Encode(p, w);
  const std::vector<float> d = Decode(p, e, rows, cols);
  ASSERT_EQ(d.size(), static_cast<size_t>(rows * cols));
  const TensorView scales = e.Find(kScaleSuffix)->view();
  const int64_t g = RtnGroupSize(p, cols);
  const double bound = MaxErrorInScales(p.bits, p.scale_dtype) + kRoundingSlack;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const double x = LoadAsFloat(w.view(), r * cols + c);
      const double s = LoadAsFloat(scales, r * (cols / g) + c / g);
      ASSERT_TRUE(std::isfinite(s));
      if (allow_overflow && !std::isfinite(d[r * cols + c])) continue;
      ASSERT_TRUE(std::isfinite(d[r * cols + c]));
      ASSERT_LE(std::fabs(x - d[r * cols + c]), s * bound + 1e-45)
          << "row " << r << " col " << c << " x " << x << " scale " << s;
    }
  }
}

TEST(RtnIntReferenceTest, Int4SymmetricHandComputed) {
  // absmax 7.5 -> S = 1: codes rne(x) clamped to [-8, 7]; halves go to even.
  const std::vector<float> x = {7.5f, -7.5f, 2.5f, -2.5f, 0.5f, -0.5f, 1.49f, 3.0f};
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    const FormatParams p = Params(4, 0, true, dtype);
    const EncodedWeight e = Encode(p, Weight(dtype, 1, 8, x));
    // codes [7, -8, 2, -2, 0, 0, 1, 3] -> unsigned [15, 0, 10, 6, 8, 8, 9, 11]
    EXPECT_EQ(Words(e, kPackedSuffix), std::vector<uint32_t>{0xB9886A0Fu}) << DTypeName(dtype);
    const Tensor* s = e.Find(kScaleSuffix);
    EXPECT_EQ(LoadAsFloat(s->view(), 0), 1.0f);
    EXPECT_EQ(e.Find(kZeroPointSuffix), nullptr);
    EXPECT_EQ(e.Find(kShapeSuffix)->as<int64_t>()[0], 1);
    EXPECT_EQ(e.Find(kShapeSuffix)->as<int64_t>()[1], 8);
  }
}

TEST(RtnIntReferenceTest, Int4GroupsHaveTheirOwnScales) {
  std::vector<float> x = {7.5f, -7.5f, 2.5f, -2.5f, 0.5f, -0.5f, 1.49f, 3.0f};
  for (int i = 0; i < 8; ++i) x.push_back(2 * x[i]);  // second group: S = 2
  const FormatParams p = Params(4, 8, true, DType::kBF16);
  const EncodedWeight e = Encode(p, Weight(DType::kF32, 1, 16, x));
  EXPECT_EQ(Words(e, kPackedSuffix), (std::vector<uint32_t>{0xB9886A0Fu, 0xB9886A0Fu}));
  EXPECT_EQ(Halves(e, kScaleSuffix), (std::vector<uint16_t>{0x3f80, 0x4000}));
}

TEST(RtnIntReferenceTest, Int8SymmetricHandComputed) {
  // absmax 127.5 -> S = 1: codes [127 (saturated), -128, 2, 2] -> +128.
  const FormatParams p = Params(8, 0, true, DType::kF32);
  const EncodedWeight e = Encode(p, Weight(DType::kF32, 1, 4, {127.5f, -127.5f, 1.5f, 2.5f}));
  EXPECT_EQ(Words(e, kPackedSuffix), std::vector<uint32_t>{0x828200FFu});
  EXPECT_EQ(Words(e, kScaleSuffix), std::vector<uint32_t>{0x3f800000u});
}

TEST(RtnIntReferenceTest, PackingOrderMatchesPublishedExamples) {
  // compressed-tensors: q = [1..7, -8] packs to 0x0FEDCBA9.
  const FormatParams p4 = Params(4, 8, true, DType::kF32);
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, -7.5f};  // absmax 7.5 -> S = 1
  const EncodedWeight e = Encode(p4, Weight(DType::kF32, 1, 8, x));
  EXPECT_EQ(Words(e, kPackedSuffix), std::vector<uint32_t>{0x0FEDCBA9u});
  EXPECT_EQ(Decode(p4, e, 1, 8), (std::vector<float>{1, 2, 3, 4, 5, 6, 7, -8}));
  // int8: [1, 2] -> [129, 130] -> 33409 (0x8281); raw 0 bytes decode to -128.
  const FormatParams p8 = Params(8, 0, true, DType::kF32);
  EncodedWeight e8 = RtnIntFormat().Allocate(p8, 1, 4, DType::kF32);
  *e8.Find(kPackedSuffix)->as<uint32_t>() = 33409u;
  *e8.Find(kScaleSuffix)->as<float>() = 1.0f;
  e8.Find(kShapeSuffix)->as<int64_t>()[0] = 1;
  e8.Find(kShapeSuffix)->as<int64_t>()[1] = 4;
  EXPECT_EQ(Decode(p8, e8, 1, 4), (std::vector<float>{1, 2, -128, -128}));
}

TEST(RtnIntReferenceTest, AsymmetricZeroPointsPackAlongRows) {
  // Row r: x = (c - r) / 2 for c in [0, 16): mn = -r/2, mx = (15-r)/2,
  // S = 0.5, zp = r - 8, codes c - 8 (unsigned c) in every row.
  const int64_t rows = 9, cols = 16;
  std::vector<float> x;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) x.push_back(0.5f * static_cast<float>(c - r));
  }
  const FormatParams p = Params(4, 0, false, DType::kF32);
  EXPECT_EQ(RtnIntFormat().RowGranularity(p), 8);
  const Tensor w = Weight(DType::kF32, rows, cols, x);
  const EncodedWeight e = Encode(p, w);
  std::vector<uint32_t> packed;
  for (int64_t r = 0; r < rows; ++r) {
    packed.push_back(0x76543210u);
    packed.push_back(0xFEDCBA98u);
  }
  EXPECT_EQ(Words(e, kPackedSuffix), packed);
  // Unsigned zero points 0..7 in word 0 (row r at bits 4r), 8 in word 1.
  EXPECT_EQ(Words(e, kZeroPointSuffix), (std::vector<uint32_t>{0x76543210u, 0x00000008u}));
  EXPECT_EQ(e.Find(kZeroPointSuffix)->shape(), (Shape{2, 1}));
  EXPECT_EQ(Words(e, kScaleSuffix), std::vector<uint32_t>(rows, 0x3f000000u));
  EXPECT_EQ(Decode(p, e, rows, cols), x);  // exact
}

TEST(RtnIntReferenceTest, AllZeroRowsDecodeToExactZeros) {
  const std::vector<float> zeros(2 * 16, 0.0f);
  struct Case {
    int bits;
    bool sym;
    uint32_t word;
  };
  for (Case c : {Case{4, true, 0x88888888u}, Case{4, false, 0u}, Case{8, true, 0x80808080u}}) {
    const FormatParams p = Params(c.bits, 0, c.sym, DType::kBF16);
    const EncodedWeight e = Encode(p, Weight(DType::kBF16, 2, 16, zeros));
    for (uint32_t w : Words(e, kPackedSuffix)) EXPECT_EQ(w, c.word);
    EXPECT_EQ(Halves(e, kScaleSuffix), (std::vector<uint16_t>{0x3f80, 0x3f80}));  // 1.0
    if (!c.sym) {
      EXPECT_EQ(Words(e, kZeroPointSuffix), std::vector<uint32_t>{0u});  // zp -8
    }
    for (float v : Decode(p, e, 2, 16)) EXPECT_EQ(v, 0.0f);
  }
}

TEST(RtnIntReferenceTest, MaxRowsGetFiniteScales) {
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    const float mx = dtype == DType::kF16    ? 65504.0f
                     : dtype == DType::kBF16 ? Bf16ToFloat(0x7f7f)
                                             : BitsToFloat(0x7f7fffffu);
    std::vector<float> x;
    for (int c = 0; c < 32; ++c) x.push_back(c % 2 ? -mx : mx);
    for (int c = 0; c < 32; ++c) x.push_back(c % 3 ? mx : 0.25f);
    const Tensor w = Weight(dtype, 2, 32, x);
    for (auto [bits, sym] : {std::pair{4, true}, std::pair{4, false}, std::pair{8, true}}) {
      SCOPED_TRACE(testing::Message() << DTypeName(dtype) << " int" << bits << " " << sym);
      ExpectRoundTripWithinBound(Params(bits, 0, sym, dtype), w, dtype != DType::kF16);
    }
  }
}

TEST(RtnIntReferenceTest, SubnormalGroupsUseTheSmallestNormalScale) {
  // F32 values around 1e-40 with BF16 scales: S = 2^-126, codes 0.
  std::vector<float> tiny(8);
  for (int i = 0; i < 8; ++i) tiny[i] = 1e-40f * static_cast<float>(i - 3);
  const FormatParams pb = Params(4, 0, true, DType::kBF16);
  const EncodedWeight eb = Encode(pb, Weight(DType::kF32, 1, 8, tiny));
  EXPECT_EQ(Halves(eb, kScaleSuffix), std::vector<uint16_t>{0x0080});
  EXPECT_EQ(Words(eb, kPackedSuffix), std::vector<uint32_t>{0x88888888u});
  // F16 subnormal weights with F16 scales: S = 2^-14.
  Tensor wh = Tensor::Allocate(DType::kF16, {1, 8});
  for (int i = 0; i < 8; ++i) wh.as<uint16_t>()[i] = static_cast<uint16_t>(i == 3 ? 0x8001 : i);
  const FormatParams ph = Params(4, 0, true, DType::kF16);
  const EncodedWeight eh = Encode(ph, wh);
  EXPECT_EQ(Halves(eh, kScaleSuffix), std::vector<uint16_t>{0x0400});
  ExpectRoundTripWithinBound(ph, wh);
  // A scale that underflows float32 itself (|x| = 2^-149) falls back to 1.
  std::vector<float> denorm(8, BitsToFloat(1));
  const FormatParams pf = Params(4, 0, true, DType::kF32);
  const EncodedWeight ef = Encode(pf, Weight(DType::kF32, 1, 8, denorm));
  EXPECT_EQ(Words(ef, kScaleSuffix), std::vector<uint32_t>{0x3f800000u});
  ExpectRoundTripWithinBound(pf, Weight(DType::kF32, 1, 8, denorm));
}

TEST(RtnIntReferenceTest, RandomRoundTripsStayWithinBounds) {
  std::mt19937 rng(42);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> decade(-6.0f, 3.0f);
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    const int64_t rows = 24, cols = 256;
    std::vector<float> x;
    for (int64_t r = 0; r < rows; ++r) {
      const float scale = std::pow(10.0f, dtype == DType::kF16 ? decade(rng) / 2 : decade(rng));
      for (int64_t c = 0; c < cols; ++c) x.push_back(scale * normal(rng));
    }
    const Tensor w = Weight(dtype, rows, cols, x);
    for (int64_t g : {32, 64, 128, 0}) {
      for (auto [bits, sym] : {std::pair{4, true}, std::pair{4, false}, std::pair{8, true}}) {
        SCOPED_TRACE(testing::Message() << DTypeName(dtype) << " int" << bits << " g" << g);
        ExpectRoundTripWithinBound(Params(bits, g, sym, dtype), w);
      }
    }
  }
}

TEST(RtnIntReferenceTest, SourcesAgreeOnEveryFiniteHalfValue) {
  // Every finite F16 (BF16) bit pattern, encoded from F16 (BF16) and from the
  // same values as F32, gives the same bytes.
  for (DType dtype : {DType::kF16, DType::kBF16}) {
    const uint16_t exp_mask = dtype == DType::kF16 ? 0x7c00 : 0x7f80;
    std::vector<uint16_t> bits;
    for (uint32_t h = 0; h < 65536; ++h) {
      if ((h & exp_mask) != exp_mask) bits.push_back(static_cast<uint16_t>(h));
    }
    const int64_t cols = 128, rows = static_cast<int64_t>(bits.size()) / cols;
    ASSERT_EQ(rows * cols, static_cast<int64_t>(bits.size()));
    Tensor half = Tensor::Allocate(dtype, {rows, cols});
    std::memcpy(half.data(), bits.data(), half.nbytes());
    Tensor f32 = Tensor::Allocate(DType::kF32, {rows, cols});
    for (size_t i = 0; i < bits.size(); ++i) {
      f32.as<float>()[i] = dtype == DType::kF16 ? F16ToFloat(bits[i]) : Bf16ToFloat(bits[i]);
    }
    for (auto [bits_, sym] : {std::pair{4, true}, std::pair{4, false}, std::pair{8, true}}) {
      const FormatParams p = Params(bits_, 32, sym, dtype);
      const EncodedWeight a = Encode(p, half);
      const EncodedWeight b = Encode(p, f32);
      ASSERT_EQ(a.parts.size(), b.parts.size());
      for (size_t i = 0; i < a.parts.size(); ++i) {
        EXPECT_EQ(0, std::memcmp(a.parts[i].tensor.data(), b.parts[i].tensor.data(),
                                 a.parts[i].tensor.nbytes()))
            << DTypeName(dtype) << " " << a.parts[i].suffix;
      }
    }
  }
}

TEST(RtnIntReferenceTest, VectorisedAndScalarLoopsAgree) {
  // Ties at k + 1/2 codes, the saturating extremes, values far outside the
  // code range (the +-1024 clamp), signed zeros and random values, with
  // several scales and zero points.
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int bits : {4, 8}) {
    for (float scale : {1.0f, 0.1f, 3.0e-5f, 7.0e20f}) {
      for (int zp : {0, -8, 5, bits == 8 ? -128 : 7}) {
        std::vector<float> x;
        for (int k = -140; k <= 140; ++k) x.push_back((static_cast<float>(k) + 0.5f) * scale);
        for (float v : {0.0f, -0.0f, 7.5f, -7.5f, 127.5f, -127.5f, 1e30f, -1e30f, 2000.0f}) {
          x.push_back(v * scale);
        }
        for (int i = 0; i < 200; ++i) x.push_back(normal(rng) * scale);
        x.push_back(3.0e38f);
        while (x.size() % 8 != 0) x.push_back(scale);
        const int64_t n = static_cast<int64_t>(x.size());
        std::vector<uint32_t> vec(n * bits / 32), scalar(n * bits / 32);
        RtnPackGroupForTest(true, bits, x.data(), n, scale, zp, vec.data());
        RtnPackGroupForTest(false, bits, x.data(), n, scale, zp, scalar.data());
        EXPECT_EQ(vec, scalar) << "int" << bits << " scale " << scale << " zp " << zp;
      }
    }
  }
}

TEST(RtnIntReferenceTest, KernelCodeFormulationEqualsTheDefinition) {
  // rtn::CodeOfQuotient (the CUDA kernel's form) against rtn::QuantizeValue.
  std::mt19937 rng(6);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  for (int bits : {4, 8}) {
    const float qmin = static_cast<float>(rtn::QMin(bits));
    const float qmax = static_cast<float>(rtn::QMax(bits));
    for (float scale : {1.0f, 0.37f, 6.1e-5f, 3.3e38f}) {
      for (int zp : {0, rtn::QMin(bits), rtn::QMax(bits), 3}) {
        const rtn::CodeParams cp = rtn::MakeCodeParams(zp, bits);
        std::vector<float> x = {0.0f, -0.0f, 1e30f, -1e30f, 3.4e38f, -3.4e38f, 1e-45f};
        for (int k = -300; k <= 300; ++k) x.push_back((static_cast<float>(k) + 0.5f) * scale);
        for (int i = 0; i < 500; ++i) x.push_back(normal(rng) * scale);
        for (float v : x) {
          const uint32_t want = static_cast<uint32_t>(
              rtn::QuantizeValue(v, scale, static_cast<float>(zp), qmin, qmax) +
              rtn::CodeOffset(bits));
          ASSERT_EQ(rtn::CodeOfQuotient(rtn::DivRn(v, scale), cp), want) << v << " " << scale;
        }
        for (float v : {INFINITY, -INFINITY}) {  // x / S overflowing
          ASSERT_EQ(rtn::CodeOfQuotient(v, cp),
                    static_cast<uint32_t>(
                        rtn::QuantizeValue(v, 1.0f, static_cast<float>(zp), qmin, qmax) +
                        rtn::CodeOffset(bits)));
        }
      }
    }
  }
}

TEST(RtnIntReferenceTest, OddGroupSizesUseTheScalarLoopConsistently) {
  // group 12 is not a multiple of 8: the scalar loop; compare with the
  // definition element by element.
  std::mt19937 rng(8);
  std::normal_distribution<float> normal;
  std::vector<float> x(5 * 24);
  for (float& v : x) v = normal(rng);
  const FormatParams p = Params(8, 12, true, DType::kF32);
  const EncodedWeight e = Encode(p, Weight(DType::kF32, 5, 24, x));
  const float* scales = e.Find(kScaleSuffix)->as<float>();
  const uint8_t* codes = e.Find(kPackedSuffix)->data();
  for (int64_t i = 0; i < 5 * 24; ++i) {
    const int q = rtn::QuantizeValue(x[i], scales[i / 12], 0.0f, -128.0f, 127.0f);
    EXPECT_EQ(codes[i], q + 128) << i;
  }
}

TEST(RtnIntReferenceTest, RejectsNonFiniteValuesNamingRowAndColumn) {
  const int64_t rows = 8, cols = 64;
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (const uint32_t kind : {0u, 1u, 2u}) {  // NaN, +Inf, -Inf
      Tensor w = Weight(dtype, rows, cols, std::vector<float>(rows * cols, 0.5f));
      const float bad = kind == 0 ? NAN : kind == 1 ? INFINITY : -INFINITY;
      Store(w, 5 * cols + 37, bad);
      Store(w, 6 * cols + 1, NAN);
      for (bool sym : {true, false}) {
        absl::StatusOr<EncodedWeight> e =
            EncodeRef(RtnIntFormat(), Params(4, 32, sym, dtype), w.view());
        EXPECT_EQ(e.status(), absl::InvalidArgumentError("non-finite value at row 5, column 37"));
      }
    }
  }
}

TEST(RtnIntReferenceTest, CheckRejectsBadParameters) {
  const WeightFormat& f = RtnIntFormat();
  EXPECT_EQ(f.name(), "rtn_int");
  EXPECT_TRUE(f.Check(Params(4, 128, true, DType::kBF16), 4096, 14336).ok());
  EXPECT_TRUE(f.Check(Params(4, 128, false, DType::kF16), 4096, 14336).ok());
  EXPECT_TRUE(f.Check(Params(8, 0, true, DType::kF32), 1, 4).ok());
  EXPECT_TRUE(f.Check(Params(8, 64, true, DType::kF32), 3, 128).ok());
  auto code = [&](const FormatParams& p, int64_t r, int64_t c) { return f.Check(p, r, c).code(); };
  const auto kBad = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code(Params(3, 0, true, DType::kBF16), 8, 8), kBad);
  EXPECT_EQ(code(Params(16, 0, true, DType::kBF16), 8, 8), kBad);
  EXPECT_EQ(code(Params(8, 0, false, DType::kBF16), 8, 8), kBad);  // asymmetric int8
  EXPECT_EQ(code(Params(4, 0, true, DType::kBF16), 8, 12), kBad);  // 12 % 8
  EXPECT_EQ(code(Params(8, 0, true, DType::kBF16), 8, 6), kBad);   // 6 % 4
  EXPECT_EQ(code(Params(4, 48, true, DType::kBF16), 8, 64), kBad);
  EXPECT_EQ(code(Params(4, -1, true, DType::kBF16), 8, 64), kBad);
  EXPECT_EQ(code(Params(4, 0, true, DType::kI32), 8, 64), kBad);
  EXPECT_EQ(code(Params(4, 0, true, DType::kBF16), 0, 64), kBad);
  EXPECT_EQ(code(Params(4, 0, true, DType::kBF16), 8, 0), kBad);
  EXPECT_EQ(code(Params(4, 0, true, DType::kBF16), int64_t{1} << 40, int64_t{1} << 40), kBad);
  FormatParams extra = Params(4, 0, true, DType::kBF16);
  extra.extra["foo"] = "1";
  EXPECT_EQ(code(extra, 8, 8), kBad);
  EXPECT_EQ(f.Check(Params(4, 48, true, DType::kBF16), 8, 64).message(),
            "group_size 48 does not divide cols 64");
  // Allocate never crashes on parameters Check rejects.
  EXPECT_TRUE(f.Allocate(Params(0, 0, true, DType::kBF16), 8, 8, DType::kBF16).parts.empty());
}

TEST(RtnIntReferenceTest, AllocatesThePublishedShapes) {
  const WeightFormat& f = RtnIntFormat();
  const EncodedWeight sym =
      f.Allocate(Params(4, 128, true, DType::kBF16), 4096, 14336, DType::kBF16);
  ASSERT_EQ(sym.parts.size(), 3u);
  EXPECT_EQ(sym.Find(kPackedSuffix)->shape(), (Shape{4096, 1792}));
  EXPECT_EQ(sym.Find(kPackedSuffix)->dtype(), DType::kI32);
  EXPECT_EQ(sym.Find(kScaleSuffix)->shape(), (Shape{4096, 112}));
  EXPECT_EQ(sym.Find(kScaleSuffix)->dtype(), DType::kBF16);
  EXPECT_EQ(sym.Find(kShapeSuffix)->shape(), (Shape{2}));
  EXPECT_EQ(sym.Find(kShapeSuffix)->dtype(), DType::kI64);
  const EncodedWeight asym = f.Allocate(Params(4, 0, false, DType::kF16), 17, 64, DType::kF16);
  ASSERT_EQ(asym.parts.size(), 4u);
  EXPECT_EQ(asym.Find(kScaleSuffix)->shape(), (Shape{17, 1}));
  EXPECT_EQ(asym.Find(kZeroPointSuffix)->shape(), (Shape{3, 1}));
  EXPECT_EQ(asym.Find(kZeroPointSuffix)->dtype(), DType::kI32);
  const EncodedWeight i8 = f.Allocate(Params(8, 0, true, DType::kF32), 5, 12, DType::kF32);
  EXPECT_EQ(i8.Find(kPackedSuffix)->shape(), (Shape{5, 3}));
  EXPECT_EQ(f.RowGranularity(Params(4, 0, true, DType::kF32)), 1);
}

TEST(RtnIntReferenceTest, ChunkedEncodingEqualsWholeAndChecksRanges) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  std::vector<float> x(19 * 64);
  for (float& v : x) v = normal(rng);
  const Tensor w = Weight(DType::kBF16, 19, 64, x);
  const WeightFormat& f = RtnIntFormat();
  const FormatParams p = Params(4, 32, false, DType::kBF16);
  const EncodedWeight whole = Encode(p, w);
  EncodedWeight parts = f.Allocate(p, 19, 64, DType::kBF16);
  for (int64_t r0 = 16; r0 >= 0; r0 -= 8) {
    ASSERT_TRUE(f.EncodeRowsRef(p, w.view(), r0, std::min<int64_t>(19, r0 + 8), &parts).ok());
  }
  for (size_t i = 0; i < whole.parts.size(); ++i) {
    EXPECT_EQ(0, std::memcmp(whole.parts[i].tensor.data(), parts.parts[i].tensor.data(),
                             whole.parts[i].tensor.nbytes()))
        << whole.parts[i].suffix;
  }
  const auto kBad = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(f.EncodeRowsRef(p, w.view(), 4, 8, &parts).code(), kBad);    // not 8-aligned
  EXPECT_EQ(f.EncodeRowsRef(p, w.view(), 8, 12, &parts).code(), kBad);   // ends mid-block
  EXPECT_EQ(f.EncodeRowsRef(p, w.view(), 16, 20, &parts).code(), kBad);  // past the end
  EncodedWeight wrong = f.Allocate(Params(4, 64, false, DType::kBF16), 19, 64, DType::kBF16);
  EXPECT_EQ(f.EncodeRowsRef(p, w.view(), 0, 8, &wrong).code(), kBad);
  TensorView short_view = w.view();
  short_view.nbytes -= 2;
  EXPECT_EQ(f.EncodeRowsRef(p, short_view, 0, 8, &parts).code(), kBad);
  TensorView ints = w.view();
  ints.dtype = DType::kI16;
  EXPECT_EQ(f.EncodeRowsRef(p, ints, 0, 8, &parts).code(), kBad);
}

TEST(RtnIntReferenceTest, DecodeChecksItsParts) {
  const FormatParams p = Params(4, 32, true, DType::kBF16);
  EncodedWeight e = Encode(p, Weight(DType::kBF16, 2, 64, std::vector<float>(128, 1.0f)));
  EXPECT_FALSE(RtnIntFormat().DecodeRef(p, e, 2, 32).ok());
  e.Find(kShapeSuffix)->as<int64_t>()[1] = 65;
  EXPECT_EQ(RtnIntFormat().DecodeRef(p, e, 2, 64).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(RtnIntFormat().DecodeRef(p, EncodedWeight{}, 2, 64).ok());
}

TEST(RtnIntMethodTest, ResolvesDefaultsAndRejectsBadValues) {
  v1::QuantizeSpec spec;
  absl::StatusOr<MethodPlan> plan = Int4Method().Resolve(spec);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->format, &RtnIntFormat());
  EXPECT_EQ(plan->params.bits, 4);
  EXPECT_EQ(plan->params.group_size, 128);
  EXPECT_TRUE(plan->params.symmetric);
  EXPECT_EQ(Int4Method().Label(plan->params), "int4-g128-sym");
  plan = Int8Method().Resolve(spec);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->params.bits, 8);
  EXPECT_EQ(plan->params.group_size, 0);
  EXPECT_EQ(Int8Method().Label(plan->params), "int8-channel-sym");

  spec.set_group_size(-1);
  spec.set_symmetric(false);
  plan = Int4Method().Resolve(spec);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(Int4Method().Label(plan->params), "int4-channel-asym");
  EXPECT_EQ(Int8Method().Resolve(spec).status().code(), absl::StatusCode::kInvalidArgument);

  spec.set_group_size(100);
  spec.clear_symmetric();
  absl::Status s = Int4Method().Resolve(spec).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("group_size 100 is not one of 32, 64, 128"), std::string::npos) << s;
  spec.set_group_size(64);
  (*spec.mutable_options())["foo"] = "bar";
  EXPECT_EQ(Int4Method().Resolve(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RtnIntMethodTest, WritesTheCompressedTensorsConfig) {
  FormatParams p = Params(4, 128, true, DType::kBF16);
  nlohmann::json cfg = Int4Method().QuantizationConfig(p, {"lm_head"});
  EXPECT_EQ(cfg["quant_method"], "compressed-tensors");
  EXPECT_EQ(cfg["format"], "pack-quantized");
  EXPECT_EQ(cfg["quantization_status"], "compressed");
  EXPECT_EQ(cfg["ignore"], nlohmann::json::array({"lm_head"}));
  EXPECT_TRUE(cfg["kv_cache_scheme"].is_null());
  EXPECT_EQ(cfg["version"], kCompressedTensorsVersion);
  const nlohmann::json& g = cfg["config_groups"]["group_0"];
  EXPECT_EQ(g["targets"], nlohmann::json::array({"Linear"}));
  EXPECT_TRUE(g["input_activations"].is_null());
  EXPECT_TRUE(g["output_activations"].is_null());
  const nlohmann::json& wt = g["weights"];
  EXPECT_EQ(wt["num_bits"], 4);
  EXPECT_EQ(wt["group_size"], 128);
  EXPECT_EQ(wt["strategy"], "group");
  EXPECT_EQ(wt["symmetric"], true);
  EXPECT_EQ(wt["type"], "int");
  EXPECT_EQ(wt["dynamic"], false);
  EXPECT_FALSE(wt.contains("scale_dtype"));
  EXPECT_FALSE(wt.contains("zp_dtype"));
  EXPECT_EQ(wt.size(), 10u);

  nlohmann::json ch = Int8Method().QuantizationConfig(Params(8, 0, true, DType::kBF16), {});
  const nlohmann::json& cw = ch["config_groups"]["group_0"]["weights"];
  EXPECT_TRUE(cw["group_size"].is_null());
  EXPECT_EQ(cw["strategy"], "channel");
  EXPECT_EQ(cw["num_bits"], 8);
  EXPECT_EQ(ch["ignore"], nlohmann::json::array());
  EXPECT_EQ(Int8Method().output_format(), "compressed-tensors/pack-quantized");
  EXPECT_EQ(Int8Method().Describe(Params(8, 0, true, DType::kBF16)).at("strategy"), "channel");
  EXPECT_EQ(Int4Method().ParameterHelp().count("group_size"), 1u);
  std::string note;
  EXPECT_EQ(Int4Method().SupportOn(v1::DeviceInfo(), &note), v1::SUPPORT_NATIVE);
}

}  // namespace
}  // namespace quantd
