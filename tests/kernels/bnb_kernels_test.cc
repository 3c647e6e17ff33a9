// The bitsandbytes formats' CPU and CUDA paths must produce the scalar
// reference's bytes exactly (core/formats/bnb4.h, bnb_int8.h). The CUDA
// tests skip themselves without a device (and are not compiled without
// CUDA).
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/formats/bnb4.h"
#include "core/formats/bnb_int8.h"
#include "gtest/gtest.h"
#include "kernels/devices.h"
#include "kernels/encoders.h"
#include "tests/kernels/rtn_test_util.h"

#if QUANTD_HAVE_CUDA
#include "kernels/cuda/bnb4.cuh"
#include "kernels/cuda/cuda_encoder.h"
#endif

namespace quantd {
namespace {

using testing_rtn::ExpectSameBytes;
using testing_rtn::RandomWeight;
using testing_rtn::StoreFloat;

const DType kDtypes[] = {DType::kBF16, DType::kF16, DType::kF32};
// Odd element counts (a padded last byte), partial last blocks, blocks that
// span rows, and the special rows of RandomWeight (all zero, +-max,
// subnormal-sized, constant, one outlier).
const int64_t kRows[] = {1, 17, 255, 257, 1025};
const int64_t kCols[] = {1, 17, 64, 200, 1032};

struct Bnb4Case {
  const char* type;
  int64_t blocksize;
  bool double_quant;
};
const Bnb4Case kBnb4Cases[] = {
    {"nf4", 64, false},   {"fp4", 64, false},   {"nf4", 32, true},  {"fp4", 128, true},
    {"nf4", 4096, false}, {"fp4", 1024, false}, {"nf4", 256, true},
};

FormatParams Bnb4Params(const Bnb4Case& c) {
  FormatParams p;
  p.group_size = c.blocksize;
  p.extra["quant_type"] = c.type;
  p.extra["double_quant"] = c.double_quant ? "1" : "0";
  return p;
}

std::string Label(const Bnb4Case& c, const Tensor& w) {
  return absl::StrCat(c.type, "_b", c.blocksize, c.double_quant ? "_dq_" : "_",
                      std::string(DTypeName(w.dtype())), "_", w.shape()[0], "x", w.shape()[1]);
}

// RandomWeight with its +-max row at +-65280 (exact in bf16 and f16; LLM.int8 rejects
// values whose float16 rounding is infinite).
Tensor Int8Weight(int64_t rows, int64_t cols, DType dtype, uint32_t seed) {
  Tensor t = RandomWeight(rows, cols, dtype, seed);
  if (rows > 5) {
    for (int64_t c = 0; c < cols; ++c) StoreFloat(t, cols + c, c % 2 ? -65280.0f : 65280.0f);
  }
  return t;
}

TEST(Bnb4CpuEncoderTest, MatchesReferenceOnAwkwardSizes) {
  std::unique_ptr<WeightEncoder> enc = MakeCpuEncoder(4);
  uint32_t seed = 1;
  for (DType dt : kDtypes) {
    for (int64_t rows : kRows) {
      for (int64_t cols : kCols) {
        const Tensor w = RandomWeight(rows, cols, dt, seed++);
        for (const Bnb4Case& c : kBnb4Cases) {
          const FormatParams p = Bnb4Params(c);
          absl::StatusOr<EncodedWeight> want = EncodeRef(Bnb4Format(), p, w.view());
          ASSERT_TRUE(want.ok()) << Label(c, w) << ": " << want.status();
          CancelToken cancel;
          absl::StatusOr<EncodedWeight> got = enc->Encode(Bnb4Format(), p, w.view(), cancel);
          ASSERT_TRUE(got.ok()) << Label(c, w) << ": " << got.status();
          ExpectSameBytes(*want, *got, w, Label(c, w));
        }
      }
    }
  }
}

TEST(Bnb4CpuEncoderTest, ReportsFirstNonFiniteValueLikeReference) {
  std::unique_ptr<WeightEncoder> enc = MakeCpuEncoder(4);
  Tensor w = RandomWeight(1025, 200, DType::kBF16, 9);
  w.as<uint16_t>()[1000 * 200 + 3] = 0x7fc0;   // NaN, a later chunk
  w.as<uint16_t>()[600 * 200 + 199] = 0xff80;  // -Inf: the first
  w.as<uint16_t>()[601 * 200 + 17] = 0x7f80;   // +Inf
  for (const Bnb4Case& c : kBnb4Cases) {
    CancelToken cancel;
    const absl::Status got = enc->Encode(Bnb4Format(), Bnb4Params(c), w.view(), cancel).status();
    EXPECT_EQ(got.message(), "non-finite value at row 600, column 199") << Label(c, w);
    EXPECT_EQ(EncodeRef(Bnb4Format(), Bnb4Params(c), w.view()).status(), got);
  }
}

TEST(Bnb4CpuEncoderTest, DoubleQuantRunsInChunksAndLeavesNoScratch) {
  // 2049 x 200 in chunks of 32..256 rows: double quantization still sees
  // every block's absmax (the scratch), and no scratch reaches the caller.
  std::unique_ptr<WeightEncoder> enc = MakeCpuEncoder(4);
  const Tensor w = RandomWeight(2049, 200, DType::kF16, 77);
  for (const Bnb4Case& c : kBnb4Cases) {
    if (!c.double_quant) continue;
    const FormatParams p = Bnb4Params(c);
    EXPECT_EQ(Bnb4Format().RowGranularity(p), c.blocksize);
    EXPECT_EQ(Bnb4Format().Allocate(p, 2049, 200, DType::kF16).scratch.size(), 1u);
    absl::StatusOr<EncodedWeight> want = EncodeRef(Bnb4Format(), p, w.view());
    ASSERT_TRUE(want.ok()) << want.status();
    EXPECT_TRUE(want->scratch.empty());
    CancelToken cancel;
    absl::StatusOr<EncodedWeight> got = enc->Encode(Bnb4Format(), p, w.view(), cancel);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_TRUE(got->scratch.empty());
    ExpectSameBytes(*want, *got, w, Label(c, w));
  }
}

TEST(BnbInt8CpuEncoderTest, MatchesReferenceOnAwkwardSizes) {
  std::unique_ptr<WeightEncoder> enc = MakeCpuEncoder(4);
  uint32_t seed = 100;
  for (DType dt : kDtypes) {
    for (int64_t rows : kRows) {
      for (int64_t cols : kCols) {
        const Tensor w = Int8Weight(rows, cols, dt, seed++);
        const std::string what =
            absl::StrCat("int8_", std::string(DTypeName(dt)), "_", rows, "x", cols);
        absl::StatusOr<EncodedWeight> want = EncodeRef(BnbInt8Format(), FormatParams{}, w.view());
        ASSERT_TRUE(want.ok()) << what << ": " << want.status();
        CancelToken cancel;
        absl::StatusOr<EncodedWeight> got =
            enc->Encode(BnbInt8Format(), FormatParams{}, w.view(), cancel);
        ASSERT_TRUE(got.ok()) << what << ": " << got.status();
        ExpectSameBytes(*want, *got, w, what);
      }
    }
  }
}

TEST(BnbInt8CpuEncoderTest, RejectsValuesBeyondFloat16LikeReference) {
  std::unique_ptr<WeightEncoder> enc = MakeCpuEncoder(4);
  Tensor w = Int8Weight(1025, 64, DType::kF32, 3);
  w.as<float>()[700 * 64 + 5] = 65520.0f;  // rounds to +inf in float16
  w.as<float>()[900 * 64 + 1] = std::numeric_limits<float>::quiet_NaN();
  CancelToken cancel;
  const absl::Status got = enc->Encode(BnbInt8Format(), FormatParams{}, w.view(), cancel).status();
  EXPECT_EQ(got.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(got.message().rfind("non-finite value at row 700, column 5", 0), 0u) << got;
  EXPECT_EQ(EncodeRef(BnbInt8Format(), FormatParams{}, w.view()).status(), got);
}

#if QUANTD_HAVE_CUDA

class BnbCudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (ListCudaDevices().empty()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(BnbCudaTest, Bnb4KernelMatchesReferenceOnAwkwardSizes) {
  uint32_t seed = 1;
  for (DType dt : kDtypes) {
    for (int64_t rows : {1, 17, 127, 255, 257, 1025}) {
      for (int64_t cols : {1, 17, 64, 200, 1032, 5137}) {
        const Tensor w = RandomWeight(rows, cols, dt, seed++);
        for (const Bnb4Case& c : kBnb4Cases) {
          const FormatParams p = Bnb4Params(c);
          absl::StatusOr<EncodedWeight> want = EncodeRef(Bnb4Format(), p, w.view());
          ASSERT_TRUE(want.ok()) << Label(c, w) << ": " << want.status();
          absl::StatusOr<EncodedWeight> got = Bnb4EncodeOnDevice(p, w.view(), 0);
          ASSERT_TRUE(got.ok()) << Label(c, w) << ": " << got.status();
          ExpectSameBytes(*want, *got, w, Label(c, w));
        }
      }
    }
  }
}

TEST_F(BnbCudaTest, Bnb4KernelMatchesReferenceNearThresholds) {
  // Every element on or one ulp beside a decision threshold of the trees
  // (x = t * absmax with absmax 1 at element 0 of each block).
  for (const char* type : {"nf4", "fp4"}) {
    std::vector<float> v;
    for (int i = 0; i < 15; ++i) {
      const float t = std::string(type) == "nf4" ? bnb4::kNf4Thresholds[i]
                                                 : (i < 7 ? bnb4::kFp4Thresholds[i] : 0.5f);
      for (float s : {1.0f, -1.0f}) {
        v.insert(v.end(), {1.0f, s * t, std::nextafter(s * t, 2.0f), std::nextafter(s * t, -2.0f)});
      }
    }
    v.insert(v.end(), {1.0f, -0.0f, 1e-39f, -1e-39f});
    while (v.size() % 32 != 0) v.push_back(0.25f);
    Tensor w = Tensor::Allocate(DType::kF32, {1, static_cast<int64_t>(v.size())});
    for (size_t i = 0; i < v.size(); ++i) w.as<float>()[i] = v[i];
    const Bnb4Case c{type, 32, false};
    absl::StatusOr<EncodedWeight> want = EncodeRef(Bnb4Format(), Bnb4Params(c), w.view());
    ASSERT_TRUE(want.ok()) << want.status();
    absl::StatusOr<EncodedWeight> got = Bnb4EncodeOnDevice(Bnb4Params(c), w.view(), 0);
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectSameBytes(*want, *got, w, Label(c, w));
  }
}

TEST_F(BnbCudaTest, Bnb4CudaEncoderRunsOnDeviceAndMatchesReference) {
  CudaEncoderOptions o;
  o.chunk_bytes = 1 << 18;  // several chunks (of whole blocks) for the larger weights
  absl::StatusOr<std::unique_ptr<CudaEncoder>> enc = CudaEncoder::Create(o);
  ASSERT_TRUE(enc.ok()) << enc.status();
  uint32_t seed = 50;
  for (DType dt : kDtypes) {
    for (int64_t rows : {1, 17, 257, 2049}) {
      for (int64_t cols : {1, 17, 200, 1032, 5137}) {
        const Tensor w = RandomWeight(rows, cols, dt, seed++);
        for (const Bnb4Case& c : kBnb4Cases) {
          const FormatParams p = Bnb4Params(c);
          absl::StatusOr<EncodedWeight> want = EncodeRef(Bnb4Format(), p, w.view());
          ASSERT_TRUE(want.ok()) << Label(c, w) << ": " << want.status();
          CancelToken cancel;
          absl::StatusOr<EncodedWeight> got = (*enc)->Encode(Bnb4Format(), p, w.view(), cancel);
          ASSERT_TRUE(got.ok()) << Label(c, w) << ": " << got.status();
          EXPECT_TRUE((*enc)->last_ran_on_device()) << Label(c, w);
          EXPECT_TRUE(got->scratch.empty()) << Label(c, w);
          ExpectSameBytes(*want, *got, w, Label(c, w));
        }
      }
    }
  }
}

TEST_F(BnbCudaTest, Bnb4CudaEncoderReportsFirstNonFiniteValueLikeReference) {
  CudaEncoderOptions o;
  o.chunk_bytes = 1 << 16;  // the bad values lie in different chunks
  absl::StatusOr<std::unique_ptr<CudaEncoder>> enc = CudaEncoder::Create(o);
  ASSERT_TRUE(enc.ok()) << enc.status();
  Tensor w = RandomWeight(1025, 200, DType::kBF16, 9);
  w.as<uint16_t>()[1000 * 200 + 3] = 0x7fc0;
  w.as<uint16_t>()[600 * 200 + 199] = 0xff80;
  w.as<uint16_t>()[601 * 200 + 17] = 0x7f80;
  for (const Bnb4Case& c : kBnb4Cases) {
    CancelToken cancel;
    const absl::Status got = (*enc)->Encode(Bnb4Format(), Bnb4Params(c), w.view(), cancel).status();
    EXPECT_EQ(got.message(), "non-finite value at row 600, column 199") << Label(c, w);
  }
}

TEST_F(BnbCudaTest, Bnb4KernelReportsFirstNonFiniteValueLikeReference) {
  Tensor w = RandomWeight(1025, 200, DType::kBF16, 9);
  w.as<uint16_t>()[1000 * 200 + 3] = 0x7fc0;
  w.as<uint16_t>()[600 * 200 + 199] = 0xff80;
  w.as<uint16_t>()[601 * 200 + 17] = 0x7f80;
  for (const Bnb4Case& c : kBnb4Cases) {
    const absl::Status got = Bnb4EncodeOnDevice(Bnb4Params(c), w.view(), 0).status();
    EXPECT_EQ(got, EncodeRef(Bnb4Format(), Bnb4Params(c), w.view()).status()) << Label(c, w);
  }
}

TEST_F(BnbCudaTest, Int8KernelMatchesReferenceOnAwkwardSizes) {
  CudaEncoderOptions o;
  o.chunk_bytes = 1 << 20;  // several chunks for the larger weights
  absl::StatusOr<std::unique_ptr<CudaEncoder>> enc = CudaEncoder::Create(o);
  ASSERT_TRUE(enc.ok()) << enc.status();
  uint32_t seed = 100;
  for (DType dt : kDtypes) {
    for (int64_t rows : {1, 17, 255, 257, 1025}) {
      for (int64_t cols : {8, 17, 200, 1032, 16392, 20000}) {
        const Tensor w = Int8Weight(rows, cols, dt, seed++);
        const std::string what =
            absl::StrCat("int8_", std::string(DTypeName(dt)), "_", rows, "x", cols);
        absl::StatusOr<EncodedWeight> want = EncodeRef(BnbInt8Format(), FormatParams{}, w.view());
        ASSERT_TRUE(want.ok()) << what << ": " << want.status();
        CancelToken cancel;
        absl::StatusOr<EncodedWeight> got =
            (*enc)->Encode(BnbInt8Format(), FormatParams{}, w.view(), cancel);
        ASSERT_TRUE(got.ok()) << what << ": " << got.status();
        EXPECT_EQ((*enc)->last_ran_on_device(), cols % 8 == 0) << what;
        ExpectSameBytes(*want, *got, w, what);
      }
    }
  }
}

TEST_F(BnbCudaTest, Int8KernelRejectsValuesBeyondFloat16) {
  absl::StatusOr<std::unique_ptr<CudaEncoder>> enc = CudaEncoder::Create({});
  ASSERT_TRUE(enc.ok()) << enc.status();
  Tensor w = Int8Weight(1025, 64, DType::kF32, 3);
  w.as<float>()[700 * 64 + 5] = 65520.0f;
  w.as<float>()[900 * 64 + 1] = std::numeric_limits<float>::quiet_NaN();
  CancelToken cancel;
  const absl::Status got =
      (*enc)->Encode(BnbInt8Format(), FormatParams{}, w.view(), cancel).status();
  EXPECT_EQ(got.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(got.message().rfind("non-finite value at row 700, column 5", 0), 0u) << got;
}

#endif  // QUANTD_HAVE_CUDA

}  // namespace
}  // namespace quantd
