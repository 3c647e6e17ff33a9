#include "kernels/cpu/llama_cpu_ops.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/tensor/float_bits.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define QUANTD_HAVE_AVX2_PATH 1
#define QUANTD_AVX2 __attribute__((target("avx2,fma,f16c")))
#define QUANTD_AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) inline
#endif

namespace quantd {
namespace llama_cpu {
namespace {

// Rows of the weight per task (a task owns these output columns).
constexpr int64_t kPanelRows = 16;
// Activation rows swept per pass over a panel (keeps them in L2).
constexpr int64_t kRowBlock = 64;
// Register tile: weight rows x activation rows.
constexpr int kTileN = 4;
constexpr int kTileT = 3;

// Row r of w as float32, portable.
void ConvertRowsGeneric(const WeightMatrix& w, int64_t r0, int64_t n, float* out) {
  const int64_t count = n * w.cols();
  const int64_t first = r0 * w.cols();
  switch (w.dtype()) {
    case DType::kBF16: {
      const uint16_t* p = w.as<uint16_t>() + first;
      for (int64_t i = 0; i < count; ++i) out[i] = Bf16ToFloat(p[i]);
      break;
    }
    case DType::kF16: {
      const uint16_t* p = w.as<uint16_t>() + first;
      for (int64_t i = 0; i < count; ++i) out[i] = F16ToFloat(p[i]);
      break;
    }
    default:
      std::memcpy(out, w.as<float>() + first, static_cast<size_t>(count) * sizeof(float));
      break;
  }
}

// ---------------------------------------------------------------------------
// Portable path: float panels, eight partial sums per output (the AVX2
// path's lanes) so that the compiler can keep them in vector registers.

template <int NR, int TR>
void MicroGeneric(const float* w, int64_t ldw, const float* x, int64_t ldx, int64_t k_len, float* y,
                  int64_t ldy, const float* bias, bool accumulate) {
  float acc[NR][TR][8] = {};
  int64_t k = 0;
  for (; k + 8 <= k_len; k += 8) {
    for (int i = 0; i < NR; ++i) {
      for (int j = 0; j < TR; ++j) {
        for (int l = 0; l < 8; ++l) acc[i][j][l] += w[i * ldw + k + l] * x[j * ldx + k + l];
      }
    }
  }
  for (int i = 0; i < NR; ++i) {
    for (int j = 0; j < TR; ++j) {
      float s = ((acc[i][j][0] + acc[i][j][4]) + (acc[i][j][2] + acc[i][j][6])) +
                ((acc[i][j][1] + acc[i][j][5]) + (acc[i][j][3] + acc[i][j][7]));
      for (int64_t kk = k; kk < k_len; ++kk) s += w[i * ldw + kk] * x[j * ldx + kk];
      if (bias != nullptr) s += bias[i];
      float& out = y[j * ldy + i];
      out = accumulate ? out + s : s;
    }
  }
}

template <int NR>
void MicroGenericRows(int tr, const float* w, int64_t ldw, const float* x, int64_t ldx,
                      int64_t k_len, float* y, int64_t ldy, const float* bias, bool acc) {
  switch (tr) {
    case 1:
      return MicroGeneric<NR, 1>(w, ldw, x, ldx, k_len, y, ldy, bias, acc);
    case 2:
      return MicroGeneric<NR, 2>(w, ldw, x, ldx, k_len, y, ldy, bias, acc);
    default:
      return MicroGeneric<NR, 3>(w, ldw, x, ldx, k_len, y, ldy, bias, acc);
  }
}

void TileGeneric(const float* w, int64_t nrows, const float* x, int64_t rows, int64_t ldx,
                 int64_t k_len, float* y, int64_t ldy, const float* bias, bool acc) {
  for (int64_t t0 = 0; t0 < rows; t0 += kRowBlock) {
    const int64_t tn = std::min(kRowBlock, rows - t0);
    for (int64_t n = 0; n < nrows; n += kTileN) {
      const int nn = static_cast<int>(std::min<int64_t>(kTileN, nrows - n));
      const float* b = bias != nullptr ? bias + n : nullptr;
      for (int64_t t = t0; t < t0 + tn; t += kTileT) {
        const int tt = static_cast<int>(std::min<int64_t>(kTileT, t0 + tn - t));
        const float* xp = x + t * ldx;
        float* yp = y + t * ldy + n;
        const float* wp = w + n * k_len;
        switch (nn) {
          case 1:
            MicroGenericRows<1>(tt, wp, k_len, xp, ldx, k_len, yp, ldy, b, acc);
            break;
          case 2:
            MicroGenericRows<2>(tt, wp, k_len, xp, ldx, k_len, yp, ldy, b, acc);
            break;
          case 3:
            MicroGenericRows<3>(tt, wp, k_len, xp, ldx, k_len, yp, ldy, b, acc);
            break;
          default:
            MicroGenericRows<4>(tt, wp, k_len, xp, ldx, k_len, yp, ldy, b, acc);
            break;
        }
      }
    }
  }
}

#if defined(QUANTD_HAVE_AVX2_PATH)
// ---------------------------------------------------------------------------
// AVX2 path. Weight element loaders widen 8 elements to float32 in
// registers (exact for every type).

struct F32W {
  using T = float;
  QUANTD_AVX2_INLINE static __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
  QUANTD_AVX2_INLINE static float Load1(const float* p) { return *p; }
};
struct Bf16W {
  using T = uint16_t;
  QUANTD_AVX2_INLINE static __m256 Load8(const uint16_t* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  QUANTD_AVX2_INLINE static float Load1(const uint16_t* p) { return Bf16ToFloat(*p); }
};
struct F16W {
  using T = uint16_t;
  QUANTD_AVX2_INLINE static __m256 Load8(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  QUANTD_AVX2_INLINE static float Load1(const uint16_t* p) { return F16ToFloat(*p); }
};

// Lanes summed as ((0+4)+(2+6)) + ((1+5)+(3+7)), as MicroGeneric.
QUANTD_AVX2_INLINE float HSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

template <class W, int NR, int TR>
QUANTD_AVX2_INLINE void MicroAvx2(const typename W::T* w, int64_t ldw, const float* x, int64_t ldx,
                                  int64_t k_len, float* y, int64_t ldy, const float* bias,
                                  bool accumulate) {
  __m256 acc[NR][TR];
  for (int i = 0; i < NR; ++i) {
    for (int j = 0; j < TR; ++j) acc[i][j] = _mm256_setzero_ps();
  }
  int64_t k = 0;
  for (; k + 8 <= k_len; k += 8) {
    __m256 xv[TR];
    for (int j = 0; j < TR; ++j) xv[j] = _mm256_loadu_ps(x + j * ldx + k);
    for (int i = 0; i < NR; ++i) {
      const __m256 wv = W::Load8(w + i * ldw + k);
      for (int j = 0; j < TR; ++j) acc[i][j] = _mm256_fmadd_ps(wv, xv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < NR; ++i) {
    for (int j = 0; j < TR; ++j) {
      float s = HSum(acc[i][j]);
      for (int64_t kk = k; kk < k_len; ++kk) s += W::Load1(w + i * ldw + kk) * x[j * ldx + kk];
      if (bias != nullptr) s += bias[i];
      float& out = y[j * ldy + i];
      out = accumulate ? out + s : s;
    }
  }
}

template <class W, int NR>
QUANTD_AVX2_INLINE void MicroAvx2Rows(int tr, const typename W::T* w, int64_t ldw, const float* x,
                                      int64_t ldx, int64_t k_len, float* y, int64_t ldy,
                                      const float* bias, bool acc) {
  switch (tr) {
    case 1:
      return MicroAvx2<W, NR, 1>(w, ldw, x, ldx, k_len, y, ldy, bias, acc);
    case 2:
      return MicroAvx2<W, NR, 2>(w, ldw, x, ldx, k_len, y, ldy, bias, acc);
    default:
      return MicroAvx2<W, NR, 3>(w, ldw, x, ldx, k_len, y, ldy, bias, acc);
  }
}

// Rows [0, nrows) of w (row stride k_len) against x rows [0, rows).
template <class W>
QUANTD_AVX2 void TileAvx2(const typename W::T* w, int64_t nrows, const float* x, int64_t rows,
                          int64_t ldx, int64_t k_len, float* y, int64_t ldy, const float* bias,
                          bool acc) {
  for (int64_t t0 = 0; t0 < rows; t0 += kRowBlock) {
    const int64_t tn = std::min(kRowBlock, rows - t0);
    for (int64_t n = 0; n < nrows; n += kTileN) {
      const int nn = static_cast<int>(std::min<int64_t>(kTileN, nrows - n));
      const float* b = bias != nullptr ? bias + n : nullptr;
      const typename W::T* wp = w + n * k_len;
      for (int64_t t = t0; t < t0 + tn; t += kTileT) {
        const int tt = static_cast<int>(std::min<int64_t>(kTileT, t0 + tn - t));
        const float* xp = x + t * ldx;
        float* yp = y + t * ldy + n;
        switch (nn) {
          case 1:
            MicroAvx2Rows<W, 1>(tt, wp, k_len, xp, ldx, k_len, yp, ldy, b, acc);
            break;
          case 2:
            MicroAvx2Rows<W, 2>(tt, wp, k_len, xp, ldx, k_len, yp, ldy, b, acc);
            break;
          case 3:
            MicroAvx2Rows<W, 3>(tt, wp, k_len, xp, ldx, k_len, yp, ldy, b, acc);
            break;
          default:
            MicroAvx2Rows<W, 4>(tt, wp, k_len, xp, ldx, k_len, yp, ldy, b, acc);
            break;
        }
      }
    }
  }
}

QUANTD_AVX2 void ConvertRowsAvx2(const WeightMatrix& w, int64_t r0, int64_t n, float* out) {
  const int64_t count = n * w.cols();
  const uint16_t* p = w.as<uint16_t>() + r0 * w.cols();
  int64_t i = 0;
  if (w.dtype() == DType::kBF16) {
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(out + i, Bf16W::Load8(p + i));
    for (; i < count; ++i) out[i] = Bf16ToFloat(p[i]);
  } else {
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(out + i, F16W::Load8(p + i));
    for (; i < count; ++i) out[i] = F16ToFloat(p[i]);
  }
}

QUANTD_AVX2 float DotAvx2(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  }
  float s = HSum(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

QUANTD_AVX2 void AxpyAvx2(float a, const float* x, float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += a * x[i];
}
#endif  // QUANTD_HAVE_AVX2_PATH

bool DetectAvx2() {
  const char* forced = std::getenv("QUANTD_CPU_GENERIC");
  if (forced != nullptr && forced[0] == '1') return false;
#if defined(QUANTD_HAVE_AVX2_PATH)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

// Per-thread buffer for a converted panel.
float* PanelBuffer(int64_t elements) {
  thread_local std::vector<float> panel;
  if (static_cast<int64_t>(panel.size()) < elements) panel.resize(elements);
  return panel.data();
}

}  // namespace

std::atomic<bool> force_portable{false};

bool UsesAvx2() {
  static const bool avx2 = DetectAvx2();
  return avx2 && !force_portable.load(std::memory_order_relaxed);
}

void ForcePortablePathForTesting(bool portable) { force_portable = portable; }

void LoadRow(const WeightMatrix& w, int64_t r, float* out) { ConvertRowsGeneric(w, r, 1, out); }

void MatMul(ThreadPool& pool, const float* x, int64_t rows, int64_t ldx, const WeightMatrix& w,
            const float* bias, float* y, int64_t ldy, bool accumulate) {
  const int64_t n_total = w.rows(), k_len = w.cols();
  if (rows <= 0 || n_total <= 0) return;
  const int64_t tasks = (n_total + kPanelRows - 1) / kPanelRows;
  const bool avx2 = UsesAvx2();
  const DType dtype = w.dtype();
  // With few activation rows each weight element is used a few times only:
  // widen it in registers rather than through a panel.
  const bool direct = rows < 4;
  pool.ParallelFor(tasks, [&](int64_t task) {
    const int64_t n0 = task * kPanelRows;
    const int64_t nr = std::min(kPanelRows, n_total - n0);
    const float* b = bias != nullptr ? bias + n0 : nullptr;
    float* yp = y + n0;
#if defined(QUANTD_HAVE_AVX2_PATH)
    if (avx2) {
      if (dtype == DType::kF32) {
        TileAvx2<F32W>(w.as<float>() + n0 * k_len, nr, x, rows, ldx, k_len, yp, ldy, b, accumulate);
      } else if (direct && dtype == DType::kBF16) {
        TileAvx2<Bf16W>(w.as<uint16_t>() + n0 * k_len, nr, x, rows, ldx, k_len, yp, ldy, b,
                        accumulate);
      } else if (direct) {
        TileAvx2<F16W>(w.as<uint16_t>() + n0 * k_len, nr, x, rows, ldx, k_len, yp, ldy, b,
                       accumulate);
      } else {
        float* panel = PanelBuffer(nr * k_len);
        ConvertRowsAvx2(w, n0, nr, panel);
        TileAvx2<F32W>(panel, nr, x, rows, ldx, k_len, yp, ldy, b, accumulate);
      }
      return;
    }
#endif
    const float* panel;
    if (dtype == DType::kF32) {
      panel = w.as<float>() + n0 * k_len;
    } else {
      float* buf = PanelBuffer(nr * k_len);
      ConvertRowsGeneric(w, n0, nr, buf);
      panel = buf;
    }
    TileGeneric(panel, nr, x, rows, ldx, k_len, yp, ldy, b, accumulate);
  });
}

float Dot(const float* a, const float* b, int64_t n) {
#if defined(QUANTD_HAVE_AVX2_PATH)
  if (UsesAvx2()) return DotAvx2(a, b, n);
#endif
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += a[i + l] * b[i + l];
  }
  float s = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void Axpy(float a, const float* x, float* y, int64_t n) {
#if defined(QUANTD_HAVE_AVX2_PATH)
  if (UsesAvx2()) return AxpyAvx2(a, x, y, n);
#endif
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* y) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = w[i] * (x[i] * inv);
}

void SwiGlu(float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

}  // namespace llama_cpu
}  // namespace quantd
