// ComparisonTableJson (declared in core/eval/evaluation.h).
#include "core/eval/evaluation.h"
#include "nlohmann/json.hpp"

namespace quantd {

std::string ComparisonTableJson(const v1::EvaluateResult& result) {
  using nlohmann::json;
  const v1::EvaluateProtocol& p = result.protocol();
  json out;
  out["protocol"] = {{"name", p.name()},
                     {"context", p.context()},
                     {"scored_from", p.scored_from()},
                     {"add_bos", p.add_bos()},
                     {"max_tokens", p.max_tokens()},
                     {"dataset", p.dataset()},
                     {"dataset_tokens", p.dataset_tokens()},
                     {"chunks", p.chunks()},
                     {"scored_tokens", p.scored_tokens()},
                     {"tokenizer", p.tokenizer()}};
  out["reference"] = result.reference();
  out["prompt"] = result.prompt();
  out["columns"] = {"model",
                    "role",
                    "format",
                    "size_bytes",
                    "bits_per_weight",
                    "compression_ratio",
                    "perplexity",
                    "perplexity_stderr",
                    "perplexity_diff",
                    "perplexity_diff_stderr",
                    "kl_mean",
                    "kl_median",
                    "kl_p99",
                    "top1_agreement",
                    "tokens_per_second",
                    "peak_gpu_bytes",
                    "generation"};
  json rows = json::array();
  for (const v1::ModelEvaluation& m : result.models()) {
    json r;
    r["model"] = m.model();
    r["role"] = m.role();
    r["format"] = m.source_format();
    r["size_bytes"] = m.size_bytes();
    r["bits_per_weight"] = m.bits_per_weight();
    r["compression_ratio"] = m.compression_ratio();
    r["perplexity"] = m.perplexity();
    r["perplexity_stderr"] = m.perplexity_stderr();
    const bool c = m.compared();
    r["perplexity_diff"] = c ? json(m.perplexity_diff()) : json(nullptr);
    r["perplexity_diff_stderr"] = c ? json(m.perplexity_diff_stderr()) : json(nullptr);
    r["kl_mean"] = c ? json(m.kl_mean()) : json(nullptr);
    r["kl_median"] = c ? json(m.kl_median()) : json(nullptr);
    r["kl_p99"] = c ? json(m.kl_p99()) : json(nullptr);
    r["top1_agreement"] = c ? json(m.top1_agreement()) : json(nullptr);
    r["tokens_per_second"] = m.tokens_per_second();
    r["peak_gpu_bytes"] = m.peak_gpu_bytes();
    r["generation"] = m.generation();
    rows.push_back(std::move(r));
  }
  out["rows"] = std::move(rows);
  out["peak_host_bytes"] = result.peak_host_bytes();
  out["seconds"] = result.seconds();
  return out.dump(2);
}

}  // namespace quantd
