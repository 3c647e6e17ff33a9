// The fp8 format's scalar reference (core/formats/fp8.h, fp8_layout.h):
// hand-computed encodes, scale fallbacks, errors, and seeded weights of
// awkward sizes against a naive re-implementation of the definition.
#include "core/formats/fp8.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/formats/fp8_e4m3.h"
#include "core/formats/fp8_layout.h"
#include "core/tensor/float_bits.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using fp8::Strategy;

// Round-trip error bounds: half an E4M3 step, relative for normal codes
// (3 mantissa bits: 2^-4) and absolute in units of the scale for subnormal
// codes (2^-10 * S). Values beyond 448 * S (the group's extreme when the
// scale rounded down in its dtype) saturate, adding |x| - 448 * S.
constexpr double kRelativeHalfStep = 1.0 / 16;
constexpr double kSubnormalHalfStepInScales = 1.0 / 1024;
// Float32 rounding of x / S and of the decoded product: relative, and
// absolute where the product is a float32 subnormal.
constexpr double kRoundingSlack = 1e-6;
constexpr double kFloat32MinSubnormal = 1.401298464324817e-45;

const Strategy kStrategies[] = {Strategy::kTensor, Strategy::kChannel, Strategy::kBlock};
const DType kDtypes[] = {DType::kBF16, DType::kF16, DType::kF32};

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

float MaxFinite(DType t) {
  return t == DType::kF16 ? 65504.0f : t == DType::kBF16 ? Bf16ToFloat(0x7f7f) : 3.4e38f;
}

// Normal values with a per-row scale over six decades, plus special rows
// where they fit: 0 all zero, 1 alternating +-max, 2 tiny, 3 a constant,
// 4 one outlier.
Tensor RandomWeight(int64_t rows, int64_t cols, DType dtype, uint32_t seed) {
  Tensor t = Tensor::Allocate(dtype, {rows, cols});
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> decade(-4.0f, 2.0f);
  const float tiny = dtype == DType::kF16 ? 3e-6f : 1e-39f;
  for (int64_t r = 0; r < rows; ++r) {
    const float row_scale = std::pow(10.0f, decade(rng));
    for (int64_t c = 0; c < cols; ++c) {
      float v = normal(rng) * row_scale;
      if (rows > 5) {
        if (r == 0) v = 0.0f;
        if (r == 1) v = (c % 2 ? -1.0f : 1.0f) * MaxFinite(dtype);
        if (r == 2) v = tiny * static_cast<float>((c % 7) - 3);
        if (r == 3) v = -0.375f;
        if (r == 4) v = c == cols / 2 ? 1000.0f : 0.01f * normal(rng);
      }
      Store(t, r * cols + c, v);
    }
  }
  return t;
}

FormatParams Params(Strategy s, DType scale, float tensor_amax = -1.0f) {
  FormatParams p = Fp8Params(s, scale);
  p.tensor_amax = tensor_amax;
  return p;
}

absl::StatusOr<EncodedWeight> Encode(const FormatParams& p, const Tensor& w) {
  return EncodeRef(Fp8Format(), p, w.view());
}

uint32_t ScaleBits(const EncodedWeight& e, int64_t i) {
  const Tensor& t = *e.Find(kFp8ScaleSuffix);
  if (t.dtype() == DType::kF32) return t.as<uint32_t>()[i];
  return t.as<uint16_t>()[i];
}

std::vector<uint8_t> Codes(const EncodedWeight& e) {
  const Tensor& t = *e.Find(kFp8WeightSuffix);
  return std::vector<uint8_t>(t.data(), t.data() + t.nbytes());
}

TEST(Fp8FormatTest, ChecksParameters) {
  const WeightFormat& f = Fp8Format();
  EXPECT_EQ(f.name(), "fp8");
  FormatParams p = Params(Strategy::kChannel, DType::kBF16);
  EXPECT_TRUE(f.Check(p, 17, 200).ok());
  p.extra.clear();  // channel by default
  EXPECT_TRUE(f.Check(p, 1, 1).ok());
  EXPECT_EQ(*Fp8StrategyOf(p), Strategy::kChannel);
  auto rejects = [&](FormatParams q, int64_t rows, int64_t cols, const std::string& what) {
    absl::Status s = f.Check(q, rows, cols);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << what;
    EXPECT_NE(s.message().find(what), std::string::npos) << s;
  };
  FormatParams q = Params(Strategy::kChannel, DType::kBF16);
  q.bits = 4;
  rejects(q, 8, 8, "bits 4");
  q = Params(Strategy::kChannel, DType::kBF16);
  q.group_size = 128;
  rejects(q, 8, 128, "group_size 128");
  q = Params(Strategy::kChannel, DType::kBF16);
  q.symmetric = false;
  rejects(q, 8, 8, "symmetric");
  rejects(Params(Strategy::kChannel, DType::kI32), 8, 8, "scale_dtype I32");
  q = Params(Strategy::kChannel, DType::kBF16);
  q.extra["strategy"] = "group";
  rejects(q, 8, 8, "\"group\"");
  q.extra = {{"block_size", "64"}};
  rejects(q, 8, 8, "block_size");
  rejects(Params(Strategy::kBlock, DType::kBF16), 0, 8, "empty");
}

TEST(Fp8FormatTest, AllocatesCompressedTensorsShapes) {
  const WeightFormat& f = Fp8Format();
  struct Case {
    Strategy s;
    int64_t rows, cols;
    Shape scale;
  };
  const Case cases[] = {{Strategy::kTensor, 300, 200, {1}},
                        {Strategy::kChannel, 300, 200, {300, 1}},
                        {Strategy::kBlock, 300, 200, {3, 2}},
                        {Strategy::kBlock, 256, 128, {2, 1}},
                        {Strategy::kBlock, 1, 1, {1, 1}}};
  for (const Case& c : cases) {
    for (DType dt : kDtypes) {
      const FormatParams p = Params(c.s, dt);
      const EncodedWeight e = f.Allocate(p, c.rows, c.cols, DType::kBF16);
      ASSERT_EQ(e.parts.size(), 2u);
      EXPECT_EQ(e.parts[0].suffix, "weight");
      EXPECT_EQ(e.parts[0].tensor.dtype(), DType::kF8E4M3);
      EXPECT_EQ(e.parts[0].tensor.shape(), Shape({c.rows, c.cols}));
      EXPECT_EQ(e.parts[1].suffix, "weight_scale");
      EXPECT_EQ(e.parts[1].tensor.dtype(), dt);
      EXPECT_EQ(e.parts[1].tensor.shape(), c.scale);
      EXPECT_EQ(f.RowGranularity(p), c.s == Strategy::kBlock ? 128 : 1);
      EXPECT_EQ(f.NeedsTensorAmax(p), c.s == Strategy::kTensor);
    }
  }
}

TEST(Fp8FormatTest, EncodesHandComputedRow) {
  // amax 1: s = 1/448, BF16 1.140625 * 2^-9 (0x3b12, rounded down), so
  // 1 / S = 448.88 saturates to 448 (0x7e); -0.5 / S = -224.44 -> -224
  // (0xf6); 0.25 / S = 112.22 -> 112 (0x6e); 0 -> 0.
  const Tensor w = Weight(DType::kBF16, 1, 4, {1.0f, -0.5f, 0.25f, 0.0f});
  absl::StatusOr<EncodedWeight> e = Encode(Params(Strategy::kChannel, DType::kBF16), w);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(ScaleBits(*e, 0), 0x3b12u);
  EXPECT_EQ(Codes(*e), std::vector<uint8_t>({0x7e, 0xf6, 0x6e, 0x00}));
  // F32 scale 1/448 (0x3b124925): 1 / S = 448.0 exactly after rounding.
  e = Encode(Params(Strategy::kChannel, DType::kF32), w);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(ScaleBits(*e, 0), FloatToBits(1.0f / 448.0f));
  EXPECT_EQ(Codes(*e), std::vector<uint8_t>({0x7e, 0xf6, 0x6e, 0x00}));
}

TEST(Fp8FormatTest, AllZeroGroupsGetEpsilonScaleAndDecodeToZero) {
  const uint32_t kEpsilonBits[] = {0x3c00u /*BF16 2^-7*/, 0x1400u /*F16 2^-10*/,
                                   0x34000000u /*F32 2^-23*/};
  for (int i = 0; i < 3; ++i) {
    const DType dt = kDtypes[i];
    std::vector<float> v(2 * 130, 0.0f);
    v[1] = -0.0f;
    v[130 + 129] = 2.0f;  // row 1, second block column
    const Tensor w = Weight(dt, 2, 130, v);
    for (Strategy s : {Strategy::kChannel, Strategy::kBlock}) {
      absl::StatusOr<EncodedWeight> e = Encode(Params(s, dt), w);
      ASSERT_TRUE(e.ok()) << e.status();
      EXPECT_EQ(ScaleBits(*e, 0), kEpsilonBits[i]) << DTypeName(dt);
      const std::vector<uint8_t> codes = Codes(*e);
      EXPECT_EQ(codes[0], 0x00);
      EXPECT_EQ(codes[1], 0x80);  // -0 keeps its sign, as a torch cast does
      absl::StatusOr<std::vector<float>> d = Fp8Format().DecodeRef(Params(s, dt), *e, 2, 130);
      ASSERT_TRUE(d.ok()) << d.status();
      for (int64_t k = 0; k < 2 * 130; ++k) {
        if (v[k] == 0.0f) {
          EXPECT_EQ((*d)[k], 0.0f) << k;
        }
      }
    }
    absl::StatusOr<EncodedWeight> t = Encode(Params(Strategy::kTensor, dt, 0.0f), w);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(ScaleBits(*t, 0), kEpsilonBits[i]);
  }
}

TEST(Fp8FormatTest, ScalesThatUnderflowTheDtypeKeepTinyValues) {
  // F16 weights 2 * 2^-24: s = 2^-23 / 448 rounds to 0 in F16 -> S = 2^-24
  // (0x0001); x / S = 2 -> 0x40, decoded exactly.
  Tensor w = Tensor::Allocate(DType::kF16, {1, 3});
  w.as<uint16_t>()[0] = 0x0002;
  w.as<uint16_t>()[1] = 0x8001;
  w.as<uint16_t>()[2] = 0x0000;
  absl::StatusOr<EncodedWeight> e = Encode(Params(Strategy::kChannel, DType::kF16), w);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(ScaleBits(*e, 0), 0x0001u);
  EXPECT_EQ(Codes(*e), std::vector<uint8_t>({0x40, 0xb8, 0x00}));
  // F32 subnormal weights: s underflows float32 -> S = 2^-149.
  const Tensor f = Weight(DType::kF32, 1, 2, {BitsToFloat(3), -BitsToFloat(1)});
  e = Encode(Params(Strategy::kChannel, DType::kF32), f);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(ScaleBits(*e, 0), 1u);
  EXPECT_EQ(Codes(*e), std::vector<uint8_t>({0x44, 0xb8}));  // 3, -1
}

TEST(Fp8FormatTest, ScalesThatOverflowTheDtypeClampAndSaturate) {
  // F32 weights with F16 scales: 1e30 / 448 overflows F16 -> 65504.
  const Tensor w = Weight(DType::kF32, 1, 2, {1e30f, 65504.0f});
  absl::StatusOr<EncodedWeight> e = Encode(Params(Strategy::kChannel, DType::kF16), w);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(ScaleBits(*e, 0), 0x7bffu);
  EXPECT_EQ(Codes(*e), std::vector<uint8_t>({0x7e, 0x38}));  // saturated, 1.0
}

TEST(Fp8FormatTest, TensorStrategyUsesTensorAmax) {
  const Tensor w = Weight(DType::kBF16, 2, 3, {1.0f, 2.0f, -3.0f, 0.5f, 0.0f, 1.5f});
  // A fused group's amax of 448 gives S = 1: codes are the values.
  absl::StatusOr<EncodedWeight> e = Encode(Params(Strategy::kTensor, DType::kBF16, 448.0f), w);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(ScaleBits(*e, 0), 0x3f80u);
  EXPECT_EQ(Codes(*e), std::vector<uint8_t>({0x38, 0x40, 0xc4, 0x30, 0x00, 0x3c}));
  // An amax below the tensor's own saturates the larger values.
  e = Encode(Params(Strategy::kTensor, DType::kBF16, 0.875f), w);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(Codes(*e)[2], 0xfe);
  // Unset, NaN or infinite amax is an error.
  EXPECT_EQ(Encode(Params(Strategy::kTensor, DType::kBF16), w).status().code(),
            absl::StatusCode::kInvalidArgument);
  for (float bad : {NAN, INFINITY}) {
    absl::Status s = Encode(Params(Strategy::kTensor, DType::kBF16, bad), w).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("not finite"), std::string::npos) << s;
  }
  Tensor inf = Weight(DType::kBF16, 2, 3, {1.0f, 2.0f, -3.0f, 0.5f, 0.0f, 1.5f});
  inf.as<uint16_t>()[4] = 0xff80;  // -Inf at row 1, column 1
  EXPECT_EQ(Encode(Params(Strategy::kTensor, DType::kBF16, INFINITY), inf).status().message(),
            "non-finite value at row 1, column 1");
}

TEST(Fp8FormatTest, ReportsFirstNonFiniteInRowMajorOrder) {
  for (DType dt : kDtypes) {
    Tensor w = RandomWeight(300, 300, dt, 3);
    auto poison = [&](int64_t r, int64_t c, bool nan) {
      if (dt == DType::kF32) {
        w.as<uint32_t>()[r * 300 + c] = nan ? 0x7fc00000u : 0xff800000u;
      } else {
        w.as<uint16_t>()[r * 300 + c] =
            dt == DType::kBF16 ? (nan ? 0x7fc0 : 0xff80) : (nan ? 0x7e00 : 0xfc00);
      }
    };
    poison(100, 10, true);  // first block column, later row
    poison(5, 290, false);  // third block column, earlier row: reported
    poison(250, 0, true);
    for (Strategy s : kStrategies) {
      absl::Status st = Encode(Params(s, dt, 1.0f), w).status();
      EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(st.message(), "non-finite value at row 5, column 290")
          << Fp8StrategyName(s) << " " << DTypeName(dt);
    }
  }
}

TEST(Fp8FormatTest, RejectsMisalignedRowRangesAndWrongParts) {
  const WeightFormat& f = Fp8Format();
  const Tensor w = RandomWeight(300, 64, DType::kBF16, 1);
  const FormatParams p = Params(Strategy::kBlock, DType::kBF16);
  EncodedWeight e = f.Allocate(p, 300, 64, DType::kBF16);
  EXPECT_TRUE(f.EncodeRowsRef(p, w.view(), 256, 300, &e).ok());  // the tail
  EXPECT_EQ(f.EncodeRowsRef(p, w.view(), 64, 128, &e).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.EncodeRowsRef(p, w.view(), 0, 200, &e).code(), absl::StatusCode::kInvalidArgument);
  const FormatParams ch = Params(Strategy::kChannel, DType::kBF16);
  EXPECT_EQ(f.EncodeRowsRef(ch, w.view(), 0, 1, &e).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.DecodeRef(ch, e, 300, 64).status().code(), absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Seeded weights against a naive re-implementation: group index by plain
// loops, amax by fabs, code by FloatToE4m3(x / S).

int64_t GroupOf(Strategy s, int64_t r, int64_t c, int64_t cols) {
  if (s == Strategy::kTensor) return 0;
  if (s == Strategy::kChannel) return r;
  return (r / 128) * ((cols + 127) / 128) + c / 128;
}

void ExpectMatchesNaive(const Tensor& w, Strategy s, DType scale_dtype, const std::string& what) {
  const int64_t rows = w.shape()[0], cols = w.shape()[1];
  const int64_t groups = NumElements(Fp8ScaleShape(s, rows, cols));
  std::vector<float> amax(static_cast<size_t>(groups), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      float& m = amax[GroupOf(s, r, c, cols)];
      m = std::max(m, std::fabs(LoadAsFloat(w.view(), r * cols + c)));
    }
  }
  const float tensor_amax = amax[0];  // as the pipeline computes it (strategy tensor)
  const fp8::ScaleType st = *Fp8ScaleType(scale_dtype);
  const FormatParams p = Params(s, scale_dtype, tensor_amax);
  absl::StatusOr<EncodedWeight> e = Encode(p, w);
  ASSERT_TRUE(e.ok()) << what << ": " << e.status();
  for (int64_t g = 0; g < groups; ++g) {
    ASSERT_EQ(ScaleBits(*e, g), fp8::ScaleForAmax(amax[g], st).bits) << what << " group " << g;
  }
  const std::vector<uint8_t> codes = Codes(*e);
  absl::StatusOr<std::vector<float>> d = Fp8Format().DecodeRef(p, *e, rows, cols);
  ASSERT_TRUE(d.ok()) << d.status();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const float x = LoadAsFloat(w.view(), r * cols + c);
      const float scale = fp8::ScaleForAmax(amax[GroupOf(s, r, c, cols)], st).value;
      const uint8_t want = e4m3::FloatToE4m3(x / scale);
      ASSERT_EQ(int{codes[r * cols + c]}, int{want}) << what << " at " << r << ", " << c;
      const double got = (*d)[r * cols + c];
      const double bound =
          std::max(kRelativeHalfStep * std::fabs(x), kSubnormalHalfStepInScales * scale) *
              (1 + kRoundingSlack) +
          kFloat32MinSubnormal +
          std::max(0.0, std::fabs(static_cast<double>(x)) - e4m3::kMax * double{scale});
      ASSERT_LE(std::fabs(got - x), bound) << what << " at " << r << ", " << c << ": " << x;
    }
  }
  // Encoding in granule-aligned pieces gives the same bytes.
  const int64_t gran = Fp8Format().RowGranularity(p);
  EncodedWeight pieces = Fp8Format().Allocate(p, rows, cols, w.dtype());
  for (int64_t r0 = 0; r0 < rows; r0 += 2 * gran) {
    ASSERT_TRUE(
        Fp8Format().EncodeRowsRef(p, w.view(), r0, std::min(rows, r0 + 2 * gran), &pieces).ok());
  }
  for (size_t i = 0; i < pieces.parts.size(); ++i) {
    EXPECT_EQ(std::memcmp(pieces.parts[i].tensor.data(), e->parts[i].tensor.data(),
                          pieces.parts[i].tensor.nbytes()),
              0)
        << what << " part " << pieces.parts[i].suffix;
  }
}

TEST(Fp8FormatTest, MatchesNaiveDefinitionOnAwkwardSizes) {
  uint32_t seed = 1;
  for (DType dt : kDtypes) {
    for (int64_t rows : {1, 17, 127, 128, 129, 257}) {
      for (int64_t cols : {1, 17, 128, 200, 257}) {
        const Tensor w = RandomWeight(rows, cols, dt, seed++);
        for (Strategy s : kStrategies) {
          ExpectMatchesNaive(w, s, dt,
                             absl::StrCat(std::string(Fp8StrategyName(s)), "_",
                                          std::string(DTypeName(dt)), "_", rows, "x", cols));
        }
      }
    }
  }
}

TEST(Fp8FormatTest, MatchesNaiveDefinitionWithOtherScaleDtypes) {
  const Tensor w = RandomWeight(130, 260, DType::kF32, 9);  // +-FLT_MAX row: F16 scales clamp
  for (DType scale : {DType::kBF16, DType::kF16}) {
    for (Strategy s : kStrategies) {
      ExpectMatchesNaive(w, s, scale,
                         absl::StrCat(std::string(Fp8StrategyName(s)), "_F32_scale_",
                                      std::string(DTypeName(scale))));
    }
  }
}

// F32 weights whose quotients x / S lie on or within a few ulps of the
// midpoints between neighbouring E4M3 values, subnormal ones included: each
// row's first element is its amax 448 * 2^e, so its channel scale is 2^e.
TEST(Fp8FormatTest, MatchesNaiveDefinitionNearRoundingTies) {
  constexpr int64_t kRows = 64, kCols = 517;
  Tensor w = Tensor::Allocate(DType::kF32, {kRows, kCols});
  std::mt19937 rng(21);
  std::uniform_int_distribution<int> code(0, 0x7d), ulps(-3, 3);
  for (int64_t r = 0; r < kRows; ++r) {
    const float s = std::ldexp(1.0f, static_cast<int>(r) * 3 - 100);
    float* row = w.as<float>() + r * kCols;
    row[0] = e4m3::kMax * s;
    for (int64_t c = 1; c < kCols; ++c) {
      const int k = code(rng);
      float x = (e4m3::E4m3ToFloat(static_cast<uint8_t>(k)) +
                 e4m3::E4m3ToFloat(static_cast<uint8_t>(k + 1))) /
                2 * s;
      for (int u = ulps(rng); u != 0; u += u > 0 ? -1 : 1) {
        x = std::nextafter(x, u > 0 ? INFINITY : -INFINITY);
      }
      row[c] = c % 2 ? -x : x;
    }
  }
  for (Strategy s : kStrategies) {
    ExpectMatchesNaive(w, s, DType::kF32, absl::StrCat("ties_", std::string(Fp8StrategyName(s))));
  }
}

// ---------------------------------------------------------------------------
// The layout header's claims.

TEST(Fp8LayoutTest, ClampBeforeConversionChangesNothing) {
  for (float v = 1e-30f; v < 3e38f; v *= 1.37f) {
    for (float x : {v, -v}) {
      EXPECT_EQ(fp8::CodeOfQuotient(x), e4m3::FloatToE4m3(fp8::ClampF(x, -448.0f, 448.0f))) << x;
    }
  }
  EXPECT_EQ(fp8::CodeOfQuotient(INFINITY), 0x7e);
  EXPECT_EQ(fp8::CodeOfQuotient(-INFINITY), 0xfe);
}

// Quotients at least this large are exactly DivRn's (fp8_layout.h).
constexpr float kExactQuotientMin = 0x1p-23f;

// The kernel's hoisted division equals IEEE division for every scale in its
// fast range: random scales (and scales that are BF16/F16 values), random
// float32 numerators across the magnitudes that matter, near-tie
// quotients (code midpoints times S, nudged by ulps).
TEST(Fp8LayoutTest, HoistedDivisionEqualsDivRn) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> scale_exp(-80, 99), quot_exp(-60, 9), ulps(-2, 2);
  std::uniform_int_distribution<int> code(0, 0x7d);
  int64_t compared = 0;
  for (int i = 0; i < 4000; ++i) {
    float s = std::ldexp(mant(rng), scale_exp(rng));
    if (i % 3 == 1) s = Bf16ToFloat(FloatToBf16(s));
    if (i % 3 == 2 && s > 6e-5f && s < 65504.0f) s = F16ToFloat(FloatToF16(s));
    const fp8::Divider d = fp8::MakeDivider(s);
    ASSERT_TRUE(d.fast) << s;
    for (int j = 0; j < 200; ++j) {
      float q;
      if (j % 2 == 0) {
        q = std::ldexp(mant(rng), quot_exp(rng));
      } else {  // midpoint between neighbouring codes
        const int c = code(rng);
        q = (e4m3::E4m3ToFloat(static_cast<uint8_t>(c)) +
             e4m3::E4m3ToFloat(static_cast<uint8_t>(c + 1))) /
            2;
      }
      float x = q * s;
      for (int k = ulps(rng); k != 0; k += k > 0 ? -1 : 1) {
        x = std::nextafter(x, k > 0 ? INFINITY : -INFINITY);
      }
      if (j % 4 == 3) x = -x;
      const float want = fp8::DivRn(x, s);
      const float got = fp8::Quotient<true>(d, x);
      if (std::fabs(want) >= kExactQuotientMin) {
        ASSERT_EQ(FloatToBits(got), FloatToBits(want)) << x << " / " << s;
      } else {  // far below E4M3's first rounding boundary: same signed zero code
        ASSERT_EQ(int{fp8::CodeOfQuotient(got)}, int{fp8::CodeOfQuotient(want)}) << x << " / " << s;
      }
      ++compared;
    }
  }
  EXPECT_EQ(compared, 4000 * 200);
  EXPECT_FALSE(fp8::MakeDivider(0x1p-81f).fast);
  EXPECT_FALSE(fp8::MakeDivider(0x1p101f).fast);
}

}  // namespace
}  // namespace quantd
