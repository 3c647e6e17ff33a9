// Helpers shared by the loaders of core/runtime/model_loader.cc (folders)
// and gguf_loader.cc (GGUF files).
#ifndef QUANTD_CORE_RUNTIME_LOAD_UTIL_H_
#define QUANTD_CORE_RUNTIME_LOAD_UTIL_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/runtime/llama_weights.h"
#include "core/runtime/model_loader.h"

namespace quantd {

// Calls fn(i) for i in [0, n) on up to `threads` threads (0 = hardware
// concurrency), the calling one included. Stops claiming new indices after
// the first error or once `cancel` is set; returns the error of the lowest
// failing index, or CANCELLED.
absl::Status ParallelForStatus(int64_t n, int threads, const CancelToken* cancel,
                               const std::function<absl::Status(int64_t)>& fn);

// A matrix holding `values` (rows * cols float32) as `want` says: kF32,
// kBF16 (rounded), or kAuto (BF16 when every value is exactly a BF16).
WeightMatrix StoreDequantized(const std::vector<float>& values, int64_t rows, int64_t cols,
                              DequantDType want);

// Bytes per element the resident estimate assumes for dequantized matrices.
inline int64_t DequantElementBytes(DequantDType d) { return d == DequantDType::kBF16 ? 2 : 4; }

// Threads a loader uses for `options.threads`.
int LoaderThreads(const LoadOptions& options);

}  // namespace quantd

#endif  // QUANTD_CORE_RUNTIME_LOAD_UTIL_H_
