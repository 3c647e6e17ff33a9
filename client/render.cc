#include "client/render.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "core/jobs/job_state.h"
#include "core/util/proto_time.h"

namespace quantd {
namespace {

std::string Time(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%E3S", FromProto(t), absl::LocalTimeZone());
}

std::string SpecSummary(const v1::JobSpec& spec) {
  if (spec.has_quantize()) {
    const v1::QuantizeSpec& q = spec.quantize();
    std::string s = absl::StrCat(q.method(), " ", q.model(), " -> ", q.output());
    if (q.group_size() != 0) absl::StrAppend(&s, " group ", q.group_size());
    if (q.has_symmetric()) absl::StrAppend(&s, q.symmetric() ? " sym" : " asym");
    return s;
  }
  if (spec.has_evaluate()) return absl::StrCat("evaluate ", spec.evaluate().model());
  return "(empty spec)";
}

const char* SupportName(v1::Support s) {
  switch (s) {
    case v1::SUPPORT_NATIVE:
      return "native";
    case v1::SUPPORT_EMULATED:
      return "emulated";
    case v1::SUPPORT_NONE:
      return "no";
    default:
      return "?";
  }
}

}  // namespace

std::string ToJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = false;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  return out;
}

std::string HumanBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (std::fabs(bytes) >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return u == 0 ? absl::StrFormat("%.0f B", bytes) : absl::StrFormat("%.2f %s", bytes, units[u]);
}

std::string HumanSeconds(double s) {
  if (s < 0 || !std::isfinite(s)) return "?";
  const int64_t t = static_cast<int64_t>(std::llround(s));
  if (t < 60) return absl::StrFormat("%ds", t);
  if (t < 3600) return absl::StrFormat("%dm%02ds", t / 60, t % 60);
  return absl::StrFormat("%dh%02dm", t / 3600, (t % 3600) / 60);
}

std::string JobLine(const v1::Job& job) {
  return absl::StrFormat("%-18s %-9s %-10s %5.1f%%  %s", job.id(), StateName(job.state()),
                         job.kind() == v1::JOB_KIND_EVALUATE ? "evaluate" : "quantize",
                         100.0 * job.progress().fraction(), SpecSummary(job.spec()));
}

std::string JobText(const v1::Job& job) {
  std::string s;
  absl::StrAppend(&s, "job       ", job.id(), "\n");
  absl::StrAppend(&s, "state     ", StateName(job.state()), "\n");
  absl::StrAppend(&s, "spec      ", SpecSummary(job.spec()), "\n");
  if (!job.device().empty()) absl::StrAppend(&s, "device    ", job.device(), "\n");
  absl::StrAppend(&s, "created   ", Time(job.create_time()), "\n");
  if (job.has_start_time()) absl::StrAppend(&s, "started   ", Time(job.start_time()), "\n");
  if (job.has_finish_time()) absl::StrAppend(&s, "finished  ", Time(job.finish_time()), "\n");
  const v1::Progress& p = job.progress();
  if (job.state() == v1::JOB_STATE_RUNNING || job.state() == v1::JOB_STATE_QUEUED) {
    absl::StrAppend(&s, "progress  ", p.stage(), " ", p.step(), "/", p.total_steps(), " (",
                    absl::StrFormat("%.1f%%", 100 * p.fraction()), "), ETA ",
                    HumanSeconds(p.eta_seconds()), "\n");
  }
  if (job.has_error() && job.error().code() != 0) {
    absl::StrAppend(&s, "error     ", job.error().message(), "\n");
  }
  if (job.state() == v1::JOB_STATE_SUCCEEDED && job.result().has_evaluation()) {
    absl::StrAppend(&s, "\n", EvaluationTable(job.result().evaluation(), false));
  } else if (job.state() == v1::JOB_STATE_SUCCEEDED) {
    const v1::JobResult& r = job.result();
    absl::StrAppend(&s, "output    ", r.output(), "\n");
    absl::StrAppend(&s, "size      ", HumanBytes(r.original_size_bytes()), " -> ",
                    HumanBytes(r.quantized_size_bytes()),
                    absl::StrFormat(" (%.2fx smaller)", r.compression_ratio()), "\n");
    auto it = r.metrics().find("bits_per_weight_quantized_tensors");
    if (it != r.metrics().end()) {
      absl::StrAppend(&s, "bits/w    ", absl::StrFormat("%.3f", it->second),
                      " in quantized tensors");
      auto f = r.metrics().find("bits_per_weight_file");
      if (f != r.metrics().end()) absl::StrAppend(&s, absl::StrFormat(", %.3f overall", f->second));
      absl::StrAppend(&s, "\n");
    }
    auto secs = r.metrics().find("seconds_total");
    if (secs != r.metrics().end()) {
      absl::StrAppend(&s, "time      ", absl::StrFormat("%.2f s", secs->second), "\n");
    }
    absl::StrAppend(&s, "files\n");
    for (const v1::OutputFile& f : r.files()) {
      absl::StrAppend(&s, absl::StrFormat("  %-56s %12s  %s\n", f.path(),
                                          HumanBytes(f.size_bytes()), f.sha256().substr(0, 16)));
    }
  }
  return s;
}

std::string CapabilitiesText(const v1::Capabilities& caps) {
  std::string s = absl::StrCat("quantd ", caps.version(), "\n\ndevices\n");
  for (const v1::DeviceInfo& d : caps.devices()) {
    absl::StrAppend(&s, absl::StrFormat("  %-6s %-5s %s%s, %s\n", d.id(), d.type(), d.name(),
                                        d.compute_capability().empty()
                                            ? ""
                                            : absl::StrCat(" (sm ", d.compute_capability(), ")"),
                                        HumanBytes(d.memory_total_bytes())));
  }
  absl::StrAppend(&s, "\nmethods\n");
  for (const v1::MethodCapability& m : caps.methods()) {
    std::vector<std::string> dev;
    for (const v1::DeviceSupport& d : m.devices()) {
      dev.push_back(absl::StrCat(d.device(), ":", SupportName(d.support())));
    }
    absl::StrAppend(&s, absl::StrFormat("  %-10s %-36s %s\n", m.method(), m.output_format(),
                                        absl::StrJoin(dev, " ")));
    if (!m.description().empty()) absl::StrAppend(&s, "             ", m.description(), "\n");
    for (const auto& [k, v] : m.parameters()) {
      absl::StrAppend(&s, "             ", k, ": ", v, "\n");
    }
  }
  return s;
}

std::string WorkersText(const v1::ListWorkersResponse& workers) {
  std::string s = absl::StrFormat("%-6s %-6s %-44s %12s %12s  %s\n", "WORKER", "TYPE", "DEVICE",
                                  "MEMORY", "FREE", "JOB");
  for (const v1::Worker& w : workers.workers()) {
    absl::StrAppend(
        &s, absl::StrFormat(
                "%-6s %-6s %-44s %12s %12s  %s\n", w.id(), w.device().type(),
                w.device().name().substr(0, 44), HumanBytes(w.device().memory_total_bytes()),
                w.memory_free_bytes() < 0 ? std::string("?") : HumanBytes(w.memory_free_bytes()),
                w.current_job().empty() ? "-" : w.current_job()));
  }
  return s;
}

namespace {

// A cell per column; empty strings where a measure does not apply.
std::vector<std::string> EvalRow(const v1::ModelEvaluation& m) {
  const bool c = m.compared();
  auto pm = [](double v, double e, const char* f) {
    return absl::StrCat(absl::StrFormat(f, v), " ± ", absl::StrFormat("%.4f", e));
  };
  return {m.model(),
          m.source_format(),
          HumanBytes(static_cast<double>(m.size_bytes())),
          absl::StrFormat("%.3f", m.bits_per_weight()),
          absl::StrFormat("%.2fx", m.compression_ratio()),
          pm(m.perplexity(), m.perplexity_stderr(), "%.4f"),
          c ? pm(m.perplexity_diff(), m.perplexity_diff_stderr(), "%+.4f") : "",
          c ? absl::StrFormat("%.5f", m.kl_mean()) : "",
          c ? absl::StrFormat("%.5f", m.kl_median()) : "",
          c ? absl::StrFormat("%.5f", m.kl_p99()) : "",
          c ? absl::StrFormat("%.2f%%", 100 * m.top1_agreement()) : "",
          absl::StrFormat("%.0f", m.tokens_per_second())};
}

}  // namespace

std::string EvaluationTable(const v1::EvaluateResult& r, bool markdown) {
  const std::vector<std::string> header = {"model",     "format", "size",  "bpw",
                                           "ratio",     "ppl",    "Δppl",  "KL mean",
                                           "KL median", "KL p99", "top-1", "tok/s"};
  std::vector<std::vector<std::string>> rows = {header};
  for (const v1::ModelEvaluation& m : r.models()) rows.push_back(EvalRow(m));
  const v1::EvaluateProtocol& p = r.protocol();
  std::string s = absl::StrFormat(
      "protocol %s: context %d, scored positions %d..%d of each chunk, BOS %s, %d chunks, "
      "%d scored tokens of %d (dataset %s, tokenizer %s%s)\n",
      p.name(), p.context(), p.scored_from(), p.context() - 2, p.add_bos() ? "yes" : "no",
      p.chunks(), p.scored_tokens(), p.dataset_tokens(), p.dataset(), p.tokenizer(),
      p.max_tokens() > 0 ? absl::StrCat(", max_tokens ", p.max_tokens()) : "");
  if (!r.reference().empty()) {
    absl::StrAppend(&s, "reference ", r.reference(),
                    " (KL divergence: KL(reference || model) per token, nats)\n");
  }
  absl::StrAppend(&s, "\n");
  if (markdown) {
    for (size_t i = 0; i < rows.size(); ++i) {
      absl::StrAppend(&s, "| ", absl::StrJoin(rows[i], " | "), " |\n");
      if (i == 0) {
        std::vector<std::string> rule(header.size(), "---");
        for (size_t c = 2; c < rule.size(); ++c) rule[c] = "---:";
        absl::StrAppend(&s, "|", absl::StrJoin(rule, "|"), "|\n");
      }
    }
  } else {
    // Width in code points (the header has "Δ" and "±" is in the cells).
    auto width = [](const std::string& x) {
      size_t n = 0;
      for (unsigned char ch : x) n += (ch & 0xC0) != 0x80;
      return n;
    };
    std::vector<size_t> w(header.size(), 0);
    for (const auto& row : rows) {
      for (size_t c = 0; c < row.size(); ++c) w[c] = std::max(w[c], width(row[c]));
    }
    for (const auto& row : rows) {
      std::string line;
      for (size_t c = 0; c < row.size(); ++c) {
        const std::string pad(w[c] - width(row[c]), ' ');
        absl::StrAppend(&line, c == 0 ? "" : "  ", c < 2 ? row[c] + pad : pad + row[c]);
      }
      absl::StrAppend(&s, line, "\n");
    }
  }
  bool any_sample = false;
  for (const v1::ModelEvaluation& m : r.models()) any_sample |= !m.generation().empty();
  if (any_sample) {
    absl::StrAppend(&s, "\ngreedy samples after \"", r.prompt(), "\"\n");
    for (const v1::ModelEvaluation& m : r.models()) {
      std::string g = m.generation();
      std::replace(g.begin(), g.end(), '\n', ' ');
      absl::StrAppend(&s, markdown ? "- " : "  ", m.model(), ": ", g, "\n");
    }
  }
  absl::StrAppend(
      &s, absl::StrFormat("\npeak host memory %s, %.1f s\n",
                          HumanBytes(static_cast<double>(r.peak_host_bytes())), r.seconds()));
  return s;
}

}  // namespace quantd
