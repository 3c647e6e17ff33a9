#include "core/eval/evaluation.h"

#include <spdlog/spdlog.h>

#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/eval/evaluator.h"
#include "core/eval/metrics.h"
#include "core/eval/protocol.h"
#include "core/runtime/model_loader.h"
#include "core/tokenizer/tokenizer.h"
#include "core/util/fs.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kMaxDatasetBytes = uint64_t{1} << 30;
constexpr int kDefaultGenerateTokens = 32;
constexpr const char* kDefaultPrompt = "The capital of France is";
// Host bytes of logits (and as many of reference log-probs) one batch may
// keep.
constexpr int64_t kLogitsBudget = int64_t{2} << 30;

struct Loaded {
  std::unique_ptr<LoadedModel> weights;
  std::unique_ptr<CausalLM> lm;
  double load_seconds = 0;
  int64_t resident = 0;
  std::string source_format;
  int64_t parameters = 0;
};

int PickBatch(const v1::EvaluateSpec& spec, const ChunkPlan& plan, const std::string& device,
              int64_t vocab) {
  int batch = spec.batch_size() > 0 ? spec.batch_size()
              : device == "cpu"     ? 1
                                    : std::max(1, 16384 / plan.context);
  // Logits of a batch are kept on the host (when there is no fast path, and
  // the reference's log-probs too): bound them.
  const int64_t per_chunk = int64_t{plan.scored_per_chunk()} * vocab * 4;
  return static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(batch, kLogitsBudget / per_chunk)));
}

}  // namespace

absl::StatusOr<int64_t> WeightBytesOnDisk(const fs::path& model) {
  std::error_code ec;
  if (fs::is_regular_file(model, ec)) {
    const auto n = fs::file_size(model, ec);
    if (ec) return absl::InternalError(absl::StrCat(model.string(), ": ", ec.message()));
    return static_cast<int64_t>(n);
  }
  int64_t total = 0;
  for (const fs::directory_entry& e : fs::directory_iterator(model, ec)) {
    if (e.path().extension() == ".safetensors" && e.is_regular_file()) {
      total += static_cast<int64_t>(e.file_size());
    }
  }
  if (ec) return absl::NotFoundError(absl::StrCat(model.string(), ": ", ec.message()));
  return total;
}

int64_t ProcessPeakRss() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;
  }
  return 0;
}

absl::StatusOr<v1::EvaluateResult> RunEvaluation(
    const v1::EvaluateSpec& spec, const EvaluationInputs& inputs, const CausalLMFactory& factory,
    const std::string& device, const EvaluationHooks& hooks, const CancelToken& cancel) {
  const absl::Time start = absl::Now();
  auto report = [&](const std::string& stage, double fraction, int64_t step, int64_t total,
                    const std::string& message) {
    if (hooks.progress) hooks.progress(stage, fraction, step, total, message);
  };
  const int n_models = static_cast<int>(inputs.models.size());

  // Tokenize.
  report("tokenizing", 0.0, 0, 0, inputs.dataset_name);
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, Tokenizer::FromModelDir(inputs.tokenizer_dir));
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(inputs.dataset, kMaxDatasetBytes));
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, tok->Encode(text, /*add_special_tokens=*/false));
  RETURN_IF_ERROR(cancel.Check());

  // Load.
  std::vector<Loaded> loaded(n_models);
  int max_context = 0;
  for (int i = 0; i < n_models; ++i) {
    const EvalModelRef& m = inputs.models[i];
    report("loading", 0.05 * i / n_models, i, n_models, m.name);
    const absl::Time t0 = absl::Now();
    LoadOptions lo;
    lo.threads = hooks.load_threads;
    lo.cancel = &cancel;
    ASSIGN_OR_RETURN(loaded[i].weights, LoadModel(m.path, lo));
    ASSIGN_OR_RETURN(loaded[i].lm, factory.Make(loaded[i].weights.get(), device));
    loaded[i].load_seconds = absl::ToDoubleSeconds(absl::Now() - t0);
    loaded[i].resident = loaded[i].weights->bytes_resident();
    loaded[i].source_format = loaded[i].weights->source_format;
    loaded[i].parameters = loaded[i].weights->config.ParameterCount();
    const int mc = loaded[i].lm->max_context();
    max_context = max_context == 0 ? mc : std::min(max_context, mc);
    if (device != "cpu") loaded[i].weights.reset();  // uploaded; the host copy is not needed
  }
  ASSIGN_OR_RETURN(ChunkPlan plan, MakeChunkPlan(spec, tok->bos_id(), max_context));
  ASSIGN_OR_RETURN(std::vector<std::vector<int32_t>> chunks, MakeChunks(plan, ids));
  for (int i = 0; i < n_models; ++i) {
    if (tok->vocab_size() > loaded[i].lm->vocab_size()) {
      // Token ids past the model's vocabulary would be rejected mid-run.
      for (int32_t id : ids) {
        if (id >= loaded[i].lm->vocab_size()) {
          return absl::InvalidArgumentError(
              absl::StrCat("token id ", id, " of the dataset is outside the vocabulary of ",
                           inputs.models[i].name, " (", loaded[i].lm->vocab_size(), ")"));
        }
      }
    }
  }

  // Score.
  std::vector<CausalLM*> lms;
  for (Loaded& l : loaded) lms.push_back(l.lm.get());
  EvalRunOptions ro;
  ro.has_reference = inputs.has_reference;
  ro.factory = &factory;
  ro.batch = PickBatch(spec, plan, device, lms[0]->vocab_size());
  const absl::Time score_start = absl::Now();
  ro.on_chunks = [&](int64_t done, int64_t total) {
    const double elapsed = absl::ToDoubleSeconds(absl::Now() - score_start);
    const double tps = elapsed > 0 ? done * plan.context * n_models / elapsed : 0;
    report("scoring", 0.05 + 0.9 * done / total, done, total,
           absl::StrCat("chunk ", done, "/", total, ", ", static_cast<int64_t>(tps), " tokens/s"));
  };
  report("scoring", 0.05, 0, chunks.size(), absl::StrCat("chunk 0/", chunks.size()));
  std::vector<TokenScores> scores;
  std::vector<ModelRunStats> stats;
  RETURN_IF_ERROR(ScoreChunks(plan, chunks, lms, ro, cancel, &scores, &stats));

  // Generate.
  const int gen_tokens =
      spec.has_generate_tokens() ? spec.generate_tokens() : kDefaultGenerateTokens;
  const std::string prompt = spec.prompt().empty() ? kDefaultPrompt : spec.prompt();
  std::vector<std::string> samples(n_models);
  if (gen_tokens > 0) {
    ASSIGN_OR_RETURN(std::vector<int32_t> prompt_ids, tok->Encode(prompt, true));
    for (int i = 0; i < n_models; ++i) {
      report("generating", 0.95 + 0.05 * i / n_models, i, n_models, inputs.models[i].name);
      ASSIGN_OR_RETURN(std::vector<int32_t> out,
                       lms[i]->Generate(prompt_ids, gen_tokens, tok->eos_ids(), cancel));
      samples[i] = tok->Decode(out, /*skip_special=*/true);
    }
  }

  // Summarize.
  v1::EvaluateResult result;
  *result.mutable_protocol() = ProtocolProto(plan);
  result.mutable_protocol()->set_dataset(inputs.dataset_name);
  result.mutable_protocol()->set_dataset_tokens(static_cast<int64_t>(ids.size()));
  result.mutable_protocol()->set_chunks(static_cast<int64_t>(chunks.size()));
  result.mutable_protocol()->set_scored_tokens(static_cast<int64_t>(scores[0].nll.size()));
  result.mutable_protocol()->set_tokenizer(
      absl::StrCat(inputs.tokenizer_name, " (", std::string(tok->kind()), ")"));
  if (inputs.has_reference) result.set_reference(inputs.models[0].name);
  if (gen_tokens > 0) result.set_prompt(prompt);
  int64_t ref_size = 0;
  for (int i = 0; i < n_models; ++i) {
    v1::ModelEvaluation* e = result.add_models();
    e->set_model(inputs.models[i].name);
    e->set_role(inputs.models[i].role);
    e->set_source_format(loaded[i].source_format);
    ASSIGN_OR_RETURN(const int64_t size, WeightBytesOnDisk(inputs.models[i].path));
    if (i == 0 && inputs.has_reference) ref_size = size;
    e->set_size_bytes(size);
    e->set_parameters(loaded[i].parameters);
    const double bpw = loaded[i].parameters > 0 ? 8.0 * size / loaded[i].parameters : 0;
    e->set_bits_per_weight(bpw);
    e->set_compression_ratio(inputs.has_reference ? (size > 0 ? double(ref_size) / size : 0)
                                                  : (bpw > 0 ? 16.0 / bpw : 0));
    const PerplexitySummary p = SummarizePerplexity(scores[i].nll);
    e->set_perplexity(p.perplexity);
    e->set_perplexity_stderr(p.perplexity_stderr);
    e->set_nll_mean(p.nll_mean);
    if (inputs.has_reference && i > 0) {
      e->set_compared(true);
      const Distribution kl = Summarize(scores[i].kl);
      e->set_kl_mean(kl.mean);
      e->set_kl_median(kl.median);
      e->set_kl_p99(kl.p99);
      e->set_kl_stderr(kl.stderr);
      e->set_top1_agreement(static_cast<double>(scores[i].top1_agree) /
                            std::max<size_t>(1, scores[i].nll.size()));
      const DiffSummary d = SummarizePerplexityDiff(scores[i].nll, scores[0].nll);
      e->set_perplexity_diff(d.diff);
      e->set_perplexity_diff_stderr(d.stderr);
    }
    e->set_weights_resident_bytes(loaded[i].resident);
    e->set_peak_gpu_bytes(stats[i].peak_device_bytes);
    e->set_tokens_per_second(
        stats[i].forward_seconds > 0 ? stats[i].forward_tokens / stats[i].forward_seconds : 0);
    e->set_load_seconds(loaded[i].load_seconds);
    e->set_generation(samples[i]);
    e->set_device(lms[i]->device());
  }
  result.set_peak_host_bytes(ProcessPeakRss());
  result.set_seconds(absl::ToDoubleSeconds(absl::Now() - start));
  return result;
}

}  // namespace quantd
