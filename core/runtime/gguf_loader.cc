#include "core/runtime/gguf_loader.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/gguf/ggml_quants.h"
#include "core/runtime/load_util.h"
#include "core/tensor/float_bits.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;

bool IsPlainFloat(GgmlType t) {
  return t == GgmlType::kF32 || t == GgmlType::kF16 || t == GgmlType::kBF16;
}

DType PlainDType(GgmlType t) {
  switch (t) {
    case GgmlType::kF16:
      return DType::kF16;
    case GgmlType::kBF16:
      return DType::kBF16;
    default:
      return DType::kF32;
  }
}

// `n` values of tensor data of type `t` as float32.
absl::Status DequantizeGgml(GgmlType t, const uint8_t* data, int64_t n, float* out) {
  switch (t) {
    case GgmlType::kF32:
      std::memcpy(out, data, static_cast<size_t>(n) * 4);
      return absl::OkStatus();
    case GgmlType::kF16:
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, data + 2 * i, 2);
        out[i] = t == GgmlType::kF16 ? F16ToFloat(h) : Bf16ToFloat(h);
      }
      return absl::OkStatus();
    default:
      // Every quantized type quantd writes: ggml's dequantization (the same
      // reference the gguf PyPI reader and llama.cpp agree with), as one row.
      return quantd::DequantizeGgml(t, data, 1, n, out);
  }
}

struct GgufMatrix {
  const GgufTensor* tensor = nullptr;
  int64_t rows = 0, cols = 0;
  int64_t permute_heads = 0;  // 0: rows in HF order already
  WeightMatrix* dest = nullptr;
};

struct GgufVector {
  const GgufTensor* tensor = nullptr;
  int64_t size = 0;
  int64_t permute_heads = 0;
  std::vector<float>* dest = nullptr;
};

struct GgufPlan {
  std::vector<GgufMatrix> matrices;
  std::vector<GgufVector> vectors;
};

const char* HfArchOf(const std::string& arch) {
  if (arch == "llama") return "LlamaForCausalLM";
  if (arch == "qwen2") return "Qwen2ForCausalLM";
  return nullptr;
}

absl::StatusOr<std::string> Arch(const GgufFile& f) {
  const GgufValue* v = f.Find("general.architecture");
  if (v == nullptr || v->GetString() == nullptr) {
    return absl::InvalidArgumentError("GGUF: no general.architecture string");
  }
  const std::string arch = *v->GetString();
  if (HfArchOf(arch) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GGUF architecture \"", arch,
        "\" is not supported by the model runtime (supported: llama, qwen2; as HF classes: ",
        SupportedArchitecturesList(), ")"));
  }
  return arch;
}

absl::StatusOr<int64_t> Uint(const GgufFile& f, const std::string& key,
                             std::optional<int64_t> fallback) {
  const GgufValue* v = f.Find(key);
  if (v == nullptr) {
    if (fallback.has_value()) return *fallback;
    return absl::InvalidArgumentError(absl::StrCat("GGUF: missing ", key));
  }
  const std::optional<uint64_t> u = v->AsUint64();
  if (!u.has_value() || *u > (uint64_t{1} << 40)) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF: ", key,
                     " must be an unsigned integer (per-layer arrays are not "
                     "supported)"));
  }
  return static_cast<int64_t>(*u);
}

absl::StatusOr<double> Real(const GgufFile& f, const std::string& key, double fallback) {
  const GgufValue* v = f.Find(key);
  if (v == nullptr) return fallback;
  const std::optional<double> d = v->AsDouble();
  if (!d.has_value() || !std::isfinite(*d)) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF: ", key, " must be a float"));
  }
  return *d;
}

// ne must be {cols, rows} (or {n} for a vector, rows = 0).
absl::Status CheckShape(const GgufTensor& t, int64_t rows, int64_t cols) {
  const std::vector<int64_t> want =
      rows == 0 ? std::vector<int64_t>{cols} : std::vector<int64_t>{cols, rows};
  if (t.ne != want) {
    std::string got;
    for (int64_t d : t.ne) absl::StrAppend(&got, got.empty() ? "" : ", ", d);
    return absl::InvalidArgumentError(absl::StrCat("GGUF tensor ", t.name, " has ne [", got,
                                                   "], expected [", cols,
                                                   rows == 0 ? "" : absl::StrCat(", ", rows), "]"));
  }
  return absl::OkStatus();
}

absl::StatusOr<GgufPlan> PlanGguf(const GgufFile& f, LoadedModel* out) {
  ASSIGN_OR_RETURN(out->config, LlamaConfigFromGguf(f));
  const LlamaConfig& c = out->config;
  const bool permute = c.architecture == "LlamaForCausalLM";
  GgufPlan plan;
  auto matrix = [&](const std::string& name, int64_t rows, int64_t cols, int64_t heads,
                    WeightMatrix* dest) -> absl::Status {
    const GgufTensor* t = f.FindTensor(name);
    if (t == nullptr) return absl::InvalidArgumentError(absl::StrCat("GGUF: missing ", name));
    RETURN_IF_ERROR(CheckShape(*t, rows, cols));
    plan.matrices.push_back({t, rows, cols, permute ? heads : 0, dest});
    return absl::OkStatus();
  };
  auto vector = [&](const std::string& name, int64_t size, int64_t heads,
                    std::vector<float>* dest) -> absl::Status {
    const GgufTensor* t = f.FindTensor(name);
    if (t == nullptr) return absl::InvalidArgumentError(absl::StrCat("GGUF: missing ", name));
    RETURN_IF_ERROR(CheckShape(*t, 0, size));
    plan.vectors.push_back({t, size, permute ? heads : 0, dest});
    return absl::OkStatus();
  };
  LlamaWeights& w = out->weights;
  const int64_t h = c.hidden_size, ff = c.intermediate_size;
  RETURN_IF_ERROR(matrix("token_embd.weight", c.vocab_size, h, 0, &w.embed));
  w.layers.resize(c.num_layers);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LlamaLayerWeights& L = w.layers[l];
    const std::string p = absl::StrCat("blk.", l, ".");
    RETURN_IF_ERROR(vector(p + "attn_norm.weight", h, 0, &L.attn_norm));
    RETURN_IF_ERROR(vector(p + "ffn_norm.weight", h, 0, &L.ffn_norm));
    RETURN_IF_ERROR(matrix(p + "attn_q.weight", c.q_dim(), h, c.num_heads, &L.q));
    RETURN_IF_ERROR(matrix(p + "attn_k.weight", c.kv_dim(), h, c.num_kv_heads, &L.k));
    RETURN_IF_ERROR(matrix(p + "attn_v.weight", c.kv_dim(), h, 0, &L.v));
    RETURN_IF_ERROR(matrix(p + "attn_output.weight", h, c.q_dim(), 0, &L.o));
    RETURN_IF_ERROR(matrix(p + "ffn_gate.weight", ff, h, 0, &L.gate));
    RETURN_IF_ERROR(matrix(p + "ffn_up.weight", ff, h, 0, &L.up));
    RETURN_IF_ERROR(matrix(p + "ffn_down.weight", h, ff, 0, &L.down));
    if (c.qkv_bias) {
      RETURN_IF_ERROR(vector(p + "attn_q.bias", c.q_dim(), c.num_heads, &L.q_bias));
      RETURN_IF_ERROR(vector(p + "attn_k.bias", c.kv_dim(), c.num_kv_heads, &L.k_bias));
      RETURN_IF_ERROR(vector(p + "attn_v.bias", c.kv_dim(), 0, &L.v_bias));
    }
    if (c.o_bias) RETURN_IF_ERROR(vector(p + "attn_output.bias", h, 0, &L.o_bias));
    if (c.mlp_bias) {
      RETURN_IF_ERROR(vector(p + "ffn_gate.bias", ff, 0, &L.gate_bias));
      RETURN_IF_ERROR(vector(p + "ffn_up.bias", ff, 0, &L.up_bias));
      RETURN_IF_ERROR(vector(p + "ffn_down.bias", h, 0, &L.down_bias));
    }
  }
  RETURN_IF_ERROR(vector("output_norm.weight", h, 0, &w.final_norm));
  if (!c.tie_word_embeddings) {
    RETURN_IF_ERROR(matrix("output.weight", c.vocab_size, h, 0, &w.lm_head_untied));
  }
  // The most common matrix type names the source.
  std::map<std::string, int> types;
  for (const GgufMatrix& m : plan.matrices) ++types[std::string(GgmlTypeName(m.tensor->type))];
  auto best = std::max_element(types.begin(), types.end(),
                               [](const auto& a, const auto& b) { return a.second < b.second; });
  out->source_format = absl::StrCat("gguf:", best->first);
  return plan;
}

absl::Status LoadGgufMatrix(const GgufFile& f, const GgufMatrix& m, DequantDType dtype) {
  const uint8_t* data = f.TensorData(*m.tensor);
  const GgmlType type = m.tensor->type;
  if (IsPlainFloat(type)) {
    const DType d = PlainDType(type);
    if (m.permute_heads == 0 && reinterpret_cast<uintptr_t>(data) % DTypeSize(d) == 0) {
      *m.dest = WeightMatrix::View(d, m.rows, m.cols, data);
      return absl::OkStatus();
    }
    Tensor t = Tensor::Allocate(d, {m.rows, m.cols});
    if (m.permute_heads > 0) {
      UnpermuteRopeRows(data, m.rows, m.cols, DTypeSize(d), m.permute_heads, t.data());
    } else {
      std::memcpy(t.data(), data, t.nbytes());
    }
    *m.dest = WeightMatrix::Own(std::move(t));
    return absl::OkStatus();
  }
  std::vector<float> values(static_cast<size_t>(m.rows * m.cols));
  absl::Status s = DequantizeGgml(type, data, m.rows * m.cols, values.data());
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat(m.tensor->name, ": ", s.message()));
  if (m.permute_heads > 0) {
    std::vector<float> hf(values.size());
    UnpermuteRopeRows(reinterpret_cast<const uint8_t*>(values.data()), m.rows, m.cols,
                      sizeof(float), m.permute_heads, reinterpret_cast<uint8_t*>(hf.data()));
    values.swap(hf);
  }
  *m.dest = StoreDequantized(values, m.rows, m.cols, dtype);
  return absl::OkStatus();
}

absl::Status LoadGgufVector(const GgufFile& f, const GgufVector& v) {
  std::vector<float> values(static_cast<size_t>(v.size));
  RETURN_IF_ERROR(DequantizeGgml(v.tensor->type, f.TensorData(*v.tensor), v.size, values.data()));
  for (int64_t i = 0; i < v.size; ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF tensor ", v.tensor->name, " has a non-finite value at ", i));
    }
  }
  if (v.permute_heads > 0) {
    v.dest->resize(values.size());
    UnpermuteRopeRows(reinterpret_cast<const uint8_t*>(values.data()), v.size, 1, sizeof(float),
                      v.permute_heads, reinterpret_cast<uint8_t*>(v.dest->data()));
  } else {
    *v.dest = std::move(values);
  }
  return absl::OkStatus();
}

}  // namespace

void UnpermuteRopeRows(const uint8_t* in, int64_t rows, int64_t cols, size_t elem, int64_t heads,
                       uint8_t* out) {
  const int64_t hd = rows / heads, half = hd / 2;
  const size_t row_bytes = static_cast<size_t>(cols) * elem;
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t j = 0; j < half; ++j) {
        std::memcpy(out + (h * hd + i * half + j) * row_bytes,
                    in + (h * hd + 2 * j + i) * row_bytes, row_bytes);
      }
    }
  }
}

absl::StatusOr<LlamaConfig> LlamaConfigFromGguf(const GgufFile& f) {
  ASSIGN_OR_RETURN(const std::string arch, Arch(f));
  const std::string k = arch + ".";
  LlamaConfig c;
  c.architecture = HfArchOf(arch);
  ASSIGN_OR_RETURN(c.num_layers, Uint(f, k + "block_count", std::nullopt));
  ASSIGN_OR_RETURN(c.hidden_size, Uint(f, k + "embedding_length", std::nullopt));
  ASSIGN_OR_RETURN(c.intermediate_size, Uint(f, k + "feed_forward_length", std::nullopt));
  ASSIGN_OR_RETURN(c.num_heads, Uint(f, k + "attention.head_count", std::nullopt));
  ASSIGN_OR_RETURN(c.num_kv_heads, Uint(f, k + "attention.head_count_kv", c.num_heads));
  ASSIGN_OR_RETURN(c.max_position_embeddings, Uint(f, k + "context_length", 2048));
  if (c.num_heads <= 0) return absl::InvalidArgumentError("GGUF: attention.head_count is 0");
  ASSIGN_OR_RETURN(const int64_t rope_dims,
                   Uint(f, k + "rope.dimension_count", c.hidden_size / c.num_heads));
  ASSIGN_OR_RETURN(c.head_dim, Uint(f, k + "attention.key_length", rope_dims));
  if (rope_dims != c.head_dim) {
    return absl::InvalidArgumentError("GGUF: partial rotary embeddings are not supported");
  }
  const GgufTensor* embd = f.FindTensor("token_embd.weight");
  if (embd == nullptr || embd->ne.size() != 2) {
    return absl::InvalidArgumentError("GGUF: missing or misshapen token_embd.weight");
  }
  ASSIGN_OR_RETURN(c.vocab_size, Uint(f, k + "vocab_size", embd->ne[1]));
  ASSIGN_OR_RETURN(const double eps, Real(f, k + "attention.layer_norm_rms_epsilon", 1e-6));
  c.rms_norm_eps = static_cast<float>(eps);
  ASSIGN_OR_RETURN(c.rope.theta, Real(f, k + "rope.freq_base", 10000.0));
  const GgufValue* scaling = f.Find(k + "rope.scaling.type");
  const std::string scaling_type =
      scaling != nullptr && scaling->GetString() != nullptr ? *scaling->GetString() : "none";
  if (scaling_type == "linear") {
    c.rope.scaling = RopeScalingType::kLinear;
    ASSIGN_OR_RETURN(c.rope.factor, Real(f, k + "rope.scaling.factor", 1.0));
    if (!(c.rope.factor >= 1.0)) return absl::InvalidArgumentError("GGUF: rope factor < 1");
  } else if (scaling_type != "none") {
    return absl::InvalidArgumentError(absl::StrCat(
        "GGUF: rope scaling \"", scaling_type, "\" is not supported (supported: none, linear)"));
  }
  if (const GgufTensor* freqs = f.FindTensor("rope_freqs.weight"); freqs != nullptr) {
    if (freqs->ne != std::vector<int64_t>{c.head_dim / 2} || freqs->type != GgmlType::kF32) {
      return absl::InvalidArgumentError("GGUF: rope_freqs.weight is not F32 [head_dim / 2]");
    }
    c.rope.freq_factors.resize(c.head_dim / 2);
    std::memcpy(c.rope.freq_factors.data(), f.TensorData(*freqs), freqs->nbytes);
    for (float x : c.rope.freq_factors) {
      if (!(x > 0) || !std::isfinite(x)) {
        return absl::InvalidArgumentError("GGUF: rope_freqs.weight must be positive");
      }
    }
  }
  c.tie_word_embeddings = f.FindTensor("output.weight") == nullptr;
  c.qkv_bias = f.FindTensor("blk.0.attn_q.bias") != nullptr;
  c.o_bias = f.FindTensor("blk.0.attn_output.bias") != nullptr;
  c.mlp_bias = f.FindTensor("blk.0.ffn_gate.bias") != nullptr;
  c.sliding_window.assign(static_cast<size_t>(std::max<int64_t>(c.num_layers, 0)), 0);
  RETURN_IF_ERROR(ValidateLlamaConfig(c));
  return c;
}

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadGgufModel(const fs::path& path,
                                                           const LoadOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::Open(path));
  auto out = std::make_unique<LoadedModel>();
  ASSIGN_OR_RETURN(const GgufPlan plan, PlanGguf(*file, out.get()));
  for (const GgufVector& v : plan.vectors) RETURN_IF_ERROR(LoadGgufVector(*file, v));
  RETURN_IF_ERROR(ParallelForStatus(
      static_cast<int64_t>(plan.matrices.size()), LoaderThreads(options), options.cancel,
      [&](int64_t i) { return LoadGgufMatrix(*file, plan.matrices[i], options.dequant_dtype); }));
  out->keep_alive.push_back(std::shared_ptr<const void>(std::move(file)));
  return out;
}

absl::StatusOr<ModelInspection> InspectGgufModel(const fs::path& path, const LoadOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::Open(path));
  LoadedModel model;
  ASSIGN_OR_RETURN(const GgufPlan plan, PlanGguf(*file, &model));
  ModelInspection info;
  info.config = model.config;
  info.source_format = model.source_format;
  int64_t transient = 0;
  for (const GgufMatrix& m : plan.matrices) {
    const int64_t n = m.rows * m.cols;
    if (IsPlainFloat(m.tensor->type)) {
      info.resident_bytes += static_cast<int64_t>(m.tensor->nbytes);
      continue;
    }
    // Probe the type: UNIMPLEMENTED now rather than after loading.
    float probe[256];
    const int64_t block = GgmlTraits(m.tensor->type).block_size;
    RETURN_IF_ERROR(DequantizeGgml(m.tensor->type, file->TensorData(*m.tensor),
                                   std::min<int64_t>(block, 256), probe));
    info.resident_bytes += n * DequantElementBytes(options.dequant_dtype);
    transient = std::max(transient, n * 4 * (m.permute_heads > 0 ? 2 : 1));
  }
  for (const GgufVector& v : plan.vectors) info.resident_bytes += v.size * 4;
  info.resident_bytes += transient * LoaderThreads(options);
  return info;
}

}  // namespace quantd
