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

#include "core/gguf/ggml_quants_search.h"
#include "core/gguf/ggml_quants_sse.h"

namespace quantd {
namespace ggml {

// SignedAbsMax (SignedAbsMaxSeq in ggml_quants_search.h) and the minimum
// and maximum of a block, as ggml's block loops compute them.
//
// On an SSE2 host both run four lanes at once (the one-accumulator loop is
// a chain of dependent max/min instructions, ~40% of a Q4_0 or Q4_1 block)
// and then settle what the sequential loop would have picked: the lanes of
// SignedAbsMax disagree only when +amax and -amax both occur, and MinMax's
// result differs from the sequential one only in the sign of a zero; those
// cases rerun the sequential loop. NaN never wins a comparison in either
// form (maxps/minps return the second operand on NaN).
QUANTD_HD void MinMaxSeq(const float* x, int n, float* min_out, float* max_out) {
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

#if QUANTD_GGML_HOST_SSE2
inline void SignedAbsMax(const float* x, int n, float* amax_out, float* max_out) {
  if (n % 4 != 0) return SignedAbsMaxSeq(x, n, amax_out, max_out);
  const __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
  __m128 la = _mm_setzero_ps();
  __m128 lv = _mm_setzero_ps();
  for (int j = 0; j < n; j += 4) {
    const __m128 v = _mm_loadu_ps(x + j);
    const __m128 a = _mm_and_ps(v, abs_mask);
    const __m128 up = _mm_cmplt_ps(la, a);  // la < |v|, false on NaN
    la = _mm_max_ps(a, la);                 // |v| > la ? |v| : la
    lv = _mm_or_ps(_mm_and_ps(up, v), _mm_andnot_ps(up, lv));
  }
  // Horizontal max, then the lanes holding it; ctz of their mask is the
  // first such lane (no data-dependent branch: which lane wins is random).
  __m128 m = _mm_max_ps(la, _mm_shuffle_ps(la, la, _MM_SHUFFLE(2, 3, 0, 1)));
  m = _mm_max_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
  const float amax = _mm_cvtss_f32(m);
  float max = 0.0f;
  if (amax > 0.0f) {
    const int at_max = _mm_movemask_ps(_mm_cmpeq_ps(la, m));
    float lane_v[4];
    _mm_storeu_ps(lane_v, lv);
    max = lane_v[__builtin_ctz(static_cast<unsigned>(at_max))];
    const int same = _mm_movemask_ps(_mm_cmpeq_ps(lv, _mm_set1_ps(max)));
    if ((at_max & ~same) != 0) return SignedAbsMaxSeq(x, n, amax_out, max_out);
  }
  *amax_out = amax;
  *max_out = max;
}

inline void MinMax(const float* x, int n, float* min_out, float* max_out) {
  if (n % 4 != 0) return MinMaxSeq(x, n, min_out, max_out);
  __m128 lo = _mm_set1_ps(3.402823466e+38F);
  __m128 hi = _mm_set1_ps(-3.402823466e+38F);
  for (int j = 0; j < n; j += 4) {
    const __m128 v = _mm_loadu_ps(x + j);
    lo = _mm_min_ps(v, lo);  // v < lo ? v : lo
    hi = _mm_max_ps(v, hi);  // v > hi ? v : hi
  }
  float lane_lo[4], lane_hi[4];
  _mm_storeu_ps(lane_lo, lo);
  _mm_storeu_ps(lane_hi, hi);
  float min = lane_lo[0];
  float max = lane_hi[0];
  for (int l = 1; l < 4; ++l) {
    if (lane_lo[l] < min) min = lane_lo[l];
    if (lane_hi[l] > max) max = lane_hi[l];
  }
  if (min == 0.0f || max == 0.0f) return MinMaxSeq(x, n, min_out, max_out);
  *min_out = min;
  *max_out = max;
}
#else
QUANTD_HD void SignedAbsMax(const float* x, int n, float* amax_out, float* max_out) {
  SignedAbsMaxSeq(x, n, amax_out, max_out);
}
QUANTD_HD void MinMax(const float* x, int n, float* min_out, float* max_out) {
  MinMaxSeq(x, n, min_out, max_out);
}
#endif

QUANTD_HD void QuantizeQ4_0Ref(const float* x, BlockQ4_0* y) {
  constexpr int qk = kQK4_0;
  float amax, max;
  SignedAbsMax(x, qk, &amax, &max);
  const float d = max / -8;
  const float id = d ? 1.0f / d : 0.0f;
  y->d = ToHalf(d);
#if QUANTD_GGML_HOST_SSE2
  const __m128i lo = sse::SymmetricCodes16(x, id, 8.5f, 15);
  const __m128i hi = sse::SymmetricCodes16(x + qk / 2, id, 8.5f, 15);
  // (uint8_t)(xi0 | (xi1 << 4)): the high nibble is xi1's low one.
  const __m128i hi4 = _mm_and_si128(_mm_slli_epi16(hi, 4), _mm_set1_epi8(static_cast<char>(0xF0)));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(y->qs), _mm_or_si128(lo, hi4));
#else
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
#endif
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

// Stores 5-bit codes xi0 (column j) and xi1 (column j + 16) of a Q5_0/Q5_1
// block: low nibbles into qs[j], bit 4 at bits j and j + 16 of qh.
QUANTD_HD void Put5(int j, uint32_t xi0, uint32_t xi1, uint8_t* qs, uint32_t* qh) {
  qs[j] = static_cast<uint8_t>((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
  *qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
  *qh |= ((xi1 & 0x10u) >> 4) << (j + 16);
}

// Packs 32 5-bit codes (uint8 each) of a Q5_0/Q5_1 block.
QUANTD_HD void Pack5(const uint8_t* code_lo, const uint8_t* code_hi, uint8_t* qs, uint8_t* qh_out) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) Put5(j, code_lo[j], code_hi[j], qs, &qh);
  StoreQh(qh, qh_out);
}

QUANTD_HD void QuantizeQ5_0Ref(const float* x, BlockQ5_0* y) {
  constexpr int qk = kQK5_0;
  float amax, max;
  SignedAbsMax(x, qk, &amax, &max);
  const float d = max / -16;
  const float id = d ? 1.0f / d : 0.0f;
  y->d = ToHalf(d);
#if QUANTD_GGML_HOST_SSE2
  const __m128i lo = sse::SymmetricCodes16(x, id, 16.5f, 31);
  const __m128i hi = sse::SymmetricCodes16(x + qk / 2, id, 16.5f, 31);
  const __m128i nib = _mm_set1_epi8(0x0F);
  const __m128i hi4 = _mm_slli_epi16(_mm_and_si128(hi, nib), 4);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(y->qs), _mm_or_si128(_mm_and_si128(lo, nib), hi4));
  StoreQh(sse::Bit4Mask16(lo) | sse::Bit4Mask16(hi) << 16, y->qh);
#else
  // Codes and packing in one loop, as ggml writes it: split into a code
  // loop and Pack5 it ran ~15% slower (the codes went through the stack).
  uint32_t qh = 0;
  for (int j = 0; j < qk / 2; ++j) {
    const float x0 = x[0 + j] * id;
    const float x1 = x[qk / 2 + j] * id;
    // (uint8_t)MIN(31, (int8_t)(...)): the byte of the int result.
    const uint32_t xi0 = static_cast<uint8_t>(MinI(31, TruncToInt8X86(x0 + 16.5f)));
    const uint32_t xi1 = static_cast<uint8_t>(MinI(31, TruncToInt8X86(x1 + 16.5f)));
    Put5(j, xi0, xi1, y->qs, &qh);
  }
  StoreQh(qh, y->qh);
#endif
}

QUANTD_HD void QuantizeQ5_1Ref(const float* x, BlockQ5_1* y) {
  constexpr int qk = kQK5_1;
  float min, max;
  MinMax(x, qk, &min, &max);
  const float d = (max - min) / ((1 << 5) - 1);
  const float id = d ? 1.0f / d : 0.0f;
  y->d = ToHalf(d);
  y->m = ToHalf(min);
  uint32_t qh = 0;  // one loop, as in QuantizeQ5_0Ref
  for (int j = 0; j < qk / 2; ++j) {
    const float x0 = (x[0 + j] - min) * id;
    const float x1 = (x[qk / 2 + j] - min) * id;
    const uint32_t xi0 = static_cast<uint8_t>(TruncToUint8X86(x0 + 0.5f));
    const uint32_t xi1 = static_cast<uint8_t>(TruncToUint8X86(x1 + 0.5f));
    Put5(j, xi0, xi1, y->qs, &qh);
  }
  StoreQh(qh, y->qh);
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
    y->qs[j] = static_cast<uint8_t>(RoundToInt8X86(x[j] * id));
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
  uint8_t lo[16], hi[16];  // uint8 codes: the loop vectorizes
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
  uint8_t lo[16], hi[16];  // uint8 codes: the loop vectorizes
  for (int j = 0; j < 16; ++j) {
    lo[j] = L[j];
    hi[j] = L[j + 16];
  }
  Pack5(lo, hi, y->qs, y->qh);
}

}  // namespace ggml
}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_GGML_QUANTS_LEGACY_IMPL_H_
