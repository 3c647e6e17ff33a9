// quantd's scalar reference of ggml's quantizers and dequantizers: the bytes
// llama.cpp's llama-quantize writes for a tensor of float32 rows. The
// algorithms are ggml's (ggml/src/ggml-quants.c), transcribed into
// ggml_quants_math.h, ggml_quants_legacy_impl.h and ggml_quants_k_impl.h
// (shared with the CUDA kernels); docs/research/ggml_quants.md describes
// each type and which ggml function defines it.
//
// What llama-quantize runs: it converts each source tensor to float32
// (F16/BF16 exactly) and calls ggml_quantize_chunk(type, src, dst, start,
// nrows, n_per_row, imatrix), which calls quantize_<type>(src, dst, nrows,
// n_per_row, imatrix). Without an importance matrix (imatrix == NULL) every
// type here then runs quantize_row_<type>_ref over the rows; with one, the
// types that use it (GgmlUsesImportance) run quantize_row_<type>_impl per
// row with the row's importance (one weight per column). Q8_0 ignores it;
// F16 and BF16 round to nearest even; F32 copies.
#ifndef QUANTD_CORE_GGUF_GGML_QUANTS_H_
#define QUANTD_CORE_GGUF_GGML_QUANTS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "core/gguf/ggml_types.h"

namespace quantd {

// Whether quantizing to `t` uses an importance matrix when one is given.
bool GgmlUsesImportance(GgmlType t);

// Quantizes `rows` rows of `cols` float32 values (x, row-major) to `t`,
// writing rows * RowBytes(t, cols) bytes to `out` (any alignment).
// `importance` is null or `cols` non-negative finite weights, one per
// column, used for every row. Requires CanEncodeGgml(t); INVALID_ARGUMENT
// otherwise, for cols not a multiple of the block size, or negative sizes.
// The input must be finite (the "ggml" format checks; here non-finite
// values give ggml's bytes for them, whatever they are).
absl::Status QuantizeGgml(GgmlType t, const float* x, int64_t rows, int64_t cols,
                          const float* importance, uint8_t* out);

// Dequantizes rows * RowBytes(t, cols) bytes of `t` into rows * cols
// float32 values, with ggml's dequantize_row_<type> arithmetic (F16, BF16:
// exact). Any type CanEncodeGgml accepts; INVALID_ARGUMENT otherwise or for
// bad sizes.
absl::Status DequantizeGgml(GgmlType t, const uint8_t* data, int64_t rows, int64_t cols,
                            float* out);

namespace ggml {

// The per-family halves of the two functions above (rows already checked).
// Legacy: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0; k-quants: Q2_K .. Q6_K.
void QuantizeLegacyRows(GgmlType t, const float* x, int64_t rows, int64_t cols,
                        const float* importance, uint8_t* out);
void DequantizeLegacyRows(GgmlType t, const uint8_t* data, int64_t rows, int64_t cols, float* out);
void QuantizeKRows(GgmlType t, const float* x, int64_t rows, int64_t cols, const float* importance,
                   uint8_t* out);
void DequantizeKRows(GgmlType t, const uint8_t* data, int64_t rows, int64_t cols, float* out);
bool IsKQuant(GgmlType t);

}  // namespace ggml
}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_GGML_QUANTS_H_
