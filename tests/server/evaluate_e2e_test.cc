// End to end: evaluate jobs on a real quantd process (CPU worker) over a
// generated tiny model: perplexity, a comparison of the base model with
// itself and with its int8 quantization, progress per chunk with an ETA,
// cancellation mid-run and quantctl's table.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/watch.h"
#include "quantd/v1/quantd.grpc.pb.h"
#include "tests/fixtures/server_process.h"
#include "tests/fixtures/tiny_model.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;

constexpr int kContext = 32;

std::string Binary(const char* env, const char* built) {
  const char* v = std::getenv(env);
  return v && *v ? v : built;
}

class EvaluateEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/quantd-eval-e2e-XXXXXX";
    root_ = mkdtemp(tmpl.data());
    fs::create_directories(root_ / "models");
    fs::create_directories(root_ / "outputs");
    ASSERT_TRUE(WriteTinyLlama(root_ / "models" / "tiny", TinyLlamaOptions{}).ok());
    // Byte-level tokens: about one per byte.
    std::ofstream text(root_ / "models" / "text.txt");
    for (int i = 0; i < 40; ++i) {
      text << "Line " << i << ": the quick brown fox jumps over the lazy dog.\n";
    }
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(root_);
  }

  void StartServer(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--gpus",
                                     "none",
                                     "--model-root",
                                     (root_ / "models").string(),
                                     "--output-root",
                                     (root_ / "outputs").string(),
                                     "--cpu-workers",
                                     "1",
                                     "--cpu-threads",
                                     "2",
                                     "--heartbeat-seconds",
                                     "0.2"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto s = ServerProcess::Start(Binary("QUANTD_BIN", QUANTD_BIN), root_ / "data", args);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    channel_ = grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials());
    stub_ = v1::QuantizationService::NewStub(channel_);
  }

  grpc::Status Create(const v1::CreateJobRequest& req, v1::Job* job) {
    grpc::ClientContext ctx;
    return stub_->CreateJob(&ctx, req, job);
  }

  v1::Job WaitDone(const std::string& id) {
    WatchOptions opts;
    opts.show_progress = false;
    auto job = WatchUntilDone(stub_.get(), id, opts);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }

  void QuantizeInt8() {
    v1::CreateJobRequest req;
    v1::QuantizeSpec* q = req.mutable_spec()->mutable_quantize();
    q->set_model("tiny");
    q->set_output("tiny-int8");
    q->set_method("int8");
    v1::Job job;
    ASSERT_TRUE(Create(req, &job).ok());
    ASSERT_EQ(WaitDone(job.id()).state(), v1::JOB_STATE_SUCCEEDED);
  }

  static v1::CreateJobRequest Evaluate(const std::string& model, const std::string& reference) {
    v1::CreateJobRequest req;
    v1::EvaluateSpec* e = req.mutable_spec()->mutable_evaluate();
    e->set_model(model);
    e->set_reference(reference);
    e->set_dataset("text.txt");
    e->set_context(kContext);
    e->set_generate_tokens(8);
    return req;
  }

  std::vector<v1::JobEvent> Events(const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::WatchJobRequest req;
    req.set_id(id);
    req.set_after_seq(1);
    auto reader = stub_->WatchJob(&ctx, req);
    std::vector<v1::JobEvent> out;
    v1::WatchJobResponse msg;
    while (reader->Read(&msg)) {
      if (msg.has_event()) out.push_back(msg.event());
    }
    EXPECT_TRUE(reader->Finish().ok());
    return out;
  }

  fs::path root_;
  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::QuantizationService::Stub> stub_;
};

TEST_F(EvaluateEndToEndTest, ComparesBaseAndInt8WithTheReference) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  QuantizeInt8();
  v1::CreateJobRequest req = Evaluate("tiny", "tiny");
  req.mutable_spec()->mutable_evaluate()->add_candidates("output:tiny-int8");
  v1::Job job;
  ASSERT_TRUE(Create(req, &job).ok());
  const v1::Job done = WaitDone(job.id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error().message();
  const v1::EvaluateResult& r = done.result().evaluation();
  EXPECT_EQ(r.protocol().name(), "llama");
  EXPECT_EQ(r.protocol().context(), kContext);
  EXPECT_EQ(r.protocol().scored_from(), kContext / 2);
  EXPECT_GE(r.protocol().chunks(), 2);
  EXPECT_EQ(r.protocol().scored_tokens(), r.protocol().chunks() * (kContext / 2 - 1));
  ASSERT_EQ(r.models_size(), 3);
  const v1::ModelEvaluation& ref = r.models(0);
  const v1::ModelEvaluation& same = r.models(1);
  const v1::ModelEvaluation& int8 = r.models(2);
  EXPECT_EQ(ref.role(), "reference");
  EXPECT_EQ(int8.model(), "output:tiny-int8");
  // Random weights: perplexity of the order of the vocabulary (259).
  EXPECT_GT(ref.perplexity(), 10);
  EXPECT_LT(ref.perplexity(), 2000);
  EXPECT_GT(ref.perplexity_stderr(), 0);
  // The reference against itself: identical logits on the CPU backend.
  EXPECT_TRUE(same.compared());
  EXPECT_EQ(same.perplexity(), ref.perplexity());
  EXPECT_NEAR(same.kl_mean(), 0.0, 1e-7);
  EXPECT_EQ(same.top1_agreement(), 1.0);
  EXPECT_NEAR(same.perplexity_diff_stderr(), 0.0, 1e-9);
  // int8 per channel: a small but non-zero divergence.
  EXPECT_TRUE(int8.compared());
  EXPECT_GT(int8.kl_mean(), 0.0);
  EXPECT_LT(int8.kl_mean(), 0.05);
  EXPECT_GE(int8.kl_p99(), int8.kl_median());
  EXPECT_GT(int8.top1_agreement(), 0.5);  // chance: 1/259
  EXPECT_NEAR(int8.perplexity_diff(), int8.perplexity() - ref.perplexity(), 1e-9);
  EXPECT_GT(int8.perplexity_diff_stderr(), 0);
  // bf16 -> int8: about half the bytes.
  EXPECT_EQ(ref.source_format(), "bf16");
  EXPECT_LT(int8.size_bytes(), ref.size_bytes());
  EXPECT_GT(int8.compression_ratio(), 1.3);
  EXPECT_NEAR(ref.bits_per_weight(), 16.0, 0.5);
  EXPECT_GT(ref.tokens_per_second(), 0);
  EXPECT_EQ(ref.device(), "cpu");
  EXPECT_GT(r.peak_host_bytes(), 0);
  EXPECT_FALSE(ref.generation().empty());
  EXPECT_TRUE(absl::StrContains(done.result().details_json(), "\"kl_mean\""));
}

TEST_F(EvaluateEndToEndTest, ProgressStreamsPerChunkWithAnEta) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--debug-step-delay-ms", "300"}));
  v1::CreateJobRequest req = Evaluate("tiny", "");
  req.mutable_spec()->mutable_evaluate()->set_max_tokens(8 * kContext);
  v1::Job job;
  ASSERT_TRUE(Create(req, &job).ok());
  EXPECT_GT(job.memory_required_bytes(), 0);
  const v1::Job done = WaitDone(job.id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error().message();
  const int64_t chunks = done.result().evaluation().protocol().chunks();
  EXPECT_EQ(chunks, 8);
  EXPECT_EQ(done.result().parameters().at("max_tokens"), "256");
  int64_t last_step = 0;
  int scoring = 0, with_eta = 0;
  for (const v1::JobEvent& e : Events(job.id())) {
    if (e.type() != v1::JobEvent::TYPE_PROGRESS || e.job().progress().stage() != "scoring") {
      continue;
    }
    const v1::Progress& p = e.job().progress();
    EXPECT_EQ(p.total_steps(), chunks);
    EXPECT_GE(p.step(), last_step);
    last_step = p.step();
    ++scoring;
    if (p.step() > 0 && p.eta_seconds() >= 0) ++with_eta;
  }
  EXPECT_EQ(last_step, chunks);
  EXPECT_GE(scoring, chunks);  // one event per chunk (the delay outlasts the throttle)
  EXPECT_GT(with_eta, 0);
}

TEST_F(EvaluateEndToEndTest, CancelStopsARunningEvaluation) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--debug-step-delay-ms", "400"}));
  v1::Job job;
  ASSERT_TRUE(Create(Evaluate("tiny", ""), &job).ok());
  for (int i = 0; i < 1000; ++i) {
    grpc::ClientContext ctx;
    v1::GetJobRequest req;
    req.set_id(job.id());
    v1::Job now;
    ASSERT_TRUE(stub_->GetJob(&ctx, req, &now).ok());
    if (now.progress().stage() == "scoring" && now.progress().step() >= 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const auto t0 = std::chrono::steady_clock::now();
  grpc::ClientContext ctx;
  v1::CancelJobRequest req;
  req.set_id(job.id());
  v1::Job j;
  ASSERT_TRUE(stub_->CancelJob(&ctx, req, &j).ok());
  const v1::Job done = WaitDone(job.id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_LT(done.progress().step(), done.progress().total_steps());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
}

TEST_F(EvaluateEndToEndTest, BadSpecsAreRefusedAtSubmission) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  v1::Job job;
  v1::CreateJobRequest no_data = Evaluate("tiny", "");
  no_data.mutable_spec()->mutable_evaluate()->clear_dataset();
  EXPECT_EQ(Create(no_data, &job).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::CreateJobRequest missing = Evaluate("nope", "");
  EXPECT_EQ(Create(missing, &job).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::CreateJobRequest long_ctx = Evaluate("tiny", "");
  long_ctx.mutable_spec()->mutable_evaluate()->set_context(1 << 20);
  EXPECT_EQ(Create(long_ctx, &job).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::CreateJobRequest bad_protocol = Evaluate("tiny", "");
  bad_protocol.mutable_spec()->mutable_evaluate()->set_protocol("wiki");
  EXPECT_EQ(Create(bad_protocol, &job).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(EvaluateEndToEndTest, QuantctlPrintsTheComparisonTable) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  QuantizeInt8();
  auto [rc, out] = RunCommand(absl::StrCat(
      Binary("QUANTCTL_BIN", QUANTCTL_BIN), " --server ", server_->grpc_address(),
      " -o markdown evaluate --model output:tiny-int8 --reference tiny --dataset text.txt",
      " --context ", kContext, " --generate 4 --wait 2>/dev/null"));
  EXPECT_EQ(rc, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "| model | format | size |")) << out;
  EXPECT_TRUE(absl::StrContains(out, "| output:tiny-int8 | rtn_int |")) << out;
  EXPECT_TRUE(absl::StrContains(out, "protocol llama: context 32")) << out;
}

}  // namespace
}  // namespace quantd
