#include "core/eval/protocol.h"

#include "absl/strings/str_cat.h"

namespace quantd {

int DefaultContext(const std::string& protocol) { return protocol == "gptq" ? 2048 : 512; }

absl::StatusOr<ChunkPlan> MakeChunkPlan(const v1::EvaluateSpec& spec, int32_t tokenizer_bos,
                                        int max_context) {
  ChunkPlan plan;
  plan.protocol = spec.protocol().empty() ? "llama" : spec.protocol();
  if (plan.protocol != "llama" && plan.protocol != "gptq") {
    return absl::InvalidArgumentError(
        absl::StrCat("evaluate.protocol \"", spec.protocol(), "\" is not one of llama, gptq"));
  }
  plan.context = spec.context() > 0 ? spec.context() : DefaultContext(plan.protocol);
  if (spec.context() < 0 || plan.context < 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("evaluate.context ", spec.context(), " is below 4 tokens"));
  }
  if (max_context > 0 && plan.context > max_context) {
    return absl::InvalidArgumentError(absl::StrCat(
        "evaluate.context ", plan.context, " exceeds the models' maximum context ", max_context));
  }
  if (spec.max_tokens() < 0) {
    return absl::InvalidArgumentError("evaluate.max_tokens must not be negative");
  }
  plan.max_tokens = spec.max_tokens();
  plan.bos_id = tokenizer_bos;
  plan.add_bos = spec.has_add_bos() ? spec.add_bos() : tokenizer_bos >= 0;
  if (plan.add_bos && tokenizer_bos < 0) {
    return absl::InvalidArgumentError("evaluate.add_bos is set but the tokenizer has no BOS token");
  }
  plan.bos_every_chunk = plan.protocol == "llama" && plan.add_bos;
  plan.scored_from = plan.protocol == "llama" ? plan.context / 2 : 0;
  return plan;
}

absl::StatusOr<std::vector<std::vector<int32_t>>> MakeChunks(
    const ChunkPlan& plan, const std::vector<int32_t>& text_tokens) {
  std::vector<int32_t> all;
  all.reserve(text_tokens.size() + 1);
  if (plan.add_bos) all.push_back(plan.bos_id);
  all.insert(all.end(), text_tokens.begin(), text_tokens.end());
  int64_t n = static_cast<int64_t>(all.size()) / plan.context;
  if (plan.max_tokens > 0) n = std::min<int64_t>(n, plan.max_tokens / plan.context);
  if (n < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the dataset has ", all.size(), " tokens", plan.max_tokens > 0 ? " (max_tokens " : "",
        plan.max_tokens > 0 ? absl::StrCat(plan.max_tokens, ")") : "", ", less than one chunk of ",
        plan.context));
  }
  std::vector<std::vector<int32_t>> chunks(n);
  for (int64_t i = 0; i < n; ++i) {
    chunks[i].assign(all.begin() + i * plan.context, all.begin() + (i + 1) * plan.context);
    if (plan.bos_every_chunk) chunks[i][0] = plan.bos_id;
  }
  return chunks;
}

v1::EvaluateProtocol ProtocolProto(const ChunkPlan& plan) {
  v1::EvaluateProtocol p;
  p.set_name(plan.protocol);
  p.set_context(plan.context);
  p.set_scored_from(plan.scored_from);
  p.set_add_bos(plan.add_bos);
  p.set_max_tokens(plan.max_tokens);
  return p;
}

}  // namespace quantd
