// Writes nvfp4 test tensors for tests/interop/read_nvfp4.py, in both
// layouts:
//   <dir>/quantized.safetensors  <case>.<part> as the layout names them
//   <dir>/expected.safetensors   <case>.decoded (F32, our DecodeRef) and
//                                <case>.source (F32, the weight)
//   <dir>/config.json            {<case>: {layout, tensor_amax, rows, cols,
//                                quantization_config, hf_quant_config}}
// Cases cover BF16/F16/F32 sources, awkward sizes, exact rounding ties,
// all-zero and tiny blocks, a zero tensor and a fused pair sharing its
// tensor amax. Usage: write_nvfp4 <dir>. Exit status 0 on success.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/formats/nvfp4.h"
#include "core/io/safetensors.h"
#include "core/quant/nvfp4_method.h"
#include "core/tensor/float_bits.h"
#include "kernels/encoders.h"

namespace quantd {
namespace {

enum class Fill { kRandom, kTies, kZero, kTinyBlocks };

struct Case {
  const char* name;
  nvfp4::Layout layout;
  DType dtype;
  int64_t rows, cols;
  Fill fill;
  uint64_t seed;
  // Cases with the same non-empty group share their tensor amax (a fused
  // q/k/v-like group).
  const char* group;
};

void StoreValue(Tensor& t, int64_t i, float v) {
  if (t.dtype() == DType::kF32) {
    t.as<float>()[i] = v;
  } else if (t.dtype() == DType::kF16) {
    t.as<uint16_t>()[i] = FloatToF16(v);
  } else {
    t.as<uint16_t>()[i] = FloatToBf16(v);
  }
}

Tensor MakeWeight(const Case& c) {
  Tensor t = Tensor::Allocate(c.dtype, {c.rows, c.cols});
  uint64_t s = c.seed;
  const float ties[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 0.5f, 3.0f};
  for (int64_t i = 0; i < c.rows * c.cols; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const float u = static_cast<float>(s >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f;
    const int64_t r = i / c.cols, j = i % 16;
    float v = 0.0f;
    switch (c.fill) {
      case Fill::kRandom:
        // Rows spread over five decades; some blocks all zero.
        v = (i / 16) % 11 == 5 ? 0.0f : u * std::pow(10.0f, static_cast<float>(r % 5) - 3.0f);
        break;
      case Fill::kTies:
        // Block max 6 * 2^k (divisor 2^k with tensor_amax 2688): every other
        // element an exact tie of the E2M1 grid.
        v = std::ldexp(j == 0 ? 6.0f : ties[(i / 16 + j) % 9], static_cast<int>(r % 7) - 3);
        if (j % 3 == 1) v = -v;
        break;
      case Fill::kZero:
        v = 0.0f;
        break;
      case Fill::kTinyBlocks:
        // One block sets the range; the others are 1e-7 of it.
        v = (i / 16) % 4 == 0 ? u : u * 1e-7f;
        break;
    }
    StoreValue(t, i, v);
  }
  return t;
}

Tensor ToF32(const Tensor& w) {
  Tensor f = Tensor::Allocate(DType::kF32, w.shape());
  for (int64_t i = 0; i < w.numel(); ++i) f.as<float>()[i] = LoadAsFloat(w.view(), i);
  return f;
}

const char* LayoutName(nvfp4::Layout l) {
  return l == nvfp4::Layout::kModelOpt ? kNvfp4LayoutModelOpt : kNvfp4LayoutCompressedTensors;
}

int Run(const std::filesystem::path& dir) {
  using nvfp4::Layout;
  const Case cases[] = {
      {"ct_bf16_random", Layout::kCompressedTensors, DType::kBF16, 64, 256, Fill::kRandom, 1, ""},
      {"mo_bf16_random", Layout::kModelOpt, DType::kBF16, 64, 256, Fill::kRandom, 1, ""},
      {"ct_f16_17x48", Layout::kCompressedTensors, DType::kF16, 17, 48, Fill::kRandom, 2, ""},
      {"mo_f32_9x32", Layout::kModelOpt, DType::kF32, 9, 32, Fill::kRandom, 3, ""},
      {"ct_f32_ties", Layout::kCompressedTensors, DType::kF32, 14, 64, Fill::kTies, 4, ""},
      {"mo_f32_ties", Layout::kModelOpt, DType::kF32, 14, 64, Fill::kTies, 4, ""},
      {"ct_bf16_tiny_blocks", Layout::kCompressedTensors, DType::kBF16, 8, 64, Fill::kTinyBlocks, 5,
       ""},
      {"mo_bf16_tiny_blocks", Layout::kModelOpt, DType::kBF16, 8, 64, Fill::kTinyBlocks, 5, ""},
      {"ct_zero", Layout::kCompressedTensors, DType::kBF16, 3, 32, Fill::kZero, 6, ""},
      {"mo_zero", Layout::kModelOpt, DType::kBF16, 3, 32, Fill::kZero, 6, ""},
      {"ct_fused_q", Layout::kCompressedTensors, DType::kBF16, 32, 64, Fill::kRandom, 7, "ct_qk"},
      {"ct_fused_k", Layout::kCompressedTensors, DType::kBF16, 16, 64, Fill::kRandom, 8, "ct_qk"},
      {"mo_fused_gate", Layout::kModelOpt, DType::kBF16, 32, 64, Fill::kRandom, 9, "mo_gu"},
      {"mo_fused_up", Layout::kModelOpt, DType::kBF16, 48, 64, Fill::kRandom, 10, "mo_gu"},
  };
  std::filesystem::create_directories(dir);
  std::filesystem::remove(dir / "quantized.safetensors");
  std::filesystem::remove(dir / "expected.safetensors");
  std::unique_ptr<WeightEncoder> enc = MakeCpuEncoder(0);
  std::deque<Tensor> weights;
  for (const Case& c : cases) weights.push_back(MakeWeight(c));
  // Tensor amax per case: its own, or the max over its group.
  std::vector<float> amax(std::size(cases));
  for (size_t i = 0; i < std::size(cases); ++i) {
    amax[i] = cases[i].fill == Fill::kTies ? 2688.0f : AbsMaxRef(weights[i].view());
  }
  for (size_t i = 0; i < std::size(cases); ++i) {
    for (size_t j = 0; j < std::size(cases); ++j) {
      if (*cases[i].group && std::string(cases[i].group) == cases[j].group) {
        amax[i] = std::max(amax[i], AbsMaxRef(weights[j].view()));
      }
    }
  }
  std::deque<Tensor> keep;  // owns every tensor the views below borrow
  std::vector<std::pair<std::string, TensorView>> quantized, expected;
  nlohmann::json config = nlohmann::json::object();
  const std::vector<std::string> ignore = {"lm_head"};
  for (size_t i = 0; i < std::size(cases); ++i) {
    const Case& c = cases[i];
    const Tensor& w = weights[i];
    FormatParams p;
    p.bits = 4;
    p.group_size = 16;
    p.tensor_amax = amax[i];
    p.extra[kNvfp4LayoutKey] = LayoutName(c.layout);
    CancelToken cancel;
    absl::StatusOr<EncodedWeight> e = enc->Encode(Nvfp4Format(), p, w.view(), cancel);
    if (!e.ok()) {
      std::fprintf(stderr, "%s: %s\n", c.name, e.status().ToString().c_str());
      return 1;
    }
    absl::StatusOr<std::vector<float>> d = Nvfp4Format().DecodeRef(p, *e, c.rows, c.cols);
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
    const bool modelopt = c.layout == Layout::kModelOpt;
    config[c.name] = {
        {"layout", LayoutName(c.layout)},
        {"tensor_amax", amax[i]},
        {"rows", c.rows},
        {"cols", c.cols},
        {"group", c.group},
        {"quantization_config",
         modelopt ? Nvfp4ModelOptConfig(ignore) : Nvfp4CompressedTensorsConfig(ignore)},
        {"hf_quant_config", modelopt ? Nvfp4ModelOptHfQuantConfig(ignore) : nlohmann::json()},
    };
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
