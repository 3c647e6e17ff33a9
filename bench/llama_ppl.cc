// Perplexity of a model folder (or GGUF file) on given token ids with the
// CUDA and/or CPU backend, for comparison with transformers under the same
// protocol (tests/interop/runtime_check_cuda.py):
//
//   llama_ppl --model DIR --tokens FILE [--context C] [--scored-from S]
//             [--backend cuda|cpu|both] [--json PATH]
//
// FILE holds token ids separated by whitespace, used as given (the caller
// adds BOS if it wants one). They are cut into non-overlapping chunks of C
// tokens (default 512; a trailing partial chunk is dropped); in each chunk
// positions [S, C - 1) predict the next token and are scored (S = 0: the
// "gptq" protocol; S = C / 2: "llama" without its BOS replacement).
// Perplexity = exp(mean negative log-likelihood), log-softmax in float64 on
// the CPU backend, float32 on the device (ForwardLogProbs) for CUDA.
// Prints one JSON object; exit status 1 on any error.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/runtime/model_loader.h"
#include "core/util/status_macros.h"
#include "kernels/cpu/llama_cpu.h"
#include "kernels/cuda/llama_cuda.h"

namespace quantd {
namespace {

struct Args {
  std::string model, tokens, backend = "both", json;
  int context = 512;
  int scored_from = 0;
};

int Fail(const std::string& msg) {
  std::fprintf(stderr, "llama_ppl: %s\n", msg.c_str());
  return 1;
}

// Accumulates -log_softmax(logits)[next token] over the scored positions.
class NllSink : public LogitsSink {
 public:
  NllSink(const std::vector<std::vector<int32_t>>* chunks, int vocab)
      : chunks_(chunks), vocab_(vocab) {}
  absl::Status Consume(int seq, int pos, const float* logits) override {
    const std::vector<int32_t>& c = (*chunks_)[seq];
    if (pos + 1 >= static_cast<int>(c.size())) return absl::OkStatus();
    double mx = logits[0];
    for (int i = 1; i < vocab_; ++i) mx = std::max(mx, double{logits[i]});
    double sum = 0;
    for (int i = 0; i < vocab_; ++i) sum += std::exp(logits[i] - mx);
    nll_ += -((logits[c[pos + 1]] - mx) - std::log(sum));
    ++count_;
    return absl::OkStatus();
  }
  double nll_ = 0;
  int64_t count_ = 0;

 private:
  const std::vector<std::vector<int32_t>>* chunks_;
  int vocab_;
};

struct Result {
  double nll = 0;
  int64_t count = 0;
  double seconds = 0;
};

absl::StatusOr<Result> RunCpu(const LoadedModel& m, const std::vector<std::vector<int32_t>>& chunks,
                              int from) {
  ASSIGN_OR_RETURN(std::unique_ptr<CausalLM> lm, MakeCpuLlama(&m, 0));
  CancelToken cancel;
  Result r;
  const absl::Time t0 = absl::Now();
  for (const std::vector<int32_t>& chunk : chunks) {
    // One chunk a call: the sink indexes its batch by sequence number.
    const std::vector<std::vector<int32_t>> one = {chunk};
    NllSink sink(&one, lm->vocab_size());
    RETURN_IF_ERROR(lm->Forward(one, from, &sink, cancel));
    r.nll += sink.nll_;
    r.count += sink.count_;
  }
  r.seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  return r;
}

absl::StatusOr<Result> RunCuda(const LoadedModel& m,
                               const std::vector<std::vector<int32_t>>& chunks, int from) {
  ASSIGN_OR_RETURN(std::unique_ptr<CausalLM> lm, MakeCudaLlama(&m, 0, {}));
  auto* fast = dynamic_cast<CudaLlama*>(lm.get());
  std::vector<std::vector<int32_t>> targets;
  for (const auto& c : chunks) {
    std::vector<int32_t> t(c.begin() + from + 1, c.end());
    t.push_back(-1);  // the last position predicts nothing
    targets.push_back(std::move(t));
  }
  std::vector<float> lp;
  CancelToken cancel;
  const absl::Time t0 = absl::Now();
  RETURN_IF_ERROR(fast->ForwardLogProbs(chunks, from, targets, &lp, nullptr, cancel));
  Result r;
  r.seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  for (size_t i = 0; i < lp.size(); ++i) {
    if (targets[i / targets[0].size()][i % targets[0].size()] < 0) continue;
    r.nll -= lp[i];
    ++r.count;
  }
  return r;
}

int Main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    bool ok = true;
    if (k == "--model") {
      a.model = v;
    } else if (k == "--tokens") {
      a.tokens = v;
    } else if (k == "--backend") {
      a.backend = v;
    } else if (k == "--json") {
      a.json = v;
    } else if (k == "--context") {
      ok = absl::SimpleAtoi(v, &a.context);
    } else if (k == "--scored-from") {
      ok = absl::SimpleAtoi(v, &a.scored_from);
    } else {
      ok = false;
    }
    if (!ok) return Fail("bad argument " + k + " " + v);
  }
  if (a.model.empty() || a.tokens.empty()) return Fail("--model and --tokens are required");
  if (a.context < 2 || a.scored_from < 0 || a.scored_from >= a.context - 1) {
    return Fail("need 0 <= --scored-from < --context - 1");
  }
  std::ifstream in(a.tokens);
  std::vector<int32_t> ids;
  for (int64_t x; in >> x;) ids.push_back(static_cast<int32_t>(x));
  std::vector<std::vector<int32_t>> chunks;
  for (size_t p = 0; p + a.context <= ids.size(); p += a.context) {
    chunks.emplace_back(ids.begin() + p, ids.begin() + p + a.context);
  }
  if (chunks.empty())
    return Fail(absl::StrFormat("%d tokens: no chunk of %d", ids.size(), a.context));
  absl::StatusOr<std::unique_ptr<LoadedModel>> m = LoadModel(a.model, LoadOptions{});
  if (!m.ok()) return Fail(m.status().ToString());

  std::string json =
      absl::StrFormat("{\"model\": \"%s\", \"context\": %d, \"scored_from\": %d, \"chunks\": %d",
                      a.model, a.context, a.scored_from, chunks.size());
  for (const char* backend : {"cuda", "cpu"}) {
    if (a.backend != "both" && a.backend != backend) continue;
    absl::StatusOr<Result> r = std::string(backend) == "cuda" ? RunCuda(**m, chunks, a.scored_from)
                                                              : RunCpu(**m, chunks, a.scored_from);
    if (!r.ok()) return Fail(absl::StrFormat("%s: %s", backend, r.status().ToString()));
    const double ppl = std::exp(r->nll / static_cast<double>(r->count));
    json += absl::StrFormat(
        ", \"%s\": {\"ppl\": %.9g, \"nll_sum\": %.9g, \"scored\": %d, \"seconds\": %.3f}", backend,
        ppl, r->nll, r->count, r->seconds);
  }
  json += "}\n";
  std::fputs(json.c_str(), stdout);
  if (!a.json.empty()) {
    std::ofstream out(a.json);
    out << json;
    if (!out) return Fail("cannot write " + a.json);
  }
  return 0;
}

}  // namespace
}  // namespace quantd

int main(int argc, char** argv) { return quantd::Main(argc, argv); }
