// SSE2 forms of the candidate loops of ggml's scale searches, host only.
//
// make_qx_quants and make_qkx{2,3}_quants try a row of candidate scales one
// after another; each candidate is a chain of dependent float adds over the
// n values (32 of them), so the scalar loop waits on add latency. Four
// candidates run here at once, one per SSE lane, each lane doing exactly
// the scalar operations in the scalar order (mulps/addps/divps round like
// mulss/addss/divss), so every lane's sums carry the scalar loop's bits;
// the callers then compare the candidates in ggml's order. The files that
// include this build without FMA contraction (see ggml_quants_math.h).
#ifndef QUANTD_CORE_GGUF_GGML_QUANTS_SSE_H_
#define QUANTD_CORE_GGUF_GGML_QUANTS_SSE_H_

#if !defined(__CUDA_ARCH__) && defined(__SSE2__)
#define QUANTD_GGML_HOST_SSE2 1
#include <emmintrin.h>
#else
#define QUANTD_GGML_HOST_SSE2 0
#endif

#if QUANTD_GGML_HOST_SSE2
#include "core/gguf/ggml_quants_math.h"

namespace quantd {
namespace ggml {

// The state make_qkx{2,3}_quants carries from candidate to candidate.
struct QkxState {
  float min;
  float scale;
  float best_error;
};

namespace sse {

// nearest_int of each lane (see NearestInt in ggml_quants_math.h).
inline __m128i NearestInt4(__m128 v) {
  const __m128 shifted = _mm_add_ps(v, _mm_set1_ps(12582912.f));
  const __m128i bits = _mm_castps_si128(shifted);
  return _mm_sub_epi32(_mm_and_si128(bits, _mm_set1_epi32(0x007fffff)), _mm_set1_epi32(0x00400000));
}

// MaxI(lo, MinI(hi, l)) per lane (SSE2 has no pminsd).
inline __m128i Clamp4(__m128i l, __m128i lo, __m128i hi) {
  const __m128i above = _mm_cmpgt_epi32(l, hi);
  l = _mm_or_si128(_mm_and_si128(above, hi), _mm_andnot_si128(above, l));
  const __m128i below = _mm_cmpgt_epi32(lo, l);
  return _mm_or_si128(_mm_and_si128(below, lo), _mm_andnot_si128(below, l));
}

// make_qx_quants' candidate sums for the four scales iscale[0..3]:
//   l = clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1)
//   sumlx += w[i] * x[i] * l;  suml2 += w[i] * l * l   (i = 0..n-1)
inline void QxSums4(int n, int nmax, const float* x, const float* w, const float* iscale,
                    float* sumlx, float* suml2) {
  const __m128 is = _mm_loadu_ps(iscale);
  const __m128i lo = _mm_set1_epi32(-nmax);
  const __m128i hi = _mm_set1_epi32(nmax - 1);
  __m128 lx = _mm_setzero_ps();
  __m128 l2 = _mm_setzero_ps();
  for (int i = 0; i < n; ++i) {
    const __m128 xi = _mm_set1_ps(x[i]);
    const __m128 wi = _mm_set1_ps(w[i]);
    const __m128 fl = _mm_cvtepi32_ps(Clamp4(NearestInt4(_mm_mul_ps(is, xi)), lo, hi));
    lx = _mm_add_ps(lx, _mm_mul_ps(_mm_mul_ps(wi, xi), fl));
    l2 = _mm_add_ps(l2, _mm_mul_ps(_mm_mul_ps(wi, fl), fl));
  }
  _mm_storeu_ps(sumlx, lx);
  _mm_storeu_ps(suml2, l2);
}

// make_qkx{2,3}_quants' candidate sums for the four scales iscale[0..3]:
//   l = clamp(nearest_int(iscale * (x[i] - min)), 0, nmax)
//   sum_l += w l;  sum_l2 += w l l;  sum_xl += w l x[i]
// codes[i] keeps the four l of x[i] (as floats) for QkxErrors4.
inline void QkxSums4(int n, int nmax, const float* x, const float* w, float min,
                     const float* iscale, float* sum_l, float* sum_l2, float* sum_xl,
                     __m128* codes) {
  const __m128 is = _mm_loadu_ps(iscale);
  const __m128i lo = _mm_setzero_si128();
  const __m128i hi = _mm_set1_epi32(nmax);
  __m128 s_l = _mm_setzero_ps();
  __m128 s_l2 = _mm_setzero_ps();
  __m128 s_xl = _mm_setzero_ps();
  for (int i = 0; i < n; ++i) {
    const __m128 xi = _mm_set1_ps(x[i]);
    const __m128 xm = _mm_set1_ps(x[i] - min);
    const __m128 wi = _mm_set1_ps(w[i]);
    const __m128 fl = _mm_cvtepi32_ps(Clamp4(NearestInt4(_mm_mul_ps(is, xm)), lo, hi));
    codes[i] = fl;
    const __m128 wl = _mm_mul_ps(wi, fl);
    s_l = _mm_add_ps(s_l, wl);
    s_l2 = _mm_add_ps(s_l2, _mm_mul_ps(wl, fl));
    s_xl = _mm_add_ps(s_xl, _mm_mul_ps(wl, xi));
  }
  _mm_storeu_ps(sum_l, s_l);
  _mm_storeu_ps(sum_l2, s_l2);
  _mm_storeu_ps(sum_xl, s_xl);
}

// make_qkx{2,3}_quants' error of each candidate, with the codes QkxSums4
// kept:
//   diff = scale * l + min' - x[i];  error += w[i] * (mad ? |diff| : diff^2)
inline void QkxErrors4(int n, const float* x, const float* w, const __m128* codes,
                       const float* scale, const float* new_min, bool use_mad, float* error) {
  const __m128 sc = _mm_loadu_ps(scale);
  const __m128 mn = _mm_loadu_ps(new_min);
  const __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
  __m128 err = _mm_setzero_ps();
  for (int i = 0; i < n; ++i) {
    const __m128 xi = _mm_set1_ps(x[i]);
    __m128 diff = _mm_sub_ps(_mm_add_ps(_mm_mul_ps(sc, codes[i]), mn), xi);
    diff = use_mad ? _mm_and_ps(diff, abs_mask) : _mm_mul_ps(diff, diff);
    err = _mm_add_ps(err, _mm_mul_ps(_mm_set1_ps(w[i]), diff));
  }
  _mm_storeu_ps(error, err);
}

// make_qx_quants from its candidate loop on: the 18 scales
// -(nmax + 0.1 is) / max, is = -9..9 without 0, four at a time, compared in
// ggml's order against `best`; L (codes + nmax) is rewritten for the last
// winner. w[i] is the weight of x[i]. Returns the scale (`scale` if no
// candidate wins).
inline float QxSearch(int n, int nmax, const float* x, const float* w, float max, float best,
                      float scale, int8_t* L) {
  float cand[20], lx[20], l2[20];
  int count = 0;
  for (int is = -9; is <= 9; ++is) {
    if (is != 0) cand[count++] = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
  }
  cand[18] = cand[19] = cand[17];
  for (int c = 0; c < 20; c += 4) QxSums4(n, nmax, x, w, cand + c, lx + c, l2 + c);
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
      const int l = NearestInt(cand[winner] * x[i]);
      L[i] = static_cast<int8_t>(nmax + MaxI(-nmax, MinI(nmax - 1, l)));
    }
  }
  return scale;
}

// make_qkx{2,3}_quants' candidate loop (is = 0..nstep), four at a time. A
// winner whose min differs from the current one changes the later
// candidates' scales and codes (ggml carries min forward), so the group's
// remaining lanes are dropped and the search resumes after the winner.
// *st holds min, scale and best error before and after; L is rewritten for
// the last winner.
inline void QkxSearch(int n, int nmax, const float* x, const float* w, float max, float sum_w,
                      float sum_x, float rmin, float rdelta, int nstep, bool use_mad, QkxState* st,
                      uint8_t* L) {
  float win_iscale = 0.0f;
  float win_min = 0.0f;
  bool won = false;
  int is = 0;
  while (is <= nstep) {
    const int count = MinI(4, nstep + 1 - is);
    float cand[4], s_l[4], s_l2[4], s_xl[4], D[4], sc[4], mn[4], err[4];
    __m128 codes[32];
    for (int c = 0; c < 4; ++c) {
      const float step = static_cast<float>(is + MinI(c, count - 1));
      cand[c] = (rmin + rdelta * step + static_cast<float>(nmax)) / (max - st->min);
    }
    QkxSums4(n, nmax, x, w, st->min, cand, s_l, s_l2, s_xl, codes);
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
    QkxErrors4(n, x, w, codes, sc, mn, use_mad, err);
    int used = count;
    for (int c = 0; c < count; ++c) {
      if (D[c] > 0 && err[c] < st->best_error) {
        won = true;
        win_iscale = cand[c];
        win_min = st->min;
        st->best_error = err[c];
        st->scale = sc[c];
        const bool moved = FloatToBits(mn[c]) != FloatToBits(st->min);
        st->min = mn[c];
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
}

// The 16 codes (uint8_t)MinI(cap, (int8_t)(int32_t)(x[k] * id + offset)),
// k = 0..15, of the Q4_0/Q5_0 reference (cvttps2dq converts as cvttss2si;
// the shifts keep the low byte, sign-extended, as the int8_t cast does).
inline __m128i SymmetricCodes16(const float* x, float id, float offset, int cap) {
  const __m128 vid = _mm_set1_ps(id);
  const __m128 voff = _mm_set1_ps(offset);
  const __m128i vcap = _mm_set1_epi32(cap);
  const __m128i byte = _mm_set1_epi32(0xff);
  __m128i c[4];
  for (int k = 0; k < 4; ++k) {
    const __m128 v = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(x + 4 * k), vid), voff);
    __m128i t = _mm_srai_epi32(_mm_slli_epi32(_mm_cvttps_epi32(v), 24), 24);
    const __m128i above = _mm_cmpgt_epi32(t, vcap);
    t = _mm_or_si128(_mm_and_si128(above, vcap), _mm_andnot_si128(above, t));
    c[k] = _mm_and_si128(t, byte);  // 0..255: the packs below do not saturate
  }
  return _mm_packus_epi16(_mm_packs_epi32(c[0], c[1]), _mm_packs_epi32(c[2], c[3]));
}

// Bit 4 of each of the 16 bytes, byte k at bit k.
inline uint32_t Bit4Mask16(__m128i codes) {
  return static_cast<uint32_t>(_mm_movemask_epi8(_mm_slli_epi16(codes, 3)));
}

}  // namespace sse
}  // namespace ggml
}  // namespace quantd
#endif  // QUANTD_GGML_HOST_SSE2

#endif  // QUANTD_CORE_GGUF_GGML_QUANTS_SSE_H_
