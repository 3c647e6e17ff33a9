// The helper arithmetic of ggml's quantizers (ggml/src/ggml-quants.c:
// nearest_int, make_qx_quants, make_q3_quants, make_qkx2_quants,
// make_qkx3_quants, make_qp_quants, get_scale_min_k4), transcribed with the
// same operations in the same order, all in float32, so that they give
// ggml's bits. Shared by the host reference (ggml_quants_*.cc) and the CUDA
// kernels (kernels/cuda/ggml_*.cu), hence QUANTD_HD.
//
// Bit-exactness rests on IEEE float32 arithmetic without contraction into
// FMA: the host sources say so with a pragma (kQuantdNoContract below),
// nvcc builds with --fmad=false --prec-div=true --prec-sqrt=true. ggml's
// reference is ggml-base compiled by gcc for x86-64 (no FMA in the baseline
// ISA); where C leaves conversions undefined (a float out of int range),
// the functions here reproduce what x86-64 does, documented per function.
#ifndef QUANTD_CORE_GGUF_GGML_QUANTS_MATH_H_
#define QUANTD_CORE_GGUF_GGML_QUANTS_MATH_H_

#include <stdint.h>
#include <string.h>

#include "core/gguf/ggml_blocks.h"
#include "core/gguf/ggml_quants_sse.h"
#include "core/tensor/float_bits.h"
#include "core/util/hostdevice.h"

#if !defined(__CUDA_ARCH__)
#include <math.h>
#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif
#endif

namespace quantd {
namespace ggml {

// ggml's GROUP_MAX_EPS: groups whose largest magnitude is below it are zero.
constexpr float kGroupMaxEps = 1e-15f;

QUANTD_HD int MaxI(int a, int b) { return a > b ? a : b; }
QUANTD_HD int MinI(int a, int b) { return a < b ? a : b; }

// GGML_FP32_TO_FP16 (IEEE round to nearest even; ggml's and ours agree on
// every float32, tests/core/ggml_quants_test.cc checks all of them when
// ggml is at hand) and GGML_FP16_TO_FP32 (exact).
// A NaN scale (a sum of squares that overflowed, as an all +-3e38 row
// with an importance matrix gives) is x86-64's default NaN 0xffc00000 on
// the host, whose sign the half keeps (0xfe00); CUDA's NaN results are
// positive, so the device writes the host's bits.
QUANTD_HD Half ToHalf(float f) {
#if defined(__CUDA_ARCH__)
  if (f != f) return 0xfe00u;
#endif
  return FloatToF16(f);
}
QUANTD_HD float FromHalf(Half h) { return F16ToFloat(h); }

QUANTD_HD float AbsF(float v) { return fabsf(v); }
QUANTD_HD float SqrtF(float v) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(v);
#else
  return sqrtf(v);
#endif
}
QUANTD_HD float RoundF(float v) { return roundf(v); }  // half away from zero, exact

// nearest_int: adds 1.5 * 2^23 and reads the low mantissa bits, which is
// round-half-even for |v| <= 2^22 and a fixed bit pattern beyond. A NaN
// argument gives 0: on x86-64 a NaN made by arithmetic is the default NaN
// 0xffc00000 whose low 23 bits are 0x400000 (the inputs are never NaN), so
// the host needs no test (and one in these hot loops costs time); the device
// makes 0x7fffffff instead, so NaN is tested there explicitly.
QUANTD_HD int NearestInt(float fval) {
#if defined(__CUDA_ARCH__)
  if (fval != fval) return 0;
#endif
  const float val = fval + 12582912.f;
  const int32_t i = static_cast<int32_t>(FloatToBits(val));
  return (i & 0x007fffff) - 0x00400000;
}

// (int32_t)v as x86-64's cvttss2si computes it: truncation toward zero, and
// 0x80000000 for NaN or a value outside the int32 range (C leaves that
// undefined; gcc emits cvttss2si for conversions to int, int8_t and
// uint8_t, keeping the low byte for the narrow ones).
QUANTD_HD int32_t TruncToInt32X86(float v) {
#if !defined(__CUDA_ARCH__) && (defined(__x86_64__) || defined(_M_X64))
  return _mm_cvtt_ss2si(_mm_set_ss(v));  // the instruction itself, no branch
#else
  if (!(v > -2147483904.0f && v < 2147483648.0f)) return INT32_MIN;  // also NaN
#if defined(__CUDA_ARCH__)
  return __float2int_rz(v);
#else
  return static_cast<int32_t>(v);
#endif
#endif
}
// (int8_t)v and (uint8_t)v of a float on x86-64. On an x86-64 host the
// conversion is written as ggml writes it (the out-of-range case is what
// cvttss2si and its vector form cvttps2dq both give, 0x80000000), so that
// the compiler vectorizes the loops as it does ggml's.
#if !defined(__CUDA_ARCH__) && (defined(__x86_64__) || defined(_M_X64))
QUANTD_HD int32_t TruncToInt32X86Raw(float v) { return static_cast<int32_t>(v); }
#else
QUANTD_HD int32_t TruncToInt32X86Raw(float v) { return TruncToInt32X86(v); }
#endif
QUANTD_HD int TruncToInt8X86(float v) { return static_cast<int8_t>(TruncToInt32X86Raw(v)); }
QUANTD_HD int TruncToUint8X86(float v) { return static_cast<uint8_t>(TruncToInt32X86Raw(v)); }

// (int8_t)roundf(v) on x86-64 (round half away from zero, then cvttss2si's
// low byte), without the libm call: i = trunc(v) and the remainder v - i,
// which is exact for every float (|v| >= 2^23 is already an integer, and
// below that i and v share the float grid), decides the step away from
// zero. Where cvttss2si gives 0x80000000 (NaN, |v| >= 2^31) roundf's
// result converts to the same value, so no step is taken. Branch-free so
// the block loop vectorizes (Q8_0 spent a third of its time in roundf).
QUANTD_HD int RoundToInt8X86(float v) {
#if defined(__CUDA_ARCH__)
  return TruncToInt8X86(roundf(v));
#else
  const int32_t i = TruncToInt32X86Raw(v);
  const float r = v - static_cast<float>(i);
  const uint32_t step = static_cast<uint32_t>((r >= 0.5f) - (r <= -0.5f));
  const uint32_t u = static_cast<uint32_t>(i) + (i == INT32_MIN ? 0u : step);
  return static_cast<int8_t>(static_cast<uint8_t>(u));
#endif
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
  float max = 0;
  float amax = 0;
  for (int i = 0; i < n; ++i) {
    float ax = AbsF(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
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
  if (n <= 32) {  // the 18 candidates four at a time (ggml_quants_sse.h)
    float w[32];
    for (int i = 0; i < n; ++i) w[i] = weight(i);
    float cand[20], lx[20], l2[20];
    int count = 0;
    for (int is = -9; is <= 9; ++is) {
      if (is != 0)
        cand[count++] = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    }
    cand[18] = cand[19] = cand[17];
    for (int c = 0; c < 20; c += 4) sse::QxSums4(n, nmax, x, w, cand + c, lx + c, l2 + c);
    int winner = -1;
    for (int c = 0; c < 18; ++c) {
      if (l2[c] > 0 && lx[c] * lx[c] > best * l2[c]) {
        winner = c;
        scale = lx[c] / l2[c];
        best = scale * lx[c];
      }
    }
    if (winner >= 0) {
      for (int i = 0; i < n; ++i) {
        int l = NearestInt(cand[winner] * x[i]);
        L[i] = static_cast<int8_t>(nmax + MaxI(-nmax, MinI(nmax - 1, l)));
      }
    }
    return scale;
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
  float max = 0;
  float amax = 0;
  for (int i = 0; i < n; ++i) {
    float ax = AbsF(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
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
    // Candidates four at a time (ggml_quants_sse.h). A winner whose min
    // differs from the current one changes the later candidates' scales and
    // codes (ggml carries min forward), so the group's remaining lanes are
    // dropped and the search resumes after the winner.
    float w[32];
    for (int i = 0; i < n; ++i) w[i] = weight(i);
    float win_iscale = 0.0f;
    float win_min = 0.0f;
    bool won = false;
    int is = 0;
    while (is <= nstep) {
      const int count = MinI(4, nstep + 1 - is);
      float cand[4], s_l[4], s_l2[4], s_xl[4], D[4], sc[4], mn[4], err[4];
      for (int c = 0; c < 4; ++c) {
        const float step = static_cast<float>(is + MinI(c, count - 1));
        cand[c] = (rmin + rdelta * step + static_cast<float>(nmax)) / (max - min);
      }
      sse::QkxSums4(n, nmax, x, w, min, cand, s_l, s_l2, s_xl);
      for (int c = 0; c < 4; ++c) {
        D[c] = sum_w * s_l2[c] - s_l[c] * s_l[c];
        sc[c] = 0.0f;
        mn[c] = 0.0f;
        if (D[c] > 0) {
          sc[c] = (sum_w * s_xl[c] - sum_x * s_l[c]) / D[c];
          mn[c] = (s_l2[c] * sum_x - s_l[c] * s_xl[c]) / D[c];
          if (mn[c] > 0) {
            mn[c] = 0;
            sc[c] = s_xl[c] / s_l2[c];
          }
        }
      }
      sse::QkxErrors4(n, nmax, x, w, min, cand, sc, mn, use_mad, err);
      int used = count;
      for (int c = 0; c < count; ++c) {
        if (D[c] > 0 && err[c] < best_error) {
          won = true;
          win_iscale = cand[c];
          win_min = min;
          best_error = err[c];
          scale = sc[c];
          const bool moved = FloatToBits(mn[c]) != FloatToBits(min);
          min = mn[c];
          if (moved) {
            used = c + 1;
            break;
          }
        }
      }
      is += used;
    }
    if (won) {
      for (int i = 0; i < n; ++i) {
        const int l = NearestInt(win_iscale * (x[i] - win_min));
        L[i] = static_cast<uint8_t>(MaxI(0, MinI(nmax, l)));
      }
    }
    *the_min = -min;
    return scale;
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

// get_scale_min_k4: 6-bit scale and min j (0..7) of a Q4_K/Q5_K block.
QUANTD_HD void GetScaleMinK4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

// The inverse: stores 6-bit ls and lm as scale/min j of `scales` (which
// must be zero before j = 0..7 are stored in order, as ggml does).
QUANTD_HD void PutScaleMinK4(int j, uint8_t ls, uint8_t lm, uint8_t* scales) {
  if (j < 4) {
    scales[j] = ls;
    scales[j + 4] = lm;
  } else {
    scales[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
    scales[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
    scales[j - 0] |= static_cast<uint8_t>((lm >> 4) << 6);
  }
}

// sum of x[i]^2, i < n, in order (ggml's sum_x2 / sumx2 loops).
QUANTD_HD float SumSquares(const float* x, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}

}  // namespace ggml
}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_GGML_QUANTS_MATH_H_
