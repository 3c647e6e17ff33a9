// The CUDA encoder: copies a weight to the device in chunks of whole rows,
// runs the format's device kernel (kernels/cuda/registry.h) and copies the
// parts back. Formats without a device kernel, or parameters their kernel
// does not handle, are encoded on the CPU path (MakeCpuEncoder) instead.
//
// Pipeline: two slots, each with a pinned input/output staging buffer,
// device buffers and a stream. While the device encodes chunk i (H2D copy,
// kernel, D2H copy on slot i % 2's stream), the host copies chunk i + 1 into
// the other slot's pinned buffer and unpacks chunk i - 1's parts (both
// host copies spread over up to 8 threads). Buffers grow as needed and are
// kept for later calls.
#ifndef QUANTD_KERNELS_CUDA_CUDA_ENCODER_H_
#define QUANTD_KERNELS_CUDA_CUDA_ENCODER_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/quant/encoder.h"
#include "kernels/cpu/thread_pool.h"

namespace quantd {

// OK for cudaSuccess; RESOURCE_EXHAUSTED for cudaErrorMemoryAllocation (and
// a failed pinned allocation); INTERNAL "<what>: <cudaGetErrorString>"
// otherwise.
absl::Status CudaStatus(cudaError_t e, const char* what);

struct CudaEncoderOptions {
  int device = 0;
  // Input bytes per chunk (rounded to whole rows and to the format's row
  // granularity; at least one granule).
  size_t chunk_bytes = size_t{32} << 20;
  // Threads of the CPU fallback (0 = all).
  int cpu_threads = 0;
};

class CudaEncoder final : public WeightEncoder {
 public:
  // UNAVAILABLE when there is no such device or no usable driver; the
  // errors of CudaStatus when creating streams and events fails.
  static absl::StatusOr<std::unique_ptr<CudaEncoder>> Create(const CudaEncoderOptions& options);
  ~CudaEncoder() override;

  std::string device() const override;

  // See WeightEncoder. Non-finite inputs: INVALID_ARGUMENT "non-finite
  // value at row R, column C" for the first in row-major order, as the
  // reference reports it. Calls are serialised.
  absl::StatusOr<EncodedWeight> Encode(const WeightFormat& f, const FormatParams& p,
                                       const TensorView& w, const CancelToken& cancel) override;

  // On the CPU threads (the weight is in host memory).
  float AbsMax(const TensorView& w) override;
  // H2D, kernel and D2H are device busy times (CUDA events); chunks of
  // one weight overlap, so the stages can add up to more than the wall
  // time.
  EncoderTimings TakeTimings() override;

  // Whether the last Encode ran on the device (false: CPU fallback).
  bool last_ran_on_device() const { return last_on_device_; }

 private:
  struct Slot {
    void* host_in = nullptr;   // pinned
    void* host_out = nullptr;  // pinned
    void* dev_in = nullptr;
    void* dev_out = nullptr;
    unsigned long long* dev_bad = nullptr;
    unsigned long long* host_bad = nullptr;  // pinned
    size_t in_capacity = 0, out_capacity = 0;
    cudaStream_t stream = nullptr;
    cudaEvent_t done = nullptr;
    // Timing events around the input copy, the kernel and the output copy.
    cudaEvent_t t_start = nullptr, t_copied_in = nullptr, t_kernel_done = nullptr,
                t_copied_out = nullptr;
  };

  explicit CudaEncoder(const CudaEncoderOptions& options);
  absl::Status Init();
  absl::Status Reserve(Slot& s, size_t in_bytes, size_t out_bytes);
  void FreeSlot(Slot& s);
  // Waits for both slots' streams (errors ignored: used on error paths).
  void Drain();
  // memcpy spread over copy_pool_ (one thread copies pageable memory at a
  // fraction of what the PCIe link takes).
  void ParallelCopy(void* dst, const void* src, size_t n);

  CudaEncoderOptions options_;
  std::mutex mu_;
  Slot slots_[2];
  std::unique_ptr<WeightEncoder> cpu_;
  std::unique_ptr<ThreadPool> copy_pool_;
  bool last_on_device_ = false;
  EncoderTimings timings_;
};

}  // namespace quantd

#endif  // QUANTD_KERNELS_CUDA_CUDA_ENCODER_H_
