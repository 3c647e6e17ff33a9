// ggml's k-quant super-block quantizers (Q2_K .. Q6_K), transcribed from
// ggml/src/ggml-quants.c and split in two phases so that the CUDA kernels
// can run the first in parallel with the very same code:
//
//   <Type>Subblock(x, qw, sigma2, j, s)  the scale (and min) search of
//       sub-block j: fills s->scales[j] (s->mins[j], s->sw[j]) and the
//       sub-block's codes in s->L. Sub-blocks are independent.
//   <Type>Finish(x, qw, s, y)            the rest, in ggml's order: the
//       super-block scales, requantizing with the stored scales, packing.
//
// qw == nullptr selects quantize_row_<type>_ref, what llama-quantize runs
// without an importance matrix (ggml's quantize_<type> calls the _ref
// function whenever quant_weights is null, for every type here); otherwise
// quantize_row_<type>_impl with quant_weights qw (the 256 columns of this
// super-block). x is the super-block's 256 values; sigma2 is
// KSigma2(type, x) for the Impl paths (unused by _ref).
#ifndef QUANTD_CORE_GGUF_GGML_QUANTS_K_IMPL_H_
#define QUANTD_CORE_GGUF_GGML_QUANTS_K_IMPL_H_

#include "core/gguf/ggml_quants_search.h"

namespace quantd {
namespace ggml {

// Per super-block state between the phases (16 sub-blocks for Q2_K, Q3_K,
// Q6_K; 8 for Q4_K, Q5_K). Codes are int8 for the symmetric types (Q3_K,
// Q6_K: make_q3_quants/make_qx_quants) and uint8 for the others.
struct KScratch {
  float scales[16];
  float mins[16];
  float sw[16];
  uint8_t L[kQK_K];

  // The codes as int8 (Q3_K, Q6_K).
  QUANTD_HD int8_t* Ls8() { return reinterpret_cast<int8_t*>(L); }
};

// sigma2 of the importance-matrix paths: Q2_K uses sum(x^2) / 256, Q3_K,
// Q4_K and Q5_K 2 * sum(x^2) / 256 (Q6_K does not use it).
QUANTD_HD float KSigma2(bool q2k, const float* x) {
  const float sumx2 = SumSquares(x, kQK_K);
  return q2k ? sumx2 / kQK_K : 2 * sumx2 / kQK_K;
}

// Packs 2-bit codes as Q2_K/Q3_K qs.
QUANTD_HD void Pack2Bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQK_K; j += 128) {
    for (int l = 0; l < 32; ++l) {
      qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                           (L[j + l + 96] << 6));
    }
  }
}

// ---------------------------------------------------------------- Q2_K
QUANTD_HD void Q2KSubblock(const float* x, const float* qw, float sigma2, int j, KScratch* s) {
  uint8_t Laux[16];
  float weight[16];
  const float* xs = x + 16 * j;
  if (qw == nullptr) {
    for (int l = 0; l < 16; ++l) weight[l] = AbsF(xs[l]);
    s->scales[j] = MakeQkxQuants<false>(16, 3, xs, weight, s->L + 16 * j, &s->mins[j], Laux, -0.5f,
                                        0.1f, 15, true);
    return;
  }
  const float* q = qw + 16 * j;
  for (int l = 0; l < 16; ++l) weight[l] = q[l] * SqrtF(sigma2 + xs[l] * xs[l]);
  float sw = 0;
  for (int l = 0; l < 16; ++l) sw += weight[l];
  s->sw[j] = sw;
  s->scales[j] = MakeQkxQuants<true>(16, 3, xs, weight, s->L + 16 * j, &s->mins[j], Laux, -0.9f,
                                     0.05f, 36, false);
}

QUANTD_HD void Q2KFinish(const float* x, const float* qw, KScratch* s, BlockQ2_K* y) {
  uint8_t* L = s->L;
  if (qw == nullptr) {
    const float q4scale = 15.f;
    float max_scale = 0;
    float max_min = 0;
    for (int j = 0; j < kQK_K / 16; ++j) {
      if (s->scales[j] > max_scale) max_scale = s->scales[j];
      if (s->mins[j] > max_min) max_min = s->mins[j];
    }
    if (max_scale > 0) {
      float iscale = q4scale / max_scale;
      for (int j = 0; j < kQK_K / 16; ++j) {
        y->scales[j] = static_cast<uint8_t>(NearestInt(iscale * s->scales[j]));
      }
      y->d = ToHalf(max_scale / q4scale);
    } else {
      for (int j = 0; j < kQK_K / 16; ++j) y->scales[j] = 0;
      y->d = ToHalf(0.f);
    }
    if (max_min > 0) {
      float iscale = q4scale / max_min;
      for (int j = 0; j < kQK_K / 16; ++j) {
        const int l = NearestInt(iscale * s->mins[j]);
        y->scales[j] = static_cast<uint8_t>(y->scales[j] | (static_cast<uint32_t>(l) << 4));
      }
      y->dmin = ToHalf(max_min / q4scale);
    } else {
      y->dmin = ToHalf(0.f);
    }
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float d = FromHalf(y->d) * static_cast<float>(y->scales[j] & 0xF);
      if (!d) continue;
      const float dm = FromHalf(y->dmin) * static_cast<float>(y->scales[j] >> 4);
      for (int ii = 0; ii < 16; ++ii) {
        int l = NearestInt((x[16 * j + ii] + dm) / d);
        L[16 * j + ii] = static_cast<uint8_t>(MaxI(0, MinI(3, l)));
      }
    }
  } else {
    uint8_t Ls[kQK_K / 16], Lm[kQK_K / 16];
    float dm = MakeQpQuants(kQK_K / 16, 15, s->scales, Ls, s->sw);
    float mm = MakeQpQuants(kQK_K / 16, 15, s->mins, Lm, s->sw);
    y->d = ToHalf(dm);
    y->dmin = ToHalf(mm);
    dm = FromHalf(y->d);
    mm = FromHalf(y->dmin);
    for (int j = 0; j < kQK_K / 16; ++j) y->scales[j] = static_cast<uint8_t>(Ls[j] | (Lm[j] << 4));
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float d = dm * static_cast<float>(y->scales[j] & 0xF);
      if (!d) continue;
      const float m = mm * static_cast<float>(y->scales[j] >> 4);
      for (int ii = 0; ii < 16; ++ii) {
        int l = NearestInt((x[16 * j + ii] + m) / d);
        L[16 * j + ii] = static_cast<uint8_t>(MaxI(0, MinI(3, l)));
      }
    }
  }
  Pack2Bit(L, y->qs);
}

// ---------------------------------------------------------------- Q3_K
QUANTD_HD void Q3KSubblock(const float* x, const float* qw, float sigma2, int j, KScratch* s) {
  const float* xs = x + 16 * j;
  if (qw == nullptr) {
    s->scales[j] = MakeQ3Quants(16, 4, xs, s->Ls8() + 16 * j, true);
    return;
  }
  float weight[16];
  const float* q = qw + 16 * j;
  for (int l = 0; l < 16; ++l) weight[l] = q[l] * SqrtF(sigma2 + xs[l] * xs[l]);
  float sumw = 0;
  for (int l = 0; l < 16; ++l) sumw += weight[l];
  s->sw[j] = sumw;
  s->scales[j] = MakeQxQuants(16, 4, xs, s->Ls8() + 16 * j, 1, weight);
}

// Stores 6-bit code l (0..63) as scale j of a Q3_K block (scales zeroed).
QUANTD_HD void PutScaleQ3K(int j, int l, uint8_t* scales) {
  if (j < 8) {
    scales[j] = static_cast<uint8_t>(l & 0xF);
  } else {
    scales[j - 8] = static_cast<uint8_t>(scales[j - 8] | ((l & 0xF) << 4));
  }
  l >>= 4;
  scales[j % 4 + 8] = static_cast<uint8_t>(scales[j % 4 + 8] | (l << (2 * (j / 4))));
}

QUANTD_HD void Q3KFinish(const float* x, const float* qw, KScratch* s, BlockQ3_K* y) {
  int8_t* L = s->Ls8();
  for (int k = 0; k < 12; ++k) y->scales[k] = 0;
  if (qw == nullptr) {
    float max_scale = 0;
    float amax = 0;
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float scale = AbsF(s->scales[j]);
      if (scale > amax) {
        amax = scale;
        max_scale = s->scales[j];
      }
    }
    if (max_scale) {
      float iscale = -32.f / max_scale;
      for (int j = 0; j < kQK_K / 16; ++j) {
        int8_t l = static_cast<int8_t>(NearestInt(iscale * s->scales[j]));
        l = static_cast<int8_t>(MaxI(-32, MinI(31, l)) + 32);
        PutScaleQ3K(j, l, y->scales);
      }
      y->d = ToHalf(1 / iscale);
    } else {
      y->d = ToHalf(0.f);
    }
  } else {
    int8_t Ls[kQK_K / 16];
    const float d_block = MakeQxQuants(kQK_K / 16, 32, s->scales, Ls, 1, s->sw);
    for (int j = 0; j < kQK_K / 16; ++j) PutScaleQ3K(j, Ls[j], y->scales);
    y->d = ToHalf(d_block);
  }
  for (int j = 0; j < kQK_K / 16; ++j) {
    int sc = j < 8 ? y->scales[j] & 0xF : y->scales[j - 8] >> 4;
    sc = static_cast<int8_t>((sc | (((y->scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
    const float d = FromHalf(y->d) * static_cast<float>(sc);
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii) {
      int l = NearestInt(x[16 * j + ii] / d);
      l = MaxI(-4, MinI(3, l));
      L[16 * j + ii] = static_cast<int8_t>(l + 4);
    }
  }
  // ggml walks j with m = j % 32 and hm = 1 << (j / 32), branching on
  // L[j] > 3; the same bits without the branch (a coin flip per value on
  // the host) and in an order that vectorizes.
  uint8_t hmask[kQK_K / 8] = {};
  for (int b = 0; b < 8; ++b) {
    for (int m = 0; m < kQK_K / 8; ++m) {
      const int j = (kQK_K / 8) * b + m;
      const uint8_t high = L[j] > 3 ? 1 : 0;
      hmask[m] = static_cast<uint8_t>(hmask[m] | (high << b));
      L[j] = static_cast<int8_t>(L[j] - 4 * high);
    }
  }
  for (int k = 0; k < kQK_K / 8; ++k) y->hmask[k] = hmask[k];
  Pack2Bit(s->L, y->qs);
}

// ---------------------------------------------------------- Q4_K, Q5_K
// Sub-block search of 32 values with nmax 15 (Q4_K) or 31 (Q5_K).
QUANTD_HD void Q45KSubblock(int nmax, const float* x, const float* qw, float sigma2, int j,
                            KScratch* s) {
  uint8_t Laux[32];
  float weights[32];
  const float* xs = x + 32 * j;
  if (qw == nullptr) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = SqrtF(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + AbsF(xs[l]);
    if (nmax == 15) {
      s->scales[j] = MakeQkxQuants<false>(32, 15, xs, weights, s->L + 32 * j, &s->mins[j], Laux,
                                          -1.f, 0.1f, 20, false);
    } else {
      s->scales[j] = MakeQkxQuants<false>(32, 31, xs, weights, s->L + 32 * j, &s->mins[j], Laux,
                                          -0.5f, 0.1f, 15, false);
    }
    return;
  }
  const float* q = qw + 32 * j;
  for (int l = 0; l < 32; ++l) weights[l] = q[l] * SqrtF(sigma2 + xs[l] * xs[l]);
  float sumw = 0;
  for (int l = 0; l < 32; ++l) sumw += weights[l];
  s->sw[j] = sumw;
  s->scales[j] = MakeQkxQuants<true>(32, nmax, xs, weights, s->L + 32 * j, &s->mins[j], Laux, -0.9f,
                                     0.05f, 36, false);
}

// Super-block scales of Q4_K/Q5_K and the requantized codes (0..nmax).
QUANTD_HD void Q45KScales(int nmax, const float* x, const float* qw, KScratch* s, Half* d_out,
                          Half* dmin_out, uint8_t* scales) {
  if (qw == nullptr) {
    float max_scale = 0;
    float max_min = 0;
    for (int j = 0; j < kQK_K / 32; ++j) {
      if (s->scales[j] > max_scale) max_scale = s->scales[j];
      if (s->mins[j] > max_min) max_min = s->mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < kQK_K / 32; ++j) {
      uint8_t ls = static_cast<uint8_t>(NearestInt(inv_scale * s->scales[j]));
      uint8_t lm = static_cast<uint8_t>(NearestInt(inv_min * s->mins[j]));
      ls = static_cast<uint8_t>(MinI(63, ls));
      lm = static_cast<uint8_t>(MinI(63, lm));
      PutScaleMinK4(j, ls, lm, scales);
    }
    *d_out = ToHalf(max_scale / 63.f);
    *dmin_out = ToHalf(max_min / 63.f);
  } else {
    uint8_t Ls[kQK_K / 32], Lm[kQK_K / 32];
    const float d_block = MakeQpQuants(kQK_K / 32, 63, s->scales, Ls, s->sw);
    const float m_block = MakeQpQuants(kQK_K / 32, 63, s->mins, Lm, s->sw);
    for (int j = 0; j < kQK_K / 32; ++j) {
      // Q5_K's _impl clamps the codes to 63 here, Q4_K's does not (they
      // differ only for a negative scale, whose codes wrap around).
      uint8_t ls = Ls[j], lm = Lm[j];
      if (nmax == 31) {
        ls = static_cast<uint8_t>(MinI(63, ls));
        lm = static_cast<uint8_t>(MinI(63, lm));
      }
      PutScaleMinK4(j, ls, lm, scales);
    }
    *d_out = ToHalf(d_block);
    *dmin_out = ToHalf(m_block);
  }
  for (int j = 0; j < kQK_K / 32; ++j) {
    uint8_t sc, m;
    GetScaleMinK4(j, scales, &sc, &m);
    const float d = FromHalf(*d_out) * static_cast<float>(sc);
    if (!d) continue;
    const float dm = FromHalf(*dmin_out) * static_cast<float>(m);
    for (int ii = 0; ii < 32; ++ii) {
      int l = NearestInt((x[32 * j + ii] + dm) / d);
      s->L[32 * j + ii] = static_cast<uint8_t>(MaxI(0, MinI(nmax, l)));
    }
  }
}

QUANTD_HD void Q4KFinish(const float* x, const float* qw, KScratch* s, BlockQ4_K* y) {
  Q45KScales(15, x, qw, s, &y->d, &y->dmin, y->scales);
  uint8_t* q = y->qs;
  for (int j = 0; j < kQK_K; j += 64) {
    for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(s->L[j + l] | (s->L[j + l + 32] << 4));
    q += 32;
  }
}

QUANTD_HD void Q5KFinish(const float* x, const float* qw, KScratch* s, BlockQ5_K* y) {
  Q45KScales(31, x, qw, s, &y->d, &y->dmin, y->scales);
  uint8_t* qh = y->qh;
  uint8_t* ql = y->qs;
  for (int k = 0; k < kQK_K / 8; ++k) qh[k] = 0;
  uint8_t m1 = 1, m2 = 2;
  for (int n = 0; n < kQK_K; n += 64) {
    for (int j = 0; j < 32; ++j) {
      int l1 = s->L[n + j];
      if (l1 > 15) {
        l1 -= 16;
        qh[j] = static_cast<uint8_t>(qh[j] | m1);
      }
      int l2 = s->L[n + j + 32];
      if (l2 > 15) {
        l2 -= 16;
        qh[j] = static_cast<uint8_t>(qh[j] | m2);
      }
      ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
    }
    m1 = static_cast<uint8_t>(m1 << 2);
    m2 = static_cast<uint8_t>(m2 << 2);
    ql += 32;
  }
}

// ---------------------------------------------------------------- Q6_K
QUANTD_HD void Q6KSubblock(const float* x, const float* qw, float /*sigma2*/, int ib, KScratch* s) {
  s->scales[ib] =
      MakeQxQuants(16, 32, x + 16 * ib, s->Ls8() + 16 * ib, 1, qw ? qw + 16 * ib : nullptr);
}

QUANTD_HD void Q6KFinish(const float* x, const float* /*qw*/, KScratch* s, BlockQ6_K* y) {
  float max_scale = 0;
  float max_abs_scale = 0;
  for (int ib = 0; ib < kQK_K / 16; ++ib) {
    const float abs_scale = AbsF(s->scales[ib]);
    if (abs_scale > max_abs_scale) {
      max_abs_scale = abs_scale;
      max_scale = s->scales[ib];
    }
  }
  if (max_abs_scale < kGroupMaxEps) {
    uint8_t* bytes = reinterpret_cast<uint8_t*>(y);
    for (size_t k = 0; k < sizeof(BlockQ6_K); ++k) bytes[k] = 0;
    y->d = ToHalf(0.f);
    return;
  }
  float iscale = -128.f / max_scale;
  y->d = ToHalf(1 / iscale);
  for (int ib = 0; ib < kQK_K / 16; ++ib) {
    y->scales[ib] = static_cast<uint8_t>(MinI(127, NearestInt(iscale * s->scales[ib])));
  }
  int8_t* L = s->Ls8();
  for (int j = 0; j < kQK_K / 16; ++j) {
    const float d = FromHalf(y->d) * static_cast<float>(static_cast<int8_t>(y->scales[j]));
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii) {
      int l = NearestInt(x[16 * j + ii] / d);
      l = MaxI(-32, MinI(31, l));
      L[16 * j + ii] = static_cast<int8_t>(l + 32);
    }
  }
  uint8_t* ql = y->ql;
  uint8_t* qh = y->qh;
  const uint8_t* Lu = s->L;
  for (int j = 0; j < kQK_K; j += 128) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t q1 = Lu[j + l + 0] & 0xF;
      const uint8_t q2 = Lu[j + l + 32] & 0xF;
      const uint8_t q3 = Lu[j + l + 64] & 0xF;
      const uint8_t q4 = Lu[j + l + 96] & 0xF;
      ql[l + 0] = static_cast<uint8_t>(q1 | (q3 << 4));
      ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
      qh[l] = static_cast<uint8_t>((Lu[j + l] >> 4) | ((Lu[j + l + 32] >> 4) << 2) |
                                   ((Lu[j + l + 64] >> 4) << 4) | ((Lu[j + l + 96] >> 4) << 6));
    }
    ql += 64;
    qh += 32;
  }
}

}  // namespace ggml
}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_GGML_QUANTS_K_IMPL_H_
