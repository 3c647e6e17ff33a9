#include "core/gguf/hf_to_gguf.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <regex>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace quantd {
namespace {

using json = nlohmann::json;

constexpr GgufArch kArchs[] = {
    {"LlamaForCausalLM", "llama", true, VocabFlavor::kLlama},
    {"MistralForCausalLM", "llama", true, VocabFlavor::kLlama},
    {"Qwen2ForCausalLM", "qwen2", false, VocabFlavor::kQwen2},
};

// Per-block HF suffix -> GGUF suffix (gguf-py's tensor_mapping for the
// Llama/Qwen2 module names).
constexpr std::pair<const char*, const char*> kBlockNames[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};

// Tensors every block needs (llama.cpp fails to load without them).
constexpr const char* kRequiredBlockTensors[] = {
    "attn_norm.weight", "attn_q.weight",   "attn_k.weight", "attn_v.weight",  "attn_output.weight",
    "ffn_norm.weight",  "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};

// Names convert_hf_to_gguf drops ("we don't need these").
bool Dropped(const std::string& name) {
  return absl::EndsWith(name, ".attention.masked_bias") ||
         absl::EndsWith(name, ".attention.bias") || absl::EndsWith(name, ".rotary_emb.inv_freq");
}

std::optional<int64_t> Int(const json& config, std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    auto it = config.find(k);
    if (it != config.end() && it->is_number_integer()) return it->get<int64_t>();
  }
  return std::nullopt;
}

std::optional<double> Number(const json& j, const char* key) {
  if (!j.is_object()) return std::nullopt;
  auto it = j.find(key);
  if (it != j.end() && it->is_number()) return it->get<double>();
  return std::nullopt;
}

absl::StatusOr<int64_t> Positive(const json& config, const char* key) {
  std::optional<int64_t> v = Int(config, {key});
  if (!v.has_value() || *v <= 0 || *v > (int64_t{1} << 32)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: ", key, " is missing or not a positive integer"));
  }
  return *v;
}

GgufKv Kv(std::string key, GgufValue value) { return GgufKv{std::move(key), std::move(value)}; }

uint32_t U32(int64_t v) { return static_cast<uint32_t>(v); }

}  // namespace

absl::StatusOr<const GgufArch*> FindGgufArch(std::string_view hf_architecture) {
  std::vector<std::string> names;
  for (const GgufArch& a : kArchs) {
    if (a.hf_architecture == hf_architecture) return &a;
    names.emplace_back(a.hf_architecture);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("architecture \"", std::string(hf_architecture),
                   "\" cannot be exported to GGUF; supported: ", absl::StrJoin(names, ", ")));
}

absl::StatusOr<GgufHparams> ReadGgufHparams(const json& config) {
  GgufHparams hp;
  {
    auto v = Positive(config, "num_hidden_layers");
    if (!v.ok()) return v.status();
    hp.n_layer = *v;
  }
  auto embd = Positive(config, "hidden_size");
  if (!embd.ok()) return embd.status();
  hp.n_embd = *embd;
  auto ff = Positive(config, "intermediate_size");
  if (!ff.ok()) return ff.status();
  hp.n_ff = *ff;
  auto heads = Positive(config, "num_attention_heads");
  if (!heads.ok()) return heads.status();
  hp.n_head = *heads;
  hp.n_head_kv = Int(config, {"num_key_value_heads"}).value_or(hp.n_head);
  if (hp.n_head_kv <= 0 || hp.n_head % hp.n_head_kv != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: num_key_value_heads ", hp.n_head_kv,
                     " does not divide num_attention_heads ", hp.n_head));
  }
  if (auto hd = config.find("head_dim"); hd != config.end() && !hd->is_null()) {
    if (!hd->is_number_integer() || hd->get<int64_t>() <= 0) {
      return absl::InvalidArgumentError("config.json: head_dim is not a positive integer");
    }
    hp.head_dim = hd->get<int64_t>();
    hp.has_head_dim = true;
  } else {
    if (hp.n_embd % hp.n_head != 0) {
      return absl::InvalidArgumentError(absl::StrCat("config.json: hidden_size ", hp.n_embd,
                                                     " is not a multiple of num_attention_heads ",
                                                     hp.n_head, " (and head_dim is not given)"));
    }
    hp.head_dim = hp.n_embd / hp.n_head;
  }
  hp.vocab_size = Int(config, {"vocab_size"}).value_or(0);
  hp.n_ctx = Int(config, {"max_position_embeddings", "n_ctx", "n_positions", "max_length",
                          "max_sequence_length", "model_max_length"});
  json rope = config.contains("rope_parameters") ? config["rope_parameters"]
                                                 : config.value("rope_scaling", json());
  if (!rope.is_object()) rope = json::object();
  hp.rope_theta = Number(rope, "rope_theta");
  if (!hp.rope_theta) hp.rope_theta = Number(config, "rope_theta");
  if (rope.contains("rope_type") && rope["rope_type"].is_string()) {
    hp.rope_type = rope["rope_type"].get<std::string>();
  } else if (rope.contains("type") && rope["type"].is_string()) {
    hp.rope_type = rope["type"].get<std::string>();
  }
  hp.rope_params = rope;
  hp.rms_eps = Number(config, "rms_norm_eps");
  hp.tie_embeddings = config.value("tie_word_embeddings", false);
  return hp;
}

std::optional<std::string> GgufTensorName(std::string_view hf) {
  if (hf == "model.embed_tokens.weight") return std::string("token_embd.weight");
  if (hf == "model.norm.weight") return std::string("output_norm.weight");
  if (hf == "lm_head.weight") return std::string("output.weight");
  static const std::regex* block = new std::regex(R"(model\.layers\.([0-9]+)\.(.+))");
  std::cmatch m;
  if (!std::regex_match(hf.data(), hf.data() + hf.size(), m, *block)) return std::nullopt;
  for (const auto& [from, to] : kBlockNames) {
    if (m[2].str() == from) return absl::StrCat("blk.", m[1].str(), ".", to);
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<GgufTensorSource>> PlanGgufTensors(const HfModel& model,
                                                              const GgufArch& arch,
                                                              const GgufHparams& hp) {
  std::map<std::string, GgufTensorSource> by_name;
  for (const ModelTensor& t : model.tensors()) {
    if (Dropped(t.name)) continue;
    std::optional<std::string> name = GgufTensorName(t.name);
    if (!name.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", t.name, " has no GGUF name for architecture ", std::string(arch.name)));
    }
    if (!IsFloatWeightType(t.entry->dtype)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", t.name, " is ", std::string(DTypeName(t.entry->dtype)),
                       "; only F32, F16 and BF16 checkpoints can be exported to GGUF"));
    }
    const Shape& s = t.entry->shape;
    const bool bias = absl::EndsWith(*name, ".bias");
    const bool norm = absl::EndsWith(*name, "_norm.weight");
    if (s.size() != ((bias || norm) ? 1u : 2u)) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", t.name, " has shape ",
                                                     ShapeString(s), ", expected ",
                                                     (bias || norm) ? "1" : "2", " dimensions"));
    }
    GgufTensorSource src;
    src.name = *name;
    src.source = &t;
    src.shape = s;
    const bool is_q = absl::StrContains(*name, ".attn_q."),
               is_k = absl::StrContains(*name, ".attn_k.");
    if (is_q || is_k) {
      const int64_t heads = is_q ? hp.n_head : hp.n_head_kv;
      if (s[0] != heads * hp.head_dim) {
        return absl::InvalidArgumentError(absl::StrCat("tensor ", t.name, " has ", s[0],
                                                       " rows; expected ", heads,
                                                       " heads x head_dim ", hp.head_dim));
      }
      if (arch.permute_qk) {
        if (hp.head_dim % 2 != 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("head_dim ", hp.head_dim, " is odd; rope needs pairs"));
        }
        src.permute = RowPermute::kRope;
        src.permute_heads = heads;
      }
    }
    if (absl::StartsWith(*name, "blk.")) {
      const int64_t layer = std::strtoll(name->c_str() + 4, nullptr, 10);
      if (layer >= hp.n_layer) {
        return absl::InvalidArgumentError(absl::StrCat("tensor ", t.name, " belongs to layer ",
                                                       layer, " but num_hidden_layers is ",
                                                       hp.n_layer));
      }
    }
    by_name.emplace(*name, std::move(src));
  }
  std::vector<GgufTensorSource> out;
  auto take = [&](const std::string& name, bool required) -> absl::Status {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      if (!required) return absl::OkStatus();
      return absl::InvalidArgumentError(
          absl::StrCat("the model has no tensor for ", name, " (required by llama.cpp)"));
    }
    out.push_back(std::move(it->second));
    by_name.erase(it);
    return absl::OkStatus();
  };
  if (absl::Status s = take("token_embd.weight", true); !s.ok()) return s;
  for (int64_t l = 0; l < hp.n_layer; ++l) {
    for (const auto& [hf, gguf] : kBlockNames) {
      const bool required = std::find_if(std::begin(kRequiredBlockTensors),
                                         std::end(kRequiredBlockTensors), [&](const char* r) {
                                           return std::strcmp(r, gguf) == 0;
                                         }) != std::end(kRequiredBlockTensors);
      if (absl::Status s = take(absl::StrCat("blk.", l, ".", gguf), required); !s.ok()) return s;
    }
  }
  if (absl::Status s = take("output_norm.weight", true); !s.ok()) return s;
  if (absl::Status s = take("output.weight", false); !s.ok()) return s;
  if (arch.name == "llama" && absl::AsciiStrToLower(hp.rope_type) == "llama3") {
    GgufTensorSource rope;
    rope.name = "rope_freqs.weight";
    rope.generated = Llama3RopeFactors(hp);
    rope.shape = {static_cast<int64_t>(rope.generated.size())};
    out.push_back(std::move(rope));
  }
  return out;
}

std::vector<int64_t> GgmlDims(const Shape& shape) {
  return std::vector<int64_t>(shape.rbegin(), shape.rend());
}

absl::StatusOr<Tensor> PermuteRowsForRope(const TensorView& w, int64_t n_head) {
  const int64_t rows = w.rows();
  if (n_head <= 0 || rows % (2 * n_head) != 0 || rows == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(rows, " rows cannot be permuted for ", n_head, " rope heads"));
  }
  const size_t row_bytes = w.nbytes / static_cast<size_t>(rows);
  const int64_t hd = rows / n_head, half = hd / 2;
  Tensor out = Tensor::Allocate(w.dtype, w.shape);
  for (int64_t h = 0; h < n_head; ++h) {
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t j = 0; j < half; ++j) {
        const int64_t dst = h * hd + 2 * j + i, src = h * hd + i * half + j;
        std::memcpy(out.data() + dst * row_bytes, w.data + src * row_bytes, row_bytes);
      }
    }
  }
  return out;
}

std::vector<float> Llama3RopeFactors(const GgufHparams& hp) {
  const json& r = hp.rope_params;
  const float base = static_cast<float>(hp.rope_theta.value_or(10000.0));
  const float factor = static_cast<float>(Number(r, "factor").value_or(8.0));
  const float low = static_cast<float>(Number(r, "low_freq_factor").value_or(1.0));
  const float high = static_cast<float>(Number(r, "high_freq_factor").value_or(4.0));
  // convert_hf_to_gguf reads the top-level key (default 8192); rope_scaling's
  // own value is what transformers uses. They agree for published models.
  double old_ctx_d = Number(r, "original_max_position_embeddings").value_or(8192.0);
  const float old_ctx = static_cast<float>(old_ctx_d);
  const float low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
  const int64_t dim = hp.head_dim;
  std::vector<float> factors;
  for (int64_t i = 0; i < dim; i += 2) {
    const float freq = 1.0f / std::pow(base, static_cast<float>(i) / static_cast<float>(dim));
    const float wavelen = static_cast<float>(2.0 * M_PI) / freq;
    if (wavelen < high_wavelen) {
      factors.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      factors.push_back(factor);
    } else {
      const float smooth = (old_ctx / wavelen - low) / (high - low);
      factors.push_back(1.0f / ((1.0f - smooth) / factor + smooth));
    }
  }
  return factors;
}

std::vector<GgufKv> GgufModelMetadata(const GgufArch& arch, const GgufHparams& hp,
                                      const std::string& name, uint32_t file_type) {
  const std::string a(arch.name);
  std::vector<GgufKv> kv;
  kv.push_back(Kv("general.architecture", GgufValue::String(a)));
  kv.push_back(Kv("general.type", GgufValue::String("model")));
  kv.push_back(Kv("general.name", GgufValue::String(name)));
  kv.push_back(Kv("general.quantization_version", GgufValue::U32(2)));
  kv.push_back(Kv("general.alignment", GgufValue::U32(kGgufDefaultAlignment)));
  kv.push_back(Kv("general.file_type", GgufValue::U32(file_type)));
  kv.push_back(Kv(a + ".block_count", GgufValue::U32(U32(hp.n_layer))));
  if (hp.n_ctx) kv.push_back(Kv(a + ".context_length", GgufValue::U32(U32(*hp.n_ctx))));
  kv.push_back(Kv(a + ".embedding_length", GgufValue::U32(U32(hp.n_embd))));
  kv.push_back(Kv(a + ".feed_forward_length", GgufValue::U32(U32(hp.n_ff))));
  kv.push_back(Kv(a + ".attention.head_count", GgufValue::U32(U32(hp.n_head))));
  kv.push_back(Kv(a + ".attention.head_count_kv", GgufValue::U32(U32(hp.n_head_kv))));
  if (hp.rope_theta) {
    kv.push_back(Kv(a + ".rope.freq_base", GgufValue::F32(static_cast<float>(*hp.rope_theta))));
  }
  if (hp.rms_eps) {
    kv.push_back(Kv(a + ".attention.layer_norm_rms_epsilon",
                    GgufValue::F32(static_cast<float>(*hp.rms_eps))));
  }
  if (hp.has_head_dim) {
    kv.push_back(Kv(a + ".attention.key_length", GgufValue::U32(U32(hp.head_dim))));
    kv.push_back(Kv(a + ".attention.value_length", GgufValue::U32(U32(hp.head_dim))));
  }
  const json& r = hp.rope_params;
  const std::optional<double> factor = Number(r, "factor");
  if (hp.rope_type == "linear" && factor) {
    kv.push_back(Kv(a + ".rope.scaling.type", GgufValue::String("linear")));
    kv.push_back(Kv(a + ".rope.scaling.factor", GgufValue::F32(static_cast<float>(*factor))));
  } else if (hp.rope_type == "yarn" && factor) {
    kv.push_back(Kv(a + ".rope.scaling.type", GgufValue::String("yarn")));
    kv.push_back(Kv(a + ".rope.scaling.factor", GgufValue::F32(static_cast<float>(*factor))));
    if (auto orig = Number(r, "original_max_position_embeddings")) {
      kv.push_back(Kv(a + ".rope.scaling.original_context_length",
                      GgufValue::U32(static_cast<uint32_t>(*orig))));
    }
    const std::pair<const char*, const char*> yarn[] = {
        {"extrapolation_factor", "rope.scaling.yarn_ext_factor"},
        {"attention_factor", "rope.scaling.yarn_attn_factor"},
        {"beta_fast", "rope.scaling.yarn_beta_fast"},
        {"beta_slow", "rope.scaling.yarn_beta_slow"}};
    for (const auto& [from, to] : yarn) {
      if (auto v = Number(r, from)) {
        kv.push_back(Kv(absl::StrCat(a, ".", to), GgufValue::F32(static_cast<float>(*v))));
      }
    }
  }
  // convert_hf_to_gguf writes these two for "llama" only; llama.cpp's qwen2
  // loader reads them too and defaults to the same values.
  if (hp.vocab_size > 0) kv.push_back(Kv(a + ".vocab_size", GgufValue::U32(U32(hp.vocab_size))));
  kv.push_back(Kv(a + ".rope.dimension_count", GgufValue::U32(U32(hp.head_dim))));
  return kv;
}

void AppendVocabMetadata(const GgufVocab& v, std::vector<GgufKv>* kv) {
  kv->push_back(Kv("tokenizer.ggml.model", GgufValue::String(v.model)));
  kv->push_back(Kv("tokenizer.ggml.pre", GgufValue::String(v.pre)));
  kv->push_back(Kv("tokenizer.ggml.tokens", GgufValue::StringArray(v.tokens)));
  if (!v.scores.empty()) kv->push_back(Kv("tokenizer.ggml.scores", GgufValue::Array(v.scores)));
  std::vector<int32_t> types(v.types.size());
  for (size_t i = 0; i < types.size(); ++i) types[i] = static_cast<int32_t>(v.types[i]);
  kv->push_back(Kv("tokenizer.ggml.token_type", GgufValue::Array(types)));
  // llama.cpp refuses a "gpt2" vocabulary without the merges key.
  if (v.model == "gpt2")
    kv->push_back(Kv("tokenizer.ggml.merges", GgufValue::StringArray(v.merges)));
  static const std::pair<const char*, const char*> kIds[] = {
      {"bos", "tokenizer.ggml.bos_token_id"},     {"eos", "tokenizer.ggml.eos_token_id"},
      {"unk", "tokenizer.ggml.unknown_token_id"}, {"sep", "tokenizer.ggml.seperator_token_id"},
      {"pad", "tokenizer.ggml.padding_token_id"}, {"mask", "tokenizer.ggml.mask_token_id"},
      {"eot", "tokenizer.ggml.eot_token_id"},     {"eom", "tokenizer.ggml.eom_token_id"}};
  for (const auto& [typ, key] : kIds) {
    auto it = v.special_ids.find(typ);
    if (it != v.special_ids.end()) kv->push_back(Kv(key, GgufValue::U32(U32(it->second))));
  }
  for (const auto& [typ, on] : v.add_special) {
    kv->push_back(Kv(absl::StrCat("tokenizer.ggml.add_", typ, "_token"), GgufValue::Bool(on)));
  }
  if (v.add_space_prefix) {
    kv->push_back(Kv("tokenizer.ggml.add_space_prefix", GgufValue::Bool(*v.add_space_prefix)));
  }
  if (v.chat_template)
    kv->push_back(Kv("tokenizer.chat_template", GgufValue::String(*v.chat_template)));
  if (!v.named_chat_templates.empty()) {
    std::vector<std::string> names;
    for (const auto& [name, tmpl] : v.named_chat_templates) {
      kv->push_back(Kv("tokenizer.chat_template." + name, GgufValue::String(tmpl)));
      names.push_back(name);
    }
    kv->push_back(Kv("tokenizer.chat_templates", GgufValue::StringArray(names)));
  }
}

}  // namespace quantd
