// The "int8" and "int4" round-to-nearest methods (compressed-tensors
// pack-quantized output).
#ifndef QUANTD_CORE_QUANT_RTN_INT_METHOD_H_
#define QUANTD_CORE_QUANT_RTN_INT_METHOD_H_

#include "core/quant/method.h"

namespace quantd {

const QuantMethod& Int8Method();
const QuantMethod& Int4Method();

}  // namespace quantd

#endif  // QUANTD_CORE_QUANT_RTN_INT_METHOD_H_
