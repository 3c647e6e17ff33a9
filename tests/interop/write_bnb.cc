// Writes bitsandbytes test tensors for tests/interop/read_bnb.py:
//   <dir>/quantized.safetensors  <case>.<part> for every part our encoder
//                                writes (weight, weight.absmax, ...; SCB,
//                                weight_format for int8)
//   <dir>/expected.safetensors   <case>.decoded (F32, our DecodeRef),
//                                <case>.source (the weight, its own dtype)
//   <dir>/config.json            {<case>: quantization_config}
// Usage: write_bnb <dir>. Exit status 0 on success.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/formats/bnb4.h"
#include "core/formats/bnb_int8.h"
#include "core/io/safetensors.h"
#include "core/quant/bnb_method.h"
#include "core/tensor/float_bits.h"
#include "kernels/encoders.h"

namespace quantd {
namespace {

struct Case {
  const char* name;
  const char* quant_type;  // "nf4", "fp4" or "int8"
  int64_t blocksize;
  bool double_quant;
  DType dtype;
  int64_t rows, cols;
};

// Uniform values times a per-row scale over four decades; every 16th row
// (from row 3) is zero, and row 5 holds +-1 alternately, so that blocks meet
// all-zero and +-max inputs.
Tensor MakeWeight(const Case& c, uint64_t seed) {
  Tensor t = Tensor::Allocate(c.dtype, {c.rows, c.cols});
  uint64_t s = seed;
  for (int64_t i = 0; i < c.rows * c.cols; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const float u = static_cast<float>(s >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f;
    const int64_t r = i / c.cols;
    float v = u * (1e-3f * static_cast<float>(1 << (2 * (r % 7))));
    if (r % 16 == 3) v = 0.0f;
    if (r == 5) v = i % 2 ? -1.0f : 1.0f;
    if (c.dtype == DType::kF32) {
      t.as<float>()[i] = v;
    } else if (c.dtype == DType::kF16) {
      t.as<uint16_t>()[i] = FloatToF16(v);
    } else {
      t.as<uint16_t>()[i] = FloatToBf16(v);
    }
  }
  return t;
}

FormatParams ParamsFor(const Case& c) {
  FormatParams p;
  if (std::string(c.quant_type) == "int8") return p;
  p.group_size = c.blocksize;
  p.extra["quant_type"] = c.quant_type;
  p.extra["double_quant"] = c.double_quant ? "1" : "0";
  return p;
}

int Run(const std::filesystem::path& dir) {
  const Case cases[] = {
      {"nf4_b64_bf16", "nf4", 64, false, DType::kBF16, 64, 256},
      {"nf4_b32_f16_17x201", "nf4", 32, false, DType::kF16, 17, 201},  // odd count
      {"nf4_b64_dq_bf16_300x200", "nf4", 64, true, DType::kBF16, 300, 200},
      {"nf4_b128_dq_f32", "nf4", 128, true, DType::kF32, 33, 96},
      {"fp4_b64_bf16", "fp4", 64, false, DType::kBF16, 48, 128},
      {"fp4_b4096_f16_9x1000", "fp4", 4096, false, DType::kF16, 9, 1000},
      {"fp4_b256_dq_bf16_130x136", "fp4", 256, true, DType::kBF16, 130, 136},
      {"int8_bf16", "int8", 0, false, DType::kBF16, 64, 256},
      {"int8_f16_17x200", "int8", 0, false, DType::kF16, 17, 200},
      {"int8_f32_9x24", "int8", 0, false, DType::kF32, 9, 24},
  };
  std::filesystem::create_directories(dir);
  std::filesystem::remove(dir / "quantized.safetensors");
  std::filesystem::remove(dir / "expected.safetensors");
  std::unique_ptr<WeightEncoder> enc = MakeCpuEncoder(0);
  std::deque<Tensor> keep;  // owns every tensor the views below borrow
  std::vector<std::pair<std::string, TensorView>> quantized, expected;
  nlohmann::json config = nlohmann::json::object();
  uint64_t seed = 1;
  for (const Case& c : cases) {
    const bool int8 = std::string(c.quant_type) == "int8";
    const WeightFormat& f = int8 ? BnbInt8Format() : Bnb4Format();
    const FormatParams p = ParamsFor(c);
    keep.push_back(MakeWeight(c, seed++));
    const Tensor& w = keep.back();
    CancelToken cancel;
    absl::StatusOr<EncodedWeight> e = enc->Encode(f, p, w.view(), cancel);
    if (!e.ok()) {
      std::fprintf(stderr, "%s: %s\n", c.name, e.status().ToString().c_str());
      return 1;
    }
    absl::StatusOr<std::vector<float>> d = f.DecodeRef(p, *e, c.rows, c.cols);
    if (!d.ok()) {
      std::fprintf(stderr, "%s: %s\n", c.name, d.status().ToString().c_str());
      return 1;
    }
    for (EncodedPart& part : e->parts) {
      keep.push_back(std::move(part.tensor));
      quantized.emplace_back(absl::StrCat(c.name, ".", part.suffix), keep.back().view());
    }
    Tensor decoded = Tensor::Allocate(DType::kF32, {c.rows, c.cols});
    std::copy(d->begin(), d->end(), decoded.as<float>());
    keep.push_back(std::move(decoded));
    expected.emplace_back(absl::StrCat(c.name, ".decoded"), keep.back().view());
    expected.emplace_back(absl::StrCat(c.name, ".source"), w.view());
    config[c.name] = BitsAndBytesConfigJson(c.quant_type, c.double_quant, "bfloat16", {"lm_head"});
  }
  for (const auto& [file, tensors] : {std::pair{"quantized.safetensors", &quantized},
                                      std::pair{"expected.safetensors", &expected}}) {
    absl::StatusOr<FileDigest> st = WriteSafetensors(dir / file, *tensors, {{"format", "pt"}});
    if (!st.ok()) {
      std::fprintf(stderr, "%s: %s\n", file, st.status().ToString().c_str());
      return 1;
    }
  }
  std::ofstream(dir / "config.json") << config.dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace quantd

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output dir>\n", argv[0]);
    return 2;
  }
  return quantd::Run(argv[1]);
}
