#include "core/runtime/model_loader.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/formats/registry.h"
#include "core/model/hf_model.h"
#include "core/runtime/gguf_loader.h"
#include "core/runtime/load_util.h"
#include "core/runtime/quant_scheme.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;

enum class Source { kView, kCopy, kDecode, kTied };

// Where one matrix of the model comes from.
struct MatrixPlan {
  std::string module;  // "model.layers.0.self_attn.q_proj"
  int64_t rows = 0, cols = 0;
  WeightMatrix* dest = nullptr;
  Source source = Source::kView;
  TensorView view;                        // kView, kCopy
  std::vector<const ModelTensor*> parts;  // kDecode
};

struct VectorPlan {
  std::string name;
  int64_t size = 0;
  std::vector<float>* dest = nullptr;
  TensorView view;
};

struct HfPlan {
  std::optional<QuantScheme> scheme;
  const WeightFormat* format = nullptr;
  std::vector<MatrixPlan> matrices;
  std::vector<VectorPlan> vectors;
};

// Tensor names in sorted order, to find a module's parts by prefix.
using NameIndex = std::map<std::string, const ModelTensor*, std::less<>>;

std::vector<const ModelTensor*> PartsOf(const NameIndex& index, const std::string& module) {
  const std::string prefix = module + ".";
  std::vector<const ModelTensor*> parts;
  for (auto it = index.lower_bound(prefix); it != index.end(); ++it) {
    if (!absl::StartsWith(it->first, prefix)) break;
    const std::string suffix = it->first.substr(prefix.size());
    if (suffix == "bias") continue;
    parts.push_back(it->second);
  }
  return parts;
}

bool Aligned(const void* p, DType t) { return reinterpret_cast<uintptr_t>(p) % DTypeSize(t) == 0; }

// Plans matrix `module` [rows, cols]. `optional`: absent is not an error
// (the tied lm_head), planned as kTied.
absl::Status PlanMatrix(const HfModel& hf, const NameIndex& index, HfPlan* plan, std::string module,
                        int64_t rows, int64_t cols, WeightMatrix* dest, bool optional) {
  MatrixPlan m;
  m.module = std::move(module);
  m.rows = rows;
  m.cols = cols;
  m.dest = dest;
  const std::string weight_name = m.module + ".weight";
  const ModelTensor* w = hf.Find(weight_name);
  if (w != nullptr && IsFloatWeightType(w->entry->dtype)) {
    if (w->entry->shape != Shape{rows, cols}) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", weight_name, " has shape ",
                                                     ShapeString(w->entry->shape), ", expected ",
                                                     ShapeString({rows, cols})));
    }
    m.view = w->view();
    m.source = Aligned(m.view.data, m.view.dtype) ? Source::kView : Source::kCopy;
    plan->matrices.push_back(std::move(m));
    return absl::OkStatus();
  }
  m.parts = PartsOf(index, m.module);
  if (m.parts.empty()) {
    if (optional) {
      m.source = Source::kTied;
      plan->matrices.push_back(std::move(m));
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(
        absl::StrCat("missing tensor ", weight_name, " in ", hf.dir().string()));
  }
  if (!plan->scheme.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor ", weight_name,
        w == nullptr ? " is missing"
                     : absl::StrCat(" has dtype ", std::string(DTypeName(w->entry->dtype))),
        " and config.json declares no quantization_config"));
  }
  m.source = Source::kDecode;
  plan->matrices.push_back(std::move(m));
  return absl::OkStatus();
}

absl::Status PlanVector(const HfModel& hf, HfPlan* plan, std::string name, int64_t size,
                        std::vector<float>* dest) {
  const ModelTensor* t = hf.Find(name);
  if (t == nullptr) return absl::InvalidArgumentError(absl::StrCat("missing tensor ", name));
  if (!IsFloatWeightType(t->entry->dtype) || NumElements(t->entry->shape) != size ||
      t->entry->shape.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor ", name, " is ", std::string(DTypeName(t->entry->dtype)), " ",
        ShapeString(t->entry->shape), ", expected a F32/F16/BF16 vector [", size, "]"));
  }
  plan->vectors.push_back({std::move(name), size, dest, t->view()});
  return absl::OkStatus();
}

// Fills `out->config` and plans every weight into `out->weights`.
absl::StatusOr<HfPlan> PlanHf(const HfModel& hf, LoadedModel* out) {
  ASSIGN_OR_RETURN(out->config, LlamaConfigFromJson(hf.config()));
  const LlamaConfig& c = out->config;
  HfPlan plan;
  ASSIGN_OR_RETURN(plan.scheme, ReadQuantScheme(hf.config(), hf.dir()));
  NameIndex index;
  for (const ModelTensor& t : hf.tensors()) index.emplace(t.name, &t);

  LlamaWeights& w = out->weights;
  const int64_t h = c.hidden_size, f = c.intermediate_size;
  RETURN_IF_ERROR(
      PlanMatrix(hf, index, &plan, "model.embed_tokens", c.vocab_size, h, &w.embed, false));
  w.layers.resize(c.num_layers);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LlamaLayerWeights& L = w.layers[l];
    const std::string p = absl::StrCat("model.layers.", l, ".");
    const std::string a = p + "self_attn.", m = p + "mlp.";
    RETURN_IF_ERROR(PlanVector(hf, &plan, p + "input_layernorm.weight", h, &L.attn_norm));
    RETURN_IF_ERROR(PlanVector(hf, &plan, p + "post_attention_layernorm.weight", h, &L.ffn_norm));
    const struct {
      std::string name;
      int64_t rows, cols;
      WeightMatrix* dest;
      bool bias;
      std::vector<float>* bias_dest;
    } mats[] = {
        {a + "q_proj", c.q_dim(), h, &L.q, c.qkv_bias, &L.q_bias},
        {a + "k_proj", c.kv_dim(), h, &L.k, c.qkv_bias, &L.k_bias},
        {a + "v_proj", c.kv_dim(), h, &L.v, c.qkv_bias, &L.v_bias},
        {a + "o_proj", h, c.q_dim(), &L.o, c.o_bias, &L.o_bias},
        {m + "gate_proj", f, h, &L.gate, c.mlp_bias, &L.gate_bias},
        {m + "up_proj", f, h, &L.up, c.mlp_bias, &L.up_bias},
        {m + "down_proj", h, f, &L.down, c.mlp_bias, &L.down_bias},
    };
    for (const auto& mat : mats) {
      RETURN_IF_ERROR(PlanMatrix(hf, index, &plan, mat.name, mat.rows, mat.cols, mat.dest, false));
      if (mat.bias) {
        RETURN_IF_ERROR(PlanVector(hf, &plan, mat.name + ".bias", mat.rows, mat.bias_dest));
      }
    }
  }
  RETURN_IF_ERROR(PlanVector(hf, &plan, "model.norm.weight", h, &w.final_norm));
  // Tied: the embedding, unless a quantized lm_head is stored (a float one
  // is ignored, as transformers ties over it).
  if (c.tie_word_embeddings && hf.Find("lm_head.weight") != nullptr &&
      IsFloatWeightType(hf.Find("lm_head.weight")->entry->dtype)) {
    MatrixPlan tied;
    tied.module = "lm_head";
    tied.source = Source::kTied;
    plan.matrices.push_back(std::move(tied));
  } else {
    RETURN_IF_ERROR(PlanMatrix(hf, index, &plan, "lm_head", c.vocab_size, h, &w.lm_head_untied,
                               c.tie_word_embeddings));
  }

  const bool any_decode =
      std::any_of(plan.matrices.begin(), plan.matrices.end(),
                  [](const MatrixPlan& m) { return m.source == Source::kDecode; });
  if (any_decode) {
    absl::StatusOr<const WeightFormat*> f = FindFormat(plan.scheme->format);
    if (!f.ok()) {
      return absl::UnimplementedError(absl::StrCat(
          plan.scheme->description, ": weight format \"", plan.scheme->format,
          "\" is not available in this build of quantd, so the model cannot be loaded"));
    }
    plan.format = *f;
    out->source_format = plan.scheme->format;
  } else {
    std::set<std::string> dtypes;
    for (const MatrixPlan& m : plan.matrices) {
      if (m.source != Source::kTied) dtypes.insert(std::string(DTypeName(m.view.dtype)));
    }
    out->source_format = dtypes.size() == 1 ? absl::AsciiStrToLower(*dtypes.begin()) : "mixed";
  }
  return plan;
}

absl::Status LoadVector(const VectorPlan& v) {
  v.dest->resize(v.size);
  for (int64_t i = 0; i < v.size; ++i) {
    const float x = LoadAsFloat(v.view, i);
    if (!std::isfinite(x)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", v.name, " has a non-finite value at ", i));
    }
    (*v.dest)[i] = x;
  }
  return absl::OkStatus();
}

absl::Status DecodeMatrix(const HfPlan& plan, const MatrixPlan& m, DequantDType dtype) {
  EncodedWeight parts;
  const std::string prefix = m.module + ".";
  for (const ModelTensor* t : m.parts) {
    Tensor copy = Tensor::Allocate(t->entry->dtype, t->entry->shape);
    const TensorView v = t->view();
    if (v.nbytes > 0) std::memcpy(copy.data(), v.data, v.nbytes);
    parts.parts.push_back({t->name.substr(prefix.size()), std::move(copy)});
  }
  FormatParams params = plan.scheme->params;
  if (plan.scheme->per_module) RETURN_IF_ERROR(plan.scheme->per_module(parts, &params));
  absl::StatusOr<std::vector<float>> values = plan.format->DecodeRef(params, parts, m.rows, m.cols);
  if (!values.ok()) {
    return absl::Status(values.status().code(),
                        absl::StrCat(m.module, ": ", values.status().message()));
  }
  if (static_cast<int64_t>(values->size()) != m.rows * m.cols) {
    return absl::InternalError(absl::StrCat(m.module, ": DecodeRef returned ", values->size(),
                                            " values for ", m.rows, " x ", m.cols));
  }
  *m.dest = StoreDequantized(*values, m.rows, m.cols, dtype);
  return absl::OkStatus();
}

absl::Status ExecuteMatrix(const HfPlan& plan, const MatrixPlan& m, DequantDType dtype) {
  switch (m.source) {
    case Source::kTied:
      return absl::OkStatus();
    case Source::kView:
      *m.dest = WeightMatrix::View(m.view.dtype, m.rows, m.cols, m.view.data);
      return absl::OkStatus();
    case Source::kCopy: {
      Tensor t = Tensor::Allocate(m.view.dtype, {m.rows, m.cols});
      std::memcpy(t.data(), m.view.data, m.view.nbytes);
      *m.dest = WeightMatrix::Own(std::move(t));
      return absl::OkStatus();
    }
    case Source::kDecode:
      return DecodeMatrix(plan, m, dtype);
  }
  return absl::InternalError("unreachable");
}

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadHf(const fs::path& dir,
                                                    const LoadOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<HfModel> hf, HfModel::Open(dir));
  auto out = std::make_unique<LoadedModel>();
  ASSIGN_OR_RETURN(const HfPlan plan, PlanHf(*hf, out.get()));
  for (const VectorPlan& v : plan.vectors) RETURN_IF_ERROR(LoadVector(v));
  // Largest modules first, so that threads finish together.
  std::vector<const MatrixPlan*> order;
  for (const MatrixPlan& m : plan.matrices) order.push_back(&m);
  std::stable_sort(order.begin(), order.end(), [](const MatrixPlan* a, const MatrixPlan* b) {
    return (a->source == Source::kDecode) > (b->source == Source::kDecode) ||
           ((a->source == Source::kDecode) == (b->source == Source::kDecode) &&
            a->rows * a->cols > b->rows * b->cols);
  });
  RETURN_IF_ERROR(ParallelForStatus(
      static_cast<int64_t>(order.size()), LoaderThreads(options), options.cancel,
      [&](int64_t i) { return ExecuteMatrix(plan, *order[i], options.dequant_dtype); }));
  out->keep_alive.push_back(std::shared_ptr<const void>(std::move(hf)));
  return out;
}

absl::StatusOr<ModelInspection> InspectHf(const fs::path& dir, const LoadOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<HfModel> hf, HfModel::Open(dir));
  LoadedModel model;
  ASSIGN_OR_RETURN(const HfPlan plan, PlanHf(*hf, &model));
  ModelInspection info;
  info.config = model.config;
  info.source_format = model.source_format;
  int64_t transient = 0;
  for (const MatrixPlan& m : plan.matrices) {
    if (m.source == Source::kTied) continue;
    if (m.source != Source::kDecode) {
      info.resident_bytes += static_cast<int64_t>(m.view.nbytes);
      continue;
    }
    info.resident_bytes += m.rows * m.cols * DequantElementBytes(options.dequant_dtype);
    int64_t parts = 0;
    for (const ModelTensor* t : m.parts) parts += static_cast<int64_t>(t->view().nbytes);
    transient = std::max(transient, parts + m.rows * m.cols * 4);
  }
  for (const VectorPlan& v : plan.vectors) info.resident_bytes += v.size * 4;
  info.resident_bytes += transient * LoaderThreads(options);
  return info;
}

bool IsGguf(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec) && absl::EndsWithIgnoreCase(path.string(), ".gguf");
}

}  // namespace

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const fs::path& path,
                                                       const LoadOptions& options) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return absl::NotFoundError(absl::StrCat(path.string(), " not found"));
  if (IsGguf(path)) return LoadGgufModel(path, options);
  return LoadHf(path, options);
}

absl::StatusOr<ModelInspection> InspectModel(const fs::path& path, const LoadOptions& options) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return absl::NotFoundError(absl::StrCat(path.string(), " not found"));
  if (IsGguf(path)) return InspectGgufModel(path, options);
  return InspectHf(path, options);
}

absl::StatusOr<int64_t> EstimateMemory(const fs::path& path) {
  ASSIGN_OR_RETURN(const ModelInspection info, InspectModel(path, LoadOptions{}));
  return info.resident_bytes;
}

}  // namespace quantd
