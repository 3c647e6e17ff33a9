#include "core/pipeline/tensor_selection.h"

#include <algorithm>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace quantd {
namespace {

// "model.layers.3.mlp.down_proj" and "transformer.h.3.attn.c_attn".
const std::regex& DecoderLinearPattern() {
  static const std::regex* re = new std::regex(R"((^|.*\.)(layers|h|blocks)\.[0-9]+\..+)");
  return *re;
}

}  // namespace

absl::StatusOr<Selection> SelectTensors(const HfModel& model, const v1::QuantizeSpec& spec) {
  std::vector<std::regex> keep;
  for (const std::string& pattern : spec.keep_modules()) {
    try {
      keep.emplace_back(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return absl::InvalidArgumentError(
          absl::StrCat("keep_modules: \"", pattern, "\" is not a valid regular expression"));
    }
  }
  Selection sel;
  bool has_lm_head = false;
  int quantized = 0;
  for (const ModelTensor& t : model.tensors()) {
    TensorChoice choice;
    choice.tensor = &t;
    const bool weight = absl::EndsWith(t.name, ".weight");
    const std::string module = weight ? t.name.substr(0, t.name.size() - 7) : "";
    const bool linear_2d =
        weight && t.entry->shape.size() == 2 && IsFloatWeightType(t.entry->dtype);
    const bool is_lm_head = module == "lm_head";
    has_lm_head |= is_lm_head;
    const bool candidate = linear_2d && (std::regex_match(module, DecoderLinearPattern()) ||
                                         (is_lm_head && spec.quantize_lm_head()));
    if (candidate) {
      const bool kept = std::any_of(keep.begin(), keep.end(), [&](const std::regex& re) {
        return std::regex_match(module, re);
      });
      if (kept) {
        sel.ignored_linear.push_back(module);
      } else {
        choice.quantize = true;
        choice.module = module;
        ++quantized;
      }
    }
    sel.tensors.push_back(choice);
  }
  // lm_head is a Linear layer to the runtimes even when tied to the
  // embeddings and absent from the file.
  if (!spec.quantize_lm_head() || !has_lm_head) {
    if (std::find(sel.ignored_linear.begin(), sel.ignored_linear.end(), "lm_head") ==
        sel.ignored_linear.end()) {
      sel.ignored_linear.push_back("lm_head");
    }
  }
  std::sort(sel.ignored_linear.begin(), sel.ignored_linear.end());
  if (quantized == 0) {
    return absl::InvalidArgumentError(
        "no tensor of the model would be quantized (no 2-D F32/F16/BF16 Linear weights under "
        "\"*.layers.N.\" outside keep_modules)");
  }
  return sel;
}

}  // namespace quantd
