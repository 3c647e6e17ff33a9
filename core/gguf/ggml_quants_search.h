// ggml's scale searches (ggml/src/ggml-quants.c: make_qx_quants,
// make_q3_quants, make_qkx2_quants, make_qkx3_quants, make_qp_quants),
// transcribed with the same operations in the same order so that they give
// ggml's bits (the arithmetic rules are in ggml_quants_math.h). Shared by
// the host reference and the CUDA kernels, hence QUANTD_HD; on an SSE2 host
// the candidate loops of make_qx and make_qkx run four candidates at a time
// (ggml_quants_sse.h), with the same bits.
#ifndef QUANTD_CORE_GGUF_GGML_QUANTS_SEARCH_H_
#define QUANTD_CORE_GGUF_GGML_QUANTS_SEARCH_H_

#include <stdint.h>

#include "core/gguf/ggml_quants_math.h"
#include "core/gguf/ggml_quants_sse.h"

namespace quantd {
namespace ggml {

// amax = the largest |x[i]| and max = the x[i] that has it (the first one
// on ties; 0 and 0 when every x[i] is a zero or NaN), as ggml's loops find
// them. Local accumulators: stores through the out pointers, which may
// alias x as far as the compiler knows, would keep the loop from
// vectorizing.
QUANTD_HD void SignedAbsMaxSeq(const float* x, int n, float* amax_out, float* max_out) {
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

// make_qx_quants: symmetric codes L in [0, 2 nmax) of n values with the
// weighted least-squares scale search (rmse_type 1: weights qw, or x^2 when
// qw is null). Returns the scale.
// On the host MakeQxQuants stays a call, as make_qx_quants is in ggml's
// build (gcc clones it per constant argument set instead of inlining):
// inlined into the n = 32 block loops of Q4_0/Q5_0 it ran 20-25% slower.
#if defined(__CUDACC__) || !defined(__GNUC__)
#define QUANTD_GGML_HOST_NOINLINE
#else
#define QUANTD_GGML_HOST_NOINLINE __attribute__((noinline))
#endif
QUANTD_GGML_HOST_NOINLINE QUANTD_HD float MakeQxQuants(int n, int nmax, const float* x, int8_t* L,
                                                       int rmse_type, const float* qw) {
  float amax, max;
  SignedAbsMaxSeq(x, n, &amax, &max);
  if (amax < kGroupMaxEps) {  // all zero
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = static_cast<float>(-nmax) / max;
  if (rmse_type == 0) {
    for (int i = 0; i < n; ++i) {
      int l = NearestInt(iscale * x[i]);
      L[i] = static_cast<int8_t>(nmax + MaxI(-nmax, MinI(nmax - 1, l)));
    }
    return 1 / iscale;
  }
  bool return_early = false;
  if (rmse_type < 0) {
    rmse_type = -rmse_type;
    return_early = true;
  }
  auto weight = [&](int i) -> float {
    return qw != nullptr    ? qw[i]
           : rmse_type == 1 ? x[i] * x[i]
           : rmse_type == 2 ? 1.0f
           : rmse_type == 3 ? AbsF(x[i])
                            : SqrtF(AbsF(x[i]));
  };
  float sumlx = 0;
  float suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = NearestInt(iscale * x[i]);
    l = MaxI(-nmax, MinI(nmax - 1, l));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = weight(i);
    const float fl = static_cast<float>(l);
    sumlx += w * x[i] * fl;
    suml2 += w * fl * fl;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  if (return_early) return suml2 > 0 ? 0.5f * (scale + 1 / iscale) : 1 / iscale;
  float best = scale * sumlx;
#if QUANTD_GGML_HOST_SSE2
  if (n <= 32) {
    float w[32];
    for (int i = 0; i < n; ++i) w[i] = weight(i);
    return sse::QxSearch(n, nmax, x, w, max, best, scale, L);
  }
#endif
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = NearestInt(iscale * x[i]);
      l = MaxI(-nmax, MinI(nmax - 1, l));
      const float w = weight(i);
      const float fl = static_cast<float>(l);
      sumlx += w * x[i] * fl;
      suml2 += w * fl * fl;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        int l = NearestInt(iscale * x[i]);
        L[i] = static_cast<int8_t>(nmax + MaxI(-nmax, MinI(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// make_q3_quants: symmetric codes with an iterative x^2-weighted refinement
// (do_rmse) of single codes.
QUANTD_HD float MakeQ3Quants(int n, int nmax, const float* x, int8_t* L, bool do_rmse) {
  float amax, max;
  SignedAbsMaxSeq(x, n, &amax, &max);
  if (amax < kGroupMaxEps) {  // all zero
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = static_cast<float>(-nmax) / max;
  if (do_rmse) {
    float sumlx = 0;
    float suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = NearestInt(iscale * x[i]);
      l = MaxI(-nmax, MinI(nmax - 1, l));
      L[i] = static_cast<int8_t>(l);
      float w = x[i] * x[i];
      const float fl = static_cast<float>(l);
      sumlx += w * x[i] * fl;
      suml2 += w * fl * fl;
    }
    for (int itry = 0; itry < 5; ++itry) {
      int n_changed = 0;
      for (int i = 0; i < n; ++i) {
        float w = x[i] * x[i];
        const float li = static_cast<float>(L[i]);
        float slx = sumlx - w * x[i] * li;
        if (slx > 0) {
          float sl2 = suml2 - w * li * li;
          int new_l = NearestInt(x[i] * sl2 / slx);
          new_l = MaxI(-nmax, MinI(nmax - 1, new_l));
          if (new_l != L[i]) {
            const float fl = static_cast<float>(new_l);
            slx += w * x[i] * fl;
            sl2 += w * fl * fl;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
              L[i] = static_cast<int8_t>(new_l);
              sumlx = slx;
              suml2 = sl2;
              ++n_changed;
            }
          }
        }
      }
      if (!n_changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
  }
  for (int i = 0; i < n; ++i) {
    int l = NearestInt(iscale * x[i]);
    l = MaxI(-nmax, MinI(nmax - 1, l));
    L[i] = static_cast<int8_t>(l + nmax);
  }
  return 1 / iscale;
}

// make_qkx2_quants (weights required) and make_qkx3_quants (weights may be
// null: x^2), which differ only there and in their degenerate-range tests
// (kx2: max == min, kx3: max <= min). Codes L in [0, nmax] with a min:
// x ~ scale * L - the_min. Laux is scratch of n bytes.
template <bool kX3>
QUANTD_HD float MakeQkxQuants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                              float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                              bool use_mad) {
  auto weight = [&](int i) -> float { return weights ? weights[i] : x[i] * x[i]; };
  float min = x[0];
  float max = x[0];
  float sum_w = weight(0);
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    float w = weight(i);
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (kX3 ? max <= min : max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    int l = NearestInt(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(MaxI(0, MinI(nmax, l)));
    float diff = scale * static_cast<float>(L[i]) + min - x[i];
    diff = use_mad ? AbsF(diff) : diff * diff;
    float w = weight(i);
    best_error += w * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
#if QUANTD_GGML_HOST_SSE2
  if (n <= 32) {
    float w[32];
    for (int i = 0; i < n; ++i) w[i] = weight(i);
    QkxState st{min, scale, best_error};
    sse::QkxSearch(n, nmax, x, w, max, sum_w, sum_x, rmin, rdelta, nstep, use_mad, &st, L);
    *the_min = -st.min;
    return st.scale;
  }
#endif
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = NearestInt(iscale * (x[i] - min));
      l = MaxI(0, MinI(nmax, l));
      Laux[i] = static_cast<uint8_t>(l);
      float w = weight(i);
      const float fl = static_cast<float>(l);
      sum_l += w * fl;
      sum_l2 += w * fl * fl;
      sum_xl += w * fl * x[i];
    }
    float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * static_cast<float>(Laux[i]) + this_min - x[i];
        diff = use_mad ? AbsF(diff) : diff * diff;
        float w = weight(i);
        cur_error += w * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// make_qp_quants: non-negative codes in [0, nmax] of non-negative x (the
// sub-block scales or mins of a super-block) with weights quant_weights.
QUANTD_HD float MakeQpQuants(int n, int nmax, const float* x, uint8_t* L,
                             const float* quant_weights) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];  // MAX(max, x[i])
  if (max < kGroupMaxEps) {                                   // all zero
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = static_cast<float>(nmax) / max;
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(NearestInt(iscale * x[i]));
  float scale = 1 / iscale;
  float best_mse = 0;
  for (int i = 0; i < n; ++i) {
    float diff = x[i] - scale * static_cast<float>(L[i]);
    float w = quant_weights[i];
    best_mse += w * diff * diff;
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    float iscale_is = (0.1f * static_cast<float>(is) + static_cast<float>(nmax)) / max;
    float scale_is = 1 / iscale_is;
    float mse = 0;
    for (int i = 0; i < n; ++i) {
      int l = NearestInt(iscale_is * x[i]);
      l = MinI(nmax, l);
      float diff = x[i] - scale_is * static_cast<float>(l);
      float w = quant_weights[i];
      mse += w * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_is;
    }
  }
  float sumlx = 0;
  float suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = NearestInt(iscale * x[i]);
    l = MinI(nmax, l);
    L[i] = static_cast<uint8_t>(l);
    float w = quant_weights[i];
    const float fl = static_cast<float>(l);
    sumlx += w * x[i] * fl;
    suml2 += w * fl * fl;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      float w = quant_weights[i];
      const float li = static_cast<float>(L[i]);
      float slx = sumlx - w * x[i] * li;
      float sl2 = suml2 - w * li * li;
      if (slx > 0 && sl2 > 0) {
        int new_l = NearestInt(x[i] * sl2 / slx);
        new_l = MinI(nmax, new_l);
        if (new_l != L[i]) {
          const float fl = static_cast<float>(new_l);
          slx += w * x[i] * fl;
          sl2 += w * fl * fl;
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<uint8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

}  // namespace ggml
}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_GGML_QUANTS_SEARCH_H_
