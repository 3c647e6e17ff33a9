#include "server/service.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/util/status_macros.h"
#include "server/watch_reactor.h"

namespace quantd {

grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

QuantdService::QuantdService(JobManager* manager, ServerMetrics* metrics, Executor* executor)
    : manager_(manager), metrics_(metrics), executor_(executor) {}

grpc::ServerUnaryReactor* QuantdService::Unary(grpc::CallbackServerContext* ctx, const char* method,
                                               std::function<absl::Status()> fn) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const absl::Time start = absl::Now();
  executor_->Submit([this, reactor, method, start, fn = std::move(fn)] {
    const absl::Status s = fn();
    metrics_->GrpcRequest(method, absl::StatusCodeToString(s.code()),
                          absl::ToDoubleSeconds(absl::Now() - start));
    reactor->Finish(ToGrpcStatus(s));
  });
  return reactor;
}

grpc::ServerUnaryReactor* QuantdService::CreateJob(grpc::CallbackServerContext* ctx,
                                                   const v1::CreateJobRequest* req, v1::Job* resp) {
  return Unary(ctx, "CreateJob", [this, req, resp]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, manager_->Create(*req));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* QuantdService::GetJob(grpc::CallbackServerContext* ctx,
                                                const v1::GetJobRequest* req, v1::Job* resp) {
  return Unary(ctx, "GetJob", [this, req, resp]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, manager_->Get(req->id()));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* QuantdService::ListJobs(grpc::CallbackServerContext* ctx,
                                                  const v1::ListJobsRequest* req,
                                                  v1::ListJobsResponse* resp) {
  return Unary(ctx, "ListJobs", [this, req, resp]() -> absl::Status {
    JobFilter filter;
    for (int s : req->states()) filter.states.push_back(static_cast<v1::JobState>(s));
    filter.kind = req->kind();
    ASSIGN_OR_RETURN(JobPage page, manager_->List(filter, req->page_size(), req->page_token()));
    for (v1::Job& j : page.jobs) *resp->add_jobs() = std::move(j);
    resp->set_next_page_token(page.next_page_token);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* QuantdService::CancelJob(grpc::CallbackServerContext* ctx,
                                                   const v1::CancelJobRequest* req, v1::Job* resp) {
  return Unary(ctx, "CancelJob", [this, req, resp]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, manager_->Cancel(req->id()));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* QuantdService::DeleteJob(grpc::CallbackServerContext* ctx,
                                                   const v1::DeleteJobRequest* req,
                                                   google::protobuf::Empty* resp) {
  return Unary(ctx, "DeleteJob", [this, req]() { return manager_->Delete(req->id()); });
}

grpc::ServerUnaryReactor* QuantdService::GetCapabilities(grpc::CallbackServerContext* ctx,
                                                         const v1::GetCapabilitiesRequest* req,
                                                         v1::Capabilities* resp) {
  return Unary(ctx, "GetCapabilities", [this, resp]() {
    *resp = manager_->Capabilities();
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* QuantdService::ListWorkers(grpc::CallbackServerContext* ctx,
                                                     const v1::ListWorkersRequest* req,
                                                     v1::ListWorkersResponse* resp) {
  return Unary(ctx, "ListWorkers", [this, resp]() {
    for (v1::Worker& w : manager_->Workers()) *resp->add_workers() = std::move(w);
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<v1::WatchJobResponse>* QuantdService::WatchJob(
    grpc::CallbackServerContext* ctx, const v1::WatchJobRequest* req) {
  auto* reactor = new WatchReactor(manager_, metrics_, req->id(), req->after_seq());
  executor_->Submit([reactor] { reactor->Begin(); });
  return reactor;
}

}  // namespace quantd
