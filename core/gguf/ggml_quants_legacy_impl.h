// ggml's 32-element block quantizers (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), one
// block per call, transcribed from ggml/src/ggml-quants.c:
//   *Ref:  quantize_row_<type>_ref, what llama-quantize runs without an
//          importance matrix (quantize_<type> calls it then);
//   *Impl: quantize_row_<type>_impl with quant_weights, what it runs with
//          one (weights qw of the block's 32 columns and sigma2 = the mean
//          of x^2 over the whole row).
// Shared by the host reference and the CUDA kernels (QUANTD_HD); see
// ggml_quants_math.h for the arithmetic rules.
#ifndef QUANTD_CORE_GGUF_GGML_QUANTS_LEGACY_IMPL_H_
#define QUANTD_CORE_GGUF_GGML_QUANTS_LEGACY_IMPL_H_

#include "core/gguf/ggml_quants_math.h"

namespace quantd {
namespace ggml {

// amax and the value of largest magnitude (first one on ties). Local
// accumulators: stores through the out pointers, which may alias x as far as
// the compiler knows, would keep the loops from vectorizing.
QUANTD_HD void SignedAbsMax(const float* x, int n, float* amax_out, float* max_out) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int j = 0; j < n; j++) {
    const float v = x[j];
    if (amax < AbsF(v)) {
      amax = AbsF(v);
      max = v;
    }
  }
  *amax_out = amax;
  *max_out = max;
}

QUANTD_HD void MinMax(const float* x, int n, float* min_out, float* max_out) {
  float min = 3.402823466e+38F;  // FLT_MAX
  float max = -3.402823466e+38F;
  for (int j = 0; j < n; j++) {
    const float v = x[j];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  *min_out = min;
  *max_out = max;
}

QUANTD_HD void QuantizeQ4_0Ref(const float* x, BlockQ4_0* y) {
  constexpr int qk = kQK4_0;
  float amax, max;
  SignedAbsMax(x, qk, &amax, &max);
  const float d = max / -8;
  const float id = d ? 1.0f / d : 0.0f;
  y->d = ToHalf(d);
  // Codes go to a local array first: y's bytes may alias x as far as the
  // compiler knows (ggml marks its pointers restrict), which kept this loop
  // scalar.
  uint8_t qs[qk / 2];
  for (int j = 0; j < qk / 2; ++j) {
    const float x0 = x[0 + j] * id;
    const float x1 = x[qk / 2 + j] * id;
    // ggml's types (uint8_t of MIN(15, (int8_t)...)): the loop vectorizes.
    const uint8_t xi0 = static_cast<uint8_t>(MinI(15, TruncToInt8X86(x0 + 8.5f)));
    const uint8_t xi1 = static_cast<uint8_t>(MinI(15, TruncToInt8X86(x1 + 8.5f)));
    qs[j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
  }
  for (int j = 0; j < qk / 2; ++j) y->qs[j] = qs[j];
}

QUANTD_HD void QuantizeQ4_1Ref(const float* x, BlockQ4_1* y) {
  constexpr int qk = kQK4_1;
  float min, max;
  MinMax(x, qk, &min, &max);
  const float d = (max - min) / ((1 << 4) - 1);
  const float id = d ? 1.0f / d : 0.0f;
  y->d = ToHalf(d);
  y->m = ToHalf(min);
  uint8_t qs[qk / 2];  // local, as in QuantizeQ4_0Ref
  for (int j = 0; j < qk / 2; ++j) {
    const float x0 = (x[0 + j] - min) * id;
    const float x1 = (x[qk / 2 + j] - min) * id;
    const uint8_t xi0 = static_cast<uint8_t>(MinI(15, TruncToInt8X86(x0 + 0.5f)));
    const uint8_t xi1 = static_cast<uint8_t>(MinI(15, TruncToInt8X86(x1 + 0.5f)));
    qs[j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
  }
  for (int j = 0; j < qk / 2; ++j) y->qs[j] = qs[j];
}

// qh: bit 4 of code j at bit j of a little-endian uint32.
QUANTD_HD void StoreQh(uint32_t qh, uint8_t* out) {
  out[0] = static_cast<uint8_t>(qh);
  out[1] = static_cast<uint8_t>(qh >> 8);
  out[2] = static_cast<uint8_t>(qh >> 16);
  out[3] = static_cast<uint8_t>(qh >> 24);
}
QUANTD_HD uint32_t LoadQh(const uint8_t* in) {
  return static_cast<uint32_t>(in[0]) | static_cast<uint32_t>(in[1]) << 8 |
         static_cast<uint32_t>(in[2]) << 16 | static_cast<uint32_t>(in[3]) << 24;
}

// Packs 32 5-bit codes (uint8 each) of a Q5_0/Q5_1 block.
QUANTD_HD void Pack5(const int* code_lo, const int* code_hi, uint8_t* qs, uint8_t* qh_out) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const uint32_t xi0 = static_cast<uint32_t>(code_lo[j]) & 0xffu;
    const uint32_t xi1 = static_cast<uint32_t>(code_hi[j]) & 0xffu;
    qs[j] = static_cast<uint8_t>((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
    qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
    qh |= ((xi1 & 0x10u) >> 4) << (j + 16);
  }
  StoreQh(qh, qh_out);
}

QUANTD_HD void QuantizeQ5_0Ref(const float* x, BlockQ5_0* y) {
  constexpr int qk = kQK5_0;
  float amax, max;
  SignedAbsMax(x, qk, &amax, &max);
  const float d = max / -16;
  const float id = d ? 1.0f / d : 0.0f;
  y->d = ToHalf(d);
  int lo[16], hi[16];
  for (int j = 0; j < qk / 2; ++j) {
    const float x0 = x[0 + j] * id;
    const float x1 = x[qk / 2 + j] * id;
    // (uint8_t)MIN(31, (int8_t)(...)): the byte of the int result.
    lo[j] = MinI(31, TruncToInt8X86(x0 + 16.5f)) & 0xff;
    hi[j] = MinI(31, TruncToInt8X86(x1 + 16.5f)) & 0xff;
  }
  Pack5(lo, hi, y->qs, y->qh);
}

QUANTD_HD void QuantizeQ5_1Ref(const float* x, BlockQ5_1* y) {
  constexpr int qk = kQK5_1;
  float min, max;
  MinMax(x, qk, &min, &max);
  const float d = (max - min) / ((1 << 5) - 1);
  const float id = d ? 1.0f / d : 0.0f;
  y->d = ToHalf(d);
  y->m = ToHalf(min);
  int lo[16], hi[16];
  for (int j = 0; j < qk / 2; ++j) {
    const float x0 = (x[0 + j] - min) * id;
    const float x1 = (x[qk / 2 + j] - min) * id;
    lo[j] = TruncToUint8X86(x0 + 0.5f);
    hi[j] = TruncToUint8X86(x1 + 0.5f);
  }
  Pack5(lo, hi, y->qs, y->qh);
}

QUANTD_HD void QuantizeQ8_0Ref(const float* x, BlockQ8_0* y) {
  float amax = 0.0f;
  for (int j = 0; j < kQK8_0; j++) {
    const float v = AbsF(x[j]);
    amax = amax > v ? amax : v;  // MAX(amax, fabsf(v))
  }
  const float d = amax / ((1 << 7) - 1);
  const float id = d ? 1.0f / d : 0.0f;
  y->d = ToHalf(d);
  for (int j = 0; j < kQK8_0; ++j) {
    y->qs[j] = static_cast<uint8_t>(TruncToInt8X86(RoundF(x[j] * id)));
  }
}

// The per-element weights of the importance-matrix paths:
// qw[j] * sqrtf(sigma2 + x[j]^2).
QUANTD_HD void ImatrixWeights(const float* x, const float* qw, float sigma2, int n, float* weight) {
  for (int j = 0; j < n; ++j) weight[j] = qw[j] * SqrtF(sigma2 + x[j] * x[j]);
}

// sigma2 of the legacy *Impl paths: sum of x^2 over the row / row length.
QUANTD_HD float RowSigma2(const float* row, int64_t n_per_row) {
  return SumSquares(row, n_per_row) / static_cast<float>(n_per_row);
}

QUANTD_HD void QuantizeQ4_0Impl(const float* x, const float* qw, float sigma2, BlockQ4_0* y) {
  float weight[kQK4_0];
  int8_t L[kQK4_0];
  ImatrixWeights(x, qw, sigma2, kQK4_0, weight);
  const float d = MakeQxQuants(kQK4_0, 8, x, L, 1, weight);
  y->d = ToHalf(d);
  for (int j = 0; j < 16; ++j) y->qs[j] = static_cast<uint8_t>(L[j] | (L[j + 16] << 4));
}

QUANTD_HD void QuantizeQ4_1Impl(const float* x, const float* qw, float sigma2, BlockQ4_1* y) {
  float weight[kQK4_1];
  uint8_t L[kQK4_1], Laux[kQK4_1];
  ImatrixWeights(x, qw, sigma2, kQK4_1, weight);
  float min;
  const float d =
      MakeQkxQuants<true>(kQK4_1, 15, x, weight, L, &min, Laux, -0.9f, 0.05f, 36, false);
  y->d = ToHalf(d);
  y->m = ToHalf(-min);
  for (int j = 0; j < 16; ++j) y->qs[j] = static_cast<uint8_t>(L[j] | (L[j + 16] << 4));
}

QUANTD_HD void QuantizeQ5_0Impl(const float* x, const float* qw, float sigma2, BlockQ5_0* y) {
  float weight[kQK5_0];
  int8_t L[kQK5_0];
  ImatrixWeights(x, qw, sigma2, kQK5_0, weight);
  const float d = MakeQxQuants(kQK5_0, 16, x, L, 1, weight);
  y->d = ToHalf(d);
  int lo[16], hi[16];
  for (int j = 0; j < 16; ++j) {
    lo[j] = static_cast<uint8_t>(L[j]);
    hi[j] = static_cast<uint8_t>(L[j + 16]);
  }
  Pack5(lo, hi, y->qs, y->qh);
}

QUANTD_HD void QuantizeQ5_1Impl(const float* x, const float* qw, float sigma2, BlockQ5_1* y) {
  float weight[kQK5_1];
  uint8_t L[kQK5_1], Laux[kQK5_1];
  ImatrixWeights(x, qw, sigma2, kQK5_1, weight);
  float min;
  const float d =
      MakeQkxQuants<true>(kQK5_1, 31, x, weight, L, &min, Laux, -0.9f, 0.05f, 36, false);
  y->d = ToHalf(d);
  y->m = ToHalf(-min);
  int lo[16], hi[16];
  for (int j = 0; j < 16; ++j) {
    lo[j] = L[j];
    hi[j] = L[j + 16];
  }
  Pack5(lo, hi, y->qs, y->qh);
}

}  // namespace ggml
}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_GGML_QUANTS_LEGACY_IMPL_H_
