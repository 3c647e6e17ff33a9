// The gRPC edge: QuantizationService on the callback API. Handlers are thin:
// they hand the work to an Executor (never blocking a gRPC thread), call the
// JobManager, and convert absl::Status to grpc::Status in one place.
#ifndef QUANTD_SERVER_SERVICE_H_
#define QUANTD_SERVER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "quantd/v1/quantd.grpc.pb.h"
#include "server/executor.h"
#include "server/job_manager.h"
#include "server/metrics.h"

namespace quantd {

// The one conversion from absl::Status to grpc::Status (the codes coincide).
grpc::Status ToGrpcStatus(const absl::Status& s);

class QuantdService final : public v1::QuantizationService::CallbackService {
 public:
  QuantdService(JobManager* manager, ServerMetrics* metrics, Executor* executor);

  grpc::ServerUnaryReactor* CreateJob(grpc::CallbackServerContext* ctx,
                                      const v1::CreateJobRequest* req, v1::Job* resp) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx, const v1::GetJobRequest* req,
                                   v1::Job* resp) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx,
                                     const v1::ListJobsRequest* req,
                                     v1::ListJobsResponse* resp) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* ctx,
                                      const v1::CancelJobRequest* req, v1::Job* resp) override;
  grpc::ServerUnaryReactor* DeleteJob(grpc::CallbackServerContext* ctx,
                                      const v1::DeleteJobRequest* req,
                                      google::protobuf::Empty* resp) override;
  grpc::ServerWriteReactor<v1::WatchJobResponse>* WatchJob(grpc::CallbackServerContext* ctx,
                                                           const v1::WatchJobRequest* req) override;
  grpc::ServerUnaryReactor* GetCapabilities(grpc::CallbackServerContext* ctx,
                                            const v1::GetCapabilitiesRequest* req,
                                            v1::Capabilities* resp) override;
  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* ctx,
                                        const v1::ListWorkersRequest* req,
                                        v1::ListWorkersResponse* resp) override;

 private:
  // Runs `fn` on the executor and finishes the call with its status.
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, const char* method,
                                  std::function<absl::Status()> fn);

  JobManager* const manager_;
  ServerMetrics* const metrics_;
  Executor* const executor_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_SERVICE_H_
