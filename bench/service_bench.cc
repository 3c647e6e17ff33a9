// Service overhead of quantd, measured against a real server process on
// loopback: CreateJob latency, create-to-running on an idle server, GetJob
// latency under 32 concurrent clients, and server memory with 100 watchers.
//
//   build/bench/service_bench [--quantd build/server/quantd]
#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "quantd/v1/quantd.grpc.pb.h"
#include "tests/fixtures/server_process.h"
#include "tests/fixtures/tiny_model.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

int64_t RssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      int64_t kb;
      in >> kb;
      return kb;
    }
    in.ignore(1 << 20, '\n');
  }
  return -1;
}

v1::CreateJobRequest Quantize(const std::string& out) {
  v1::CreateJobRequest req;
  auto* q = req.mutable_spec()->mutable_quantize();
  q->set_model("tiny");
  q->set_output(out);
  q->set_method("int4");
  return req;
}

int Run(const std::string& quantd) {
  std::string tmpl = (fs::temp_directory_path() / "quantd-bench-XXXXXX").string();
  const fs::path root = mkdtemp(tmpl.data());
  fs::create_directories(root / "models");
  fs::create_directories(root / "outputs");
  if (!WriteTinyLlama(root / "models" / "tiny", TinyLlamaOptions{}).ok()) return 1;
  auto server = ServerProcess::Start(
      quantd, root / "data",
      {"--model-root", (root / "models").string(), "--output-root", (root / "outputs").string(),
       "--cpu-workers", "1", "--gpus", "none", "--max-queued-jobs", "100000"});
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  auto channel = grpc::CreateChannel((*server)->grpc_address(), grpc::InsecureChannelCredentials());
  auto stub = v1::QuantizationService::NewStub(channel);
  int counter = 0;

  // 1. Create-to-running on an idle server (previous job finished).
  std::vector<double> to_running, create_ms;
  for (int i = 0; i < 30; ++i) {
    v1::Job job;
    const auto t0 = Clock::now();
    {
      grpc::ClientContext ctx;
      if (!stub->CreateJob(&ctx, Quantize("o" + std::to_string(counter++)), &job).ok()) return 1;
    }
    create_ms.push_back(Ms(Clock::now() - t0));
    grpc::ClientContext ctx;
    v1::WatchJobRequest w;
    w.set_id(job.id());
    auto reader = stub->WatchJob(&ctx, w);
    v1::WatchJobResponse msg;
    bool seen_running = false;
    while (reader->Read(&msg)) {
      if (!msg.has_event()) continue;
      const auto state = msg.event().job().state();
      if (!seen_running && state != v1::JOB_STATE_QUEUED) {
        to_running.push_back(Ms(Clock::now() - t0));
        seen_running = true;
      }
    }
    reader->Finish();
  }

  // 2. CreateJob latency in a burst (jobs queue up behind one worker).
  std::vector<double> burst;
  for (int i = 0; i < 200; ++i) {
    grpc::ClientContext ctx;
    v1::Job job;
    const auto t0 = Clock::now();
    if (!stub->CreateJob(&ctx, Quantize("b" + std::to_string(counter++)), &job).ok()) return 1;
    burst.push_back(Ms(Clock::now() - t0));
  }
  std::string some_id;
  {
    grpc::ClientContext ctx;
    v1::ListJobsRequest req;
    req.set_page_size(1);
    v1::ListJobsResponse resp;
    stub->ListJobs(&ctx, req, &resp);
    some_id = resp.jobs(0).id();
  }

  // 3. GetJob with 32 concurrent clients for 3 seconds.
  std::vector<std::vector<double>> lat(32);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 32; ++t) {
    threads.emplace_back([&, t] {
      grpc::ChannelArguments args;
      args.SetInt("quantd-bench-client", t);  // a separate connection per client
      auto ch = grpc::CreateCustomChannel((*server)->grpc_address(),
                                          grpc::InsecureChannelCredentials(), args);
      auto s = v1::QuantizationService::NewStub(ch);
      v1::GetJobRequest req;
      req.set_id(some_id);
      while (!stop) {
        grpc::ClientContext ctx;
        v1::Job job;
        const auto t0 = Clock::now();
        if (s->GetJob(&ctx, req, &job).ok()) lat[t].push_back(Ms(Clock::now() - t0));
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(3));
  stop = true;
  for (auto& th : threads) th.join();
  std::vector<double> get_ms;
  for (auto& l : lat) get_ms.insert(get_ms.end(), l.begin(), l.end());

  // 4. Memory with 100 watchers on a queued job.
  const int64_t rss_before = RssKiB((*server)->pid());
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::WatchJobResponse>>> readers;
  v1::Job last;
  {
    grpc::ClientContext ctx;
    stub->CreateJob(&ctx, Quantize("w"), &last);
  }
  for (int i = 0; i < 100; ++i) {
    ctxs.push_back(std::make_unique<grpc::ClientContext>());
    v1::WatchJobRequest w;
    w.set_id(last.id());
    readers.push_back(stub->WatchJob(ctxs.back().get(), w));
    v1::WatchJobResponse msg;
    readers.back()->Read(&msg);  // the stream is established server-side
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const int64_t rss_after = RssKiB((*server)->pid());
  for (auto& c : ctxs) c->TryCancel();
  for (auto& r : readers) r->Finish();
  (*server)->Kill();
  fs::remove_all(root);

  std::printf("\n| measurement | samples | p50 | p99 | max |\n|---|---|---|---|---|\n");
  auto row = [](const char* name, const std::vector<double>& v, const char* unit) {
    std::printf("| %s | %zu | %.3f %s | %.3f %s | %.3f %s |\n", name, v.size(), Percentile(v, 0.5),
                unit, Percentile(v, 0.99), unit, Percentile(v, 1.0), unit);
  };
  row("CreateJob, idle server", create_ms, "ms");
  row("CreateJob, burst of 200", burst, "ms");
  row("create to running, idle server", to_running, "ms");
  row("GetJob, 32 concurrent clients", get_ms, "ms");
  std::printf("\nGetJob throughput: %.0f requests/s over 3 s\n", get_ms.size() / 3.0);
  std::printf("server RSS: %lld KiB before, %lld KiB with 100 watchers (%.1f KiB per watcher)\n",
              static_cast<long long>(rss_before), static_cast<long long>(rss_after),
              (rss_after - rss_before) / 100.0);
  return 0;
}

}  // namespace
}  // namespace quantd

int main(int argc, char** argv) {
  std::string quantd = QUANTD_BIN;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--quantd") quantd = argv[i + 1];
  }
  return quantd::Run(quantd);
}
