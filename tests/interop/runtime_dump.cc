// Runs quantd's CPU runtime on a model and a fixed token sequence, writes
// the logits for tests/interop/runtime_check.py (which compares them with
// transformers) and prints timings as one JSON line.
//
//   runtime_dump --model PATH --tokens 1,450,4996 [--out logits.f32]
//                [--threads N] [--repeat N] [--from P] [--generate N]
//                [--dequant auto|f32|bf16]
//   runtime_dump --write-tiny-model DIR [--tiny-dtype bf16|f32|f16] [--tied]
//   runtime_dump --model DIR --ppl-text FILE [--context 512] [--chunks N]
//                [--threads N]
//
// --out gets float32 little-endian logits [T - from, vocab] of the sequence.
// --repeat runs the forward pass N times after one warm-up and reports the
// best and mean tokens/s. --generate N greedily decodes N tokens after the
// sequence and reports them and their rate.
// --ppl-text tokenizes FILE with the model folder's tokenizer (no special
// tokens) and reports the perplexity under llama-perplexity's protocol:
// non-overlapping chunks of --context tokens, the first token of each
// replaced by BOS, the second half of each chunk scored (log-softmax in
// float64); --chunks limits the number of chunks (0: all).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/runtime/model_loader.h"
#include "core/tokenizer/tokenizer.h"
#include "core/util/fs.h"
#include "kernels/cpu/llama_cpu.h"
#include "tests/fixtures/tiny_model.h"

namespace quantd {
namespace {

class FileSink final : public LogitsSink {
 public:
  FileSink(std::ofstream* out, int64_t vocab) : out_(out), vocab_(vocab) {}
  absl::Status Consume(int seq, int pos, const float* logits) override {
    if (out_ != nullptr) {
      out_->write(reinterpret_cast<const char*>(logits), vocab_ * sizeof(float));
    }
    return absl::OkStatus();
  }

 private:
  std::ofstream* out_;
  int64_t vocab_;
};

// Sums -log p(next token) over the positions it receives (float64).
class NllSink final : public LogitsSink {
 public:
  NllSink(const std::vector<int32_t>* tokens, int64_t vocab) : tokens_(tokens), vocab_(vocab) {}
  absl::Status Consume(int seq, int pos, const float* logits) override {
    if (pos + 1 >= static_cast<int>(tokens_->size())) return absl::OkStatus();
    double max = logits[0];
    for (int64_t v = 1; v < vocab_; ++v) max = std::max(max, static_cast<double>(logits[v]));
    double sum = 0;
    for (int64_t v = 0; v < vocab_; ++v) sum += std::exp(logits[v] - max);
    nll_ += std::log(sum) + max - logits[(*tokens_)[pos + 1]];
    ++count_;
    return absl::OkStatus();
  }
  double nll() const { return nll_; }
  int64_t count() const { return count_; }

 private:
  const std::vector<int32_t>* tokens_;
  int64_t vocab_;
  double nll_ = 0;
  int64_t count_ = 0;
};

int Fail(const std::string& msg) {
  std::fprintf(stderr, "runtime_dump: %s\n", msg.c_str());
  return 2;
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int Perplexity(const std::string& model_path, const std::string& text_path, int context,
               int max_chunks, int threads) {
  auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::FromModelDir(model_path);
  if (!tokenizer.ok()) return Fail(tokenizer.status().ToString());
  absl::StatusOr<std::string> text = ReadFileToString(text_path, int64_t{1} << 30);
  if (!text.ok()) return Fail(text.status().ToString());
  absl::StatusOr<std::vector<int32_t>> ids = (*tokenizer)->Encode(*text, false);
  if (!ids.ok()) return Fail(ids.status().ToString());
  const double tokenize_seconds = Seconds(t0);
  t0 = std::chrono::steady_clock::now();
  LoadOptions options;
  options.threads = threads;
  absl::StatusOr<std::unique_ptr<LoadedModel>> model = LoadModel(model_path, options);
  if (!model.ok()) return Fail(model.status().ToString());
  const double load_seconds = Seconds(t0);
  absl::StatusOr<std::unique_ptr<CausalLM>> lm = MakeCpuLlama(model->get(), threads);
  if (!lm.ok()) return Fail(lm.status().ToString());
  int64_t chunks = static_cast<int64_t>(ids->size()) / context;
  if (max_chunks > 0) chunks = std::min<int64_t>(chunks, max_chunks);
  if (chunks == 0) return Fail("text shorter than one context");
  const int first = context / 2;
  double nll = 0;
  int64_t scored = 0;
  CancelToken cancel;
  t0 = std::chrono::steady_clock::now();
  for (int64_t c = 0; c < chunks; ++c) {
    std::vector<int32_t> chunk(ids->begin() + c * context, ids->begin() + (c + 1) * context);
    if ((*tokenizer)->bos_id() >= 0) chunk[0] = (*tokenizer)->bos_id();
    NllSink sink(&chunk, (*lm)->vocab_size());
    absl::Status s = (*lm)->Forward({chunk}, first, &sink, cancel);
    if (!s.ok()) return Fail(s.ToString());
    nll += sink.nll();
    scored += sink.count();
  }
  const double seconds = Seconds(t0);
  const double mean = nll / static_cast<double>(scored);
  std::printf(
      "{\"protocol\": \"llama\", \"context\": %d, \"chunks\": %lld, \"text_tokens\": %zu, "
      "\"scored_tokens\": %lld, \"perplexity\": %.6f, \"mean_nll\": %.6f, "
      "\"source_format\": \"%s\", \"threads\": %d, \"tokenize_seconds\": %.3f, "
      "\"load_seconds\": %.3f, \"forward_seconds\": %.3f, \"tokens_per_s\": %.1f}\n",
      context, static_cast<long long>(chunks), ids->size(), static_cast<long long>(scored),
      std::exp(mean), mean, (*model)->source_format.c_str(), threads, tokenize_seconds,
      load_seconds, seconds, static_cast<double>(chunks * context) / seconds);
  return 0;
}

int Main(int argc, char** argv) {
  std::string model_path, tokens_arg, out_path, tiny_dir, tiny_dtype = "bf16", dequant = "auto";
  std::string ppl_text;
  int threads = 0, repeat = 0, from = 0, generate = 0, context = 512, chunks = 0;
  bool tied = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    auto next_int = [&](int* v) { return absl::SimpleAtoi(next(), v); };
    bool ok = true;
    if (a == "--model") {
      model_path = next();
    } else if (a == "--tokens") {
      tokens_arg = next();
    } else if (a == "--out") {
      out_path = next();
    } else if (a == "--threads") {
      ok = next_int(&threads);
    } else if (a == "--repeat") {
      ok = next_int(&repeat);
    } else if (a == "--from") {
      ok = next_int(&from);
    } else if (a == "--generate") {
      ok = next_int(&generate);
    } else if (a == "--dequant") {
      dequant = next();
    } else if (a == "--ppl-text") {
      ppl_text = next();
    } else if (a == "--context") {
      ok = next_int(&context) && context >= 2;
    } else if (a == "--chunks") {
      ok = next_int(&chunks);
    } else if (a == "--write-tiny-model") {
      tiny_dir = next();
    } else if (a == "--tiny-dtype") {
      tiny_dtype = next();
    } else if (a == "--tied") {
      tied = true;
    } else {
      return Fail("unknown argument " + a);
    }
    if (!ok) return Fail("bad value for " + a);
  }
  if (!tiny_dir.empty()) {
    TinyLlamaOptions o;
    o.dtype = tiny_dtype == "f32" ? DType::kF32 : tiny_dtype == "f16" ? DType::kF16 : DType::kBF16;
    o.tie_embeddings = tied;
    absl::Status s = WriteTinyLlama(tiny_dir, o);
    return s.ok() ? 0 : Fail(s.ToString());
  }
  if (!ppl_text.empty()) {
    if (model_path.empty()) return Fail("--ppl-text needs --model");
    return Perplexity(model_path, ppl_text, context, chunks, threads);
  }
  if (model_path.empty() || tokens_arg.empty()) return Fail("--model and --tokens are required");
  std::vector<int32_t> tokens;
  for (absl::string_view t : absl::StrSplit(tokens_arg, ',')) {
    int32_t id;
    if (!absl::SimpleAtoi(t, &id)) return Fail("bad token " + std::string(t));
    tokens.push_back(id);
  }

  LoadOptions options;
  options.threads = threads;
  options.dequant_dtype = dequant == "f32"    ? DequantDType::kF32
                          : dequant == "bf16" ? DequantDType::kBF16
                                              : DequantDType::kAuto;
  auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<LoadedModel>> model = LoadModel(model_path, options);
  if (!model.ok()) return Fail(model.status().ToString());
  const double load_seconds = Seconds(t0);
  absl::StatusOr<std::unique_ptr<CausalLM>> lm = MakeCpuLlama(model->get(), threads);
  if (!lm.ok()) return Fail(lm.status().ToString());

  std::ofstream out;
  if (!out_path.empty()) {
    out.open(out_path, std::ios::binary);
    if (!out) return Fail("cannot write " + out_path);
  }
  CancelToken cancel;
  FileSink sink(out_path.empty() ? nullptr : &out, (*lm)->vocab_size());
  t0 = std::chrono::steady_clock::now();
  absl::Status s = (*lm)->Forward({tokens}, from, &sink, cancel);
  if (!s.ok()) return Fail(s.ToString());
  const double first_seconds = Seconds(t0);
  out.close();

  FileSink null_sink(nullptr, (*lm)->vocab_size());
  double best = first_seconds, total = 0;
  for (int r = 0; r < repeat; ++r) {
    t0 = std::chrono::steady_clock::now();
    s = (*lm)->Forward({tokens}, from, &null_sink, cancel);
    if (!s.ok()) return Fail(s.ToString());
    const double sec = Seconds(t0);
    best = std::min(best, sec);
    total += sec;
  }
  std::string gen_json;
  if (generate > 0) {
    t0 = std::chrono::steady_clock::now();
    absl::StatusOr<std::vector<int32_t>> gen = (*lm)->Generate(tokens, generate, {}, cancel);
    if (!gen.ok()) return Fail(gen.status().ToString());
    const double sec = Seconds(t0);
    gen_json = ", \"generated\": [" + absl::StrJoin(*gen, ", ") +
               "], \"generate_seconds\": " + std::to_string(sec) +
               ", \"generate_tokens_per_s\": " + std::to_string(gen->size() / sec);
  }
  const double n = static_cast<double>(tokens.size());
  std::printf(
      "{\"tokens\": %zu, \"threads\": %d, \"source_format\": \"%s\", \"load_seconds\": %.4f, "
      "\"resident_bytes\": %lld, \"first_seconds\": %.4f, \"best_seconds\": %.4f, "
      "\"best_tokens_per_s\": %.1f, \"mean_tokens_per_s\": %.1f%s}\n",
      tokens.size(), threads, (*model)->source_format.c_str(), load_seconds,
      static_cast<long long>((*model)->bytes_resident()), first_seconds, best, n / best,
      repeat > 0 ? n * repeat / total : n / first_seconds, gen_json.c_str());
  return 0;
}

}  // namespace
}  // namespace quantd

int main(int argc, char** argv) { return quantd::Main(argc, argv); }
