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

// The method a spec asks for: its `method`, or with options["layout"] set,
// the registered variant "<method>:<layout>" (e.g. "nvfp4:modelopt",
// "int8:bitsandbytes"). INVALID_ARGUMENT naming the method or layout.
absl::StatusOr<const QuantMethod*> FindMethodForSpec(const v1::QuantizeSpec& spec);

// The spec a method's Resolve() sees: options["layout"] removed.
v1::QuantizeSpec WithoutLayout(const v1::QuantizeSpec& spec);
const std::vector<const QuantMethod*>& AllMethods();

}  // namespace quantd

#endif  // QUANTD_CORE_QUANT_METHOD_REGISTRY_H_
