// Runs the real GGUF pipeline (core/pipeline/gguf_quantize.h, CPU encoder)
// on a generated tiny Llama model for tests/interop/gguf_export.py:
//   <dir>/models/tiny/            the model (F32 weights, hidden 256)
//   <dir>/models/tiny.imatrix     a legacy llama.cpp imatrix for it
//   <dir>/outputs/<case>.gguf     one file per case
//   <dir>/ref/<case>.safetensors  our DecodeRef of every quantized tensor
//                                 (F32 [rows, cols], GGUF names)
//   <dir>/summary.json            {case: {gguf_type, imatrix, result metrics}}
// A case is a file type, optionally "+imatrix" (e.g. "Q4_K_M+imatrix").
// Usage: write_gguf_export <dir> <case>... Exit status 0 on success.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/formats/registry.h"
#include "core/gguf/gguf_file.h"
#include "core/gguf/hf_to_gguf.h"
#include "core/io/safetensors.h"
#include "core/pipeline/gguf_quantize.h"
#include "core/quant/gguf_method.h"
#include "core/util/status_macros.h"
#include "kernels/encoders.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/tiny_model.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;

class NullProgress : public ProgressSink {
 public:
  void Report(const v1::Progress&) override {}
};

// A legacy imatrix with positive random importances for every 2-D weight.
absl::Status WriteImatrix(const HfModel& model, const fs::path& path) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(0.01f, 4.0f);
  std::string out;
  auto i32 = [&](int32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
  std::vector<std::pair<std::string, int64_t>> entries;
  for (const ModelTensor& t : model.tensors()) {
    auto name = GgufTensorName(t.name);
    if (name && t.entry->shape.size() == 2 && *name != "token_embd.weight") {
      entries.emplace_back(*name, t.entry->shape[1]);
    }
  }
  i32(static_cast<int32_t>(entries.size()));
  for (const auto& [name, cols] : entries) {
    i32(static_cast<int32_t>(name.size()));
    out += name;
    i32(10);  // ncall
    i32(static_cast<int32_t>(cols));
    for (int64_t c = 0; c < cols; ++c) {
      const float v = dist(rng) * 10;
      out.append(reinterpret_cast<const char*>(&v), 4);
    }
  }
  i32(10);
  i32(4);
  out += "test";
  std::ofstream(path, std::ios::binary) << out;
  return absl::OkStatus();
}

// DecodeRef of every quantized tensor of the file.
absl::Status WriteReference(const fs::path& gguf, const fs::path& out) {
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> f, GgufFile::Open(gguf));
  ASSIGN_OR_RETURN(const WeightFormat* fmt, FindFormat("ggml"));
  std::vector<std::pair<std::string, Tensor>> decoded;
  for (const GgufTensor& t : f->tensors()) {
    if (!GgmlTraits(t.type).is_quantized) continue;
    const int64_t cols = t.ne[0], rows = t.ne.size() > 1 ? t.ne[1] : 1;
    EncodedWeight w;
    Tensor data = Tensor::Allocate(DType::kU8, {rows, static_cast<int64_t>(t.nbytes) / rows});
    std::memcpy(data.data(), f->TensorData(t), t.nbytes);
    w.parts.push_back({"data", std::move(data)});
    FormatParams p;
    p.extra["type"] = std::string(GgmlTypeName(t.type));
    ASSIGN_OR_RETURN(std::vector<float> v, fmt->DecodeRef(p, w, rows, cols));
    Tensor d = Tensor::Allocate(DType::kF32, {rows, cols});
    std::memcpy(d.data(), v.data(), v.size() * 4);
    decoded.emplace_back(t.name, std::move(d));
  }
  std::vector<std::pair<std::string, TensorView>> views;
  for (auto& [n, t] : decoded) views.emplace_back(n, t.view());
  return WriteSafetensors(out, views, {}).status();
}

absl::Status Run(const fs::path& dir, const std::vector<std::string>& cases) {
  fs::remove_all(dir);
  fs::create_directories(dir / "models");
  fs::create_directories(dir / "outputs");
  fs::create_directories(dir / "ref");
  TinyLlamaOptions o;
  o.hidden = 256;
  o.intermediate = 512;
  o.layers = 4;
  o.heads = 4;
  o.kv_heads = 2;
  o.dtype = DType::kF32;
  RETURN_IF_ERROR(WriteTinyLlama(dir / "models" / "tiny", o));
  ASSIGN_OR_RETURN(std::unique_ptr<HfModel> model, HfModel::Open(dir / "models" / "tiny"));
  RETURN_IF_ERROR(WriteImatrix(*model, dir / "models" / "tiny.imatrix"));

  std::unique_ptr<WeightEncoder> encoder = MakeCpuEncoder(2);
  JobEnv env;
  env.model_root = dir / "models";
  env.output_root = dir / "outputs";
  nlohmann::json summary = nlohmann::json::object();
  for (const std::string& c : cases) {
    const bool imatrix = absl::EndsWith(c, "+imatrix");
    const std::string type = imatrix ? c.substr(0, c.size() - 8) : c;
    const std::string name = imatrix ? type + "-imatrix" : type;
    v1::QuantizeSpec spec;
    spec.set_model("tiny");
    spec.set_output(name);
    spec.set_method(kGgufMethodName);
    (*spec.mutable_options())["gguf_type"] = type;
    if (imatrix) (*spec.mutable_options())["imatrix"] = "tiny.imatrix";
    ASSIGN_OR_RETURN(MethodPlan plan, GgufMethod().Resolve(spec));
    const std::string output_name = GgufOutputName(name);
    ASSIGN_OR_RETURN(GgufQuantizeRequest req, PrepareGgufQuantize(spec, &GgufMethod(), plan, *model,
                                                                  env.output_root / output_name,
                                                                  output_name, env.model_root));
    NullProgress progress;
    CancelToken cancel;
    RunContext ctx;
    ctx.env = &env;
    ctx.job_id = "interop";
    ctx.encoder = encoder.get();
    ctx.progress = &progress;
    ctx.cancel = &cancel;
    ASSIGN_OR_RETURN(v1::JobResult result, RunGgufQuantize(req, ctx));
    RETURN_IF_ERROR(
        WriteReference(env.output_root / output_name, dir / "ref" / (name + ".safetensors")));
    nlohmann::json r;
    r["gguf_type"] = type;
    r["file"] = output_name;
    r["imatrix"] = imatrix;
    for (const auto& [k, v] : result.metrics()) r["metrics"][k] = v;
    for (const auto& [k, v] : result.parameters()) r["parameters"][k] = v;
    for (const v1::TensorReport& t : result.tensors()) r["types"][t.name()] = t.encoding();
    summary[name] = r;
    std::printf("%-16s %8.3f bpw  %s\n", name.c_str(), result.metrics().at("bits_per_weight"),
                output_name.c_str());
  }
  std::ofstream(dir / "summary.json") << summary.dump(2);
  return absl::OkStatus();
}

}  // namespace
}  // namespace quantd

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <dir> <case>...\n", argv[0]);
    return 2;
  }
  std::vector<std::string> cases(argv + 2, argv + argc);
  absl::Status s = quantd::Run(argv[1], cases);
  if (!s.ok()) {
    std::fprintf(stderr, "write_gguf_export: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
