// The NVFP4 methods (docs/research/nvfp4_format.md): FP4 weights with FP8
// block scales and a per-tensor scale, weights only (W4A16; activations stay
// in the model dtype because a W4A4 checkpoint needs calibrated activation
// scales, which quantd does not produce).
//   "nvfp4"           compressed-tensors "nvfp4-pack-quantized" (the NVFP4A16
//                     preset): config.json quantization_config only.
//   "nvfp4:modelopt"  NVIDIA ModelOpt's unified HF checkpoint, quant_algo
//                     "W4A16_NVFP4": hf_quant_config.json plus the
//                     quantization_config ModelOpt writes into config.json.
// Both take group_size 0 or 16 and no options (the layout option selects the
// variant before Resolve).
#ifndef QUANTD_CORE_QUANT_NVFP4_METHOD_H_
#define QUANTD_CORE_QUANT_NVFP4_METHOD_H_

#include <string>
#include <vector>

#include "core/quant/method.h"
#include "nlohmann/json.hpp"

namespace quantd {

const QuantMethod& Nvfp4Method();
const QuantMethod& Nvfp4ModelOptMethod();

// The compressed-tensors quantization_config of an NVFP4A16 checkpoint whose
// unquantized Linear modules are `ignore`: config_groups.group_0 {format:
// "nvfp4-pack-quantized", input_activations: null, output_activations: null,
// targets: ["Linear"], weights {actorder: null, block_structure: null,
// dynamic: false, group_size: 16, num_bits: 4, observer: "minmax",
// observer_kwargs: {}, strategy: "tensor_group", symmetric: true, type:
// "float"}} and the top-level keys of PackQuantizedConfig with format
// "nvfp4-pack-quantized". No scale_dtype/zp_dtype (older compressed-tensors
// rejects them).
nlohmann::json Nvfp4CompressedTensorsConfig(const std::vector<std::string>& ignore);

// ModelOpt's hf_quant_config.json: {producer {name: "modelopt", version},
// quantization {quant_algo: "W4A16_NVFP4", kv_cache_quant_algo: null,
// group_size: 16, exclude_modules: ignore}}.
nlohmann::json Nvfp4ModelOptHfQuantConfig(const std::vector<std::string>& ignore);

// The quantization_config ModelOpt derives from it for config.json
// (convert_hf_quant_config_format): {config_groups.group_0 {targets:
// ["Linear"], weights {dynamic: false, group_size: 16, num_bits: 4, type:
// "float"}}, ignore, producer, quant_algo: "W4A16_NVFP4", quant_method:
// "modelopt"}.
nlohmann::json Nvfp4ModelOptConfig(const std::vector<std::string>& ignore);

}  // namespace quantd

#endif  // QUANTD_CORE_QUANT_NVFP4_METHOD_H_
