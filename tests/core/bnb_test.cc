// The bitsandbytes formats (core/formats/bnb4.h, bnb_int8.h) and methods.
// Expected bytes were worked out by hand from bitsandbytes' kernels, or
// captured from bitsandbytes 0.50.2 itself (code books, dynamic map, JSON).
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/formats/bnb4.h"
#include "core/formats/bnb_int8.h"
#include "core/quant/bnb_method.h"
#include "core/quant/method_registry.h"
#include "core/tensor/float_bits.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

// Round trip: |x - decoded| <= block absmax * (half the widest gap between
// neighbouring code values) + float rounding. bitsandbytes' trees decide at
// the exact midpoints of neighbouring codes, so this is the bound. NF4's
// widest gap is on the negative side, -1 to -0.69619 (0.30381; the positive
// side's widest is 1 - 0.72296 = 0.27704); FP4's is 1 - 8/12.
constexpr double kNf4MaxHalfGap = (1.0 - 0.6961928009986877) / 2;
constexpr double kFp4MaxHalfGap = (1.0 - 8.0 / 12.0) / 2;
// Double quantization moves each block absmax by at most half a step of the
// dynamic map (widest near +-1: 0.0141) times the nested absmax.
constexpr double kDynamicMapMaxHalfGap = 0.0140625 / 2 + 1e-6;
constexpr double kRoundingSlack = 1e-6;

FormatParams Bnb4Params(const char* type, int64_t blocksize = 64, bool double_quant = false) {
  FormatParams p;
  p.group_size = blocksize;
  p.extra["quant_type"] = type;
  p.extra["double_quant"] = double_quant ? "1" : "0";
  return p;
}

Tensor F32Weight(int64_t rows, int64_t cols, const std::vector<float>& v) {
  Tensor t = Tensor::Zeros(DType::kF32, {rows, cols});
  std::memcpy(t.data(), v.data(), std::min(v.size(), static_cast<size_t>(rows * cols)) * 4);
  return t;
}

Tensor RandomWeight(DType dtype, int64_t rows, int64_t cols, uint32_t seed, float sigma = 0.02f) {
  Tensor t = Tensor::Allocate(dtype, {rows, cols});
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  for (int64_t i = 0; i < rows * cols; ++i) {
    const float v = normal(rng);
    if (dtype == DType::kF32) {
      t.as<float>()[i] = v;
    } else if (dtype == DType::kF16) {
      t.as<uint16_t>()[i] = FloatToF16(v);
    } else {
      t.as<uint16_t>()[i] = FloatToBf16(v);
    }
  }
  return t;
}

EncodedWeight Encode(const WeightFormat& f, const FormatParams& p, const Tensor& w) {
  absl::StatusOr<EncodedWeight> e = EncodeRef(f, p, w.view());
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *std::move(e) : EncodedWeight{};
}

std::vector<uint8_t> Bytes(const EncodedWeight& e, const std::string& suffix) {
  const Tensor* t = e.Find(suffix);
  if (t == nullptr) return {};
  return std::vector<uint8_t>(t->data(), t->data() + t->nbytes());
}

std::string Text(const EncodedWeight& e, const std::string& suffix) {
  const std::vector<uint8_t> b = Bytes(e, suffix);
  return std::string(b.begin(), b.end());
}

TEST(Bnb4Test, CodeBooksAreBitsandbytesQuantMaps) {
  // get_4bit_type("fp4") from bitsandbytes 0.50.2, as float32 bits.
  const uint32_t kFp4Bits[16] = {0u,          1001040555u, 1059760811u, 1065353216u,
                                 1051372203u, 1056964608u, 1042983595u, 1048576000u,
                                 0u,          3148524203u, 3207244459u, 3212836864u,
                                 3198855851u, 3204448256u, 3190467243u, 3196059648u};
  const EncodedWeight e = Encode(Bnb4Format(), Bnb4Params("fp4"), F32Weight(1, 64, {1.0f}));
  const float* map = e.Find(kBnbQuantMapSuffix)->as<float>();
  for (int c = 0; c < 16; ++c) EXPECT_EQ(FloatToBits(map[c]), kFp4Bits[c]) << c;
  const EncodedWeight n = Encode(Bnb4Format(), Bnb4Params("nf4"), F32Weight(1, 64, {1.0f}));
  const float* nf4 = n.Find(kBnbQuantMapSuffix)->as<float>();
  EXPECT_EQ(nf4[0], -1.0f);
  EXPECT_EQ(nf4[7], 0.0f);
  EXPECT_EQ(nf4[13], 0.5626170039176941f);
  EXPECT_EQ(nf4[15], 1.0f);
}

TEST(Bnb4Test, DynamicMapIsCreateDynamicMap) {
  const float* m = BnbDynamicMap();
  EXPECT_EQ(FloatToBits(m[0]), 0xbf7e3333u);  // -0.99296874
  EXPECT_EQ(m[127], 0.0f);
  EXPECT_EQ(m[128], 5.5000004e-07f);
  EXPECT_EQ(m[255], 1.0f);
  for (int i = 1; i < 256; ++i) EXPECT_LT(m[i - 1], m[i]) << i;
  for (int j = 0; j < 127; ++j) EXPECT_EQ(m[126 - j], -m[128 + j]) << j;
  EXPECT_EQ(BnbDynamicCode(m, -1.0f), 0u);
  EXPECT_EQ(BnbDynamicCode(m, 0.0f), 127u);
  EXPECT_EQ(BnbDynamicCode(m, 1.0f), 255u);
  EXPECT_EQ(BnbDynamicCode(m, std::numeric_limits<float>::quiet_NaN()), 0u);
  // Midpoint ties go to the lower neighbour when above (x > midpoint
  // required), to the upper when below (x < midpoint required).
  const float mid = (m[200] + m[201]) * 0.5f;
  EXPECT_EQ(BnbDynamicCode(m, mid), 200u);
  EXPECT_EQ(BnbDynamicCode(m, std::nextafter(mid, 2.0f)), 201u);
}

TEST(Bnb4Test, BucketLookupEqualsBitsandbytesTrees) {
  bnb4::CodeBucket nf4[bnb4::kBuckets], fp4[bnb4::kBuckets];
  ASSERT_TRUE(bnb4::BuildCodeBuckets(bnb4::QuantType::kNf4, nf4));
  ASSERT_TRUE(bnb4::BuildCodeBuckets(bnb4::QuantType::kFp4, fp4));
  const float kMax = 1.0f + 1.0f / 128.0f;  // the lookup's domain: |v| < kMax
  std::vector<float> xs = {0.0f,
                           -0.0f,
                           1.0f,
                           -1.0f,
                           1e-45f,
                           -1e-45f,
                           1.0000001f,
                           -1.0000001f,
                           std::nextafter(kMax, 0.0f),
                           -std::nextafter(kMax, 0.0f)};
  // Around every threshold and every bucket edge, 64 floats either side.
  std::vector<float> edges;
  for (int i = 0; i < 15; ++i) {
    edges.push_back(bnb4::kNf4Thresholds[i]);
    if (i < 7) edges.insert(edges.end(), {bnb4::kFp4Thresholds[i], -bnb4::kFp4Thresholds[i]});
  }
  for (int b = 0; b <= bnb4::kBuckets; ++b) {
    edges.push_back(static_cast<float>(b - bnb4::kBucketOffset) / bnb4::kBucketsPerUnit);
  }
  for (float e : edges) {
    float up = e, down = e;
    for (int k = 0; k < 64; ++k) {
      xs.insert(xs.end(), {up, down});
      up = std::nextafter(up, 2.0f), down = std::nextafter(down, -2.0f);
    }
  }
  for (uint32_t b = 0; b < 65536; ++b) xs.push_back(Bf16ToFloat(static_cast<uint16_t>(b)));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-kMax, kMax);
  for (int i = 0; i < 1000000; ++i) xs.push_back(u(rng));
  int checked = 0;
  for (float x : xs) {
    if (!(std::fabs(x) < kMax)) continue;
    ASSERT_EQ(bnb4::Nf4Code(x), bnb4::CodeBucketLookup(x, nf4)) << x;
    ASSERT_EQ(bnb4::Fp4Code(x), bnb4::CodeBucketLookup(x, fp4)) << x;
    ++checked;
  }
  EXPECT_GT(checked, 1000000);
}

TEST(Bnb4Test, HandComputedBlockAndNibbleOrder) {
  // absmax 2: x / 2 = 1, -1, 0.5, 0, -0.25, 0.05, then zeros.
  const Tensor w = F32Weight(1, 64, {2.0f, -2.0f, 1.0f, 0.0f, -0.5f, 0.1f});
  const EncodedWeight nf4 = Encode(Bnb4Format(), Bnb4Params("nf4"), w);
  // NF4: 1 -> 15, -1 -> 0, 0.5 -> 12, 0 -> 7, -0.25 -> 4, 0.05 -> 8; first
  // element in the high nibble.
  std::vector<uint8_t> want(32, 0x77);
  want[0] = 0xf0, want[1] = 0xc7, want[2] = 0x48;
  EXPECT_EQ(Bytes(nf4, kBnbWeightSuffix), want);
  EXPECT_EQ(nf4.Find(kBnbAbsmaxSuffix)->as<float>()[0], 2.0f);
  const EncodedWeight fp4 = Encode(Bnb4Format(), Bnb4Params("fp4"), w);
  // FP4: 1 -> 3, -1 -> 8 + 3, 0.5 -> 5, 0 -> 0, -0.25 -> 8 + 7, 0.05 -> 1.
  std::vector<uint8_t> want_fp4(32, 0x00);
  want_fp4[0] = 0x3b, want_fp4[1] = 0x50, want_fp4[2] = 0xf1;
  EXPECT_EQ(Bytes(fp4, kBnbWeightSuffix), want_fp4);
}

TEST(Bnb4Test, ThresholdTakesTheLowerCodeAndNegativeZeroIsPositive) {
  const float t = bnb4::kNf4Thresholds[7];  // between codes 7 and 8
  const Tensor w = F32Weight(1, 32, {1.0f, t, std::nextafter(t, 1.0f), -0.0f});
  EXPECT_EQ(Bytes(Encode(Bnb4Format(), Bnb4Params("nf4", 32), w), kBnbWeightSuffix)[0], 0xf7);
  EXPECT_EQ(Bytes(Encode(Bnb4Format(), Bnb4Params("nf4", 32), w), kBnbWeightSuffix)[1], 0x87);
  // FP4: -0.0 * r is -0.0, not < 0: code 0, not 8.
  EXPECT_EQ(Bytes(Encode(Bnb4Format(), Bnb4Params("fp4", 32), w), kBnbWeightSuffix)[1] & 0xf, 0);
}

TEST(Bnb4Test, ZeroBlocksAndOddCountPadding) {
  // Block 0 all zero (NaN path: every code 0), block 1 not; 47 elements,
  // so the last byte's low nibble is the +0.0 padding: NF4 code 7.
  std::vector<float> v(47, 0.0f);
  v[40] = 0.5f;
  const Tensor w = F32Weight(1, 47, v);
  const EncodedWeight e = Encode(Bnb4Format(), Bnb4Params("nf4", 32), w);
  const std::vector<uint8_t> b = Bytes(e, kBnbWeightSuffix);
  ASSERT_EQ(b.size(), 24u);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(b[i], 0x00) << i;
  EXPECT_EQ(b[20], 0xf7);
  EXPECT_EQ(b[23], 0x77);
  EXPECT_EQ(e.Find(kBnbWeightSuffix)->shape(), (Shape{24, 1}));
  EXPECT_EQ(e.Find(kBnbAbsmaxSuffix)->as<float>()[0], 0.0f);
  absl::StatusOr<std::vector<float>> d = Bnb4Format().DecodeRef(Bnb4Params("nf4", 32), e, 1, 47);
  ASSERT_TRUE(d.ok()) << d.status();
  for (int i = 0; i < 47; ++i) EXPECT_EQ((*d)[i], v[i]) << i;
}

TEST(Bnb4Test, SubnormalsAreFlushedLikeFastMath) {
  // A negative subnormal is flushed to -0.0 before scaling: FP4 code 0.
  const Tensor w = F32Weight(1, 32, {1.0f, -1e-39f});
  EXPECT_EQ(Bytes(Encode(Bnb4Format(), Bnb4Params("fp4", 32), w), kBnbWeightSuffix)[0], 0x30);
  // A block of subnormals has absmax 0.
  const Tensor s = F32Weight(1, 32, {1e-39f, -2e-39f});
  const EncodedWeight e = Encode(Bnb4Format(), Bnb4Params("nf4", 32), s);
  EXPECT_EQ(e.Find(kBnbAbsmaxSuffix)->as<float>()[0], 0.0f);
}

TEST(Bnb4Test, BlocksSpanRowsOfTheFlattenedWeight) {
  // [3, 48] with blocksize 64: blocks of 64, 64 and 16 elements.
  const Tensor w = RandomWeight(DType::kF32, 3, 48, 3);
  const FormatParams p = Bnb4Params("nf4", 64);
  const EncodedWeight e = Encode(Bnb4Format(), p, w);
  ASSERT_EQ(e.Find(kBnbAbsmaxSuffix)->numel(), 3);
  const float* x = w.as<float>();
  const float* absmax = e.Find(kBnbAbsmaxSuffix)->as<float>();
  const std::vector<uint8_t> packed = Bytes(e, kBnbWeightSuffix);
  for (int64_t b = 0; b < 3; ++b) {
    float m = 0;
    for (int64_t i = b * 64; i < std::min<int64_t>(144, b * 64 + 64); ++i)
      m = std::max(m, std::fabs(x[i]));
    EXPECT_EQ(absmax[b], m) << b;
    const float r = 1.0f / m;
    for (int64_t i = b * 64; i < std::min<int64_t>(144, b * 64 + 64); ++i) {
      const uint32_t code = i % 2 == 0 ? packed[i / 2] >> 4 : packed[i / 2] & 15;
      EXPECT_EQ(code, bnb4::Nf4Code(x[i] * r)) << i;
    }
  }
  // Ranges must start on a block boundary: row 1 starts at element 48.
  EncodedWeight out = Bnb4Format().Allocate(p, 3, 48, DType::kF32);
  EXPECT_EQ(Bnb4Format().EncodeRowsRef(p, w.view(), 1, 3, &out).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Bnb4Format().EncodeRowsRef(p, w.view(), 0, 3, &out).ok());
  EXPECT_EQ(Bnb4Format().RowGranularity(p), 64);
}

TEST(Bnb4Test, NonFiniteValuesNameRowAndColumn) {
  for (float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<float> v(5 * 40, 0.1f);
    v[2 * 40 + 3] = bad;
    absl::StatusOr<EncodedWeight> e =
        EncodeRef(Bnb4Format(), Bnb4Params("fp4", 32), F32Weight(5, 40, v).view());
    ASSERT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(e.status().message().find("row 2, column 3"), std::string::npos) << e.status();
  }
}

TEST(Bnb4Test, RejectsParametersBitsandbytesDoesNot) {
  const WeightFormat& f = Bnb4Format();
  EXPECT_TRUE(f.Check(Bnb4Params("nf4", 32), 1, 1).ok());
  EXPECT_TRUE(f.Check(Bnb4Params("fp4", 4096), 1, 1).ok());
  for (int64_t bs : {16, 48, 96, 8192, -1})
    EXPECT_FALSE(f.Check(Bnb4Params("nf4", bs), 4, 64).ok()) << bs;
  FormatParams p = Bnb4Params("nf5");
  EXPECT_FALSE(f.Check(p, 4, 64).ok());
  p = Bnb4Params("nf4");
  p.extra["double_quant"] = "yes";
  EXPECT_FALSE(f.Check(p, 4, 64).ok());
  p = Bnb4Params("nf4");
  p.extra["colour"] = "blue";
  EXPECT_FALSE(f.Check(p, 4, 64).ok());
  p.extra.clear();
  EXPECT_FALSE(f.Check(p, 4, 64).ok());                         // quant_type is required
  EXPECT_FALSE(f.Check(Bnb4Params("nf4"), 65536, 32768).ok());  // 2^31 elements
  EXPECT_FALSE(f.Check(Bnb4Params("nf4"), 0, 64).ok());
}

TEST(Bnb4Test, PartsAreThoseTransformersSaves) {
  // bitsandbytes 0.50.2, quantize_4bit on an [8, 96] bfloat16 tensor.
  const FormatParams p = Bnb4Params("nf4");
  const Tensor w = RandomWeight(DType::kBF16, 8, 96, 1);
  const EncodedWeight e = Encode(Bnb4Format(), p, w);
  ASSERT_EQ(e.parts.size(), 4u);
  EXPECT_EQ(e.parts[0].suffix, "weight");
  EXPECT_EQ(e.parts[0].tensor.shape(), (Shape{384, 1}));
  EXPECT_EQ(e.parts[1].suffix, "weight.absmax");
  EXPECT_EQ(e.parts[1].tensor.dtype(), DType::kF32);
  EXPECT_EQ(e.parts[1].tensor.shape(), (Shape{12}));
  EXPECT_EQ(e.parts[2].suffix, "weight.quant_map");
  EXPECT_EQ(e.parts[3].suffix, "weight.quant_state.bitsandbytes__nf4");
  EXPECT_EQ(Text(e, e.parts[3].suffix),
            "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"bfloat16\", "
            "\"shape\": [8, 96]}");
  const FormatParams dq = Bnb4Params("fp4", 64, true);
  const EncodedWeight d = Encode(Bnb4Format(), dq, w);
  ASSERT_EQ(d.parts.size(), 6u);
  EXPECT_EQ(d.parts[1].tensor.dtype(), DType::kU8);
  EXPECT_EQ(d.parts[3].suffix, "weight.nested_absmax");
  EXPECT_EQ(d.parts[3].tensor.shape(), (Shape{1}));
  EXPECT_EQ(d.parts[4].suffix, "weight.nested_quant_map");
  EXPECT_EQ(d.parts[5].suffix, "weight.quant_state.bitsandbytes__fp4");
  // The JSON is padded with spaces to its longest form (offset of 22 chars).
  const std::string json = Text(d, d.parts[5].suffix);
  EXPECT_EQ(json.size(), 166u - 18u + 22u);
  const std::string prefix =
      "{\"quant_type\": \"fp4\", \"blocksize\": 64, \"dtype\": \"bfloat16\", \"shape\": [8, 96], "
      "\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": ";
  EXPECT_EQ(json.substr(0, prefix.size()), prefix);
  EXPECT_EQ(json.find_last_not_of(' '), json.find('}'));
}

TEST(Bnb4Test, DoubleQuantizationByHand) {
  // Block absmax 1, 2, 3: offset 2, centred -1, 0, 1, nested absmax 1:
  // dynamic codes 0, 127, 255.
  const Bnb4DoubleQuant q = Bnb4DoubleQuantize({1.0f, 2.0f, 3.0f});
  EXPECT_EQ(q.offset, 2.0f);
  EXPECT_EQ(q.codes, (std::vector<uint8_t>{0, 127, 255}));
  EXPECT_EQ(q.nested_absmax, (std::vector<float>{1.0f}));
  // 300 blocks: two nested blocks (256 + 44).
  std::vector<float> a(300);
  for (int i = 0; i < 300; ++i) a[i] = 0.01f * static_cast<float>(i % 17 + 1);
  const Bnb4DoubleQuant r = Bnb4DoubleQuantize(a);
  EXPECT_EQ(r.nested_absmax.size(), 2u);
  for (int i = 0; i < 300; ++i) {
    const float back = BnbDynamicMap()[r.codes[i]] * r.nested_absmax[i / 256] + r.offset;
    EXPECT_NEAR(back, a[i], kDynamicMapMaxHalfGap * r.nested_absmax[i / 256] + 1e-7) << i;
  }
}

TEST(Bnb4Test, PythonFloatRepr) {
  EXPECT_EQ(PythonFloatRepr(0.0), "0.0");
  EXPECT_EQ(PythonFloatRepr(0.1), "0.1");
  EXPECT_EQ(PythonFloatRepr(static_cast<double>(0.1f)), "0.10000000149011612");
  EXPECT_EQ(PythonFloatRepr(1e-05), "1e-05");
  EXPECT_EQ(PythonFloatRepr(1.5e-07), "1.5e-07");
  EXPECT_EQ(PythonFloatRepr(0.0001), "0.0001");
  EXPECT_EQ(PythonFloatRepr(123.0), "123.0");
  EXPECT_EQ(PythonFloatRepr(1e16), "1e+16");
  EXPECT_EQ(PythonFloatRepr(1234567890123456.0), "1234567890123456.0");
  EXPECT_EQ(PythonFloatRepr(0.0569254569709301), "0.0569254569709301");
  EXPECT_EQ(PythonFloatRepr(5e-324), "5e-324");
  EXPECT_EQ(PythonFloatRepr(-2.5), "-2.5");
}

TEST(Bnb4Test, RoundTripWithinHalfTheWidestGap) {
  for (const char* type : {"nf4", "fp4"}) {
    for (bool dq : {false, true}) {
      for (int64_t bs : {32, 64, 256, 4096}) {
        for (DType dt : {DType::kBF16, DType::kF16, DType::kF32}) {
          const int64_t rows = 37, cols = 200;  // 7400 elements: partial last block
          const FormatParams p = Bnb4Params(type, bs, dq);
          const Tensor w = RandomWeight(dt, rows, cols, static_cast<uint32_t>(bs + dq));
          const EncodedWeight e = Encode(Bnb4Format(), p, w);
          absl::StatusOr<std::vector<float>> d = Bnb4Format().DecodeRef(p, e, rows, cols);
          ASSERT_TRUE(d.ok()) << d.status();
          const double gap = std::string(type) == "nf4" ? kNf4MaxHalfGap : kFp4MaxHalfGap;
          for (int64_t b = 0; b * bs < rows * cols; ++b) {
            double m = 0;
            for (int64_t i = b * bs; i < std::min(rows * cols, (b + 1) * bs); ++i) {
              m = std::max(m, std::fabs(static_cast<double>(LoadAsFloat(w.view(), i))));
            }
            const double tol = m * (gap + (dq ? 2 * kDynamicMapMaxHalfGap : 0) + kRoundingSlack);
            for (int64_t i = b * bs; i < std::min(rows * cols, (b + 1) * bs); ++i) {
              ASSERT_NEAR((*d)[i], LoadAsFloat(w.view(), i), tol)
                  << type << " dq=" << dq << " bs=" << bs << " i=" << i;
            }
          }
        }
      }
    }
  }
}

TEST(BnbInt8Test, HandComputedRowsAndZeroRow) {
  const Tensor w = F32Weight(2, 8, {1.0f, -0.5f, 0.25f, 0.0f, 2.0f / 127.0f});
  std::vector<float> v(16, 0.0f);
  v[0] = 2.0f, v[1] = 1.0f, v[2] = -1.0f;  // row 0: scale 63.5, 1 -> 63.5 -> 64
  const Tensor w2 = F32Weight(2, 8, v);
  const EncodedWeight e = Encode(BnbInt8Format(), FormatParams{}, w2);
  const int8_t* q = e.Find(kBnbInt8WeightSuffix)->as<int8_t>();
  EXPECT_EQ(q[0], 127);
  EXPECT_EQ(q[1], 64);
  EXPECT_EQ(q[2], -64);
  for (int i = 8; i < 16; ++i) EXPECT_EQ(q[i], 0) << i;  // all-zero row
  EXPECT_EQ(e.Find(kBnbInt8ScbSuffix)->as<float>()[0], 2.0f);
  EXPECT_EQ(e.Find(kBnbInt8ScbSuffix)->as<float>()[1], 0.0f);
  EXPECT_EQ(e.Find(kBnbInt8FormatSuffix)->shape(), Shape{});
  EXPECT_EQ(e.Find(kBnbInt8FormatSuffix)->data()[0], 0);
  const EncodedWeight f = Encode(BnbInt8Format(), FormatParams{}, w);
  const int8_t* qf = f.Find(kBnbInt8WeightSuffix)->as<int8_t>();
  EXPECT_EQ(qf[0], 127);
  EXPECT_EQ(qf[1], -64);  // -63.5: half to even
  EXPECT_EQ(qf[2], 32);   // 31.75
  EXPECT_EQ(qf[4], 2);
  EXPECT_EQ(bnb_int8::Code(0.5f, 5.0f), 2);                                    // 2.5: half to even
  EXPECT_EQ(bnb_int8::Code(0.0f, std::numeric_limits<float>::infinity()), 0);  // NaN
}

TEST(BnbInt8Test, WeightIsRoundedToFloat16First) {
  // 1.0001 rounds to 1.0 in float16: SCB is 1.0, not 1.0001.
  const EncodedWeight e = Encode(BnbInt8Format(), FormatParams{}, F32Weight(1, 2, {1.0001f, 0.5f}));
  EXPECT_EQ(e.Find(kBnbInt8ScbSuffix)->as<float>()[0], 1.0f);
  absl::StatusOr<EncodedWeight> big =
      EncodeRef(BnbInt8Format(), FormatParams{}, F32Weight(2, 3, {0, 0, 0, 0, 70000.0f}).view());
  ASSERT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(big.status().message().find("row 1, column 1"), std::string::npos) << big.status();
}

TEST(BnbInt8Test, RoundTripWithinHalfAStep) {
  const Tensor w = RandomWeight(DType::kBF16, 33, 136, 5);
  const EncodedWeight e = Encode(BnbInt8Format(), FormatParams{}, w);
  absl::StatusOr<std::vector<float>> d = BnbInt8Format().DecodeRef(FormatParams{}, e, 33, 136);
  ASSERT_TRUE(d.ok()) << d.status();
  const float* scb = e.Find(kBnbInt8ScbSuffix)->as<float>();
  for (int64_t i = 0; i < 33 * 136; ++i) {
    const double step = scb[i / 136] / 127.0;
    // half a step, plus float16 rounding of the weight (2^-11 relative)
    EXPECT_NEAR((*d)[i], LoadAsFloat(w.view(), i), step * (0.5 + 1e-5) + scb[i / 136] / 2048.0);
  }
}

TEST(BnbMethodTest, QuantizationConfigIsBitsAndBytesConfigToDict) {
  // transformers 5.24: BitsAndBytesConfig(load_in_4bit=True,
  // bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
  // .to_dict(), with llm_int8_skip_modules=["lm_head"].
  v1::QuantizeSpec spec;
  spec.set_method("nf4");
  absl::StatusOr<const QuantMethod*> m = FindMethodForSpec(spec);
  ASSERT_TRUE(m.ok()) << m.status();
  absl::StatusOr<MethodPlan> plan = (*m)->Resolve(WithoutLayout(spec));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->params.group_size, 64);
  EXPECT_EQ((*m)->QuantizationConfig(plan->params, {"lm_head"}).dump(),
            "{\"_load_in_4bit\":true,\"_load_in_8bit\":false,\"bnb_4bit_compute_dtype\":"
            "\"bfloat16\",\"bnb_4bit_quant_storage\":\"uint8\",\"bnb_4bit_quant_type\":\"nf4\","
            "\"bnb_4bit_use_double_quant\":false,\"llm_int8_enable_fp32_cpu_offload\":false,"
            "\"llm_int8_has_fp16_weight\":false,\"llm_int8_skip_modules\":[\"lm_head\"],"
            "\"llm_int8_threshold\":6.0,\"load_in_4bit\":true,\"load_in_8bit\":false,"
            "\"quant_method\":\"bitsandbytes\"}");
  spec.set_method("int8");
  (*spec.mutable_options())["layout"] = "bitsandbytes";
  m = FindMethodForSpec(spec);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->name(), "int8:bitsandbytes");
  plan = (*m)->Resolve(WithoutLayout(spec));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->format, &BnbInt8Format());
  const nlohmann::json c = (*m)->QuantizationConfig(plan->params, {"lm_head"});
  EXPECT_EQ(c["load_in_8bit"], true);
  EXPECT_EQ(c["_load_in_4bit"], false);
  EXPECT_EQ(c["bnb_4bit_quant_type"], "fp4");
}

TEST(BnbMethodTest, OptionsAndRejections) {
  v1::QuantizeSpec spec;
  spec.set_method("fp4");
  spec.set_group_size(128);
  (*spec.mutable_options())["double_quant"] = "true";
  (*spec.mutable_options())["compute_dtype"] = "float16";
  const QuantMethod& fp4 = Fp4Method();
  absl::StatusOr<MethodPlan> plan = fp4.Resolve(spec);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(fp4.Label(plan->params), "fp4-b128-dq");
  const nlohmann::json c = fp4.QuantizationConfig(plan->params, {});
  EXPECT_EQ(c["bnb_4bit_use_double_quant"], true);
  EXPECT_EQ(c["bnb_4bit_compute_dtype"], "float16");
  EXPECT_EQ(c["llm_int8_skip_modules"], nlohmann::json::array());
  (*spec.mutable_options())["compute_dtype"] = "int8";
  EXPECT_FALSE(fp4.Resolve(spec).ok());
  spec.clear_options();
  spec.set_group_size(100);
  EXPECT_FALSE(fp4.Resolve(spec).ok());
  spec.set_group_size(0);
  spec.set_symmetric(false);
  EXPECT_FALSE(Nf4Method().Resolve(spec).ok());
  v1::QuantizeSpec i8;
  i8.set_group_size(128);
  EXPECT_FALSE(BnbInt8Method().Resolve(i8).ok());
}

TEST(BnbMethodTest, RegisteredAndNativeOnCudaAndCpu) {
  // GetCapabilities lists every registered method with SupportOn per device.
  v1::DeviceInfo cpu, sm80, sm90;
  cpu.set_type("cpu");
  sm80.set_type("cuda");
  sm80.set_compute_capability("8.0");
  sm90.set_type("cuda");
  sm90.set_compute_capability("9.0");
  for (const char* name : {"nf4", "fp4", "int8:bitsandbytes"}) {
    absl::StatusOr<const QuantMethod*> m = FindMethod(name);
    ASSERT_TRUE(m.ok()) << m.status();
    for (const v1::DeviceInfo& d : {cpu, sm80, sm90}) {
      std::string note;
      EXPECT_EQ((*m)->SupportOn(d, &note), v1::SUPPORT_NATIVE) << name << " " << d.type();
    }
  }
}

}  // namespace
}  // namespace quantd
