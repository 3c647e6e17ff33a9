// Every quantization method, by the name users give it.
#ifndef QUANTD_CORE_QUANT_METHOD_REGISTRY_H_
#define QUANTD_CORE_QUANT_METHOD_REGISTRY_H_

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/quant/method.h"

namespace quantd {

// INVALID_ARGUMENT listing the known methods when `name` is not one.
absl::StatusOr<const QuantMethod*> FindMethod(std::string_view name);
const std::vector<const QuantMethod*>& AllMethods();

}  // namespace quantd

#endif  // QUANTD_CORE_QUANT_METHOD_REGISTRY_H_
