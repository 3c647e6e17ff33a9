// Writes pack-quantized test tensors for tests/interop/read_pack_quantized.py:
//   <dir>/quantized.safetensors  <case>.weight_packed / weight_scale /
//                                weight_shape [/ weight_zero_point]
//   <dir>/expected.safetensors   <case>.decoded (F32, our DecodeRef) and
//                                <case>.source (F32, the weight)
//   <dir>/config.json            {<case>: quantization_config}
// Usage: write_pack_quantized <dir>. Exit status 0 on success.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/formats/rtn_int.h"
#include "core/io/safetensors.h"
#include "core/quant/compressed_tensors.h"
#include "core/tensor/float_bits.h"
#include "kernels/encoders.h"

namespace quantd {
namespace {

struct Case {
  const char* name;
  int bits;
  int64_t group_size;
  bool symmetric;
  DType dtype;
  int64_t rows, cols;
};

Tensor MakeWeight(const Case& c, uint64_t seed) {
  Tensor t = Tensor::Allocate(c.dtype, {c.rows, c.cols});
  uint64_t s = seed;
  for (int64_t i = 0; i < c.rows * c.cols; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    // Uniform in [-1, 1) times a per-row scale, plus an offset on odd rows
    // so that asymmetric ranges are lopsided.
    const float u = static_cast<float>(s >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f;
    const int64_t r = i / c.cols;
    const float v = u * (0.01f + 0.05f * static_cast<float>(r % 7)) + (r % 2 ? 0.02f : 0.0f);
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

Tensor ToF32(const Tensor& w) {
  Tensor f = Tensor::Allocate(DType::kF32, w.shape());
  for (int64_t i = 0; i < w.numel(); ++i) f.as<float>()[i] = LoadAsFloat(w.view(), i);
  return f;
}

int Run(const std::filesystem::path& dir) {
  const Case cases[] = {
      {"int4_g128_sym_bf16", 4, 128, true, DType::kBF16, 64, 256},
      {"int4_g32_asym_f16", 4, 32, false, DType::kF16, 24, 128},
      {"int4_g64_asym_bf16_17rows", 4, 64, false, DType::kBF16, 17, 128},
      {"int4_channel_asym_bf16", 4, 0, false, DType::kBF16, 16, 64},
      {"int4_channel_sym_f32", 4, 0, true, DType::kF32, 9, 64},
      {"int8_channel_sym_f32", 8, 0, true, DType::kF32, 33, 64},
      {"int8_g64_sym_bf16", 8, 64, true, DType::kBF16, 8, 128},
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
    FormatParams p;
    p.bits = c.bits;
    p.group_size = c.group_size;
    p.symmetric = c.symmetric;
    p.scale_dtype = c.dtype;
    keep.push_back(MakeWeight(c, seed++));
    const Tensor& w = keep.back();
    CancelToken cancel;
    absl::StatusOr<EncodedWeight> e = enc->Encode(RtnIntFormat(), p, w.view(), cancel);
    if (!e.ok()) {
      std::fprintf(stderr, "%s: %s\n", c.name, e.status().ToString().c_str());
      return 1;
    }
    absl::StatusOr<std::vector<float>> d = RtnIntFormat().DecodeRef(p, *e, c.rows, c.cols);
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
    keep.push_back(ToF32(w));
    expected.emplace_back(absl::StrCat(c.name, ".source"), keep.back().view());
    config[c.name] = PackQuantizedConfig(c.bits, c.group_size, c.symmetric, {"lm_head"});
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
