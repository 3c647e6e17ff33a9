// A quantization method as users name it ("int4", "nf4", ...): it resolves a
// job spec to a weight format with parameters, and knows how its output
// folder describes itself (quantization_config). One file pair per method
// family in core/quant/, one line per method in method_registry.cc.
#ifndef QUANTD_CORE_QUANT_METHOD_H_
#define QUANTD_CORE_QUANT_METHOD_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/formats/format.h"
#include "nlohmann/json.hpp"
#include "quantd/v1/quantd.pb.h"

namespace quantd {

struct MethodPlan {
  const WeightFormat* format = nullptr;
  FormatParams params;
};

class QuantMethod {
 public:
  virtual ~QuantMethod() = default;

  virtual std::string_view name() const = 0;
  virtual std::string_view description() const = 0;
  // e.g. "compressed-tensors/pack-quantized".
  virtual std::string_view output_format() const = 0;
  // Accepted parameters and their defaults, human readable, for
  // GetCapabilities.
  virtual std::map<std::string, std::string> ParameterHelp() const = 0;

  // The format and parameters for `spec` (scale dtype left at its default;
  // the pipeline sets it per tensor). INVALID_ARGUMENT naming the field for a
  // value the method does not accept.
  virtual absl::StatusOr<MethodPlan> Resolve(const v1::QuantizeSpec& spec) const = 0;

  // A short label of the encoding for reports, e.g. "int4-g128-sym".
  virtual std::string Label(const FormatParams& p) const = 0;

  // Every parameter, defaults included, for the job result.
  virtual std::map<std::string, std::string> Describe(const FormatParams& p) const = 0;

  // config.json's "quantization_config" for an output whose unquantized
  // Linear modules are `ignore` (null: config.json gets none).
  virtual nlohmann::json QuantizationConfig(const FormatParams& p,
                                            const std::vector<std::string>& ignore) const = 0;

  // Further files of the output folder (name -> content), e.g. ModelOpt's
  // hf_quant_config.json.
  virtual std::map<std::string, std::string> ExtraFiles(
      const FormatParams& p, const std::vector<std::string>& ignore) const {
    return {};
  }

  // How `device` runs this method; `note` explains emulation.
  virtual v1::Support SupportOn(const v1::DeviceInfo& device, std::string* note) const {
    return v1::SUPPORT_NATIVE;
  }
};

}  // namespace quantd

#endif  // QUANTD_CORE_QUANT_METHOD_H_
