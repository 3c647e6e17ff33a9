// The numerical building blocks of the CPU Llama runtime
// (kernels/cpu/llama_cpu.h). Float32 activations, float32 accumulation;
// weights read in their stored dtype (F32, F16 or BF16, widened to float32
// in registers or in a small per-thread panel). x86-64 CPUs with AVX2, FMA
// and F16C take a vectorised path chosen at run time; others a portable one.
//
// Every output element is computed by the same sequence of operations
// whatever the shape of the call (how many rows, where the row falls in a
// tile), so results of a row do not depend on the other rows of a batch.
#ifndef QUANTD_KERNELS_CPU_LLAMA_CPU_OPS_H_
#define QUANTD_KERNELS_CPU_LLAMA_CPU_OPS_H_

#include <cstdint>

#include "core/runtime/llama_weights.h"
#include "kernels/cpu/thread_pool.h"

namespace quantd {
namespace llama_cpu {

// True when the AVX2/FMA/F16C path runs (decided once per process; the
// environment variable QUANTD_CPU_GENERIC=1 forces the portable path).
bool UsesAvx2();
// Tests: forces the portable path (true) or restores detection (false).
void ForcePortablePathForTesting(bool portable);

// For t < rows, n < w.rows(): y[t * ldy + n] = sum_k x[t * ldx + k] * w[n, k]
// (+ bias[n] when bias is non-null), or += that when `accumulate`.
// k runs over w.cols(). Parallel over blocks of w's rows on `pool`.
void MatMul(ThreadPool& pool, const float* x, int64_t rows, int64_t ldx, const WeightMatrix& w,
            const float* bias, float* y, int64_t ldy, bool accumulate);

// Row `r` of `w` as float32 into out[0, w.cols()).
void LoadRow(const WeightMatrix& w, int64_t r, float* out);

// sum a[i] * b[i], i < n.
float Dot(const float* a, const float* b, int64_t n);
// y[i] += a * x[i], i < n.
void Axpy(float a, const float* x, float* y, int64_t n);

// y = x / sqrt(mean(x^2) + eps) * w, n elements (y may alias x).
void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* y);

// g[i] = silu(g[i]) * u[i] = g / (1 + exp(-g)) * u, i < n.
void SwiGlu(float* g, const float* u, int64_t n);

}  // namespace llama_cpu
}  // namespace quantd

#endif  // QUANTD_KERNELS_CPU_LLAMA_CPU_OPS_H_
