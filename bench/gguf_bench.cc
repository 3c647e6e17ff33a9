// GGUF export benchmark (issue 4):
//
//   gguf_bench --model DIR [--types Q4_K_M,Q6_K] [--devices cuda,cpu] [--out DIR]
//              [--rate] [--ggml-lib libggml-base.so] [--rate-rows N]
//              [--rate-types Q4_1,Q5_0] [--rate-reps N] [--keep]
//
// End to end: a HF model folder (e.g. the Llama-3-8B-shaped random BF16 one
// `model_bench --model DIR --generate` writes) to one .gguf, run as a quantize
// job runs it (QuantizeJobHandler Plan + Run: read, permute, encode on the
// device, write, fsync, rename), timed from a warm page cache, with the
// pipeline's breakdown. A folder without a tokenizer gets a synthetic
// byte-level BPE tokenizer.json of config.json's vocab_size first.
//
// --rate: single-thread (per core) encode rate of quantd's CPU reference on
// a [rate-rows, 4096] F32 matrix for each ggml type, and, with --ggml-lib,
// of ggml_quantize_chunk (the function llama-quantize runs per row chunk)
// on the same matrix, whose bytes are also compared. Rates are per second of
// the thread's CPU time, best of --rate-reps (default 5), the two libraries
// interleaved.
#include <dlfcn.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "core/gguf/ggml_quants.h"
#include "core/gguf/ggml_types.h"
#include "core/jobs/quantize_job.h"
#include "core/quant/gguf_method.h"
#include "kernels/devices.h"
#include "kernels/encoders.h"
#include "nlohmann/json.hpp"

namespace quantd {
namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

// GPT-2's bytes_to_unicode of byte b, as UTF-8.
std::string ByteToken(int b) {
  const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
  int cp = b;
  if (!printable) {
    int extra = 0;
    for (int c = 0; c < b; ++c) {
      if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174))) ++extra;
    }
    cp = 256 + extra;
  }
  std::string s;
  if (cp < 0x80) {
    s = std::string(1, static_cast<char>(cp));
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// A byte-level BPE tokenizer.json of `vocab` tokens: the 256 byte tokens,
// filler tokens, and config.json's bos/eos ids as special added tokens.
void WriteSyntheticTokenizer(const fs::path& dir) {
  ordered_json config = ordered_json::parse(std::ifstream(dir / "config.json"));
  const int64_t n = config.value("vocab_size", int64_t{32000});
  const int64_t bos = config.value("bos_token_id", int64_t{-1});
  const int64_t eos = config.value("eos_token_id", int64_t{-1});
  ordered_json vocab = ordered_json::object();
  ordered_json added = ordered_json::array();
  for (int64_t i = 0; i < n; ++i) {
    std::string tok = i < 256 ? ByteToken(static_cast<int>(i)) : absl::StrCat("tok", i);
    if (i == bos) tok = "<|begin_of_text|>";
    if (i == eos) tok = "<|end_of_text|>";
    if (i == bos || i == eos) {
      added.push_back({{"id", i},
                       {"content", tok},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", true}});
    }
    vocab[tok] = i;
  }
  ordered_json tok = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"},
        {"add_prefix_space", false},
        {"trim_offsets", true},
        {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", ordered_json::array()}}}};
  std::ofstream(dir / "tokenizer.json") << tok.dump();
  ordered_json cfg = {{"add_bos_token", true},
                      {"bos_token", "<|begin_of_text|>"},
                      {"eos_token", "<|end_of_text|>"}};
  std::ofstream(dir / "tokenizer_config.json") << cfg.dump(2);
}

// Reads every file once so the run starts from a warm page cache.
double WarmPageCache(const fs::path& dir) {
  const absl::Time t0 = absl::Now();
  std::vector<char> buf(64 << 20);
  for (const auto& e : fs::directory_iterator(dir)) {
    const int fd = open(e.path().c_str(), O_RDONLY);
    if (fd < 0) continue;
    while (read(fd, buf.data(), buf.size()) > 0) {
    }
    close(fd);
  }
  return absl::ToDoubleSeconds(absl::Now() - t0);
}

class NullProgress : public ProgressSink {
 public:
  void Report(const v1::Progress&) override {}
};

int EndToEnd(const fs::path& model_dir, const fs::path& out_root, const std::string& types,
             const std::string& devices, bool keep) {
  JobEnv env{model_dir.parent_path(), out_root};
  std::printf(
      "| device | gguf_type | total s | plan s | encode s | host staging s | H2D s | "
      "kernel s | D2H s | write s | in GB | out GB | bpw | in GB/s |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  int failures = 0;
  for (absl::string_view dev : absl::StrSplit(devices, ',')) {
    std::unique_ptr<WeightEncoder> encoder;
    std::string device_name = "CPU";
    if (dev == "cuda") {
      auto e = MakeCudaEncoder(0);
      if (!e.ok()) {
        std::printf("| cuda | %s |\n", e.status().ToString().c_str());
        ++failures;
        continue;
      }
      encoder = *std::move(e);
      device_name = ListCudaDevices().at(0).name;
    } else {
      encoder = MakeCpuEncoder(0);
      device_name = absl::StrCat("CPU x", std::thread::hardware_concurrency());
    }
    for (absl::string_view type : absl::StrSplit(types, ',')) {
      v1::JobSpec spec;
      v1::QuantizeSpec* q = spec.mutable_quantize();
      q->set_model(model_dir.filename().string());
      q->set_output(absl::StrCat(model_dir.filename().string(), "-", std::string(type), "-",
                                 std::string(dev)));
      q->set_method(kGgufMethodName);
      q->set_overwrite(true);
      (*q->mutable_options())["gguf_type"] = std::string(type);
      const absl::Time t0 = absl::Now();
      absl::StatusOr<JobPlan> plan = QuantizeJobHandler().Plan(spec, env);
      const double plan_s = absl::ToDoubleSeconds(absl::Now() - t0);
      if (!plan.ok()) {
        std::printf("| %s | %s | plan failed: %s |\n", device_name.c_str(),
                    std::string(type).c_str(), plan.status().ToString().c_str());
        ++failures;
        continue;
      }
      NullProgress progress;
      CancelToken cancel;
      RunContext ctx;
      ctx.env = &env;
      ctx.job_id = "bench";
      ctx.encoder = encoder.get();
      ctx.progress = &progress;
      ctx.cancel = &cancel;
      absl::StatusOr<v1::JobResult> r = QuantizeJobHandler().Run(spec, ctx);
      const double total = absl::ToDoubleSeconds(absl::Now() - t0);
      if (!r.ok()) {
        std::printf("| %s | %s | failed: %s |\n", device_name.c_str(), std::string(type).c_str(),
                    r.status().ToString().c_str());
        ++failures;
        continue;
      }
      auto m = [&](const char* k) {
        auto it = r->metrics().find(k);
        return it == r->metrics().end() ? 0.0 : it->second;
      };
      std::printf(
          "| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | "
          "%.2f | %.3f | %.2f |\n",
          device_name.c_str(), std::string(type).c_str(), total, plan_s, m("seconds_encode"),
          m("seconds_host_encode"), m("seconds_host_to_device"), m("seconds_kernel"),
          m("seconds_device_to_host"), m("seconds_write"), r->original_size_bytes() / 1e9,
          r->quantized_size_bytes() / 1e9, m("bits_per_weight"),
          r->original_size_bytes() / 1e9 / total);
      std::fflush(stdout);
      if (!keep) fs::remove(out_root / r->output());
    }
  }
  std::printf(
      "\ntotal: Plan + Run (read, permute, encode, write, fsync, rename). encode: the\n"
      "pipeline's encode time (overlaps writing the previous tensor); host staging, H2D,\n"
      "kernel, D2H: the encoder's busy times (they overlap one another); write includes\n"
      "the final fsync.\n");
  return failures;
}

// CPU time of the calling thread, in seconds.
double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

using QuantizeChunkFn = size_t (*)(int, const float*, void*, int64_t, int64_t, int64_t,
                                   const float*);

int Rate(const std::string& ggml_lib, int64_t rows, int reps, const std::string& only) {
  const int64_t cols = 4096;
  std::vector<float> x(static_cast<size_t>(rows * cols)), w(static_cast<size_t>(cols));
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 0.02f);
  for (float& v : x) v = d(rng);
  std::uniform_real_distribution<float> u(0.1f, 3.0f);
  for (float& v : w) v = u(rng);
  QuantizeChunkFn chunk = nullptr;
  if (!ggml_lib.empty()) {
    void* h = dlopen(ggml_lib.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      std::printf("dlopen %s: %s\n", ggml_lib.c_str(), dlerror());
      return 1;
    }
    chunk = reinterpret_cast<QuantizeChunkFn>(dlsym(h, "ggml_quantize_chunk"));
  }
  std::printf("\nper-core encode rate, [%lld, %lld] F32, one thread (M elements per CPU second)\n",
              static_cast<long long>(rows), static_cast<long long>(cols));
  std::printf("| type | imatrix | quantd | ggml_quantize_chunk | quantd / ggml | bytes equal |\n");
  std::printf("|---|---|---|---|---|---|\n");
  int failures = 0;
  const GgmlType kTypes[] = {GgmlType::kQ4_K, GgmlType::kQ6_K, GgmlType::kQ5_K, GgmlType::kQ3_K,
                             GgmlType::kQ2_K, GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_1,
                             GgmlType::kQ5_0, GgmlType::kQ5_1};
  for (GgmlType t : kTypes) {
    if (!only.empty() && !absl::StrContains(absl::StrCat(",", only, ","),
                                            absl::StrCat(",", std::string(GgmlTypeName(t)), ","))) {
      continue;
    }
    for (bool imatrix : {false, true}) {
      if (imatrix && !GgmlUsesImportance(t)) continue;
      const float* qw = imatrix ? w.data() : nullptr;
      const size_t bytes = static_cast<size_t>(rows * *RowBytes(t, cols));
      std::vector<uint8_t> ours(bytes), theirs(bytes);
      // Best of `reps` of this thread's CPU time (per core: time spent
      // preempted by other processes does not count), ours and ggml's
      // interleaved so that both see the same load (the machine may be shared).
      const auto once = [&](auto&& fn) {
        const double t0 = ThreadCpuSeconds();
        fn();
        return ThreadCpuSeconds() - t0;
      };
      const auto run_ours = [&] { (void)QuantizeGgml(t, x.data(), rows, cols, qw, ours.data()); };
      const auto run_ggml = [&] {
        chunk(static_cast<int>(t), x.data(), theirs.data(), 0, rows, cols, qw);
      };
      double best_ours = 1e30, best_ggml = 1e30;
      for (int rep = 0; rep < reps; ++rep) {
        best_ours = std::min(best_ours, once(run_ours));
        if (chunk != nullptr) best_ggml = std::min(best_ggml, once(run_ggml));
      }
      const double r_ours = rows * cols / best_ours / 1e6;
      if (chunk == nullptr) {
        std::printf("| %s | %s | %.1f | - | - | - |\n", std::string(GgmlTypeName(t)).c_str(),
                    imatrix ? "yes" : "no", r_ours);
        continue;
      }
      const double r_ggml = rows * cols / best_ggml / 1e6;
      const bool equal = ours == theirs;
      failures += !equal;
      std::printf("| %s | %s | %.1f | %.1f | %.2f | %s |\n", std::string(GgmlTypeName(t)).c_str(),
                  imatrix ? "yes" : "no", r_ours, r_ggml, r_ours / r_ggml, equal ? "yes" : "NO");
    }
  }
  return failures;
}

int Run(int argc, char** argv) {
  std::string model, out, types = "Q4_K_M", devices = "cuda", ggml_lib;
  bool keep = false, rate = false;
  int64_t rate_rows = 256;
  int rate_reps = 5;
  std::string rate_types;  // empty: every type
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--model")
      model = next();
    else if (a == "--out")
      out = next();
    else if (a == "--types")
      types = next();
    else if (a == "--devices")
      devices = next();
    else if (a == "--ggml-lib")
      ggml_lib = next();
    else if (a == "--rate-rows")
      rate_rows = std::stoll(next());
    else if (a == "--rate-reps")
      rate_reps = std::max(1, std::stoi(next()));
    else if (a == "--rate-types")
      rate_types = next();
    else if (a == "--rate")
      rate = true;
    else if (a == "--keep")
      keep = true;
  }
  if (model.empty() && !rate) {
    std::fprintf(stderr,
                 "usage: gguf_bench --model DIR [--types Q4_K_M] [--devices cuda,cpu] "
                 "[--rate [--ggml-lib PATH] [--rate-rows N] [--rate-reps N]]\n");
    return 2;
  }
  int failures = 0;
  if (!model.empty()) {
    const fs::path model_dir = fs::absolute(model);
    if (!fs::exists(model_dir / "tokenizer.json") && !fs::exists(model_dir / "tokenizer.model")) {
      const absl::Time t0 = absl::Now();
      WriteSyntheticTokenizer(model_dir);
      std::printf("wrote a synthetic tokenizer.json in %.1f s\n",
                  absl::ToDoubleSeconds(absl::Now() - t0));
    }
    const fs::path out_root =
        out.empty() ? model_dir.parent_path() / "gguf_bench_out" : fs::path(out);
    fs::create_directories(out_root);
    std::printf("page cache warm-up read: %.1f s\n", WarmPageCache(model_dir));
    std::printf("\ngguf_bench: %s (%u host threads)\n", model_dir.filename().c_str(),
                std::thread::hardware_concurrency());
    failures += EndToEnd(model_dir, out_root, types, devices, keep);
  }
  if (rate) failures += Rate(ggml_lib, rate_rows, rate_reps, rate_types);
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace quantd

int main(int argc, char** argv) { return quantd::Run(argc, argv); }
