// The "gguf" method: a llama.cpp GGUF file (one .gguf, not a folder) with
// llama-quantize's per-tensor type mix for a file type such as Q4_K_M. The
// quantize job routes it to core/pipeline/gguf_quantize.h.
//
// Options (QuantizeSpec.options):
//   gguf_type  file type as llama-quantize names it (default "Q4_K_M"):
//              F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K_S, Q3_K_M,
//              Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K (case-insensitive;
//              Q3_K, Q4_K, Q5_K mean the _M variants)
//   imatrix    llama.cpp importance matrix (legacy .dat or GGUF), relative to
//              the model root
//   override   "regex=TYPE;regex=TYPE": GGUF tensor names matching a regex
//              (searched, first match wins) get that ggml type
#ifndef QUANTD_CORE_QUANT_GGUF_METHOD_H_
#define QUANTD_CORE_QUANT_GGUF_METHOD_H_

#include "core/quant/method.h"

namespace quantd {

inline constexpr char kGgufMethodName[] = "gguf";
inline constexpr char kGgufDefaultType[] = "Q4_K_M";

const QuantMethod& GgufMethod();

// True for the method whose output is a single GGUF file.
inline bool IsGgufMethod(const QuantMethod& m) { return m.name() == kGgufMethodName; }

}  // namespace quantd

#endif  // QUANTD_CORE_QUANT_GGUF_METHOD_H_
