// Helpers shared by the kernel benchmarks (rtn, fp8, nvfp4, bnb): wall
// time, the median of repeated runs, and byte equality of two encodings.
// Header-only: every bench/*.cc is its own executable.
#ifndef QUANTD_BENCH_BENCH_UTIL_H_
#define QUANTD_BENCH_BENCH_UTIL_H_

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/formats/format.h"

namespace quantd {
namespace bench {

// Seconds since t0.
inline double Seconds(const std::chrono::steady_clock::time_point& t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The median wall time of `reps` calls of f; NAN as soon as f returns false.
template <class F>
double MedianSeconds(int reps, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!f()) return NAN;
    t.push_back(Seconds(t0));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Whether a and b have the same parts with the same bytes.
inline bool SameBytes(const EncodedWeight& a, const EncodedWeight& b) {
  if (a.parts.size() != b.parts.size()) return false;
  for (size_t i = 0; i < a.parts.size(); ++i) {
    const Tensor& x = a.parts[i].tensor;
    const Tensor& y = b.parts[i].tensor;
    if (x.nbytes() != y.nbytes() || std::memcmp(x.data(), y.data(), x.nbytes()) != 0) return false;
  }
  return true;
}

}  // namespace bench
}  // namespace quantd

#endif  // QUANTD_BENCH_BENCH_UTIL_H_
