// config.json "quantization_config" for compressed-tensors checkpoints
// (docs/research/compressed_tensors_format.md §3).
#ifndef QUANTD_CORE_QUANT_COMPRESSED_TENSORS_H_
#define QUANTD_CORE_QUANT_COMPRESSED_TENSORS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace quantd {

// The "version" we write: the compressed-tensors release whose layout and
// config keys we follow. compressed-tensors discards it and vLLM ignores it.
inline constexpr char kCompressedTensorsVersion[] = "0.12.2";

// The quantization_config of a weight-only "pack-quantized" checkpoint with
// one scheme for every Linear not in `ignore`: int`bits` weights, group
// strategy with `group_size` (> 0) or channel strategy (group_size <= 0,
// written as null), symmetric or not. Emits only the keys every
// compressed-tensors version since 2024 accepts (no scale_dtype/zp_dtype):
// config_groups.group_0 {format, input_activations: null,
// output_activations: null, targets: ["Linear"], weights {actorder: null,
// block_structure: null, dynamic: false, group_size, num_bits,
// observer: "minmax", observer_kwargs: {}, strategy, symmetric,
// type: "int"}}, format, global_compression_ratio: null, ignore,
// kv_cache_scheme: null, quant_method: "compressed-tensors",
// quantization_status: "compressed", sparsity_config: {},
// transform_config: {}, version. Never fails.
nlohmann::json PackQuantizedConfig(int bits, int64_t group_size, bool symmetric,
                                   const std::vector<std::string>& ignore);

}  // namespace quantd

#endif  // QUANTD_CORE_QUANT_COMPRESSED_TENSORS_H_
