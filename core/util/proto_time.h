// Conversions between absl::Time and google.protobuf.Timestamp.
#ifndef QUANTD_CORE_UTIL_PROTO_TIME_H_
#define QUANTD_CORE_UTIL_PROTO_TIME_H_

#include <google/protobuf/timestamp.pb.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace quantd {

inline google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t us = absl::ToUnixMicros(t);
  ts.set_seconds(us / 1000000);
  ts.set_nanos(static_cast<int32_t>((us % 1000000) * 1000));
  return ts;
}

inline absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

inline google::protobuf::Timestamp NowProto() { return ToProto(absl::Now()); }

}  // namespace quantd

#endif  // QUANTD_CORE_UTIL_PROTO_TIME_H_
