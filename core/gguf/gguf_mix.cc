#include "core/gguf/gguf_mix.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace quantd {
namespace {

using T = GgmlType;

// LLAMA_FTYPE ids from llama.h / gguf-py's LlamaFileType.
const std::vector<GgufFileType>& FileTypes() {
  static const auto* types = new std::vector<GgufFileType>{
      {"F32", 0, T::kF32},      {"F16", 1, T::kF16},      {"BF16", 32, T::kBF16},
      {"Q8_0", 7, T::kQ8_0},    {"Q4_0", 2, T::kQ4_0},    {"Q4_1", 3, T::kQ4_1},
      {"Q5_0", 8, T::kQ5_0},    {"Q5_1", 9, T::kQ5_1},    {"Q2_K", 10, T::kQ2_K},
      {"Q3_K_S", 11, T::kQ3_K}, {"Q3_K_M", 12, T::kQ3_K}, {"Q3_K_L", 13, T::kQ3_K},
      {"Q4_K_S", 14, T::kQ4_K}, {"Q4_K_M", 15, T::kQ4_K}, {"Q5_K_S", 16, T::kQ5_K},
      {"Q5_K_M", 17, T::kQ5_K}, {"Q6_K", 18, T::kQ6_K},
  };
  return *types;
}

enum class Category {
  kTokenEmbd,
  kAttnQ,
  kAttnV,
  kAttnK,
  kAttnQkv,
  kAttnKvB,
  kAttnOutput,
  kFfnUp,
  kFfnGate,
  kFfnDown,
  kOutput,
  kOther
};

// tensor_get_category.
Category CategoryOf(const std::string& n) {
  if (n == "output.weight") return Category::kOutput;
  if (n == "token_embd.weight" || n == "per_layer_token_embd.weight") return Category::kTokenEmbd;
  if (absl::StrContains(n, "attn_qkv.weight")) return Category::kAttnQkv;
  if (absl::StrContains(n, "attn_kv_b.weight")) return Category::kAttnKvB;
  if (absl::StrContains(n, "attn_v.weight")) return Category::kAttnV;
  if (absl::StrContains(n, "attn_k.weight")) return Category::kAttnK;
  if (absl::StrContains(n, "attn_q.weight")) return Category::kAttnQ;
  if (absl::StrContains(n, "attn_output.weight")) return Category::kAttnOutput;
  if (absl::StrContains(n, "ffn_up")) return Category::kFfnUp;
  if (absl::StrContains(n, "ffn_gate")) return Category::kFfnGate;
  if (absl::StrContains(n, "ffn_down")) return Category::kFfnDown;
  return Category::kOther;
}

bool IsAttnVLike(Category c) {
  return c == Category::kAttnV || c == Category::kAttnQkv || c == Category::kAttnKvB;
}

// tensor_allows_quantization, for the names a llama/qwen2 model has (the
// many other exclusions of llama.cpp never match them).
bool AllowsQuantization(const GgufMixTensor& t) {
  if (t.ne.size() < 2) return false;
  const std::string& n = t.name;
  bool q = n.size() >= 6 && n.rfind("weight") == n.size() - 6;
  q &= n.find("_norm.weight") == std::string::npos;
  q &= n.find("ffn_gate_inp.weight") == std::string::npos;
  return q;
}

// llama_model_loader's weight_name_comparer: block number, then name.
int LayerOf(const std::string& n) {
  int layer = -1;
  std::sscanf(n.c_str(), "blk.%d.", &layer);
  return layer;
}

struct State {
  int n_attention_wv = 0;
  int i_attention_wv = 0;
  int n_ffn_down = 0;
  int i_ffn_down = 0;
  int i_ffn_gate = 0;
  int i_ffn_up = 0;
  bool has_imatrix = false;
  bool has_tied_embeddings = true;
  int64_t n_gqa = 1;
  bool is_70b = false;
};

bool UseMoreBits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// llama_tensor_get_type_impl for the offered file types (dense models).
GgmlType GetTypeImpl(State& qs, GgmlType new_type, const GgufMixTensor& t, uint32_t ftype,
                     Category category) {
  enum : uint32_t {
    kQ4_0 = 2,
    kQ5_0 = 8,
    kQ2_K = 10,
    kQ3_K_S = 11,
    kQ3_K_M = 12,
    kQ3_K_L = 13,
    kQ4_K_S = 14,
    kQ4_K_M = 15,
    kQ5_K_S = 16,
    kQ5_K_M = 17,
  };
  if (category == Category::kOutput ||
      (qs.has_tied_embeddings && category == Category::kTokenEmbd)) {
    const int64_t nx = t.ne[0];
    const int64_t qk_k = GgmlTraits(new_type).block_size;
    if (nx % qk_k != 0) {
      new_type = T::kQ8_0;
    } else if (new_type != T::kQ8_0) {
      new_type = T::kQ6_K;
    }
  } else if (category == Category::kTokenEmbd) {
    // No change for the offered file types.
  } else if (IsAttnVLike(category)) {
    if (ftype == kQ2_K) {
      new_type = qs.n_gqa >= 4 ? T::kQ4_K : T::kQ3_K;
    } else if (ftype == kQ3_K_M) {
      new_type = qs.i_attention_wv < 2 ? T::kQ5_K : T::kQ4_K;
    } else if (ftype == kQ3_K_L) {
      new_type = T::kQ5_K;
    } else if ((ftype == kQ4_K_M || ftype == kQ5_K_M) &&
               UseMoreBits(qs.i_attention_wv, qs.n_attention_wv)) {
      new_type = T::kQ6_K;
    } else if (ftype == kQ4_K_S && qs.i_attention_wv < 4) {
      new_type = T::kQ5_K;
    }
    if (qs.is_70b) {
      // 8 heads share attn_v in the 70B model: more bits cost little.
      if (new_type == T::kQ3_K || new_type == T::kQ4_K) new_type = T::kQ5_K;
    }
    ++qs.i_attention_wv;
  } else if (category == Category::kAttnK || category == Category::kAttnQ) {
    // No change for the offered file types.
  } else if (category == Category::kFfnDown) {
    const int i_layer = qs.i_ffn_down, n_layer = qs.n_ffn_down;
    if (ftype == kQ2_K) {
      new_type = T::kQ3_K;
    } else if (ftype == kQ3_K_M) {
      // llama.cpp: i < n/16 ? Q5_K : arch != FALCON || use_more_bits ? Q4_K : Q3_K.
      new_type = i_layer < n_layer / 16 ? T::kQ5_K : T::kQ4_K;
    } else if (ftype == kQ3_K_L) {
      new_type = T::kQ5_K;
    } else if (ftype == kQ4_K_M) {
      if (UseMoreBits(i_layer, n_layer)) new_type = T::kQ6_K;
    } else if (ftype == kQ5_K_M && UseMoreBits(i_layer, n_layer)) {
      new_type = T::kQ6_K;
    } else if (ftype == kQ4_K_S && i_layer < n_layer / 8) {
      new_type = T::kQ5_K;
    } else if ((ftype == kQ4_0 || ftype == kQ5_0) && qs.has_imatrix && i_layer < n_layer / 8) {
      new_type = ftype == kQ4_0 ? T::kQ4_1 : T::kQ5_1;
    }
    ++qs.i_ffn_down;
  } else if (category == Category::kAttnOutput) {
    if (ftype == kQ2_K) {
      new_type = T::kQ3_K;
    } else if (ftype == kQ3_K_M) {
      new_type = T::kQ4_K;
    } else if (ftype == kQ3_K_L) {
      new_type = T::kQ5_K;
    }
  } else if (category == Category::kAttnQkv) {
    if (ftype == kQ3_K_M || ftype == kQ3_K_L) {
      new_type = T::kQ4_K;
    } else if (ftype == kQ4_K_M) {
      new_type = T::kQ5_K;
    } else if (ftype == kQ5_K_M) {
      new_type = T::kQ6_K;
    }
  } else if (category == Category::kFfnGate) {
    ++qs.i_ffn_gate;
  } else if (category == Category::kFfnUp) {
    ++qs.i_ffn_up;
  }
  (void)kQ3_K_S;
  (void)kQ5_K_S;
  return new_type;
}

// tensor_type_fallback; F16 also when llama.cpp would fail (no fallback for
// the target type).
GgmlType Fallback(GgmlType target, int64_t ncols, bool* fell_back) {
  if (ncols % GgmlTraits(target).block_size == 0) return target;
  *fell_back = true;
  GgmlType r = T::kF16;
  switch (target) {
    case T::kQ2_K:
    case T::kQ3_K:
      r = T::kQ4_0;
      break;
    case T::kQ4_K:
      r = T::kQ5_0;
      break;
    case T::kQ5_K:
      r = T::kQ5_1;
      break;
    case T::kQ6_K:
      r = T::kQ8_0;
      break;
    default:
      break;
  }
  if (ncols % GgmlTraits(r).block_size != 0) r = T::kF16;
  return r;
}

}  // namespace

const std::vector<GgufFileType>& GgufFileTypes() { return FileTypes(); }

absl::StatusOr<GgufFileType> ParseGgufFileType(std::string_view name) {
  std::string upper = absl::AsciiStrToUpper(std::string(name));
  if (upper == "Q3_K" || upper == "Q4_K" || upper == "Q5_K") upper += "_M";
  std::vector<std::string> names;
  for (const GgufFileType& t : FileTypes()) {
    if (t.name == upper) return t;
    names.emplace_back(t.name);
  }
  return absl::InvalidArgumentError(absl::StrCat("gguf_type \"", std::string(name),
                                                 "\" is not one of ", absl::StrJoin(names, ", "),
                                                 " (or the aliases Q3_K, Q4_K, Q5_K)"));
}

absl::StatusOr<std::vector<GgufTypeOverride>> ParseGgufTypeOverrides(std::string_view spec) {
  std::vector<GgufTypeOverride> out;
  const std::vector<std::string> items =
      absl::StrSplit(std::string(spec), ';', absl::SkipWhitespace());
  for (const std::string& item : items) {
    const std::string s(absl::StripAsciiWhitespace(item));
    const size_t eq = s.rfind('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("override \"", s, "\" is not REGEX=TYPE (e.g. \"attn_v=Q8_0\")"));
    }
    GgufTypeOverride o;
    o.pattern = s.substr(0, eq);
    const std::string type_name(absl::StripAsciiWhitespace(s.substr(eq + 1)));
    absl::StatusOr<GgmlType> type = ParseGgmlType(type_name);
    if (!type.ok() || !CanEncodeGgml(*type)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "override \"", s, "\": \"", s.substr(eq + 1),
          "\" is not a type quantd encodes (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, "
          "Q3_K, Q4_K, Q5_K, Q6_K)"));
    }
    o.type = *type;
    try {
      o.regex = std::regex(o.pattern, std::regex::ECMAScript);
    } catch (const std::regex_error&) {
      return absl::InvalidArgumentError(absl::StrCat("override \"", s, "\": \"", o.pattern,
                                                     "\" is not a valid regular expression"));
    }
    out.push_back(std::move(o));
  }
  return out;
}

std::vector<GgufMixChoice> ChooseGgufTypes(const GgufMixModel& model,
                                           const std::vector<GgufMixTensor>& tensors,
                                           const GgufMixOptions& options) {
  State qs;
  qs.has_imatrix = options.has_imatrix;
  qs.n_gqa = model.n_head_kv > 0 ? model.n_head / model.n_head_kv : 1;
  // LLM_TYPE_70B: llama with 80 layers and GQA; qwen2 with 80 layers.
  qs.is_70b = model.n_layer == 80 &&
              ((model.arch == "llama" && model.n_head != model.n_head_kv) || model.arch == "qwen2");
  for (const GgufMixTensor& t : tensors) {
    const Category c = CategoryOf(t.name);
    if (IsAttnVLike(c)) ++qs.n_attention_wv;
    if (c == Category::kOutput) qs.has_tied_embeddings = false;
  }
  qs.n_ffn_down = static_cast<int>(model.n_layer);

  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int la = LayerOf(tensors[a].name), lb = LayerOf(tensors[b].name);
    if (la != lb) return la < lb;
    return tensors[a].name < tensors[b].name;
  });

  const GgmlType default_type = options.file_type.default_type;
  const bool default_quantized = GgmlTraits(default_type).is_quantized;
  std::vector<GgufMixChoice> out(tensors.size());
  for (size_t idx : order) {
    const GgufMixTensor& t = tensors[idx];
    GgufMixChoice& choice = out[idx];
    choice.quantizable = AllowsQuantization(t);
    if (!choice.quantizable) {
      choice.type = t.source_type;
      continue;
    }
    GgmlType new_type = default_type;
    for (const GgufTypeOverride& o : options.overrides) {
      if (std::regex_search(t.name, o.regex)) {
        new_type = o.type;
        choice.overridden = true;
        break;
      }
    }
    if (default_quantized && !choice.overridden) {
      new_type = GetTypeImpl(qs, new_type, t, options.file_type.id, CategoryOf(t.name));
    }
    if (default_quantized || choice.overridden) {
      new_type = Fallback(new_type, t.ne[0], &choice.fallback);
    }
    choice.type = new_type;
  }
  return out;
}

}  // namespace quantd
