// Every weight format, by name. Adding a format adds one line to
// registry.cc.
#ifndef QUANTD_CORE_FORMATS_REGISTRY_H_
#define QUANTD_CORE_FORMATS_REGISTRY_H_

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/formats/format.h"

namespace quantd {

// The format registered under `name`; NOT_FOUND otherwise.
absl::StatusOr<const WeightFormat*> FindFormat(std::string_view name);
// All registered formats, in registration order.
const std::vector<const WeightFormat*>& AllFormats();

}  // namespace quantd

#endif  // QUANTD_CORE_FORMATS_REGISTRY_H_
