// How quantctl prints API objects: readable text for people, protobuf's JSON
// mapping for pipelines.
#ifndef QUANTD_CLIENT_RENDER_H_
#define QUANTD_CLIENT_RENDER_H_

#include <google/protobuf/message.h>

#include <string>

#include "core/jobs/job_state.h"
#include "quantd/v1/quantd.pb.h"

namespace quantd {

enum class OutputMode { kText, kJson };

// Protobuf's JSON mapping, indented, with a trailing newline.
std::string ToJson(const google::protobuf::Message& m);

std::string JobText(const v1::Job& job);
std::string JobLine(const v1::Job& job);  // one line for `list`
std::string CapabilitiesText(const v1::Capabilities& caps);
std::string WorkersText(const v1::ListWorkersResponse& workers);
// The comparison table of an evaluate job's result: one row per model
// (size, bits per weight, perplexity ± standard error, its difference to
// the reference ± standard error, KL divergence mean / median / p99, top-1
// agreement, tokens per second), the protocol above it and the generation
// samples below. `markdown`: a GitHub table instead of aligned columns.
std::string EvaluationTable(const v1::EvaluateResult& result, bool markdown);
// "1.5 GiB".
std::string HumanBytes(double bytes);
// "1m05s"; "?" for a negative value.
std::string HumanSeconds(double seconds);

}  // namespace quantd

#endif  // QUANTD_CLIENT_RENDER_H_
