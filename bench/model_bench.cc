// End-to-end quantization of a whole model folder, the way a quantize job
// runs it (QuantizeJobHandler: plan, read, encode, write, rename into place),
// timed from a warm page cache to the finished output folder, with the
// stage breakdown the pipeline records.
//
//   model_bench --model DIR [--generate] [--methods nf4,fp8,nvfp4] [--device cuda|cpu]
//               [--out DIR] [--keep]
//
// --generate writes a Llama-3-8B-shaped folder with random BF16 weights
// (hidden 4096, FFN 14336, 32 layers, 32/8 heads, vocab 128256, untied) when
// DIR does not exist. Methods may carry options: "nvfp4:layout=modelopt",
// "fp8:strategy=block".
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "core/io/safetensors.h"
#include "core/jobs/quantize_job.h"
#include "core/tensor/float_bits.h"
#include "core/util/status_macros.h"
#include "kernels/devices.h"
#include "kernels/encoders.h"
#include "nlohmann/json.hpp"

namespace quantd {
namespace {

namespace fs = std::filesystem;

struct Shape8B {
  int64_t hidden = 4096, ffn = 14336, layers = 32, heads = 32, kv_heads = 8, vocab = 128256;
};

// Fills BF16 values ~N(0, 0.02) quickly: a table of normals indexed by a
// xorshift generator, one generator per thread.
void FillRandom(uint16_t* out, int64_t n, uint64_t seed, float mean) {
  static const std::vector<uint16_t>* table = [] {
    auto* t = new std::vector<uint16_t>(1 << 16);
    std::mt19937 rng(7);
    std::normal_distribution<float> d(0.0f, 0.02f);
    for (auto& v : *t) v = FloatToBf16(d(rng));
    return t;
  }();
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([=] {
      uint64_t x = seed * 0x9E3779B97F4A7C15ull + t + 1;
      const int64_t b = n * t / threads, e = n * (t + 1) / threads;
      const uint16_t one = FloatToBf16(mean);
      for (int64_t i = b; i < e; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[i] = mean != 0 ? one : (*table)[x & 0xffff];
      }
    });
  }
  for (auto& th : pool) th.join();
}

absl::Status Generate(const fs::path& dir) {
  const Shape8B s;
  const int64_t head_dim = s.hidden / s.heads, kv = s.kv_heads * head_dim;
  std::vector<std::pair<std::string, Shape>> tensors = {
      {"model.embed_tokens.weight", {s.vocab, s.hidden}}};
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    tensors.push_back({p + "input_layernorm.weight", {s.hidden}});
    tensors.push_back({p + "self_attn.q_proj.weight", {s.hidden, s.hidden}});
    tensors.push_back({p + "self_attn.k_proj.weight", {kv, s.hidden}});
    tensors.push_back({p + "self_attn.v_proj.weight", {kv, s.hidden}});
    tensors.push_back({p + "self_attn.o_proj.weight", {s.hidden, s.hidden}});
    tensors.push_back({p + "post_attention_layernorm.weight", {s.hidden}});
    tensors.push_back({p + "mlp.gate_proj.weight", {s.ffn, s.hidden}});
    tensors.push_back({p + "mlp.up_proj.weight", {s.ffn, s.hidden}});
    tensors.push_back({p + "mlp.down_proj.weight", {s.hidden, s.ffn}});
  }
  tensors.push_back({"model.norm.weight", {s.hidden}});
  tensors.push_back({"lm_head.weight", {s.vocab, s.hidden}});
  fs::create_directories(dir);
  const int shards = 4;
  nlohmann::ordered_json weight_map;
  uint64_t total = 0;
  for (int sh = 0; sh < shards; ++sh) {
    const size_t b = tensors.size() * sh / shards, e = tensors.size() * (sh + 1) / shards;
    std::vector<TensorMeta> metas;
    for (size_t i = b; i < e; ++i)
      metas.push_back({tensors[i].first, DType::kBF16, tensors[i].second});
    const std::string file = absl::StrFormat("model-%05d-of-%05d.safetensors", sh + 1, shards);
    ASSIGN_OR_RETURN(auto w, SafetensorsWriter::Create(dir / file, metas, {{"format", "pt"}}));
    for (size_t i = b; i < e; ++i) {
      Tensor t = Tensor::Allocate(DType::kBF16, tensors[i].second);
      const bool norm = tensors[i].second.size() == 1;
      FillRandom(t.as<uint16_t>(), t.numel(), i, norm ? 1.0f : 0.0f);
      RETURN_IF_ERROR(w->Write(tensors[i].first, t.data(), t.nbytes()));
      weight_map[tensors[i].first] = file;
      total += t.nbytes();
    }
    RETURN_IF_ERROR(w->Finish().status());
  }
  nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}},
                                  {"weight_map", weight_map}};
  std::ofstream(dir / "model.safetensors.index.json") << index.dump(2);
  nlohmann::ordered_json config = {{"architectures", {"LlamaForCausalLM"}},
                                   {"model_type", "llama"},
                                   {"hidden_size", s.hidden},
                                   {"intermediate_size", s.ffn},
                                   {"num_hidden_layers", s.layers},
                                   {"num_attention_heads", s.heads},
                                   {"num_key_value_heads", s.kv_heads},
                                   {"vocab_size", s.vocab},
                                   {"max_position_embeddings", 8192},
                                   {"rms_norm_eps", 1e-5},
                                   {"rope_theta", 500000.0},
                                   {"tie_word_embeddings", false},
                                   {"torch_dtype", "bfloat16"},
                                   {"hidden_act", "silu"},
                                   {"bos_token_id", 128000},
                                   {"eos_token_id", 128001}};
  std::ofstream(dir / "config.json") << config.dump(2);
  return absl::OkStatus();
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

int Run(int argc, char** argv) {
  std::string model, out = "", methods = "nf4,fp8,nvfp4", device = "cuda";
  bool generate = false, keep = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--model")
      model = next();
    else if (a == "--out")
      out = next();
    else if (a == "--methods")
      methods = next();
    else if (a == "--device")
      device = next();
    else if (a == "--generate")
      generate = true;
    else if (a == "--keep")
      keep = true;
  }
  if (model.empty()) {
    std::fprintf(stderr, "usage: model_bench --model DIR [--generate] [--methods a,b]\n");
    return 2;
  }
  const fs::path model_dir = fs::absolute(model);
  if (generate && !fs::exists(model_dir)) {
    const absl::Time t0 = absl::Now();
    if (absl::Status s = Generate(model_dir); !s.ok()) {
      std::fprintf(stderr, "generate: %s\n", s.ToString().c_str());
      return 1;
    }
    std::printf("generated %s in %.1f s\n", model_dir.c_str(),
                absl::ToDoubleSeconds(absl::Now() - t0));
  }
  const fs::path out_root =
      out.empty() ? model_dir.parent_path() / "model_bench_out" : fs::path(out);
  fs::create_directories(out_root);
  std::unique_ptr<WeightEncoder> encoder;
  std::string device_name = "CPU";
  if (device == "cuda") {
    auto e = MakeCudaEncoder(0);
    if (!e.ok()) {
      std::fprintf(stderr, "%s\n", e.status().ToString().c_str());
      return 1;
    }
    encoder = *std::move(e);
    device_name = ListCudaDevices().at(0).name;
  } else {
    encoder = MakeCpuEncoder(0);
  }
  std::printf("page cache warm-up read: %.1f s\n", WarmPageCache(model_dir));
  JobEnv env{model_dir.parent_path(), out_root};
  NullProgress progress;
  CancelToken cancel;
  std::printf("\nmodel_bench: %s on %s (%u host threads)\n", model_dir.filename().c_str(),
              device_name.c_str(), std::thread::hardware_concurrency());
  std::printf(
      "| method | total s | plan s | host staging s | H2D s | kernel s | D2H s | write s | in GB | "
      "out GB | in GB/s |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (absl::string_view m : absl::StrSplit(methods, ',')) {
    std::vector<std::string> parts = absl::StrSplit(m, ':');
    v1::JobSpec spec;
    v1::QuantizeSpec* q = spec.mutable_quantize();
    q->set_model(model_dir.filename().string());
    q->set_output(absl::StrCat(model_dir.filename().string(), "-", std::string(m)));
    q->set_method(parts[0]);
    q->set_overwrite(true);
    for (size_t i = 1; i < parts.size(); ++i) {
      std::vector<std::string> kv = absl::StrSplit(parts[i], '=');
      if (kv.size() == 2) (*q->mutable_options())[kv[0]] = kv[1];
    }
    const absl::Time t0 = absl::Now();
    absl::StatusOr<JobPlan> plan = QuantizeJobHandler().Plan(spec, env);
    const double plan_s = absl::ToDoubleSeconds(absl::Now() - t0);
    if (!plan.ok()) {
      std::printf("| %s | plan failed: %s |\n", std::string(m).c_str(),
                  plan.status().ToString().c_str());
      continue;
    }
    RunContext ctx;
    ctx.env = &env;
    ctx.job_id = "bench";
    ctx.encoder = encoder.get();
    ctx.progress = &progress;
    ctx.cancel = &cancel;
    absl::StatusOr<v1::JobResult> r = QuantizeJobHandler().Run(spec, ctx);
    const double total = absl::ToDoubleSeconds(absl::Now() - t0);
    if (!r.ok()) {
      std::printf("| %s | failed: %s |\n", std::string(m).c_str(), r.status().ToString().c_str());
      continue;
    }
    auto metric = [&](const char* k) {
      auto it = r->metrics().find(k);
      return it == r->metrics().end() ? 0.0 : it->second;
    };
    std::printf("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n",
                std::string(m).c_str(), total, plan_s, metric("seconds_host_encode"),
                metric("seconds_host_to_device"), metric("seconds_kernel"),
                metric("seconds_device_to_host"), metric("seconds_write"),
                r->original_size_bytes() / 1e9, r->quantized_size_bytes() / 1e9,
                r->original_size_bytes() / 1e9 / total);
    std::fflush(stdout);
    if (!keep) fs::remove_all(out_root / q->output());
  }
  std::printf(
      "\nH2D, kernel and D2H are device busy times summed over chunks (they overlap\n"
      "each other and the host staging copies); host staging includes reading the\n"
      "mapped input from the page cache; write includes fsync.\n");
  return 0;
}

}  // namespace
}  // namespace quantd

int main(int argc, char** argv) { return quantd::Run(argc, argv); }
