#include "core/pipeline/hf_quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/io/safetensors.h"
#include "core/util/fs.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace quantd {
namespace {

using ordered_json = nlohmann::ordered_json;

// One tensor of the output, in write order.
struct OutEntry {
  size_t source = 0;  // index into selection->tensors
  TensorMeta meta;
  size_t nbytes = 0;
};

struct Shard {
  std::string file;
  std::vector<TensorMeta> metas;
  size_t first = 0, count = 0;  // range of OutEntry
  uint64_t bytes = 0;
};

FormatParams ParamsFor(const HfQuantizeRequest& req, const TensorChoice& c) {
  FormatParams p = req.plan.params;
  // compressed-tensors stores scales in the weight's own dtype.
  p.scale_dtype = c.tensor->entry->dtype;
  return p;
}

std::vector<OutEntry> PlanOutputs(const HfQuantizeRequest& req) {
  std::vector<OutEntry> out;
  const auto& tensors = req.selection->tensors;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorChoice& c = tensors[i];
    const SafetensorsEntry& e = *c.tensor->entry;
    if (!c.quantize) {
      out.push_back({i, {c.tensor->name, e.dtype, e.shape}, static_cast<size_t>(e.end - e.begin)});
      continue;
    }
    const EncodedWeight shapes =
        req.plan.format->Allocate(ParamsFor(req, c), e.shape[0], e.shape[1], e.dtype);
    for (const EncodedPart& part : shapes.parts) {
      out.push_back(
          {i,
           {absl::StrCat(c.module, ".", part.suffix), part.tensor.dtype(), part.tensor.shape()},
           part.tensor.nbytes()});
    }
  }
  return out;
}

std::vector<Shard> PlanShards(const std::vector<OutEntry>& entries) {
  std::vector<Shard> shards;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (shards.empty() ||
        (shards.back().count > 0 && shards.back().bytes + entries[i].nbytes > kMaxShardBytes)) {
      shards.push_back(Shard{});
      shards.back().first = i;
    }
    Shard& s = shards.back();
    s.metas.push_back(entries[i].meta);
    s.bytes += entries[i].nbytes;
    ++s.count;
  }
  if (shards.size() == 1) {
    shards[0].file = "model.safetensors";
  } else {
    for (size_t i = 0; i < shards.size(); ++i) {
      shards[i].file = absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, shards.size());
    }
  }
  return shards;
}

absl::StatusOr<FileDigest> WriteText(const std::filesystem::path& path, const std::string& text) {
  ASSIGN_OR_RETURN(std::unique_ptr<FileSink> sink, FileSink::Create(path));
  RETURN_IF_ERROR(sink->Write(text.data(), text.size()));
  return sink->Finish();
}

absl::StatusOr<ordered_json> ReadOrderedJson(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  ordered_json j = ordered_json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), " is not a JSON object"));
  }
  return j;
}

// Tensors a runtime fuses into one matrix share a tensor-wide scale:
// "<prefix>.q_proj/.k_proj/.v_proj" and "<prefix>.gate_proj/.up_proj".
std::string FusedGroup(const std::string& module) {
  static const std::pair<const char*, const char*> kFused[] = {
      {".q_proj", ".qkv"},      {".k_proj", ".qkv"},
      {".v_proj", ".qkv"},      {".gate_proj", ".gate_up"},
      {".up_proj", ".gate_up"}, {".w1", ".w13"},
      {".w3", ".w13"}};
  for (const auto& [suffix, group] : kFused) {
    const size_t n = std::strlen(suffix);
    if (module.size() > n && module.compare(module.size() - n, n, suffix) == 0) {
      return module.substr(0, module.size() - n) + group;
    }
  }
  return module;
}

// max |x| over the fused group of each quantized tensor, computed once per
// group on first use, with the name of the first member (in selection
// order) holding a non-finite value, if any.
struct GroupAmaxValue {
  float amax = 0.0f;
  std::string non_finite_in;  // empty when every member is finite
};

class GroupAmax {
 public:
  explicit GroupAmax(const HfQuantizeRequest& req) : req_(req) {}
  GroupAmaxValue Get(const TensorChoice& c, WeightEncoder* encoder) {
    const std::string group = FusedGroup(c.module);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(group);
    if (it != cache_.end()) return it->second;
    GroupAmaxValue v;
    for (const TensorChoice& other : req_.selection->tensors) {
      if (!other.quantize || FusedGroup(other.module) != group) continue;
      const float m = encoder->AbsMax(other.tensor->view());
      // A NaN drops out of the max (the member holding it then fails on
      // its own, naming the position); an Inf makes every member fail.
      v.amax = std::max(v.amax, m);
      if (!std::isfinite(m) && v.non_finite_in.empty()) v.non_finite_in = other.tensor->name;
    }
    cache_[group] = v;
    return v;
  }

 private:
  const HfQuantizeRequest& req_;
  std::mutex mu_;
  std::map<std::string, GroupAmaxValue> cache_;
};

// The encoded form of tensor `c`: either its stored bytes (kept) or the parts.
struct Encoded {
  absl::Status status;
  EncodedWeight weight;
  double seconds = 0;
};

Encoded EncodeOne(const HfQuantizeRequest& req, const TensorChoice& c, const RunContext& ctx,
                  GroupAmax* amax) {
  Encoded r;
  if (!c.quantize) return r;
  const absl::Time t0 = absl::Now();
  FormatParams params = ParamsFor(req, c);
  std::string non_finite_in;  // another member of the fused group, named in errors
  if (req.plan.format->NeedsTensorAmax(params)) {
    GroupAmaxValue g = amax->Get(c, ctx.encoder);
    params.tensor_amax = g.amax;
    if (g.non_finite_in != c.tensor->name) non_finite_in = std::move(g.non_finite_in);
  }
  absl::StatusOr<EncodedWeight> w =
      ctx.encoder->Encode(*req.plan.format, params, c.tensor->view(), *ctx.cancel);
  r.seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  if (!w.ok()) {
    r.status = w.status().code() == absl::StatusCode::kCancelled
                   ? w.status()
                   : absl::Status(
                         w.status().code(),
                         absl::StrCat(c.tensor->name, ": ", w.status().message(),
                                      non_finite_in.empty() ? ""
                                                            : absl::StrCat(" (non-finite value in ",
                                                                           non_finite_in, ")")));
    return r;
  }
  r.weight = *std::move(w);
  return r;
}

}  // namespace

absl::Status CheckEncodable(const HfQuantizeRequest& req) {
  for (const TensorChoice& c : req.selection->tensors) {
    if (!c.quantize) continue;
    const Shape& s = c.tensor->entry->shape;
    absl::Status st = req.plan.format->Check(ParamsFor(req, c), s[0], s[1]);
    if (!st.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", c.tensor->name, " ", ShapeString(s),
                       " cannot be encoded with method ", std::string(req.method->name()), ": ",
                       st.message(), " (keep_modules can leave such modules unquantized)"));
    }
  }
  return absl::OkStatus();
}

int64_t EstimateMemory(const HfQuantizeRequest& req) {
  int64_t largest = 0;
  for (const TensorChoice& c : req.selection->tensors) {
    if (c.quantize) {
      largest = std::max<int64_t>(largest, c.tensor->entry->end - c.tensor->entry->begin);
    }
  }
  // Input plus an encoding never larger than it, for two tensors in flight,
  // plus slack for device buffers and workspaces.
  return 4 * largest + (64 << 20);
}

absl::StatusOr<v1::JobResult> RunHfQuantize(const HfQuantizeRequest& req, const RunContext& ctx) {
  const absl::Time start = absl::Now();
  const auto& tensors = req.selection->tensors;
  const std::vector<OutEntry> entries = PlanOutputs(req);
  const std::vector<Shard> shards = PlanShards(entries);

  ASSIGN_OR_RETURN(
      AtomicOutput out,
      AtomicOutput::Create(req.output, ctx.job_id, /*is_directory=*/true, req.spec->overwrite()));
  const std::filesystem::path& dir = out.temp_path();

  v1::JobResult result;
  result.set_output(req.output_name);
  auto add_file = [&](const std::string& name, const FileDigest& d) {
    v1::OutputFile* f = result.add_files();
    f->set_path(absl::StrCat(req.output_name, "/", name));
    f->set_size_bytes(static_cast<int64_t>(d.size));
    f->set_sha256(d.sha256);
  };

  uint64_t bytes_total = 0;
  for (const TensorChoice& c : tensors)
    bytes_total += c.tensor->entry->end - c.tensor->entry->begin;
  uint64_t bytes_done = 0;
  double encode_seconds = 0, write_seconds = 0;
  int64_t quantized_elems = 0, quantized_stored_bytes = 0;
  uint64_t weight_out_bytes = 0;

  // Tensor i+1 is encoded while tensor i is written.
  GroupAmax amax(req);
  ctx.encoder->TakeTimings();  // start from zero
  std::future<Encoded> next;
  auto launch = [&](size_t i) {
    return std::async(std::launch::async, [&req, &ctx, &tensors, &amax, i] {
      return EncodeOne(req, tensors[i], ctx, &amax);
    });
  };
  size_t entry_index = 0;
  size_t source_index = 0;
  if (!tensors.empty()) next = launch(0);
  for (const Shard& shard : shards) {
    ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsWriter> writer,
                     SafetensorsWriter::Create(dir / shard.file, shard.metas, {{"format", "pt"}}));
    while (entry_index < shard.first + shard.count) {
      const size_t src = entries[entry_index].source;
      // All parts of one source tensor lie in one shard only if they fit; a
      // source's parts are written in order, so encode each source once.
      while (source_index <= src) {
        Encoded enc = next.get();
        RETURN_IF_ERROR(enc.status);
        RETURN_IF_ERROR(ctx.cancel->Check());
        encode_seconds += enc.seconds;
        if (source_index + 1 < tensors.size()) next = launch(source_index + 1);
        const TensorChoice& c = tensors[source_index];
        v1::TensorReport* report = result.add_tensors();
        report->set_name(c.tensor->name);
        for (int64_t d : c.tensor->entry->shape) report->add_shape(d);
        report->set_original_bytes(
            static_cast<int64_t>(c.tensor->entry->end - c.tensor->entry->begin));
        const absl::Time w0 = absl::Now();
        if (!c.quantize) {
          const TensorView v = c.tensor->view();
          RETURN_IF_ERROR(writer->Write(c.tensor->name, v.data, v.nbytes));
          report->set_encoding(
              absl::StrCat(std::string(DTypeName(c.tensor->entry->dtype)), " (kept)"));
          report->set_stored_bytes(static_cast<int64_t>(v.nbytes));
          ++entry_index;
        } else {
          report->set_encoding(req.method->Label(ParamsFor(req, c)));
          report->set_stored_bytes(static_cast<int64_t>(enc.weight.nbytes()));
          quantized_elems += c.tensor->view().numel();
          quantized_stored_bytes += static_cast<int64_t>(enc.weight.nbytes());
          for (const EncodedPart& part : enc.weight.parts) {
            if (entry_index >= shard.first + shard.count) {
              // The rest of this tensor's parts belong to the next shard.
              return absl::InternalError("a quantized tensor's parts span two shards");
            }
            RETURN_IF_ERROR(writer->Write(entries[entry_index].meta.name, part.tensor.data(),
                                          part.tensor.nbytes()));
            ++entry_index;
          }
        }
        write_seconds += absl::ToDoubleSeconds(absl::Now() - w0);
        bytes_done += c.tensor->entry->end - c.tensor->entry->begin;
        ++source_index;
        v1::Progress p;
        p.set_stage("quantizing");
        p.set_step(static_cast<int64_t>(source_index));
        p.set_total_steps(static_cast<int64_t>(tensors.size()));
        p.set_bytes_processed(static_cast<int64_t>(bytes_done));
        p.set_bytes_total(static_cast<int64_t>(bytes_total));
        p.set_fraction(bytes_total ? 0.95 * bytes_done / bytes_total : 0.95);
        p.set_message(c.tensor->name);
        ctx.progress->Report(p);
        RETURN_IF_ERROR(DebugStepDelay(*ctx.env, *ctx.cancel));
      }
    }
    const absl::Time w0 = absl::Now();
    ASSIGN_OR_RETURN(FileDigest d, writer->Finish());
    write_seconds += absl::ToDoubleSeconds(absl::Now() - w0);
    weight_out_bytes += d.size;
    add_file(shard.file, d);
  }
  RETURN_IF_ERROR(ctx.cancel->Check());

  if (shards.size() > 1) {
    ordered_json index;
    index["metadata"]["total_size"] = weight_out_bytes;
    for (size_t si = 0; si < shards.size(); ++si) {
      for (const TensorMeta& m : shards[si].metas) index["weight_map"][m.name] = shards[si].file;
    }
    ASSIGN_OR_RETURN(FileDigest d,
                     WriteText(dir / "model.safetensors.index.json", index.dump(2) + "\n"));
    add_file("model.safetensors.index.json", d);
  }

  ASSIGN_OR_RETURN(ordered_json config, ReadOrderedJson(req.model->dir() / "config.json"));
  nlohmann::json qconfig =
      req.method->QuantizationConfig(req.plan.params, req.selection->ignored_linear);
  if (!qconfig.is_null()) config["quantization_config"] = ordered_json::parse(qconfig.dump());
  ASSIGN_OR_RETURN(FileDigest cd, WriteText(dir / "config.json", config.dump(2) + "\n"));
  add_file("config.json", cd);
  for (const auto& [name, content] :
       req.method->ExtraFiles(req.plan.params, req.selection->ignored_linear)) {
    ASSIGN_OR_RETURN(FileDigest d, WriteText(dir / name, content));
    add_file(name, d);
  }
  for (const std::filesystem::path& aux : req.model->AuxiliaryFiles()) {
    ASSIGN_OR_RETURN(FileDigest d, CopyFileDurably(aux, dir / aux.filename()));
    add_file(aux.filename().string(), d);
  }
  RETURN_IF_ERROR(ctx.cancel->Check());
  RETURN_IF_ERROR(out.Commit());

  result.set_original_size_bytes(static_cast<int64_t>(req.model->weight_bytes()));
  result.set_quantized_size_bytes(static_cast<int64_t>(weight_out_bytes));
  result.set_compression_ratio(weight_out_bytes ? static_cast<double>(req.model->weight_bytes()) /
                                                      static_cast<double>(weight_out_bytes)
                                                : 0.0);
  auto& metrics = *result.mutable_metrics();
  int64_t params = 0;
  for (const TensorChoice& c : tensors) params += c.tensor->view().numel();
  metrics["seconds_total"] = absl::ToDoubleSeconds(absl::Now() - start);
  metrics["seconds_encode"] = encode_seconds;
  metrics["seconds_write"] = write_seconds;
  const EncoderTimings timings = ctx.encoder->TakeTimings();
  metrics["seconds_host_to_device"] = timings.host_to_device;
  metrics["seconds_kernel"] = timings.kernel;
  metrics["seconds_device_to_host"] = timings.device_to_host;
  metrics["seconds_host_encode"] = timings.host;
  metrics["parameters"] = static_cast<double>(params);
  metrics["bits_per_weight_quantized_tensors"] =
      quantized_elems ? 8.0 * quantized_stored_bytes / quantized_elems : 0.0;
  metrics["bits_per_weight_file"] = params ? 8.0 * weight_out_bytes / params : 0.0;
  metrics["input_gb_per_second"] =
      metrics["seconds_total"] > 0 ? bytes_total / 1e9 / metrics["seconds_total"] : 0.0;
  for (const auto& [k, v] : req.method->Describe(req.plan.params))
    (*result.mutable_parameters())[k] = v;
  (*result.mutable_parameters())["method"] = std::string(req.method->name());
  (*result.mutable_parameters())["output_format"] = std::string(req.method->output_format());
  (*result.mutable_parameters())["device"] = ctx.encoder->device();
  return result;
}

}  // namespace quantd
