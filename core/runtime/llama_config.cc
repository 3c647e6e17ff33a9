#include "core/runtime/llama_config.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace {

using nlohmann::json;

constexpr int64_t kMaxDim = int64_t{1} << 31;

// The value of `key` when present and not null.
const json* Field(const json& obj, std::string_view key) {
  auto it = obj.find(std::string(key));
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::Status TypeError(std::string_view key, std::string_view want, const json& got) {
  return absl::InvalidArgumentError(absl::StrCat("config.json: \"", std::string(key), "\" must be ",
                                                 std::string(want), ", got ",
                                                 got.dump().substr(0, 80)));
}

// An integer field (integral floats such as 4096.0 accepted); `fallback`
// when absent or null, or INVALID_ARGUMENT when there is none.
absl::StatusOr<int64_t> GetInt(const json& obj, std::string_view key,
                               std::optional<int64_t> fallback) {
  const json* v = Field(obj, key);
  if (v == nullptr) {
    if (fallback.has_value()) return *fallback;
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: missing \"", std::string(key), "\""));
  }
  if (v->is_number_integer()) return v->get<int64_t>();
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) {
      return static_cast<int64_t>(d);
    }
  }
  return TypeError(key, "an integer", *v);
}

absl::StatusOr<double> GetDouble(const json& obj, std::string_view key, double fallback) {
  const json* v = Field(obj, key);
  if (v == nullptr) return fallback;
  if (!v->is_number() || !std::isfinite(v->get<double>())) return TypeError(key, "a number", *v);
  return v->get<double>();
}

absl::StatusOr<bool> GetBool(const json& obj, std::string_view key, bool fallback) {
  const json* v = Field(obj, key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) return TypeError(key, "true or false", *v);
  return v->get<bool>();
}

absl::StatusOr<std::string> GetString(const json& obj, std::string_view key,
                                      std::string_view fallback) {
  const json* v = Field(obj, key);
  if (v == nullptr) return std::string(fallback);
  if (!v->is_string()) return TypeError(key, "a string", *v);
  return v->get<std::string>();
}

absl::StatusOr<std::string> Architecture(const json& config) {
  const json* archs = Field(config, "architectures");
  if (archs != nullptr && archs->is_array() && !archs->empty() && (*archs)[0].is_string()) {
    return (*archs)[0].get<std::string>();
  }
  ASSIGN_OR_RETURN(const std::string model_type, GetString(config, "model_type", ""));
  if (model_type == "llama") return std::string("LlamaForCausalLM");
  if (model_type == "mistral") return std::string("MistralForCausalLM");
  if (model_type == "qwen2") return std::string("Qwen2ForCausalLM");
  return absl::StrCat("model_type \"", model_type, "\"");
}

// Reads rope_theta and the scaling from "rope_scaling" (transformers 4.x)
// or "rope_parameters" (5.x, which also carries rope_theta).
absl::StatusOr<RopeConfig> ParseRope(const json& config) {
  RopeConfig r;
  ASSIGN_OR_RETURN(r.theta, GetDouble(config, "rope_theta", 10000.0));
  const json* params = Field(config, "rope_parameters");
  const json* scaling = Field(config, "rope_scaling");
  if (params != nullptr && !params->is_object()) {
    return TypeError("rope_parameters", "an object", *params);
  }
  if (scaling != nullptr && !scaling->is_object()) {
    return TypeError("rope_scaling", "an object or null", *scaling);
  }
  if (params != nullptr) {
    ASSIGN_OR_RETURN(r.theta, GetDouble(*params, "rope_theta", r.theta));
    if (scaling == nullptr) scaling = params;
  }
  if (!(r.theta > 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: rope_theta ", r.theta, " must be greater than 1"));
  }
  if (scaling == nullptr) return r;
  ASSIGN_OR_RETURN(std::string type, GetString(*scaling, "rope_type", ""));
  if (type.empty()) {
    ASSIGN_OR_RETURN(type, GetString(*scaling, "type", "default"));
  }
  if (type == "default") return r;
  ASSIGN_OR_RETURN(r.factor, GetDouble(*scaling, "factor", 1.0));
  if (!(r.factor >= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: rope scaling factor ", r.factor, " must be at least 1"));
  }
  if (type == "linear") {
    r.scaling = RopeScalingType::kLinear;
    return r;
  }
  if (type == "llama3") {
    r.scaling = RopeScalingType::kLlama3;
    ASSIGN_OR_RETURN(r.low_freq_factor, GetDouble(*scaling, "low_freq_factor", 1.0));
    ASSIGN_OR_RETURN(r.high_freq_factor, GetDouble(*scaling, "high_freq_factor", 4.0));
    ASSIGN_OR_RETURN(r.original_max_position_embeddings,
                     GetInt(*scaling, "original_max_position_embeddings", 8192));
    if (!(r.low_freq_factor > 0) || !(r.high_freq_factor > r.low_freq_factor) ||
        r.original_max_position_embeddings <= 0) {
      return absl::InvalidArgumentError(
          "config.json: llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor and "
          "original_max_position_embeddings > 0");
    }
    return r;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("config.json: rope scaling type \"", type,
                   "\" is not supported by the runtime (supported: default, linear, llama3)"));
}

// Per-layer sliding windows (0 = none).
absl::StatusOr<std::vector<int64_t>> SlidingWindows(const json& config, const LlamaConfig& c) {
  std::vector<int64_t> windows(static_cast<size_t>(std::max<int64_t>(c.num_layers, 0)), 0);
  if (c.architecture == "LlamaForCausalLM") return windows;
  ASSIGN_OR_RETURN(const int64_t window, GetInt(config, "sliding_window", 0));
  if (window < 0) return TypeError("sliding_window", "non-negative", config["sliding_window"]);
  if (window == 0) return windows;
  if (c.architecture == "MistralForCausalLM") {
    for (int64_t& w : windows) w = window;
    return windows;
  }
  // Qwen2: only with use_sliding_window, for layers >= max_window_layers
  // (or as "layer_types" says, where present).
  ASSIGN_OR_RETURN(const bool use, GetBool(config, "use_sliding_window", false));
  if (!use) return windows;
  const json* types = Field(config, "layer_types");
  if (types != nullptr) {
    if (!types->is_array() || types->size() != windows.size()) {
      return TypeError("layer_types", "an array with one entry per layer", *types);
    }
    for (size_t i = 0; i < windows.size(); ++i) {
      if ((*types)[i] == "sliding_attention") windows[i] = window;
    }
    return windows;
  }
  ASSIGN_OR_RETURN(const int64_t first, GetInt(config, "max_window_layers", c.num_layers));
  for (int64_t i = std::max<int64_t>(first, 0); i < c.num_layers; ++i) windows[i] = window;
  return windows;
}

}  // namespace

std::string SupportedArchitecturesList() {
  return absl::StrJoin(std::begin(kRuntimeArchitectures), std::end(kRuntimeArchitectures), ", ");
}

int64_t LlamaConfig::ParameterCount() const {
  const int64_t h = hidden_size;
  int64_t layer = h * q_dim() + 2 * h * kv_dim() + q_dim() * h + 3 * h * intermediate_size + 2 * h;
  if (qkv_bias) layer += q_dim() + 2 * kv_dim();
  if (o_bias) layer += h;
  if (mlp_bias) layer += 2 * intermediate_size + h;
  return vocab_size * h * (tie_word_embeddings ? 1 : 2) + num_layers * layer + h;
}

absl::Status ValidateLlamaConfig(const LlamaConfig& c) {
  const std::pair<const char*, int64_t> sizes[] = {
      {"hidden_size", c.hidden_size},
      {"num_hidden_layers", c.num_layers},
      {"num_attention_heads", c.num_heads},
      {"num_key_value_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"intermediate_size", c.intermediate_size},
      {"vocab_size", c.vocab_size},
      {"max_position_embeddings", c.max_position_embeddings}};
  for (const auto& [name, v] : sizes) {
    if (v <= 0 || v > kMaxDim) {
      return absl::InvalidArgumentError(
          absl::StrCat("model config: ", name, " = ", v, " is not in [1, 2^31]"));
    }
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("model config: num_attention_heads ",
                                                   c.num_heads,
                                                   " is not a multiple of "
                                                   "num_key_value_heads ",
                                                   c.num_kv_heads));
  }
  if (c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model config: head_dim ", c.head_dim, " is odd (RoPE needs pairs)"));
  }
  if (c.q_dim() > kMaxDim || c.num_layers > 100000) {
    return absl::InvalidArgumentError("model config: sizes too large");
  }
  if (!(c.rms_norm_eps > 0) || !std::isfinite(c.rms_norm_eps)) {
    return absl::InvalidArgumentError("model config: rms_norm_eps must be positive");
  }
  if (c.sliding_window.size() != static_cast<size_t>(c.num_layers)) {
    return absl::InvalidArgumentError("model config: one sliding window entry per layer needed");
  }
  return absl::OkStatus();
}

absl::StatusOr<LlamaConfig> LlamaConfigFromJson(const json& config) {
  if (!config.is_object()) return absl::InvalidArgumentError("config.json is not an object");
  LlamaConfig c;
  ASSIGN_OR_RETURN(c.architecture, Architecture(config));
  if (std::find(std::begin(kRuntimeArchitectures), std::end(kRuntimeArchitectures),
                c.architecture) == std::end(kRuntimeArchitectures)) {
    return absl::InvalidArgumentError(absl::StrCat("architecture ", c.architecture,
                                                   " is not supported by the model runtime "
                                                   "(supported: ",
                                                   SupportedArchitecturesList(), ")"));
  }
  ASSIGN_OR_RETURN(const std::string act, GetString(config, "hidden_act", "silu"));
  if (act != "silu") {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: hidden_act \"", act, "\" is not supported (only silu)"));
  }
  const bool qwen2 = c.architecture == "Qwen2ForCausalLM";
  const bool llama = c.architecture == "LlamaForCausalLM";
  ASSIGN_OR_RETURN(c.hidden_size, GetInt(config, "hidden_size", std::nullopt));
  ASSIGN_OR_RETURN(c.num_layers, GetInt(config, "num_hidden_layers", std::nullopt));
  ASSIGN_OR_RETURN(c.num_heads, GetInt(config, "num_attention_heads", std::nullopt));
  ASSIGN_OR_RETURN(c.num_kv_heads, GetInt(config, "num_key_value_heads", c.num_heads));
  ASSIGN_OR_RETURN(c.intermediate_size, GetInt(config, "intermediate_size", std::nullopt));
  ASSIGN_OR_RETURN(c.vocab_size, GetInt(config, "vocab_size", std::nullopt));
  ASSIGN_OR_RETURN(c.max_position_embeddings,
                   GetInt(config, "max_position_embeddings", qwen2 ? 32768 : 2048));
  if (c.num_heads > 0 && Field(config, "head_dim") == nullptr && c.hidden_size % c.num_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: hidden_size ", c.hidden_size,
                                                   " is not a multiple of num_attention_heads ",
                                                   c.num_heads));
  }
  ASSIGN_OR_RETURN(c.head_dim,
                   GetInt(config, "head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0));
  ASSIGN_OR_RETURN(const double eps, GetDouble(config, "rms_norm_eps", 1e-6));
  c.rms_norm_eps = static_cast<float>(eps);
  ASSIGN_OR_RETURN(c.rope, ParseRope(config));
  ASSIGN_OR_RETURN(c.tie_word_embeddings, GetBool(config, "tie_word_embeddings", false));
  if (llama) {
    ASSIGN_OR_RETURN(const bool attention_bias, GetBool(config, "attention_bias", false));
    c.qkv_bias = c.o_bias = attention_bias;
    ASSIGN_OR_RETURN(c.mlp_bias, GetBool(config, "mlp_bias", false));
  } else if (qwen2) {
    c.qkv_bias = true;
  }
  ASSIGN_OR_RETURN(c.sliding_window, SlidingWindows(config, c));
  RETURN_IF_ERROR(ValidateLlamaConfig(c));
  return c;
}

std::vector<float> RopeInvFreq(const RopeConfig& rope, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(std::max<int64_t>(half, 0)));
  const float base = static_cast<float>(rope.theta);
  for (int64_t i = 0; i < half; ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv[i] = 1.0f / std::pow(base, e);
  }
  if (rope.scaling == RopeScalingType::kLinear) {
    for (float& f : inv) f /= static_cast<float>(rope.factor);
  } else if (rope.scaling == RopeScalingType::kLlama3) {
    const float factor = static_cast<float>(rope.factor);
    const float lo = static_cast<float>(rope.low_freq_factor);
    const float hi = static_cast<float>(rope.high_freq_factor);
    const float old_len = static_cast<float>(rope.original_max_position_embeddings);
    const float low_freq_wavelen = old_len / lo;
    const float high_freq_wavelen = old_len / hi;
    constexpr float kTwoPi = 6.283185307179586f;
    for (float& f : inv) {
      const float wavelen = kTwoPi / f;
      const float scaled = wavelen > low_freq_wavelen ? f / factor : f;
      if (wavelen < high_freq_wavelen || wavelen > low_freq_wavelen) {
        f = scaled;
        continue;
      }
      const float smooth = (old_len / wavelen - lo) / (hi - lo);
      f = (1.0f - smooth) * scaled / factor + smooth * scaled;
    }
  }
  if (rope.freq_factors.size() == inv.size()) {
    for (size_t i = 0; i < inv.size(); ++i) inv[i] /= rope.freq_factors[i];
  }
  return inv;
}

}  // namespace quantd
