// The "fp8" method: FP8 E4M3 weights (the fp8 format, core/formats/fp8.h)
// in compressed-tensors' float-quantized layout, with dynamic FP8
// activations recorded for the runtime, as llm-compressor's FP8_DYNAMIC
// (strategy channel, the default, or tensor) and FP8_BLOCK (strategy block)
// schemes write them (docs/research/fp8_format.md).
//
// Spec: options["strategy"] = "channel" (default) | "tensor" | "block";
// group_size must be 0 and symmetric unset or true; no other options.
#ifndef QUANTD_CORE_QUANT_FP8_METHOD_H_
#define QUANTD_CORE_QUANT_FP8_METHOD_H_

#include <string>
#include <vector>

#include "core/formats/fp8_layout.h"
#include "core/quant/method.h"
#include "nlohmann/json.hpp"

namespace quantd {

const QuantMethod& Fp8Method();

// config.json's quantization_config for a float-quantized checkpoint with
// one scheme for every Linear not in `ignore`: weights {num_bits 8, type
// "float", symmetric, dynamic false, strategy "tensor" | "channel" |
// "block" with block_structure [128, 128], observer "minmax"} and input
// activations {num_bits 8, type "float", symmetric, dynamic true, observer
// null, strategy "token" (tensor, channel) or "group" with group_size 128
// (block)}; format "float-quantized", quant_method "compressed-tensors",
// quantization_status "compressed", the other top-level keys as for
// pack-quantized (core/quant/compressed_tensors.h). Argument keys are those
// every compressed-tensors version since 2024 accepts (no scale_dtype /
// zp_dtype). Never fails.
nlohmann::json FloatQuantizedConfig(fp8::Strategy strategy, const std::vector<std::string>& ignore);

}  // namespace quantd

#endif  // QUANTD_CORE_QUANT_FP8_METHOD_H_
