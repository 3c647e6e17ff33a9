// bitsandbytes LLM.int8() weights, stored as transformers saves a model
// loaded with BitsAndBytesConfig(load_in_8bit=True) (Linear8bitLt's
// _save_to_state_dict; docs/research/bitsandbytes_format.md §6).
//
// Registry name "bnb_int8". FormatParams: extra must be empty; bits,
// group_size, symmetric, scale_dtype and tensor_amax are ignored (one
// symmetric scale per output row is the only layout).
//
// Parts of a [rows, cols] weight, in this order:
//   weight         I8  [rows, cols]  round(h * 127 / absmax), h the weight
//                  rounded to float16 (core/formats/bnb_int8_layout.h)
//   SCB            F32 [rows]        absmax of each float16 row
//   weight_format  U8  []            0 ("row"; bitsandbytes >= 0.45 saves
//                                    only row-major)
// NaN, Inf and values whose float16 rounding is infinite (|x| >= 65520)
// are INVALID_ARGUMENT "non-finite value at row R, column C in float16 ...".
#ifndef QUANTD_CORE_FORMATS_BNB_INT8_H_
#define QUANTD_CORE_FORMATS_BNB_INT8_H_

#include "core/formats/bnb_int8_layout.h"
#include "core/formats/format.h"

namespace quantd {

// The "bnb_int8" format (a process-wide singleton).
const WeightFormat& BnbInt8Format();

// Part names.
inline constexpr char kBnbInt8WeightSuffix[] = "weight";
inline constexpr char kBnbInt8ScbSuffix[] = "SCB";
inline constexpr char kBnbInt8FormatSuffix[] = "weight_format";

}  // namespace quantd

#endif  // QUANTD_CORE_FORMATS_BNB_INT8_H_
