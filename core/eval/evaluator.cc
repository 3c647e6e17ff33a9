#include "core/eval/evaluator.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace {

// Runs fn(i) for i in [0, n) on up to hardware_concurrency threads.
void ParallelFor(int64_t n, const std::function<void(int64_t)>& fn) {
  const int64_t threads = std::min<int64_t>(n, std::max(1u, std::thread::hardware_concurrency()));
  if (threads <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<int64_t> next{0};
  std::vector<std::thread> pool;
  for (int64_t t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int64_t i = next.fetch_add(64); i < n; i = next.fetch_add(64)) {
        for (int64_t j = i; j < std::min(n, i + 64); ++j) fn(j);
      }
    });
  }
  for (std::thread& th : pool) th.join();
}

// Keeps the streamed logits of the scored positions of one batch; Score()
// then scores them on all cores.
class CollectingSink : public LogitsSink {
 public:
  CollectingSink(const ChunkPlan& plan, size_t batch, int vocab, std::vector<float>* rows)
      : plan_(plan), batch_(batch), vocab_(vocab), rows_(rows) {
    rows_->resize(batch * plan.scored_per_chunk() * static_cast<size_t>(vocab));
  }

  absl::Status Consume(int seq, int pos, const float* logits) override {
    if (seq < 0 || static_cast<size_t>(seq) >= batch_ || pos < plan_.scored_from) {
      return absl::InternalError(absl::StrCat("logits for unexpected position ", seq, "/", pos));
    }
    if (pos >= plan_.context - 1) return absl::OkStatus();  // nothing follows it
    const int64_t local =
        static_cast<int64_t>(seq) * plan_.scored_per_chunk() + (pos - plan_.scored_from);
    std::copy(logits, logits + vocab_, rows_->data() + local * vocab_);
    return absl::OkStatus();
  }

 private:
  const ChunkPlan& plan_;
  const size_t batch_;
  const int vocab_;
  std::vector<float>* const rows_;
};

// Scores the collected rows of one batch. With a reference: the reference
// (is_reference) turns its rows into log-probs in place and records its
// argmax; the others are compared with them.
void ScoreRows(const ChunkPlan& plan, const std::vector<std::vector<int32_t>>& batch,
               int64_t first_index, int vocab, std::vector<float>* rows, TokenScores* out,
               std::vector<int32_t>* ref_argmax, const std::vector<float>* ref_logprob,
               bool is_reference) {
  const int per_chunk = plan.scored_per_chunk();
  const int64_t n = static_cast<int64_t>(batch.size()) * per_chunk;
  std::vector<uint8_t> agree(n, 0);
  ParallelFor(n, [&](int64_t local) {
    const int64_t s = local / per_chunk;
    const int p = plan.scored_from + static_cast<int>(local % per_chunk);
    float* row = rows->data() + local * vocab;
    const float* ref =
        ref_logprob != nullptr && !is_reference ? ref_logprob->data() + local * vocab : nullptr;
    const PositionScore sc = ScorePosition(row, vocab, batch[s][p + 1], ref);
    out->nll[first_index + local] = static_cast<float>(sc.nll);
    if (ref_argmax == nullptr) return;
    if (is_reference) {
      (*ref_argmax)[local] = sc.argmax;
      LogSoftmax(row, vocab, row);
    } else {
      out->kl[first_index + local] = static_cast<float>(sc.kl);
      agree[local] = sc.argmax == (*ref_argmax)[local];
    }
  });
  for (uint8_t a : agree) out->top1_agree += a;
}

// The fast path: log-probs of the targets and argmax computed by the
// backend. UNIMPLEMENTED when it has none.
absl::Status ScoreFast(const ChunkPlan& plan, const std::vector<std::vector<int32_t>>& batch,
                       int64_t first_index, CausalLM* lm, const CausalLMFactory& factory,
                       TokenScores* out, const CancelToken& cancel) {
  std::vector<std::vector<int32_t>> targets(batch.size());
  for (size_t s = 0; s < batch.size(); ++s) {
    // Positions [scored_from, T) predict batch[s][p + 1]; the last has no
    // successor and gets target 0, whose result is ignored.
    for (int p = plan.scored_from; p < plan.context; ++p) {
      targets[s].push_back(p + 1 < plan.context ? batch[s][p + 1] : 0);
    }
  }
  std::vector<float> logprob;
  RETURN_IF_ERROR(
      factory.ForwardLogProbs(lm, batch, plan.scored_from, targets, &logprob, nullptr, cancel));
  const int per_row = plan.context - plan.scored_from;
  const int per_chunk = plan.scored_per_chunk();
  for (size_t s = 0; s < batch.size(); ++s) {
    for (int i = 0; i < per_chunk; ++i) {
      out->nll[first_index + static_cast<int64_t>(s) * per_chunk + i] = -logprob[s * per_row + i];
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ScoreChunks(const ChunkPlan& plan, const std::vector<std::vector<int32_t>>& chunks,
                         const std::vector<CausalLM*>& models, const EvalRunOptions& options,
                         const CancelToken& cancel, std::vector<TokenScores>* scores,
                         std::vector<ModelRunStats>* stats) {
  if (models.empty()) return absl::InvalidArgumentError("no model to evaluate");
  const int vocab = models[0]->vocab_size();
  if (options.has_reference) {
    for (CausalLM* m : models) {
      if (m->vocab_size() != vocab) {
        return absl::InvalidArgumentError(absl::StrCat("vocabulary sizes differ (", vocab, " and ",
                                                       m->vocab_size(),
                                                       "): KL divergence needs one vocabulary"));
      }
    }
  }
  const int per_chunk = plan.scored_per_chunk();
  const int64_t total = static_cast<int64_t>(chunks.size()) * per_chunk;
  scores->assign(models.size(), TokenScores{});
  stats->assign(models.size(), ModelRunStats{});
  for (size_t m = 0; m < models.size(); ++m) {
    (*scores)[m].nll.assign(total, 0.0f);
    if (options.has_reference && m > 0) (*scores)[m].kl.assign(total, 0.0f);
    models[m]->TakeStats();
  }
  const int batch_size = std::max(1, options.batch);
  std::vector<float> ref_logprob, logits;
  std::vector<int32_t> ref_argmax;
  for (size_t b = 0; b < chunks.size(); b += batch_size) {
    RETURN_IF_ERROR(cancel.Check());
    const size_t end = std::min(chunks.size(), b + batch_size);
    const std::vector<std::vector<int32_t>> batch(chunks.begin() + b, chunks.begin() + end);
    const int64_t first_index = static_cast<int64_t>(b) * per_chunk;
    if (options.has_reference) ref_argmax.assign(batch.size() * per_chunk, -1);
    for (size_t m = 0; m < models.size(); ++m) {
      if (!options.has_reference && options.factory != nullptr) {
        absl::Status s =
            ScoreFast(plan, batch, first_index, models[m], *options.factory, &(*scores)[m], cancel);
        if (s.ok()) continue;
        if (s.code() != absl::StatusCode::kUnimplemented) return s;
      }
      std::vector<float>* rows = options.has_reference && m == 0 ? &ref_logprob : &logits;
      CollectingSink sink(plan, batch.size(), models[m]->vocab_size(), rows);
      RETURN_IF_ERROR(models[m]->Forward(batch, plan.scored_from, &sink, cancel));
      ScoreRows(plan, batch, first_index, models[m]->vocab_size(), rows, &(*scores)[m],
                options.has_reference ? &ref_argmax : nullptr,
                options.has_reference ? &ref_logprob : nullptr, options.has_reference && m == 0);
    }
    if (options.on_chunks) options.on_chunks(static_cast<int64_t>(end), chunks.size());
  }
  for (size_t m = 0; m < models.size(); ++m) {
    const ForwardStats f = models[m]->TakeStats();
    (*stats)[m].forward_seconds = f.seconds;
    (*stats)[m].forward_tokens = f.tokens;
    (*stats)[m].peak_device_bytes = f.peak_device_bytes;
  }
  return absl::OkStatus();
}

}  // namespace quantd
