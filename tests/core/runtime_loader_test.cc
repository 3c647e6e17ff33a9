#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/formats/registry.h"
#include "core/gguf/ggml_quants.h"
#include "core/gguf/gguf_file.h"
#include "core/gguf/gguf_writer.h"
#include "core/gguf/hf_to_gguf.h"
#include "core/io/safetensors.h"
#include "core/model/hf_model.h"
#include "core/runtime/model_loader.h"
#include "core/tensor/float_bits.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/tiny_model.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

bool Mentions(const absl::Status& s, const std::string& part) {
  return std::string(s.message()).find(part) != std::string::npos;
}

// The file mapped at `p` and the offset in it of the byte `p` points to,
// from /proc/self/maps; an empty path when `p` is not in a file mapping.
struct FileLocation {
  std::string path;
  uint64_t offset = 0;
};
FileLocation MappedFileAt(const void* p) {
  std::ifstream maps("/proc/self/maps");
  const auto addr = reinterpret_cast<uintptr_t>(p);
  std::string line;
  while (std::getline(maps, line)) {
    unsigned long long begin = 0, end = 0, offset = 0, inode = 0;
    char perms[8], dev[16];
    int consumed = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %15s %llu %n", &begin, &end, perms, &offset,
                    dev, &inode, &consumed) < 6) {
      continue;
    }
    if (addr < begin || addr >= end || inode == 0) continue;
    return {line.substr(consumed), offset + (addr - begin)};
  }
  return {};
}

float At(const WeightMatrix& m, int64_t i) {
  switch (m.dtype()) {
    case DType::kF32:
      return m.as<float>()[i];
    case DType::kF16:
      return F16ToFloat(m.as<uint16_t>()[i]);
    default:
      return Bf16ToFloat(m.as<uint16_t>()[i]);
  }
}

// The loaded matrix of HF module `module` ("model.layers.1.mlp.up_proj").
const WeightMatrix* MatrixOf(const LoadedModel& m, const std::string& module) {
  const LlamaWeights& w = m.weights;
  if (module == "model.embed_tokens") return &w.embed;
  if (module == "lm_head") return &w.lm_head();
  int layer = -1;
  char name[64] = {};
  if (std::sscanf(module.c_str(), "model.layers.%d.%63s", &layer, name) != 2 || layer < 0 ||
      layer >= static_cast<int>(w.layers.size())) {
    return nullptr;
  }
  const LlamaLayerWeights& L = w.layers[layer];
  const std::map<std::string, const WeightMatrix*> by_name = {
      {"self_attn.q_proj", &L.q}, {"self_attn.k_proj", &L.k}, {"self_attn.v_proj", &L.v},
      {"self_attn.o_proj", &L.o}, {"mlp.gate_proj", &L.gate}, {"mlp.up_proj", &L.up},
      {"mlp.down_proj", &L.down}};
  auto it = by_name.find(name);
  return it == by_name.end() ? nullptr : it->second;
}

json ReadJson(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

void WriteJson(const fs::path& p, const json& j) { std::ofstream(p) << j.dump(2); }

class RuntimeLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            absl::StrCat("runtime_loader_",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path Tiny(const std::string& name, TinyLlamaOptions o = {}) {
    const fs::path dir = root_ / name;
    EXPECT_TRUE(WriteTinyLlama(dir, o).ok());
    return dir;
  }

  struct Quantized {
    FormatParams params;
    EncodedWeight encoded;
    int64_t rows, cols;
  };

  // Writes `dst`: `src` with every decoder Linear weight encoded by format
  // `format` (EncodeRef, scales in the weight's dtype, tensor_amax of the
  // tensor) and config.json's quantization_config = `qconfig` (omitted
  // when null). Returns the encodings by module.
  std::map<std::string, Quantized> QuantizeFolder(const fs::path& src, const fs::path& dst,
                                                  const WeightFormat& format, FormatParams base,
                                                  const json& qconfig) {
    std::map<std::string, Quantized> out;
    absl::StatusOr<std::unique_ptr<HfModel>> hf = HfModel::Open(src);
    EXPECT_TRUE(hf.ok()) << hf.status();
    if (!hf.ok()) return out;
    fs::create_directories(dst);
    std::vector<std::pair<std::string, TensorView>> views;
    for (const ModelTensor& t : (*hf)->tensors()) {
      const bool linear =
          absl::StartsWith(t.name, "model.layers.") && absl::EndsWith(t.name, "_proj.weight");
      if (!linear) {
        views.emplace_back(t.name, t.view());
        continue;
      }
      const std::string module = t.name.substr(0, t.name.size() - 7);
      Quantized q{base, {}, t.entry->shape[0], t.entry->shape[1]};
      q.params.scale_dtype = t.entry->dtype;
      q.params.tensor_amax = AbsMaxRef(t.view());
      absl::StatusOr<EncodedWeight> e = EncodeRef(format, q.params, t.view());
      EXPECT_TRUE(e.ok()) << t.name << " " << e.status();
      if (!e.ok()) return {};
      q.encoded = std::move(*e);
      out[module] = std::move(q);
    }
    for (const auto& [module, q] : out) {
      for (const EncodedPart& part : q.encoded.parts) {
        views.emplace_back(absl::StrCat(module, ".", part.suffix), part.tensor.view());
      }
    }
    EXPECT_TRUE(WriteSafetensors(dst / "model.safetensors", views, {{"format", "pt"}}).ok());
    json config = (*hf)->config();
    if (!qconfig.is_null()) config["quantization_config"] = qconfig;
    WriteJson(dst / "config.json", config);
    return out;
  }

  // Loads `dir` and checks every quantized module against DecodeRef.
  void ExpectDecodedEqual(const fs::path& dir, const WeightFormat& format,
                          const std::map<std::string, Quantized>& quantized,
                          DequantDType dtype = DequantDType::kAuto) {
    LoadOptions o;
    o.dequant_dtype = dtype;
    o.threads = 3;
    absl::StatusOr<std::unique_ptr<LoadedModel>> m = LoadModel(dir, o);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ((*m)->source_format, std::string(format.name()));
    ASSERT_EQ(quantized.size(), 14u);
    for (const auto& [module, q] : quantized) {
      const WeightMatrix* w = MatrixOf(**m, module);
      ASSERT_NE(w, nullptr) << module;
      EXPECT_FALSE(w->mapped()) << module;
      absl::StatusOr<std::vector<float>> want =
          format.DecodeRef(q.params, q.encoded, q.rows, q.cols);
      ASSERT_TRUE(want.ok()) << want.status();
      ASSERT_EQ(w->rows() * w->cols(), static_cast<int64_t>(want->size()));
      if (dtype == DequantDType::kF32) {
        EXPECT_EQ(w->dtype(), DType::kF32);
      }
      if (dtype == DequantDType::kBF16) {
        EXPECT_EQ(w->dtype(), DType::kBF16);
      }
      int64_t mismatches = 0;
      for (size_t i = 0; i < want->size(); ++i) {
        const float expect =
            dtype == DequantDType::kBF16 ? Bf16ToFloat(FloatToBf16((*want)[i])) : (*want)[i];
        mismatches += FloatToBits(At(*w, i)) != FloatToBits(expect);
      }
      EXPECT_EQ(mismatches, 0) << module;
    }
    // Unquantized tensors stay mapped views.
    EXPECT_TRUE((*m)->weights.embed.mapped());
    absl::StatusOr<int64_t> estimate = EstimateMemory(dir);
    ASSERT_TRUE(estimate.ok());
    EXPECT_GE(*estimate, (*m)->bytes_resident());
  }

  fs::path root_;
};

TEST_F(RuntimeLoaderTest, MapsBf16WeightsWithoutCopying) {
  const fs::path dir = Tiny("bf16");
  absl::StatusOr<std::unique_ptr<LoadedModel>> m = LoadModel(dir, {});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->source_format, "bf16");
  EXPECT_EQ((*m)->config.num_layers, 2);
  EXPECT_FALSE((*m)->weights.lm_head_tied());
  absl::StatusOr<std::unique_ptr<HfModel>> hf = HfModel::Open(dir);
  ASSERT_TRUE(hf.ok());
  for (const ModelTensor& t : (*hf)->tensors()) {
    const TensorView v = t.view();
    if (t.entry->shape.size() == 2) {
      const WeightMatrix* w = MatrixOf(**m, t.name.substr(0, t.name.size() - 7));
      ASSERT_NE(w, nullptr) << t.name;
      EXPECT_TRUE(w->mapped()) << t.name;
      EXPECT_EQ(w->dtype(), DType::kBF16);
      // The file's own pages, not a copy: the same offset of the same file
      // as the separately opened view.
      const FileLocation loaded = MappedFileAt(w->data());
      const FileLocation opened = MappedFileAt(v.data);
      EXPECT_EQ(loaded.path, fs::canonical(dir / "model.safetensors").string()) << t.name;
      EXPECT_EQ(loaded.path, opened.path) << t.name;
      EXPECT_EQ(loaded.offset, opened.offset) << t.name;
      EXPECT_EQ(std::memcmp(w->data(), v.data, v.nbytes), 0) << t.name;
    }
  }
  EXPECT_EQ((*m)->weights.layers[1].attn_norm[5],
            LoadAsFloat((*hf)->Find("model.layers.1.input_layernorm.weight")->view(), 5));
  const int64_t vectors = (2 * 2 + 1) * 128 * 4;
  EXPECT_EQ((*m)->bytes_owned(), vectors);
  EXPECT_EQ((*m)->bytes_resident(),
            static_cast<int64_t>((*hf)->weight_bytes()) - vectors / 2 + vectors);
  absl::StatusOr<int64_t> estimate = EstimateMemory(dir);
  ASSERT_TRUE(estimate.ok()) << estimate.status();
  EXPECT_EQ(*estimate, (*m)->bytes_resident());
}

// The tiny model written as an F32 GGUF the way the converter lays it out
// (tensor names, Q/K rows permuted for ggml's rope, metadata) loads to the
// same config and the same weights as its folder.
TEST_F(RuntimeLoaderTest, LoadsGgufLikeTheFolder) {
  TinyLlamaOptions o;
  o.dtype = DType::kF32;
  const fs::path dir = Tiny("gguf_src", o);
  absl::StatusOr<std::unique_ptr<HfModel>> hf = HfModel::Open(dir);
  ASSERT_TRUE(hf.ok()) << hf.status();
  absl::StatusOr<const GgufArch*> arch = FindGgufArch("LlamaForCausalLM");
  ASSERT_TRUE(arch.ok()) << arch.status();
  absl::StatusOr<GgufHparams> hp = ReadGgufHparams((*hf)->config());
  ASSERT_TRUE(hp.ok()) << hp.status();
  absl::StatusOr<std::vector<GgufTensorSource>> sources = PlanGgufTensors(**hf, **arch, *hp);
  ASSERT_TRUE(sources.ok()) << sources.status();
  std::vector<GgufTensorInfo> infos;
  std::vector<std::vector<float>> values;
  for (const GgufTensorSource& t : *sources) {
    std::vector<float> v = t.generated;
    if (t.source != nullptr) {
      Tensor permuted;
      TensorView view = t.source->view();
      if (t.permute == RowPermute::kRope) {
        absl::StatusOr<Tensor> p = PermuteRowsForRope(view, t.permute_heads);
        ASSERT_TRUE(p.ok()) << p.status();
        permuted = std::move(*p);
        view = permuted.view();
      }
      v.resize(NumElements(t.shape));
      for (size_t i = 0; i < v.size(); ++i) v[i] = LoadAsFloat(view, static_cast<int64_t>(i));
    }
    infos.push_back({t.name, GgmlType::kF32, GgmlDims(t.shape)});
    values.push_back(std::move(v));
  }
  const fs::path gguf = root_ / "tiny-f32.gguf";
  {
    absl::StatusOr<std::unique_ptr<GgufWriter>> w =
        GgufWriter::Create(gguf, GgufModelMetadata(**arch, *hp, "tiny", /*ALL_F32*/ 0), infos);
    ASSERT_TRUE(w.ok()) << w.status();
    for (size_t i = 0; i < infos.size(); ++i) {
      ASSERT_TRUE((*w)->Write(infos[i].name, values[i].data(), values[i].size() * 4).ok());
    }
    ASSERT_TRUE((*w)->Finish().ok());
  }
  absl::StatusOr<std::unique_ptr<LoadedModel>> from_gguf = LoadModel(gguf, {});
  ASSERT_TRUE(from_gguf.ok()) << from_gguf.status();
  absl::StatusOr<std::unique_ptr<LoadedModel>> from_dir = LoadModel(dir, {});
  ASSERT_TRUE(from_dir.ok()) << from_dir.status();
  const LoadedModel& a = **from_gguf;
  const LoadedModel& b = **from_dir;
  EXPECT_EQ(a.source_format.substr(0, 5), "gguf:");
  EXPECT_EQ(a.config.num_layers, b.config.num_layers);
  EXPECT_EQ(a.config.num_kv_heads, b.config.num_kv_heads);
  EXPECT_EQ(a.config.head_dim, b.config.head_dim);
  EXPECT_EQ(a.config.vocab_size, b.config.vocab_size);
  EXPECT_EQ(a.config.intermediate_size, b.config.intermediate_size);
  EXPECT_FLOAT_EQ(a.config.rms_norm_eps, b.config.rms_norm_eps);
  EXPECT_DOUBLE_EQ(a.config.rope.theta, b.config.rope.theta);
  auto expect_same = [](const WeightMatrix& x, const WeightMatrix& y, const std::string& what) {
    ASSERT_EQ(x.rows(), y.rows()) << what;
    ASSERT_EQ(x.cols(), y.cols()) << what;
    for (int64_t i = 0; i < x.rows() * x.cols(); ++i) {
      ASSERT_EQ(At(x, i), At(y, i)) << what << " element " << i;
    }
  };
  expect_same(a.weights.embed, b.weights.embed, "embed");
  expect_same(a.weights.lm_head(), b.weights.lm_head(), "lm_head");
  EXPECT_EQ(a.weights.final_norm, b.weights.final_norm);
  for (size_t l = 0; l < b.weights.layers.size(); ++l) {
    const LlamaLayerWeights& x = a.weights.layers[l];
    const LlamaLayerWeights& y = b.weights.layers[l];
    const std::string at = absl::StrCat("layer ", l, " ");
    expect_same(x.q, y.q, at + "q");  // the permutation undone
    expect_same(x.k, y.k, at + "k");
    expect_same(x.v, y.v, at + "v");
    expect_same(x.o, y.o, at + "o");
    expect_same(x.gate, y.gate, at + "gate");
    expect_same(x.up, y.up, at + "up");
    expect_same(x.down, y.down, at + "down");
    EXPECT_EQ(x.attn_norm, y.attn_norm) << at;
    EXPECT_EQ(x.ffn_norm, y.ffn_norm) << at;
  }
}

// The same model with every matrix stored as Q8_0 (1-D tensors F32): the
// loader dequantizes with ggml's arithmetic, so each weight is within about
// half a Q8_0 step (block absmax / 127) of the folder's, and the Q/K
// permutation is undone (a wrong row order would be off by whole values).
// Half a step plus the scale's FP16 rounding (127 x 2^-11 of a step).
constexpr double kQ8StepFraction = 0.5 + 127.0 / 2048 + 1e-3;
TEST_F(RuntimeLoaderTest, LoadsQuantizedGgufWithinItsStep) {
  TinyLlamaOptions o;
  o.dtype = DType::kF32;
  const fs::path dir = Tiny("gguf_q8_src", o);
  absl::StatusOr<std::unique_ptr<HfModel>> hf = HfModel::Open(dir);
  ASSERT_TRUE(hf.ok()) << hf.status();
  absl::StatusOr<const GgufArch*> arch = FindGgufArch("LlamaForCausalLM");
  ASSERT_TRUE(arch.ok()) << arch.status();
  absl::StatusOr<GgufHparams> hp = ReadGgufHparams((*hf)->config());
  ASSERT_TRUE(hp.ok()) << hp.status();
  absl::StatusOr<std::vector<GgufTensorSource>> sources = PlanGgufTensors(**hf, **arch, *hp);
  ASSERT_TRUE(sources.ok()) << sources.status();
  std::vector<GgufTensorInfo> infos;
  std::vector<std::vector<uint8_t>> data;
  for (const GgufTensorSource& t : *sources) {
    std::vector<float> v = t.generated;
    if (t.source != nullptr) {
      Tensor permuted;
      TensorView view = t.source->view();
      if (t.permute == RowPermute::kRope) {
        absl::StatusOr<Tensor> p = PermuteRowsForRope(view, t.permute_heads);
        ASSERT_TRUE(p.ok()) << p.status();
        permuted = std::move(*p);
        view = permuted.view();
      }
      v.resize(NumElements(t.shape));
      for (size_t i = 0; i < v.size(); ++i) v[i] = LoadAsFloat(view, static_cast<int64_t>(i));
    }
    const std::vector<int64_t> dims = GgmlDims(t.shape);
    const bool matrix = dims.size() == 2 && dims[0] % 32 == 0;
    const GgmlType type = matrix ? GgmlType::kQ8_0 : GgmlType::kF32;
    std::vector<uint8_t> bytes;
    if (matrix) {
      absl::StatusOr<int64_t> row_bytes = RowBytes(type, dims[0]);
      ASSERT_TRUE(row_bytes.ok());
      bytes.resize(static_cast<size_t>(*row_bytes * dims[1]));
      ASSERT_TRUE(QuantizeGgml(type, v.data(), dims[1], dims[0], nullptr, bytes.data()).ok());
    } else {
      bytes.resize(v.size() * 4);
      std::memcpy(bytes.data(), v.data(), bytes.size());
    }
    infos.push_back({t.name, type, dims});
    data.push_back(std::move(bytes));
  }
  const fs::path gguf = root_ / "tiny-q8_0.gguf";
  {
    absl::StatusOr<std::unique_ptr<GgufWriter>> w =
        GgufWriter::Create(gguf, GgufModelMetadata(**arch, *hp, "tiny", /*MOSTLY_Q8_0*/ 7), infos);
    ASSERT_TRUE(w.ok()) << w.status();
    for (size_t i = 0; i < infos.size(); ++i) {
      ASSERT_TRUE((*w)->Write(infos[i].name, data[i].data(), data[i].size()).ok());
    }
    ASSERT_TRUE((*w)->Finish().ok());
  }
  absl::StatusOr<std::unique_ptr<LoadedModel>> from_gguf = LoadModel(gguf, {});
  ASSERT_TRUE(from_gguf.ok()) << from_gguf.status();
  absl::StatusOr<std::unique_ptr<LoadedModel>> from_dir = LoadModel(dir, {});
  ASSERT_TRUE(from_dir.ok()) << from_dir.status();
  const LoadedModel& a = **from_gguf;
  const LoadedModel& b = **from_dir;
  auto expect_near = [](const WeightMatrix& x, const WeightMatrix& y, const std::string& what) {
    ASSERT_EQ(x.rows(), y.rows()) << what;
    ASSERT_EQ(x.cols(), y.cols()) << what;
    int differ = 0;
    for (int64_t r = 0; r < y.rows(); ++r) {
      double row_max = 0;
      for (int64_t c = 0; c < y.cols(); ++c) {
        row_max = std::max(row_max, std::abs(static_cast<double>(At(y, r * y.cols() + c))));
      }
      for (int64_t c = 0; c < y.cols(); ++c) {
        const int64_t i = r * y.cols() + c;
        const double d = std::abs(static_cast<double>(At(x, i)) - At(y, i));
        ASSERT_LE(d, kQ8StepFraction * row_max / 127) << what << " row " << r << " col " << c;
        differ += d != 0;
      }
    }
    EXPECT_GT(differ, 0) << what << ": Q8_0 left every value exact?";
  };
  expect_near(a.weights.embed, b.weights.embed, "embed");
  for (size_t l = 0; l < b.weights.layers.size(); ++l) {
    const LlamaLayerWeights& x = a.weights.layers[l];
    const LlamaLayerWeights& y = b.weights.layers[l];
    const std::string at = absl::StrCat("layer ", l, " ");
    expect_near(x.q, y.q, at + "q");
    expect_near(x.k, y.k, at + "k");
    expect_near(x.v, y.v, at + "v");
    expect_near(x.down, y.down, at + "down");
    EXPECT_EQ(x.attn_norm, y.attn_norm) << at;
  }
}

TEST_F(RuntimeLoaderTest, LoadsF32TiedShardedAndF16) {
  TinyLlamaOptions o;
  o.dtype = DType::kF32;
  o.tie_embeddings = true;
  o.shards = 3;
  absl::StatusOr<std::unique_ptr<LoadedModel>> m = LoadModel(Tiny("f32", o), {});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->source_format, "f32");
  EXPECT_TRUE((*m)->weights.lm_head_tied());
  EXPECT_EQ(&(*m)->weights.lm_head(), &(*m)->weights.embed);
  o.dtype = DType::kF16;
  o.shards = 1;
  m = LoadModel(Tiny("f16", o), {});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->source_format, "f16");
  EXPECT_EQ((*m)->weights.layers[0].down.dtype(), DType::kF16);
}

struct RtnCase {
  const char* name;
  int bits;
  int64_t group_size;
  bool symmetric;
};

TEST_F(RuntimeLoaderTest, DecodesRtnIntAsDecodeRefDoes) {
  absl::StatusOr<const WeightFormat*> f = FindFormat("rtn_int");
  ASSERT_TRUE(f.ok());
  const fs::path src = Tiny("src");
  for (const RtnCase& c :
       {RtnCase{"int4_g32_sym", 4, 32, true}, RtnCase{"int4_g64_asym", 4, 64, false},
        RtnCase{"int8_channel", 8, 0, true}}) {
    SCOPED_TRACE(c.name);
    FormatParams p;
    p.bits = c.bits;
    p.group_size = c.group_size;
    p.symmetric = c.symmetric;
    json weights = {{"num_bits", c.bits},
                    {"type", "int"},
                    {"symmetric", c.symmetric},
                    {"strategy", c.group_size > 0 ? "group" : "channel"},
                    {"group_size", c.group_size > 0 ? json(c.group_size) : json(nullptr)}};
    json qc = {{"quant_method", "compressed-tensors"},
               {"format", "pack-quantized"},
               {"config_groups", {{"group_0", {{"targets", {"Linear"}}, {"weights", weights}}}}}};
    const fs::path dst = root_ / c.name;
    const auto quantized = QuantizeFolder(src, dst, **f, p, qc);
    ExpectDecodedEqual(dst, **f, quantized);
    if (c.bits == 4 && c.symmetric) {
      ExpectDecodedEqual(dst, **f, quantized, DequantDType::kF32);
      ExpectDecodedEqual(dst, **f, quantized, DequantDType::kBF16);
    }
  }
}

TEST_F(RuntimeLoaderTest, DecodesNvfp4BothLayouts) {
  absl::StatusOr<const WeightFormat*> f = FindFormat("nvfp4");
  if (!f.ok()) GTEST_SKIP() << "nvfp4 not registered in this build";
  const fs::path src = Tiny("src");
  FormatParams p;
  p.bits = 4;
  p.group_size = 16;
  p.extra["layout"] = "compressed-tensors";
  json weights = {{"num_bits", 4},
                  {"type", "float"},
                  {"symmetric", true},
                  {"strategy", "tensor_group"},
                  {"group_size", 16}};
  json qc = {
      {"quant_method", "compressed-tensors"},
      {"format", "nvfp4-pack-quantized"},
      {"config_groups",
       {{"group_0",
         {{"targets", {"Linear"}}, {"weights", weights}, {"format", "nvfp4-pack-quantized"}}}}}};
  ExpectDecodedEqual(root_ / "ct", **f, QuantizeFolder(src, root_ / "ct", **f, p, qc));

  p.extra["layout"] = "modelopt";
  const auto modelopt = QuantizeFolder(src, root_ / "mo", **f, p, nullptr);
  WriteJson(root_ / "mo" / "hf_quant_config.json",
            {{"producer", {{"name", "modelopt"}}},
             {"quantization", {{"quant_algo", "W4A16_NVFP4"}, {"group_size", 16}}}});
  ExpectDecodedEqual(root_ / "mo", **f, modelopt);  // from hf_quant_config.json alone
  json config = ReadJson(root_ / "mo" / "config.json");
  config["quantization_config"] = {{"quant_method", "modelopt"}, {"quant_algo", "W4A16_NVFP4"}};
  WriteJson(root_ / "mo" / "config.json", config);
  ExpectDecodedEqual(root_ / "mo", **f, modelopt);
}

TEST_F(RuntimeLoaderTest, DecodesFp8Strategies) {
  absl::StatusOr<const WeightFormat*> f = FindFormat("fp8");
  if (!f.ok()) GTEST_SKIP() << "fp8 not registered in this build";
  const fs::path src = Tiny("src");
  for (const char* strategy : {"channel", "block", "tensor"}) {
    SCOPED_TRACE(strategy);
    FormatParams p;
    p.bits = 8;
    p.extra["strategy"] = strategy;
    json weights = {
        {"num_bits", 8}, {"type", "float"}, {"symmetric", true}, {"strategy", strategy}};
    if (std::string(strategy) == "block") weights["block_structure"] = {128, 128};
    json qc = {{"quant_method", "compressed-tensors"},
               {"format", "float-quantized"},
               {"config_groups", {{"group_0", {{"targets", {"Linear"}}, {"weights", weights}}}}}};
    const fs::path dst = root_ / strategy;
    ExpectDecodedEqual(dst, **f, QuantizeFolder(src, dst, **f, p, qc));
  }
}

TEST_F(RuntimeLoaderTest, ReportsUnsupportedArchitectureAtInspection) {
  const fs::path dir = Tiny("gpt2");
  json config = ReadJson(dir / "config.json");
  config["architectures"] = {"GPT2LMHeadModel"};
  WriteJson(dir / "config.json", config);
  for (const absl::Status& s : {LoadModel(dir, {}).status(), EstimateMemory(dir).status(),
                                InspectModel(dir, {}).status()}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(Mentions(s, "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM")) << s;
  }
  EXPECT_EQ(LoadModel(root_ / "nope", {}).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RuntimeLoaderTest, RejectsMissingAndMisshapenTensors) {
  const fs::path src = Tiny("src");
  absl::StatusOr<std::unique_ptr<HfModel>> hf = HfModel::Open(src);
  ASSERT_TRUE(hf.ok());
  Tensor wrong = Tensor::Zeros(DType::kBF16, {256, 127});
  for (const char* mode : {"missing", "shape", "no_config"}) {
    SCOPED_TRACE(mode);
    const fs::path dst = root_ / mode;
    fs::create_directories(dst);
    fs::copy_file(src / "config.json", dst / "config.json");
    std::vector<std::pair<std::string, TensorView>> views;
    Tensor packed = Tensor::Zeros(DType::kI32, {256, 16});
    for (const ModelTensor& t : (*hf)->tensors()) {
      if (t.name == "model.layers.1.mlp.up_proj.weight") {
        if (std::string(mode) == "shape") views.emplace_back(t.name, wrong.view());
        if (std::string(mode) == "no_config") {
          views.emplace_back("model.layers.1.mlp.up_proj.weight_packed", packed.view());
        }
        continue;
      }
      views.emplace_back(t.name, t.view());
    }
    ASSERT_TRUE(WriteSafetensors(dst / "model.safetensors", views, {}).ok());
    absl::Status s = LoadModel(dst, {}).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_TRUE(Mentions(s, "model.layers.1.mlp.up_proj.weight")) << s;
  }
}

TEST_F(RuntimeLoaderTest, UnknownSchemesAreUnimplementedAndCorruptPartsFail) {
  const fs::path src = Tiny("src");
  absl::StatusOr<const WeightFormat*> f = FindFormat("rtn_int");
  ASSERT_TRUE(f.ok());
  FormatParams p;
  p.bits = 4;
  p.group_size = 32;
  QuantizeFolder(src, root_ / "q", **f, p, nullptr);
  json config = ReadJson(root_ / "q" / "config.json");
  config["quantization_config"] = {{"quant_method", "awq"}, {"bits", 4}};
  WriteJson(root_ / "q" / "config.json", config);
  absl::Status s = LoadModel(root_ / "q", {}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
  EXPECT_TRUE(Mentions(s, "awq")) << s;
  if (!FindFormat("bnb_int8").ok()) {
    config["quantization_config"] = {{"quant_method", "bitsandbytes"}, {"load_in_8bit", true}};
    WriteJson(root_ / "q" / "config.json", config);
    s = LoadModel(root_ / "q", {}).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
    EXPECT_TRUE(Mentions(s, "bnb_int8")) << s;
  }
  // A pack-quantized config claiming group 64 for group-32 parts: the
  // format's DecodeRef rejects the scale shape, naming the module.
  config["quantization_config"] = {
      {"quant_method", "compressed-tensors"},
      {"format", "pack-quantized"},
      {"config_groups",
       {{"group_0",
         {{"weights",
           {{"num_bits", 4}, {"type", "int"}, {"strategy", "group"}, {"group_size", 64}}}}}}}};
  WriteJson(root_ / "q" / "config.json", config);
  s = LoadModel(root_ / "q", {}).status();
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "model.layers.")) << s;
}

TEST_F(RuntimeLoaderTest, CancelsBetweenModules) {
  const fs::path src = Tiny("src");
  absl::StatusOr<const WeightFormat*> f = FindFormat("rtn_int");
  ASSERT_TRUE(f.ok());
  FormatParams p;
  p.bits = 8;
  json qc = {
      {"quant_method", "compressed-tensors"},
      {"format", "pack-quantized"},
      {"config_groups",
       {{"group_0", {{"weights", {{"num_bits", 8}, {"type", "int"}, {"strategy", "channel"}}}}}}}};
  QuantizeFolder(src, root_ / "q", **f, p, qc);
  CancelToken cancel;
  cancel.Cancel();
  LoadOptions o;
  o.cancel = &cancel;
  EXPECT_EQ(LoadModel(root_ / "q", o).status().code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace quantd
