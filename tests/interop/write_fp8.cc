// Writes float-quantized (FP8) test tensors for tests/interop/read_fp8.py:
//   <dir>/quantized.safetensors  <case>.weight (F8_E4M3), <case>.weight_scale
//   <dir>/expected.safetensors   <case>.decoded (F32, our DecodeRef),
//                                <case>.source (the weight, its own dtype),
//                                <case>.tensor_amax (F32 [1], the amax
//                                given to the tensor strategy)
//   <dir>/config.json            {<case>: quantization_config}
// Usage: write_fp8 <dir>. Exit status 0 on success.
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
#include "core/formats/fp8.h"
#include "core/io/safetensors.h"
#include "core/quant/fp8_method.h"
#include "core/tensor/float_bits.h"
#include "kernels/encoders.h"

namespace quantd {
namespace {

struct Case {
  const char* name;
  fp8::Strategy strategy;
  DType dtype;
  int64_t rows, cols;
  // Tensor strategy: the fused group's amax as a multiple of this tensor's.
  float amax_factor;
};

// Uniform values times a per-row scale over four decades; every 16th row
// (from row 3) and every row from 256 on are zero, so that channel and
// block strategies meet all-zero groups.
Tensor MakeWeight(const Case& c, uint64_t seed) {
  Tensor t = Tensor::Allocate(c.dtype, {c.rows, c.cols});
  uint64_t s = seed;
  for (int64_t i = 0; i < c.rows * c.cols; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const float u = static_cast<float>(s >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f;
    const int64_t r = i / c.cols;
    float v = u * (1e-3f * static_cast<float>(1 << (2 * (r % 7))));
    if (r % 16 == 3 || r >= 256) v = 0.0f;
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

int Run(const std::filesystem::path& dir) {
  using fp8::Strategy;
  const Case cases[] = {
      {"fp8_channel_bf16", Strategy::kChannel, DType::kBF16, 64, 256, 1},
      {"fp8_channel_f16_17x200", Strategy::kChannel, DType::kF16, 17, 200, 1},
      {"fp8_channel_f32", Strategy::kChannel, DType::kF32, 9, 64, 1},
      {"fp8_tensor_bf16_fused", Strategy::kTensor, DType::kBF16, 33, 128, 1.5f},
      {"fp8_tensor_f16", Strategy::kTensor, DType::kF16, 16, 64, 1},
      {"fp8_block_bf16_300x200", Strategy::kBlock, DType::kBF16, 300, 200, 1},
      {"fp8_block_f16", Strategy::kBlock, DType::kF16, 128, 256, 1},
      {"fp8_block_f32_130x136", Strategy::kBlock, DType::kF32, 130, 136, 1},
  };
  std::filesystem::create_directories(dir);
  std::filesystem::remove(dir / "quantized.safetensors");
  std::filesystem::remove(dir / "expected.safetensors");
  std::unique_ptr<WeightEncoder> enc = MakeCpuEncoder(0);
  std::deque<Tensor> keep;  // owns every tensor the views below borrow (stable addresses)
  std::vector<std::pair<std::string, TensorView>> quantized, expected;
  nlohmann::json config = nlohmann::json::object();
  uint64_t seed = 1;
  for (const Case& c : cases) {
    FormatParams p = Fp8Params(c.strategy, c.dtype);  // scales in the weight's dtype
    keep.push_back(MakeWeight(c, seed++));
    const Tensor& w = keep.back();
    if (Fp8Format().NeedsTensorAmax(p)) p.tensor_amax = enc->AbsMax(w.view()) * c.amax_factor;
    CancelToken cancel;
    absl::StatusOr<EncodedWeight> e = enc->Encode(Fp8Format(), p, w.view(), cancel);
    if (!e.ok()) {
      std::fprintf(stderr, "%s: %s\n", c.name, e.status().ToString().c_str());
      return 1;
    }
    absl::StatusOr<std::vector<float>> d = Fp8Format().DecodeRef(p, *e, c.rows, c.cols);
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
    Tensor amax = Tensor::Allocate(DType::kF32, {1});
    amax.as<float>()[0] = p.tensor_amax;
    keep.push_back(std::move(amax));
    expected.emplace_back(absl::StrCat(c.name, ".tensor_amax"), keep.back().view());
    config[c.name] = FloatQuantizedConfig(c.strategy, {"lm_head"});
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
