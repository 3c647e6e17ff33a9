// bitsandbytes methods (output loadable by transformers + bitsandbytes as a
// pre-quantized BitsAndBytesConfig model):
//   "nf4", "fp4"         4-bit blockwise (format "bnb4"); options
//                        double_quant=true|false (default false, as
//                        BitsAndBytesConfig), compute_dtype=bfloat16|
//                        float16|float32 (default bfloat16; recorded as
//                        bnb_4bit_compute_dtype); group_size = blocksize
//                        (0 = 64; a power of two in [32, 4096]).
//   "int8:bitsandbytes"  LLM.int8() (format "bnb_int8"), chosen with
//                        method int8 and options layout=bitsandbytes.
// quantization_config is BitsAndBytesConfig.to_dict() as transformers
// writes it; the unquantized Linear modules go to llm_int8_skip_modules.
#ifndef QUANTD_CORE_QUANT_BNB_METHOD_H_
#define QUANTD_CORE_QUANT_BNB_METHOD_H_

#include <string>
#include <vector>

#include "core/quant/method.h"

namespace quantd {

const QuantMethod& Nf4Method();
const QuantMethod& Fp4Method();
const QuantMethod& BnbInt8Method();

// BitsAndBytesConfig(...).to_dict() for a 4-bit ("nf4"/"fp4") or 8-bit
// (quant_type "int8") output; `compute_dtype` is a torch dtype name.
nlohmann::json BitsAndBytesConfigJson(const std::string& quant_type, bool double_quant,
                                      const std::string& compute_dtype,
                                      const std::vector<std::string>& skip_modules);

}  // namespace quantd

#endif  // QUANTD_CORE_QUANT_BNB_METHOD_H_
