// End to end: quantd as a real process on loopback, driven over gRPC (and by
// quantctl), on a generated tiny Llama-shaped model.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/watch.h"
#include "core/formats/registry.h"
#include "core/io/safetensors.h"
#include "core/tensor/tensor.h"
#include "core/util/fs.h"
#include "kernels/devices.h"
#include "nlohmann/json.hpp"
#include "quantd/v1/quantd.grpc.pb.h"
#include "tests/fixtures/server_process.h"
#include "tests/fixtures/tiny_model.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;

// RTN int4 symmetric: half a step, plus the end of the range (absmax maps to
// 7.5 steps and is clamped to 7) moved by the bf16 rounding of the scale
// (at most 2^-8 relative).
constexpr float kMaxErrorInSteps = 0.5f + 7.5f / 256.0f;

// The binaries under test: built paths, or QUANTD_BIN / QUANTCTL_BIN from the
// environment (for runs from a bundle on another machine).
std::string Binary(const char* env, const char* built) {
  const char* v = std::getenv(env);
  return v && *v ? v : built;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class EndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/quantd-e2e-XXXXXX";
    root_ = mkdtemp(tmpl.data());
    fs::create_directories(root_ / "models");
    fs::create_directories(root_ / "outputs");
    ASSERT_TRUE(WriteTinyLlama(root_ / "models" / "tiny", TinyLlamaOptions{}).ok());
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(root_);
  }

  // One CPU worker unless `extra` says otherwise (--gpus all adds the GPUs).
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

  v1::CreateJobRequest Quantize(const std::string& output, const std::string& method = "int4") {
    v1::CreateJobRequest req;
    v1::QuantizeSpec* q = req.mutable_spec()->mutable_quantize();
    q->set_model("tiny");
    q->set_output(output);
    q->set_method(method);
    return req;
  }

  v1::Job WaitDone(const std::string& id) {
    WatchOptions opts;
    opts.show_progress = false;
    auto job = WatchUntilDone(stub_.get(), id, opts);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }

  grpc::Status Get(const std::string& id, v1::Job* job) {
    grpc::ClientContext ctx;
    v1::GetJobRequest req;
    req.set_id(id);
    return stub_->GetJob(&ctx, req, job);
  }

  std::vector<v1::WatchJobResponse> WatchAll(const std::string& id, int64_t after_seq) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::WatchJobRequest req;
    req.set_id(id);
    req.set_after_seq(after_seq);
    auto reader = stub_->WatchJob(&ctx, req);
    std::vector<v1::WatchJobResponse> out;
    v1::WatchJobResponse msg;
    while (reader->Read(&msg)) out.push_back(msg);
    EXPECT_TRUE(reader->Finish().ok());
    return out;
  }

  std::string Quantctl(const std::string& args, int* exit_code) {
    auto [rc, out] = RunCommand(absl::StrCat(Binary("QUANTCTL_BIN", QUANTCTL_BIN), " --server ",
                                             server_->grpc_address(), " ", args, " 2>/dev/null"));
    *exit_code = rc;
    return out;
  }

  fs::path root_;
  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::QuantizationService::Stub> stub_;
};

TEST_F(EndToEndTest, QuantizesTinyModelIntoACompleteFolder) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--gpus", "all"}));
  v1::Job job;
  ASSERT_TRUE(Create(Quantize("tiny-int4"), &job).ok());
  EXPECT_EQ(job.state(), v1::JOB_STATE_QUEUED);
  job = WaitDone(job.id());
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error().message();

  const fs::path out = root_ / "outputs" / "tiny-int4";
  // Every listed file exists with its size and digest.
  ASSERT_GT(job.result().files_size(), 4);
  for (const v1::OutputFile& f : job.result().files()) {
    auto d = HashFile(root_ / "outputs" / f.path());
    ASSERT_TRUE(d.ok()) << f.path();
    EXPECT_EQ(static_cast<int64_t>(d->size), f.size_bytes());
    EXPECT_EQ(d->sha256, f.sha256());
  }
  EXPECT_GT(job.result().compression_ratio(), 1.5);
  // Tokenizer and other files are copied unchanged.
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "generation_config.json",
                           "special_tokens_map.json"}) {
    EXPECT_EQ(ReadAll(out / name), ReadAll(root_ / "models" / "tiny" / name)) << name;
  }
  // config.json keeps the model's keys and gains quantization_config.
  auto config = nlohmann::json::parse(ReadAll(out / "config.json"));
  EXPECT_EQ(config["model_type"], "llama");
  EXPECT_EQ(config["quantization_config"]["quant_method"], "compressed-tensors");
  EXPECT_EQ(config["quantization_config"]["format"], "pack-quantized");
  EXPECT_EQ(config["quantization_config"]["config_groups"]["group_0"]["weights"]["num_bits"], 4);

  auto in = SafetensorsFile::Open(root_ / "models" / "tiny" / "model.safetensors");
  auto q = SafetensorsFile::Open(out / "model.safetensors");
  ASSERT_TRUE(in.ok() && q.ok());
  // Kept tensors are byte-identical; Linear weights are replaced by packed
  // weights whose dequantized values are within half a step of the input.
  for (const SafetensorsEntry& e : (*in)->entries()) {
    const TensorView src = (*in)->View(e);
    const bool linear = absl::StrContains(e.name, "_proj.");
    if (!linear) {
      auto kept = (*q)->Get(e.name);
      ASSERT_TRUE(kept.ok()) << e.name;
      ASSERT_EQ(kept->nbytes, src.nbytes);
      EXPECT_EQ(0, memcmp(kept->data, src.data, src.nbytes)) << e.name;
      continue;
    }
    const std::string module = e.name.substr(0, e.name.size() - 7);
    EXPECT_EQ((*q)->Find(e.name), nullptr) << e.name;
    auto packed = (*q)->Get(module + ".weight_packed");
    auto scale = (*q)->Get(module + ".weight_scale");
    auto shape = (*q)->Get(module + ".weight_shape");
    ASSERT_TRUE(packed.ok() && scale.ok() && shape.ok()) << module;
    EXPECT_EQ(packed->dtype, DType::kI32);
    EXPECT_EQ(scale->dtype, DType::kBF16);
    EXPECT_EQ(shape->as<int64_t>()[0], e.shape[0]);
    EXPECT_EQ(shape->as<int64_t>()[1], e.shape[1]);
    // Decode with the format's reference and compare.
    EncodedWeight w;
    for (auto [suffix, view] : {std::pair{"weight_packed", *packed},
                                {"weight_scale", *scale},
                                {"weight_shape", *shape}}) {
      Tensor t = Tensor::Allocate(view.dtype, view.shape);
      memcpy(t.data(), view.data, view.nbytes);
      w.parts.push_back({suffix, std::move(t)});
    }
    FormatParams p;
    p.bits = 4;
    p.group_size = 128;
    p.symmetric = true;
    p.scale_dtype = DType::kBF16;
    auto fmt = FindFormat("rtn_int");
    ASSERT_TRUE(fmt.ok());
    auto deq = (*fmt)->DecodeRef(p, w, e.shape[0], e.shape[1]);
    ASSERT_TRUE(deq.ok()) << deq.status();
    const int64_t groups = e.shape[1] / 128;
    for (int64_t r = 0; r < e.shape[0]; ++r) {
      for (int64_t c = 0; c < e.shape[1]; ++c) {
        const float s = LoadAsFloat(*scale, r * groups + c / 128);
        const float x = LoadAsFloat(src, r * e.shape[1] + c);
        ASSERT_LE(std::fabs(x - (*deq)[r * e.shape[1] + c]), kMaxErrorInSteps * s)
            << module << " " << r;
      }
    }
  }
  // Nothing temporary is left beside the output.
  for (const auto& entry : fs::directory_iterator(root_ / "outputs")) {
    EXPECT_FALSE(absl::StrContains(entry.path().filename().string(), "quantd-tmp"));
  }
}

TEST_F(EndToEndTest, WatchStartsWithCurrentStateAndResumesAfterSeq) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--debug-step-delay-ms", "20"}));
  v1::Job job;
  ASSERT_TRUE(Create(Quantize("w"), &job).ok());
  const v1::Job done = WaitDone(job.id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED);
  // after_seq 0: the current (final) state only.
  auto current = WatchAll(job.id(), 0);
  ASSERT_EQ(current.size(), 1u);
  EXPECT_EQ(current[0].event().seq(), done.last_event_seq());
  EXPECT_EQ(current[0].event().job().state(), v1::JOB_STATE_SUCCEEDED);
  // after_seq 1: every later event, in order, with progress among them.
  auto all = WatchAll(job.id(), 1);
  ASSERT_EQ(static_cast<int64_t>(all.size()), done.last_event_seq() - 1);
  int progress = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].event().seq(), static_cast<int64_t>(i) + 2);
    progress += all[i].event().type() == v1::JobEvent::TYPE_PROGRESS;
  }
  EXPECT_GT(progress, 3);
  EXPECT_EQ(all[0].event().type(), v1::JobEvent::TYPE_STARTED);
  EXPECT_EQ(all.back().event().type(), v1::JobEvent::TYPE_SUCCEEDED);
  // Resuming after the final event ends at once.
  EXPECT_TRUE(WatchAll(job.id(), done.last_event_seq()).empty());
}

TEST_F(EndToEndTest, WatchSendsHeartbeatsWhileQueued) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--debug-step-delay-ms", "300"}));
  v1::Job first, second;
  ASSERT_TRUE(Create(Quantize("a"), &first).ok());
  ASSERT_TRUE(Create(Quantize("b"), &second).ok());
  grpc::ClientContext ctx;
  v1::WatchJobRequest req;
  req.set_id(second.id());
  auto reader = stub_->WatchJob(&ctx, req);
  v1::WatchJobResponse msg;
  int heartbeats = 0;
  while (reader->Read(&msg) && heartbeats < 2) heartbeats += msg.has_heartbeat();
  EXPECT_EQ(heartbeats, 2);
  ctx.TryCancel();
  reader->Finish();
}

TEST_F(EndToEndTest, MetricsAreExposedInPrometheusFormat) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  v1::Job job;
  ASSERT_TRUE(Create(Quantize("m"), &job).ok());
  ASSERT_EQ(WaitDone(job.id()).state(), v1::JOB_STATE_SUCCEEDED);
  auto body = HttpGet(server_->metrics_port(), "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  for (const char* want :
       {"quantd_jobs_created_total{kind=\"quantize\",method=\"int4\"} 1",
        "quantd_jobs_finished_total{kind=\"quantize\",method=\"int4\",state=\"succeeded\"} 1",
        "quantd_job_duration_seconds_count", "quantd_queue_depth 0", "quantd_jobs_running 0",
        "quantd_workers_busy{type=\"cpu\"}", "quantd_read_bytes_total",
        "quantd_written_bytes_total",
        "quantd_grpc_requests_total{code=\"OK\",method=\"CreateJob\"}", "quantd_build_info{"}) {
    EXPECT_TRUE(absl::StrContains(*body, want)) << want << "\n" << *body;
  }
  auto [has_promtool, _] = RunCommand("command -v promtool >/dev/null 2>&1");
  if (has_promtool != 0) GTEST_SKIP() << "promtool not installed; format not checked";
  const fs::path scrape = root_ / "scrape.txt";
  std::ofstream(scrape) << *body;
  auto [rc, out] = RunCommand("promtool check metrics < " + scrape.string() + " 2>&1");
  EXPECT_EQ(rc, 0) << out;
}

TEST_F(EndToEndTest, JobsAndEventsSurviveARestart) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  v1::Job job;
  ASSERT_TRUE(Create(Quantize("r"), &job).ok());
  const v1::Job done = WaitDone(job.id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(server_->Stop(), 0);
  ASSERT_NO_FATAL_FAILURE(StartServer());
  v1::Job again;
  ASSERT_TRUE(Get(job.id(), &again).ok());
  EXPECT_EQ(again.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(again.result().files_size(), done.result().files_size());
  auto events = WatchAll(job.id(), 0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event().seq(), done.last_event_seq());
  EXPECT_EQ(static_cast<int64_t>(WatchAll(job.id(), 1).size()), done.last_event_seq() - 1);
}

TEST_F(EndToEndTest, JobInterruptedByACrashIsRequeuedAndCompletes) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--debug-step-delay-ms", "100"}));
  v1::Job job;
  ASSERT_TRUE(Create(Quantize("crash"), &job).ok());
  // Wait until it runs and has made progress, then kill the server.
  for (int i = 0; i < 200; ++i) {
    v1::Job now;
    ASSERT_TRUE(Get(job.id(), &now).ok());
    if (now.state() == v1::JOB_STATE_RUNNING && now.progress().step() >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  server_->Kill();
  EXPECT_FALSE(fs::exists(root_ / "outputs" / "crash"));
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const v1::Job done = WaitDone(job.id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error().message();
  EXPECT_EQ(done.attempts(), 2);
  EXPECT_TRUE(fs::exists(root_ / "outputs" / "crash" / "model.safetensors"));
  bool requeued = false;
  for (const auto& r : WatchAll(job.id(), 1)) {
    requeued |= r.event().type() == v1::JobEvent::TYPE_REQUEUED;
  }
  EXPECT_TRUE(requeued);
}

TEST_F(EndToEndTest, SigtermDrainsAndRequeuesUnfinishedWork) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--debug-step-delay-ms", "200", "--drain-seconds", "0.3"}));
  v1::Job running, queued;
  ASSERT_TRUE(Create(Quantize("d1"), &running).ok());
  ASSERT_TRUE(Create(Quantize("d2"), &queued).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(server_->Stop(), 0);
  EXPECT_FALSE(fs::exists(root_ / "outputs" / "d1"));
  ASSERT_NO_FATAL_FAILURE(StartServer());
  EXPECT_EQ(WaitDone(running.id()).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(WaitDone(queued.id()).state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(EndToEndTest, CancelStopsQueuedAndRunningJobs) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--debug-step-delay-ms", "200"}));
  v1::Job running, queued;
  ASSERT_TRUE(Create(Quantize("c1"), &running).ok());
  ASSERT_TRUE(Create(Quantize("c2"), &queued).ok());
  for (int i = 0; i < 200; ++i) {
    v1::Job now;
    ASSERT_TRUE(Get(running.id(), &now).ok());
    if (now.state() == v1::JOB_STATE_RUNNING) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  {
    grpc::ClientContext ctx;
    v1::CancelJobRequest req;
    req.set_id(queued.id());
    v1::Job j;
    ASSERT_TRUE(stub_->CancelJob(&ctx, req, &j).ok());
    EXPECT_EQ(j.state(), v1::JOB_STATE_CANCELLED);
  }
  const auto t0 = std::chrono::steady_clock::now();
  {
    grpc::ClientContext ctx;
    v1::CancelJobRequest req;
    req.set_id(running.id());
    v1::Job j;
    ASSERT_TRUE(stub_->CancelJob(&ctx, req, &j).ok());
  }
  const v1::Job done = WaitDone(running.id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_FALSE(fs::exists(root_ / "outputs" / "c1"));
  for (const auto& entry : fs::directory_iterator(root_ / "outputs")) {
    ADD_FAILURE() << "left behind: " << entry.path();
  }
  // A final job cannot be cancelled again, but can be deleted.
  grpc::ClientContext ctx;
  v1::CancelJobRequest req;
  req.set_id(running.id());
  v1::Job j;
  EXPECT_EQ(stub_->CancelJob(&ctx, req, &j).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  grpc::ClientContext dctx;
  v1::DeleteJobRequest dreq;
  dreq.set_id(running.id());
  google::protobuf::Empty empty;
  EXPECT_TRUE(stub_->DeleteJob(&dctx, dreq, &empty).ok());
  EXPECT_EQ(Get(running.id(), &j).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(EndToEndTest, RequestIdMakesCreateIdempotent) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  v1::CreateJobRequest req = Quantize("idem");
  req.set_request_id("pipeline-run-42");
  v1::Job a, b;
  ASSERT_TRUE(Create(req, &a).ok());
  ASSERT_TRUE(Create(req, &b).ok());
  EXPECT_EQ(a.id(), b.id());
  v1::CreateJobRequest other = Quantize("idem-other");
  other.set_request_id("pipeline-run-42");
  v1::Job c;
  EXPECT_EQ(Create(other, &c).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  grpc::ClientContext ctx;
  v1::ListJobsRequest lreq;
  v1::ListJobsResponse list;
  ASSERT_TRUE(stub_->ListJobs(&ctx, lreq, &list).ok());
  EXPECT_EQ(list.jobs_size(), 1);
}

TEST_F(EndToEndTest, BadRequestsGetTheRightCodes) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--debug-step-delay-ms", "200"}));
  v1::Job job;
  auto code = [&](v1::CreateJobRequest req) { return Create(req, &job).error_code(); };
  auto with = [&](auto edit) {
    v1::CreateJobRequest r = Quantize("x");
    edit(r.mutable_spec()->mutable_quantize());
    return r;
  };
  EXPECT_EQ(code(v1::CreateJobRequest()), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code(with([](auto* q) { q->set_method("int3"); })), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code(with([](auto* q) { q->set_model("/etc"); })), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code(with([](auto* q) { q->set_model("../models/tiny"); })),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code(with([](auto* q) { q->set_output("../escape"); })),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code(with([](auto* q) { q->set_model("missing"); })), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(code(with([](auto* q) { q->set_group_size(100); })),
            grpc::StatusCode::INVALID_ARGUMENT);
  fs::create_symlink("/tmp", root_ / "models" / "link-out");
  EXPECT_EQ(code(with([](auto* q) { q->set_model("link-out"); })),
            grpc::StatusCode::INVALID_ARGUMENT);
  fs::create_directories(root_ / "outputs" / "exists");
  EXPECT_EQ(code(with([](auto* q) { q->set_output("exists"); })), grpc::StatusCode::ALREADY_EXISTS);
  fs::remove_all(root_ / "outputs" / "exists");
  // A running job cannot be deleted; unknown ids are NOT_FOUND.
  ASSERT_TRUE(Create(Quantize("slow"), &job).ok());
  grpc::ClientContext ctx;
  v1::DeleteJobRequest dreq;
  dreq.set_id(job.id());
  google::protobuf::Empty empty;
  EXPECT_EQ(stub_->DeleteJob(&ctx, dreq, &empty).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  v1::Job none;
  EXPECT_EQ(Get("j0000", &none).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(EndToEndTest, QueueLimitIsResourceExhausted) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--debug-step-delay-ms", "500", "--max-queued-jobs", "2"}));
  v1::Job job;
  ASSERT_TRUE(Create(Quantize("q1"), &job).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // q1 starts running
  ASSERT_TRUE(Create(Quantize("q2"), &job).ok());
  ASSERT_TRUE(Create(Quantize("q3"), &job).ok());
  EXPECT_EQ(Create(Quantize("q4"), &job).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(EndToEndTest, HealthAndReflectionAreServed) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  grpc::GenericStub generic(channel_);
  // grpc.health.v1.Health/Check with an empty request: SERVING is field 1 = 1.
  grpc::ClientContext ctx;
  grpc::ByteBuffer request, response;
  grpc::Slice empty_slice("", 0);
  request = grpc::ByteBuffer(&empty_slice, 1);
  grpc::Status status;
  bool done = false;
  std::mutex mu;
  std::condition_variable cv;
  generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                    [&](grpc::Status s) {
                      std::lock_guard<std::mutex> l(mu);
                      status = s;
                      done = true;
                      cv.notify_one();
                    });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));

  // Reflection lists the service.
  grpc::CompletionQueue cq;
  grpc::ClientContext rctx;
  auto call = generic.PrepareCall(
      &rctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag;
  bool ok;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::Slice list_services(std::string("\x3a\x00", 2));  // list_services: ""
  grpc::ByteBuffer rreq(&list_services, 1);
  call->Write(rreq, reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::ByteBuffer rresp;
  call->Read(&rresp, reinterpret_cast<void*>(3));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  slices.clear();
  ASSERT_TRUE(rresp.Dump(&slices).ok());
  bytes.clear();
  for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_TRUE(absl::StrContains(bytes, "quantd.v1.QuantizationService")) << bytes;
  call->WritesDone(reinterpret_cast<void*>(4));
  cq.Next(&tag, &ok);
  grpc::Status fin;
  call->Finish(&fin, reinterpret_cast<void*>(5));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_F(EndToEndTest, GpuAndCpuWorkersWriteIdenticalFiles) {
  if (ListCudaDevices().empty()) GTEST_SKIP() << "no CUDA device";
  ASSERT_NO_FATAL_FAILURE(StartServer({"--gpus", "all"}));
  std::map<std::string, std::string> digests;
  for (auto [name, device] :
       {std::pair{"on-gpu", v1::DEVICE_PREFERENCE_GPU}, {"on-cpu", v1::DEVICE_PREFERENCE_CPU}}) {
    for (bool sym : {true, false}) {
      v1::CreateJobRequest req = Quantize(absl::StrCat(name, sym ? "-sym" : "-asym"));
      req.mutable_spec()->set_device(device);
      req.mutable_spec()->mutable_quantize()->set_symmetric(sym);
      req.mutable_spec()->mutable_quantize()->set_group_size(32);
      v1::Job job;
      ASSERT_TRUE(Create(req, &job).ok());
      job = WaitDone(job.id());
      ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error().message();
      EXPECT_EQ(job.worker(), device == v1::DEVICE_PREFERENCE_GPU ? "gpu0" : "cpu0");
      for (const v1::OutputFile& f : job.result().files()) {
        if (!absl::EndsWith(f.path(), ".safetensors")) continue;
        const std::string key = absl::StrCat(sym, f.path().substr(f.path().find('/')));
        if (digests.count(key)) {
          EXPECT_EQ(digests[key], f.sha256()) << key;
        } else {
          digests[key] = f.sha256();
        }
      }
    }
  }
  EXPECT_EQ(digests.size(), 2u);
}

TEST_F(EndToEndTest, QuantctlDrivesTheServer) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--gpus", "all"}));
  int rc;
  std::string out =
      Quantctl("-o json quantize --model tiny --method int8 --output cli-int8 --wait", &rc);
  ASSERT_EQ(rc, 0) << out;
  auto job = nlohmann::json::parse(out, nullptr, false);
  ASSERT_TRUE(job.is_object()) << out;
  EXPECT_EQ(job["state"], "JOB_STATE_SUCCEEDED");
  const std::string id = job["id"];
  out = Quantctl("get " + id, &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(absl::StrContains(out, "succeeded")) << out;
  out = Quantctl("list", &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(absl::StrContains(out, id)) << out;
  out = Quantctl("capabilities", &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(absl::StrContains(out, "int4")) << out;
  out = Quantctl("-o json workers", &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(absl::StrContains(out, "cpu0")) << out;
  // A job that fails makes --wait exit non-zero.
  fs::create_directories(root_ / "models" / "broken");
  std::ofstream(root_ / "models" / "broken" / "config.json") << "{}";
  Quantctl("quantize --model broken --method int4 --output b --wait", &rc);
  EXPECT_EQ(rc, 3);  // refused at submission: no weights
  Quantctl("get nope", &rc);
  EXPECT_EQ(rc, 3);
  Quantctl("quantize --model tiny", &rc);
  EXPECT_EQ(rc, 2);
}

}  // namespace
}  // namespace quantd
