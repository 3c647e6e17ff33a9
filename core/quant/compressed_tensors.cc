#include "core/quant/compressed_tensors.h"

namespace quantd {

nlohmann::json PackQuantizedConfig(int bits, int64_t group_size, bool symmetric,
                                   const std::vector<std::string>& ignore) {
  using json = nlohmann::json;
  const bool per_group = group_size > 0;
  json weights = {
      {"actorder", nullptr},
      {"block_structure", nullptr},
      {"dynamic", false},
      {"group_size", per_group ? json(group_size) : json(nullptr)},
      {"num_bits", bits},
      {"observer", "minmax"},
      {"observer_kwargs", json::object()},
      {"strategy", per_group ? "group" : "channel"},
      {"symmetric", symmetric},
      {"type", "int"},
  };
  json group = {
      {"format", "pack-quantized"},    {"input_activations", nullptr},
      {"output_activations", nullptr}, {"targets", json::array({"Linear"})},
      {"weights", std::move(weights)},
  };
  return json{
      {"config_groups", {{"group_0", std::move(group)}}},
      {"format", "pack-quantized"},
      {"global_compression_ratio", nullptr},
      {"ignore", ignore},
      {"kv_cache_scheme", nullptr},
      {"quant_method", "compressed-tensors"},
      {"quantization_status", "compressed"},
      {"sparsity_config", json::object()},
      {"transform_config", json::object()},
      {"version", kCompressedTensorsVersion},
  };
}

}  // namespace quantd
