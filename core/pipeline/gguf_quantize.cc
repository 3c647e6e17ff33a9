#include "core/pipeline/gguf_quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <future>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/gguf/gguf_file.h"
#include "core/gguf/gguf_writer.h"
#include "core/tensor/float_bits.h"
#include "core/util/fs.h"
#include "core/util/paths.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace {

std::string Extra(const MethodPlan& plan, const std::string& key) {
  auto it = plan.params.extra.find(key);
  return it == plan.params.extra.end() ? "" : it->second;
}

// The rows x cols an encoder sees for a 2-D tensor.
int64_t Rows(const GgufTensorSource& t) { return t.shape.size() == 2 ? t.shape[0] : 1; }
int64_t Cols(const GgufTensorSource& t) { return t.shape.back(); }

// Parameters of the "ggml" format for tensor i.
FormatParams ParamsFor(const GgufQuantizeRequest& req, size_t i) {
  FormatParams p;
  p.extra["type"] = std::string(GgmlTypeName(req.types[i].type));
  if (req.imatrix.has_value() && GgmlTraits(req.types[i].type).is_quantized) {
    const std::vector<float>* imp = req.imatrix->Find(req.tensors[i].name);
    if (imp != nullptr && static_cast<int64_t>(imp->size()) == Cols(req.tensors[i])) {
      p.importance = imp->data();
    }
  }
  return p;
}

// Whether tensor i goes through the "ggml" format (2-D weights) or is
// converted here (1-D tensors and generated ones, always F32 in practice).
bool ViaFormat(const GgufQuantizeRequest& req, size_t i) {
  return req.tensors[i].source != nullptr && req.tensors[i].shape.size() == 2;
}

int64_t TensorBytesOf(const GgufQuantizeRequest& req, size_t i) {
  absl::StatusOr<int64_t> n = TensorBytes(req.types[i].type, GgmlDims(req.tensors[i].shape));
  return n.ok() ? *n : 0;
}

// The bytes of one tensor as stored in the file.
struct Encoded {
  absl::Status status;
  EncodedWeight weight;      // via the format: its "data" part
  std::vector<uint8_t> raw;  // converted here
  double seconds = 0;

  const uint8_t* data() const {
    if (!weight.parts.empty()) return weight.parts.front().tensor.data();
    return raw.data();
  }
  size_t size() const { return weight.parts.empty() ? raw.size() : weight.nbytes(); }
};

// Converts a 1-D or generated tensor to `type` (F32, F16 or BF16).
absl::Status ConvertHere(const GgufTensorSource& t, GgmlType type, std::vector<uint8_t>* out) {
  const int64_t n = NumElements(t.shape);
  std::vector<float> values(n);
  if (t.source == nullptr) {
    values = t.generated;
  } else {
    const TensorView v = t.source->view();
    for (int64_t i = 0; i < n; ++i) values[i] = LoadAsFloat(v, i);
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(t.name, ": element ", i, " is ", values[i], " (not finite)"));
    }
  }
  if (type == GgmlType::kF32) {
    out->resize(n * 4);
    std::memcpy(out->data(), values.data(), n * 4);
  } else if (type == GgmlType::kF16 || type == GgmlType::kBF16) {
    out->resize(n * 2);
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t h = type == GgmlType::kF16 ? FloatToF16(values[i]) : FloatToBf16(values[i]);
      std::memcpy(out->data() + 2 * i, &h, 2);
    }
  } else {
    return absl::InternalError(
        absl::StrCat(t.name, ": 1-D tensor typed ", std::string(GgmlTypeName(type))));
  }
  return absl::OkStatus();
}

Encoded EncodeOne(const GgufQuantizeRequest& req, size_t i, const RunContext& ctx) {
  Encoded r;
  const absl::Time t0 = absl::Now();
  const GgufTensorSource& t = req.tensors[i];
  if (!ViaFormat(req, i)) {
    r.status = ConvertHere(t, req.types[i].type, &r.raw);
    r.seconds = absl::ToDoubleSeconds(absl::Now() - t0);
    return r;
  }
  TensorView view = t.source->view();
  Tensor permuted;
  if (t.permute == RowPermute::kRope) {
    absl::StatusOr<Tensor> p = PermuteRowsForRope(view, t.permute_heads);
    if (!p.ok()) {
      r.status = p.status();
      return r;
    }
    permuted = *std::move(p);
    view = permuted.view();
  }
  absl::StatusOr<EncodedWeight> w =
      ctx.encoder->Encode(*req.plan.format, ParamsFor(req, i), view, *ctx.cancel);
  r.seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  if (!w.ok()) {
    r.status =
        w.status().code() == absl::StatusCode::kCancelled
            ? w.status()
            : absl::Status(w.status().code(), absl::StrCat(t.name, ": ", w.status().message()));
    return r;
  }
  if (w->parts.size() != 1 || static_cast<int64_t>(w->nbytes()) != TensorBytesOf(req, i)) {
    r.status = absl::InternalError(absl::StrCat(t.name, ": the ggml format returned ", w->nbytes(),
                                                " bytes, expected ", TensorBytesOf(req, i)));
    return r;
  }
  r.weight = *std::move(w);
  return r;
}

// The type of a tensor in an unquantized conversion (convert_hf_to_gguf):
// F32 for 1-D tensors, norms and biases; the file type's own type for 2-D
// weights of F16/BF16 files (it is never kept for quantized file types).
GgmlType SourceType(const GgufTensorSource& t, const GgufFileType& ft) {
  if (t.shape.size() <= 1 || absl::EndsWith(t.name, "_norm.weight") ||
      !absl::EndsWith(t.name, ".weight")) {
    return GgmlType::kF32;
  }
  return GgmlTraits(ft.default_type).is_quantized ? GgmlType::kF16 : ft.default_type;
}

}  // namespace

std::string GgufOutputName(const std::string& name) {
  return absl::EndsWith(name, ".gguf") ? name : name + ".gguf";
}

absl::StatusOr<GgufQuantizeRequest> PrepareGgufQuantize(
    const v1::QuantizeSpec& spec, const QuantMethod* method, const MethodPlan& plan,
    const HfModel& model, const std::filesystem::path& output, const std::string& output_name,
    const std::filesystem::path& model_root) {
  GgufQuantizeRequest req;
  req.spec = &spec;
  req.method = method;
  req.plan = plan;
  req.model = &model;
  req.output = output;
  req.output_name = output_name;
  if (plan.format == nullptr) return absl::InternalError("the gguf method has no format");
  ASSIGN_OR_RETURN(req.arch, FindGgufArch(model.architecture()));
  ASSIGN_OR_RETURN(req.hparams, ReadGgufHparams(model.config()));
  ASSIGN_OR_RETURN(req.tensors, PlanGgufTensors(model, *req.arch, req.hparams));
  ASSIGN_OR_RETURN(req.vocab, LoadGgufVocab(model.dir(), model.config(), req.arch->vocab));
  const GgufTensorSource& embd = req.tensors.front();  // token_embd.weight
  if (embd.shape[0] != static_cast<int64_t>(req.vocab.tokens.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("token_embd has ", embd.shape[0], " rows but the tokenizer has ",
                     req.vocab.tokens.size(), " tokens (llama.cpp needs them equal)"));
  }
  ASSIGN_OR_RETURN(req.file_type, ParseGgufFileType(Extra(plan, "gguf_type")));
  req.override_spec = Extra(plan, "override");
  ASSIGN_OR_RETURN(req.overrides, ParseGgufTypeOverrides(req.override_spec));
  req.imatrix_name = Extra(plan, "imatrix");
  if (!req.imatrix_name.empty()) {
    ASSIGN_OR_RETURN(std::filesystem::path p,
                     ResolveUnderRoot(model_root, req.imatrix_name, PathMode::kMustExist));
    ASSIGN_OR_RETURN(req.imatrix, ReadImportanceMatrix(p));
  }

  std::vector<GgufMixTensor> mix;
  for (const GgufTensorSource& t : req.tensors) {
    mix.push_back({t.name, GgmlDims(t.shape), SourceType(t, req.file_type)});
  }
  GgufMixOptions options{req.file_type, req.imatrix.has_value(), req.overrides};
  GgufMixModel mm{std::string(req.arch->name), req.hparams.n_layer, req.hparams.n_head,
                  req.hparams.n_head_kv};
  req.types = ChooseGgufTypes(mm, mix, options);

  for (size_t i = 0; i < req.tensors.size(); ++i) {
    const GgufTensorSource& t = req.tensors[i];
    const GgmlType type = req.types[i].type;
    if (!ViaFormat(req, i)) {
      if (type != GgmlType::kF32 && type != GgmlType::kF16 && type != GgmlType::kBF16) {
        return absl::InvalidArgumentError(absl::StrCat("tensor ", t.name, " cannot be stored as ",
                                                       std::string(GgmlTypeName(type))));
      }
      continue;
    }
    absl::Status st = plan.format->Check(ParamsFor(req, i), Rows(t), Cols(t));
    if (!st.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", t.name, " ", ShapeString(t.shape), " cannot be stored as ",
                       std::string(GgmlTypeName(type)), ": ", st.message()));
    }
    if (req.imatrix.has_value() && GgmlTraits(type).is_quantized) {
      const std::vector<float>* imp = req.imatrix->Find(t.name);
      if (imp != nullptr && static_cast<int64_t>(imp->size()) != Cols(t) &&
          t.name != "token_embd.weight") {
        return absl::InvalidArgumentError(
            absl::StrCat("imatrix ", req.imatrix_name, ": entry ", t.name, " has ", imp->size(),
                         " values but the tensor has rows of ", Cols(t)));
      }
    }
  }
  return req;
}

int64_t EstimateGgufMemory(const GgufQuantizeRequest& req) {
  int64_t largest = 0;
  for (size_t i = 0; i < req.tensors.size(); ++i) {
    const GgufTensorSource& t = req.tensors[i];
    const int64_t src = t.source ? static_cast<int64_t>(t.source->entry->nbytes()) : 0;
    const int64_t permuted = t.permute == RowPermute::kRope ? src : 0;
    largest = std::max(largest, src + permuted + TensorBytesOf(req, i));
  }
  return 2 * largest + (64 << 20);
}

absl::StatusOr<v1::JobResult> RunGgufQuantize(const GgufQuantizeRequest& req,
                                              const RunContext& ctx) {
  const absl::Time start = absl::Now();
  const size_t n = req.tensors.size();

  std::vector<GgufKv> metadata = GgufModelMetadata(
      *req.arch, req.hparams, req.model->dir().filename().string(), req.file_type.id);
  AppendVocabMetadata(req.vocab, &metadata);
  std::vector<GgufTensorInfo> infos;
  for (size_t i = 0; i < n; ++i) {
    infos.push_back({req.tensors[i].name, req.types[i].type, GgmlDims(req.tensors[i].shape)});
  }

  ASSIGN_OR_RETURN(AtomicOutput out,
                   AtomicOutput::Create(req.output, ctx.job_id,
                                        /*is_directory=*/false, req.spec->overwrite()));
  ASSIGN_OR_RETURN(std::unique_ptr<GgufWriter> writer,
                   GgufWriter::Create(out.temp_path(), std::move(metadata), std::move(infos)));

  v1::JobResult result;
  result.set_output(req.output_name);
  uint64_t bytes_total = 0, bytes_done = 0;
  for (const GgufTensorSource& t : req.tensors)
    bytes_total += t.source ? t.source->entry->nbytes() : 0;
  double encode_seconds = 0, write_seconds = 0;
  int64_t elements = 0, tensor_bytes = 0, imatrix_used = 0, fallbacks = 0;

  ctx.encoder->TakeTimings();  // start from zero
  auto launch = [&](size_t i) {
    return std::async(std::launch::async, [&req, &ctx, i] { return EncodeOne(req, i, ctx); });
  };
  std::future<Encoded> next;
  if (n > 0) next = launch(0);
  for (size_t i = 0; i < n; ++i) {
    Encoded enc = next.get();
    RETURN_IF_ERROR(enc.status);
    RETURN_IF_ERROR(ctx.cancel->Check());
    if (i + 1 < n) next = launch(i + 1);
    encode_seconds += enc.seconds;
    const GgufTensorSource& t = req.tensors[i];
    const absl::Time w0 = absl::Now();
    RETURN_IF_ERROR(writer->Write(t.name, enc.data(), enc.size()));
    write_seconds += absl::ToDoubleSeconds(absl::Now() - w0);

    v1::TensorReport* report = result.add_tensors();
    report->set_name(t.name);
    for (int64_t d : t.shape) report->add_shape(d);
    report->set_encoding(std::string(GgmlTypeName(req.types[i].type)));
    report->set_original_bytes(t.source ? static_cast<int64_t>(t.source->entry->nbytes()) : 0);
    report->set_stored_bytes(static_cast<int64_t>(enc.size()));
    elements += NumElements(t.shape);
    tensor_bytes += static_cast<int64_t>(enc.size());
    if (ViaFormat(req, i) && ParamsFor(req, i).importance != nullptr) ++imatrix_used;
    if (req.types[i].fallback) ++fallbacks;

    bytes_done += t.source ? t.source->entry->nbytes() : 0;
    v1::Progress p;
    p.set_stage("quantizing");
    p.set_step(static_cast<int64_t>(i + 1));
    p.set_total_steps(static_cast<int64_t>(n));
    p.set_bytes_processed(static_cast<int64_t>(bytes_done));
    p.set_bytes_total(static_cast<int64_t>(bytes_total));
    p.set_fraction(bytes_total ? 0.97 * bytes_done / bytes_total : 0.97);
    p.set_message(t.name);
    ctx.progress->Report(p);
    RETURN_IF_ERROR(DebugStepDelay(*ctx.env, *ctx.cancel));
  }
  const absl::Time w0 = absl::Now();
  ASSIGN_OR_RETURN(FileDigest digest, writer->Finish());
  write_seconds += absl::ToDoubleSeconds(absl::Now() - w0);
  RETURN_IF_ERROR(ctx.cancel->Check());
  RETURN_IF_ERROR(out.Commit());

  v1::OutputFile* f = result.add_files();
  f->set_path(req.output_name);
  f->set_size_bytes(static_cast<int64_t>(digest.size));
  f->set_sha256(digest.sha256);
  const uint64_t original = req.model->weight_bytes();
  result.set_original_size_bytes(static_cast<int64_t>(original));
  result.set_quantized_size_bytes(static_cast<int64_t>(digest.size));
  result.set_compression_ratio(digest.size ? static_cast<double>(original) / digest.size : 0.0);

  auto& metrics = *result.mutable_metrics();
  metrics["seconds_total"] = absl::ToDoubleSeconds(absl::Now() - start);
  metrics["seconds_encode"] = encode_seconds;
  metrics["seconds_write"] = write_seconds;
  const EncoderTimings timings = ctx.encoder->TakeTimings();
  metrics["seconds_host_to_device"] = timings.host_to_device;
  metrics["seconds_kernel"] = timings.kernel;
  metrics["seconds_device_to_host"] = timings.device_to_host;
  metrics["seconds_host_encode"] = timings.host;
  metrics["parameters"] = static_cast<double>(elements);
  // As llama-quantize reports it: tensor bytes * 8 / elements of all tensors.
  metrics["bits_per_weight"] = elements ? 8.0 * tensor_bytes / elements : 0.0;
  metrics["bits_per_weight_file"] = elements ? 8.0 * digest.size / elements : 0.0;
  metrics["fallback_tensors"] = static_cast<double>(fallbacks);
  metrics["imatrix_tensors"] = static_cast<double>(imatrix_used);
  metrics["input_gb_per_second"] =
      metrics["seconds_total"] > 0 ? bytes_total / 1e9 / metrics["seconds_total"] : 0.0;

  auto& params = *result.mutable_parameters();
  for (const auto& [k, v] : req.method->Describe(req.plan.params)) params[k] = v;
  params["method"] = std::string(req.method->name());
  params["output_format"] = std::string(req.method->output_format());
  params["device"] = ctx.encoder->device();
  params["gguf_type"] = std::string(req.file_type.name);
  params["file_type"] = std::to_string(req.file_type.id);
  params["architecture"] = std::string(req.arch->name);
  params["imatrix"] = req.imatrix.has_value() ? "yes" : "no";
  if (req.imatrix.has_value()) params["imatrix_file"] = req.imatrix_name;
  if (!req.override_spec.empty()) params["override"] = req.override_spec;
  params["tokenizer"] = absl::StrCat(req.vocab.model, " (pre ", req.vocab.pre, ")");
  if (!req.vocab.warnings.empty()) params["warnings"] = absl::StrJoin(req.vocab.warnings, "; ");
  return result;
}

}  // namespace quantd
