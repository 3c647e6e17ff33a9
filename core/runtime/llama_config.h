// The hyperparameters of the decoder-only models quantd's runtime executes:
// the Llama family (Llama 2, Llama 3/3.1/3.2 with "llama3" RoPE scaling,
// TinyLlama, SmolLM), Mistral and Qwen2. All share one graph: token
// embedding, N x (RMSNorm, GQA attention with RoPE, RMSNorm, SwiGLU MLP),
// RMSNorm, lm_head. They differ only in what this struct records.
#ifndef QUANTD_CORE_RUNTIME_LLAMA_CONFIG_H_
#define QUANTD_CORE_RUNTIME_LLAMA_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace quantd {

// The architectures LlamaConfigFromJson accepts ("architectures"[0] of
// config.json, or, when that is absent, "model_type" llama / mistral /
// qwen2).
inline constexpr const char* kRuntimeArchitectures[] = {"LlamaForCausalLM", "MistralForCausalLM",
                                                        "Qwen2ForCausalLM"};

// "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM": for messages.
std::string SupportedArchitecturesList();

enum class RopeScalingType {
  kNone,    // rope_scaling null or rope_type "default"
  kLinear,  // positions divided by factor
  kLlama3,  // Llama 3.1's frequency-dependent scaling (see RopeInvFreq)
};

struct RopeConfig {
  double theta = 10000.0;
  RopeScalingType scaling = RopeScalingType::kNone;
  double factor = 1.0;
  // kLlama3 only.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
  // GGUF's rope_freqs.weight (llama.cpp's frequency factors, which is how a
  // Llama 3 GGUF carries its scaling): when non-empty (head_dim / 2
  // values), inv_freq[i] is divided by freq_factors[i] after the scaling
  // above.
  std::vector<float> freq_factors;
};

struct LlamaConfig {
  // "LlamaForCausalLM", ... (for GGUF files: the HF class of the GGUF arch).
  std::string architecture;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  // == num_heads without GQA
  int64_t head_dim = 0;      // explicit "head_dim", else hidden_size / num_heads
  int64_t intermediate_size = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  RopeConfig rope;
  bool tie_word_embeddings = false;
  // q/k/v projections have a bias (Llama attention_bias, always in Qwen2).
  bool qkv_bias = false;
  // o_proj has a bias (Llama attention_bias only; never in Qwen2).
  bool o_bias = false;
  // gate/up/down have a bias (Llama mlp_bias).
  bool mlp_bias = false;
  // Per layer: attention sees only keys at positions p - window < j <= p;
  // 0 = the whole causal prefix. Mistral's sliding_window; Qwen2's when
  // use_sliding_window is true (layers >= max_window_layers). Size
  // num_layers.
  std::vector<int64_t> sliding_window;

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  // Parameters of the matrices and vectors (lm_head counted once if tied).
  int64_t ParameterCount() const;
};

// Reads a transformers config.json object. Accepts both the 4.x keys
// (rope_theta, rope_scaling) and the 5.x "rope_parameters" object.
// INVALID_ARGUMENT for: an architecture other than kRuntimeArchitectures
// (the message names the supported ones), hidden_act other than silu,
// a rope type other than default / linear / llama3, missing or
// non-positive sizes, hidden_size not divisible by the heads (when head_dim
// is absent), heads not divisible by kv heads, an odd head_dim, sizes over
// 2^31, or values of the wrong JSON type.
absl::StatusOr<LlamaConfig> LlamaConfigFromJson(const nlohmann::json& config);

// Checks the internal consistency of `c` (the checks above that do not
// concern JSON); LlamaConfigFromJson and the GGUF path call it.
absl::Status ValidateLlamaConfig(const LlamaConfig& c);

// RoPE inverse frequencies, head_dim / 2 of them, computed in float32 the
// way transformers does (inv_freq = 1 / theta^(2i / head_dim), then the
// scaling of `rope`), so that angles pos * inv_freq[i] match its rounding.
std::vector<float> RopeInvFreq(const RopeConfig& rope, int64_t head_dim);

}  // namespace quantd

#endif  // QUANTD_CORE_RUNTIME_LLAMA_CONFIG_H_
