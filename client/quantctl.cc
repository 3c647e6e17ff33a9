// quantctl: the command-line client of quantd.
//
// Exit status: 0 success (for --wait/watch: the job succeeded); 1 the job
// failed or was cancelled; 2 bad usage; 3 the server refused the request or
// could not be reached.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/render.h"
#include "client/watch.h"
#include "quantd/v1/quantd.grpc.pb.h"

namespace quantd {
namespace {

constexpr int kExitJobFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitRpc = 3;

struct Globals {
  std::string server;
  std::string output = "text";
  double timeout = 60;
};

int RpcError(const grpc::Status& s) {
  std::cerr << "quantctl: "
            << absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())) << ": "
            << s.error_message() << "\n";
  return kExitRpc;
}

void SetDeadline(grpc::ClientContext* ctx, const Globals& g) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(g.timeout * 1000)));
}

void Print(const Globals& g, const google::protobuf::Message& m, const std::string& text) {
  std::cout << (g.output == "json" ? ToJson(m) : text);
  std::cout.flush();
}

// A job as -o asks: an evaluate job's table alone for markdown.
void PrintJob(const Globals& g, const v1::Job& job) {
  if (g.output == "markdown" && job.result().has_evaluation()) {
    std::cout << EvaluationTable(job.result().evaluation(), true);
    std::cout.flush();
    return;
  }
  Print(g, job, JobText(job));
}

int FinalExit(const v1::Job& job) {
  return job.state() == v1::JOB_STATE_SUCCEEDED ? 0 : kExitJobFailed;
}

int Follow(v1::QuantizationService::Stub* stub, const Globals& g, const std::string& id) {
  WatchOptions opts;
  opts.show_progress = g.output != "json";
  opts.live_bar = isatty(STDERR_FILENO);
  absl::StatusOr<v1::Job> job = WatchUntilDone(stub, id, opts);
  if (!job.ok()) {
    return RpcError(grpc::Status(static_cast<grpc::StatusCode>(job.status().code()),
                                 std::string(job.status().message())));
  }
  PrintJob(g, *job);
  return FinalExit(*job);
}

int Create(v1::QuantizationService::Stub* stub, const Globals& g, const v1::CreateJobRequest& req,
           bool wait) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, g);
  v1::Job job;
  grpc::Status s = stub->CreateJob(&ctx, req, &job);
  if (!s.ok()) return RpcError(s);
  if (!wait) {
    Print(g, job, absl::StrCat(job.id(), "\n"));
    return 0;
  }
  if (g.output != "json") std::cerr << "job " << job.id() << " created\n";
  return Follow(stub, g, job.id());
}

absl::StatusOr<std::map<std::string, std::string>> ParseOptions(
    const std::vector<std::string>& kvs) {
  std::map<std::string, std::string> out;
  for (const std::string& kv : kvs) {
    std::vector<std::string> parts = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    if (parts.size() != 2 || parts[0].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--option \"", kv, "\" is not KEY=VALUE"));
    }
    out[parts[0]] = parts[1];
  }
  return out;
}

v1::DevicePreference ParseDevice(const std::string& d) {
  if (d == "cpu") return v1::DEVICE_PREFERENCE_CPU;
  if (d == "gpu") return v1::DEVICE_PREFERENCE_GPU;
  return v1::DEVICE_PREFERENCE_AUTO;
}

int Main(int argc, char** argv) {
  CLI::App app{"quantctl: drive a quantd server"};
  app.require_subcommand(1);
  Globals g;
  const char* env = std::getenv("QUANTD_SERVER");
  g.server = env ? env : "127.0.0.1:7470";
  app.add_option("--server", g.server, "quantd address (env QUANTD_SERVER)")->capture_default_str();
  app.add_option("-o,--output", g.output,
                 "text, json (protobuf JSON mapping) or markdown (evaluation tables)")
      ->check(CLI::IsMember({"text", "json", "markdown"}))
      ->capture_default_str();
  app.add_option("--timeout", g.timeout, "Seconds for each unary call")->capture_default_str();

  // quantize
  v1::CreateJobRequest qreq;
  v1::QuantizeSpec* q = qreq.mutable_spec()->mutable_quantize();
  std::string model, output, method, device = "auto", request_id;
  int group_size = 0, priority = 0;
  bool sym = false, asym = false, overwrite = false, lm_head = false, wait = false;
  std::vector<std::string> keep, options;
  std::string gguf_type, imatrix;
  CLI::App* quantize = app.add_subcommand("quantize", "Quantize a model folder");
  quantize->add_option("--model", model, "Model folder under the model root")->required();
  quantize->add_option("--method", method, "Method (see `capabilities`)")->required();
  quantize->add_option("--output", output, "Output name under the output root")->required();
  quantize->add_option("--group-size", group_size, "Elements per group (method default if 0)");
  auto* sym_flag = quantize->add_flag("--sym", sym, "Symmetric (no zero point)");
  quantize->add_flag("--asym", asym, "Asymmetric (zero points)")->excludes(sym_flag);
  quantize->add_flag("--overwrite", overwrite, "Replace an existing output");
  quantize->add_flag("--quantize-lm-head", lm_head, "Quantize lm_head too");
  quantize->add_option("--keep", keep, "Regex of modules to leave unquantized (repeatable)");
  quantize->add_option("--option", options, "Method option KEY=VALUE (repeatable)");
  quantize->add_option("--gguf-type", gguf_type, "GGUF file type, e.g. Q4_K_M (method gguf)");
  quantize->add_option("--imatrix", imatrix,
                       "llama.cpp importance matrix under the model root (method gguf)");
  quantize->add_option("--priority", priority, "Higher runs first");
  quantize->add_option("--device", device, "auto, cpu or gpu")
      ->check(CLI::IsMember({"auto", "cpu", "gpu"}));
  quantize->add_option("--request-id", request_id, "Idempotency key");
  quantize->add_flag("--wait", wait, "Follow the job until it finishes");

  // evaluate
  v1::CreateJobRequest ereq;
  v1::EvaluateSpec* e = ereq.mutable_spec()->mutable_evaluate();
  std::string e_model, e_ref, e_data, e_protocol, e_prompt, e_bos, e_tokenizer;
  int e_context = 0, e_generate = -1, e_batch = 0;
  int64_t e_max_tokens = 0;
  std::vector<std::string> e_candidates;
  CLI::App* evaluate = app.add_subcommand(
      "evaluate",
      "Evaluate a model: perplexity, and against a reference KL divergence and top-1 agreement. "
      "Names are under the model root; prefix output: for the output root");
  evaluate->add_option("--model", e_model, "Model folder or .gguf file to evaluate")->required();
  evaluate->add_option("--reference", e_ref, "Reference model (usually the original)");
  evaluate->add_option("--candidate", e_candidates,
                       "Further model to compare with the reference (repeatable)");
  evaluate->add_option("--dataset", e_data, "Text file under the model root")->required();
  evaluate
      ->add_option("--protocol", e_protocol,
                   "llama (context 512, second half of each chunk scored; default) or gptq "
                   "(context 2048, all tokens scored)")
      ->check(CLI::IsMember({"llama", "gptq"}));
  evaluate->add_option("--context", e_context, "Tokens per chunk (protocol default if 0)");
  evaluate->add_option("--max-tokens", e_max_tokens, "Evaluate at most this many tokens");
  evaluate->add_option("--bos", e_bos, "Begin chunks with BOS: yes or no (tokenizer default)")
      ->check(CLI::IsMember({"yes", "no"}));
  evaluate->add_option("--generate", e_generate, "Tokens of the greedy sample (default 32)");
  evaluate->add_option("--prompt", e_prompt, "Prompt of the greedy sample");
  evaluate->add_option("--batch", e_batch, "Chunks per forward pass (0: automatic)");
  evaluate->add_option("--tokenizer", e_tokenizer,
                       "Model folder whose tokenizer to use (needed when all are GGUF files)");
  evaluate->add_option("--priority", priority, "Higher runs first");
  evaluate->add_option("--device", device, "auto, cpu or gpu")
      ->check(CLI::IsMember({"auto", "cpu", "gpu"}));
  evaluate->add_option("--request-id", request_id, "Idempotency key");
  evaluate->add_flag("--wait", wait, "Follow the job until it finishes");

  std::string id;
  CLI::App* get = app.add_subcommand("get", "Show a job");
  get->add_option("id", id)->required();
  CLI::App* watch = app.add_subcommand("watch", "Follow a job until it finishes");
  watch->add_option("id", id)->required();
  CLI::App* cancel = app.add_subcommand("cancel", "Cancel a job");
  cancel->add_option("id", id)->required();
  CLI::App* del = app.add_subcommand("delete", "Delete a finished job");
  del->add_option("id", id)->required();
  std::vector<std::string> states;
  std::string kind;
  int page_size = 50;
  bool all = false;
  CLI::App* list = app.add_subcommand("list", "List jobs, newest first");
  list->add_option("--state", states, "queued, running, succeeded, failed, cancelled")
      ->check(CLI::IsMember({"queued", "running", "succeeded", "failed", "cancelled"}));
  list->add_option("--kind", kind, "quantize or evaluate")
      ->check(CLI::IsMember({"quantize", "evaluate"}));
  list->add_option("--page-size", page_size, "Jobs per page");
  list->add_flag("--all", all, "Every page");
  CLI::App* caps = app.add_subcommand("capabilities", "Methods and devices of the server");
  CLI::App* workers = app.add_subcommand("workers", "Workers and what they run");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& err) {
    const int rc = app.exit(err);
    return rc == 0 ? 0 : kExitUsage;
  }

  auto channel = grpc::CreateChannel(g.server, grpc::InsecureChannelCredentials());
  auto stub = v1::QuantizationService::NewStub(channel);

  if (*quantize) {
    q->set_model(model);
    q->set_output(output);
    q->set_method(method);
    q->set_group_size(group_size);
    if (sym) q->set_symmetric(true);
    if (asym) q->set_symmetric(false);
    q->set_overwrite(overwrite);
    q->set_quantize_lm_head(lm_head);
    for (const std::string& k : keep) q->add_keep_modules(k);
    absl::StatusOr<std::map<std::string, std::string>> opts = ParseOptions(options);
    if (!opts.ok()) {
      std::cerr << "quantctl: " << opts.status().message() << "\n";
      return kExitUsage;
    }
    for (const auto& [k, v] : *opts) (*q->mutable_options())[k] = v;
    if (!gguf_type.empty()) (*q->mutable_options())["gguf_type"] = gguf_type;
    if (!imatrix.empty()) (*q->mutable_options())["imatrix"] = imatrix;
    qreq.mutable_spec()->set_priority(priority);
    qreq.mutable_spec()->set_device(ParseDevice(device));
    qreq.set_request_id(request_id);
    return Create(stub.get(), g, qreq, wait);
  }
  if (*evaluate) {
    e->set_model(e_model);
    e->set_reference(e_ref);
    e->set_dataset(e_data);
    e->set_protocol(e_protocol);
    e->set_context(e_context);
    e->set_max_tokens(e_max_tokens);
    if (!e_bos.empty()) e->set_add_bos(e_bos == "yes");
    if (e_generate >= 0) e->set_generate_tokens(e_generate);
    e->set_prompt(e_prompt);
    e->set_batch_size(e_batch);
    if (!e_tokenizer.empty()) (*e->mutable_options())["tokenizer"] = e_tokenizer;
    for (const std::string& c : e_candidates) e->add_candidates(c);
    ereq.mutable_spec()->set_priority(priority);
    ereq.mutable_spec()->set_device(ParseDevice(device));
    ereq.set_request_id(request_id);
    return Create(stub.get(), g, ereq, wait);
  }
  if (*get) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, g);
    v1::GetJobRequest req;
    req.set_id(id);
    v1::Job job;
    grpc::Status s = stub->GetJob(&ctx, req, &job);
    if (!s.ok()) return RpcError(s);
    PrintJob(g, job);
    return 0;
  }
  if (*watch) return Follow(stub.get(), g, id);
  if (*cancel) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, g);
    v1::CancelJobRequest req;
    req.set_id(id);
    v1::Job job;
    grpc::Status s = stub->CancelJob(&ctx, req, &job);
    if (!s.ok()) return RpcError(s);
    Print(g, job,
          absl::StrCat(job.id(), " ", StateName(job.state()),
                       job.state() == v1::JOB_STATE_RUNNING ? " (stopping)" : "", "\n"));
    return 0;
  }
  if (*del) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, g);
    v1::DeleteJobRequest req;
    req.set_id(id);
    google::protobuf::Empty empty;
    grpc::Status s = stub->DeleteJob(&ctx, req, &empty);
    if (!s.ok()) return RpcError(s);
    Print(g, empty, absl::StrCat("deleted ", id, "\n"));
    return 0;
  }
  if (*list) {
    v1::ListJobsRequest req;
    req.set_page_size(page_size);
    for (const std::string& st : states) {
      v1::JobState js = v1::JOB_STATE_UNSPECIFIED;
      v1::JobState_Parse("JOB_STATE_" + absl::AsciiStrToUpper(st), &js);
      req.add_states(js);
    }
    if (kind == "quantize") req.set_kind(v1::JOB_KIND_QUANTIZE);
    if (kind == "evaluate") req.set_kind(v1::JOB_KIND_EVALUATE);
    v1::ListJobsResponse all_jobs;
    while (true) {
      grpc::ClientContext ctx;
      SetDeadline(&ctx, g);
      v1::ListJobsResponse resp;
      grpc::Status s = stub->ListJobs(&ctx, req, &resp);
      if (!s.ok()) return RpcError(s);
      for (const v1::Job& j : resp.jobs()) *all_jobs.add_jobs() = j;
      all_jobs.set_next_page_token(resp.next_page_token());
      if (!all || resp.next_page_token().empty()) break;
      req.set_page_token(resp.next_page_token());
    }
    std::string text;
    for (const v1::Job& j : all_jobs.jobs()) absl::StrAppend(&text, JobLine(j), "\n");
    if (!all_jobs.next_page_token().empty()) {
      absl::StrAppend(&text, "(more: --all, or page token ", all_jobs.next_page_token(), ")\n");
    }
    Print(g, all_jobs, text);
    return 0;
  }
  if (*caps) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, g);
    v1::Capabilities c;
    grpc::Status s = stub->GetCapabilities(&ctx, v1::GetCapabilitiesRequest(), &c);
    if (!s.ok()) return RpcError(s);
    Print(g, c, CapabilitiesText(c));
    return 0;
  }
  if (*workers) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, g);
    v1::ListWorkersResponse w;
    grpc::Status s = stub->ListWorkers(&ctx, v1::ListWorkersRequest(), &w);
    if (!s.ok()) return RpcError(s);
    Print(g, w, WorkersText(w));
    return 0;
  }
  return kExitUsage;
}

}  // namespace
}  // namespace quantd

int main(int argc, char** argv) { return quantd::Main(argc, argv); }
