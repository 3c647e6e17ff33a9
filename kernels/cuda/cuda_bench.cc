#include "kernels/cuda/cuda_bench.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "kernels/cuda/cuda_encoder.h"
#include "kernels/cuda/registry.h"

namespace quantd {
namespace {

#define RETURN_IF_CUDA_ERROR(expr, what) RETURN_IF_ERROR(CudaStatus((expr), (what)))

// Device buffers and events freed on scope exit.
struct DeviceScratch {
  std::vector<void*> buffers;
  cudaEvent_t start = nullptr, stop = nullptr;
  ~DeviceScratch() {
    for (void* b : buffers) cudaFree(b);
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
  }
  absl::Status Alloc(void** p, size_t bytes) {
    RETURN_IF_CUDA_ERROR(cudaMalloc(p, std::max<size_t>(bytes, 1)), "cudaMalloc");
    buffers.push_back(*p);
    return absl::OkStatus();
  }
  absl::Status Events() {
    RETURN_IF_CUDA_ERROR(cudaEventCreate(&start), "cudaEventCreate");
    RETURN_IF_CUDA_ERROR(cudaEventCreate(&stop), "cudaEventCreate");
    return absl::OkStatus();
  }
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

absl::StatusOr<double> MeasureCopyBandwidth(int device, size_t bytes, int iters) {
  RETURN_IF_CUDA_ERROR(cudaSetDevice(device), "cudaSetDevice");
  DeviceScratch s;
  void *a = nullptr, *b = nullptr;
  RETURN_IF_ERROR(s.Alloc(&a, bytes));
  RETURN_IF_ERROR(s.Alloc(&b, bytes));
  RETURN_IF_ERROR(s.Events());
  RETURN_IF_CUDA_ERROR(cudaMemset(a, 1, bytes), "cudaMemset");
  std::vector<double> ms;
  for (int i = -1; i < iters; ++i) {
    RETURN_IF_CUDA_ERROR(cudaEventRecord(s.start), "cudaEventRecord");
    RETURN_IF_CUDA_ERROR(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy");
    RETURN_IF_CUDA_ERROR(cudaEventRecord(s.stop), "cudaEventRecord");
    RETURN_IF_CUDA_ERROR(cudaEventSynchronize(s.stop), "cudaEventSynchronize");
    float t = 0;
    RETURN_IF_CUDA_ERROR(cudaEventElapsedTime(&t, s.start, s.stop), "cudaEventElapsedTime");
    if (i >= 0) ms.push_back(t);
  }
  const double m = Median(ms);
  return m > 0 ? 2.0 * static_cast<double>(bytes) / (m * 1e-3) / 1e9 : 0.0;
}

absl::StatusOr<KernelTiming> MeasureKernel(int device, const WeightFormat& f, const FormatParams& p,
                                           const TensorView& w, int warmup, int iters) {
  if (w.shape.size() != 2) return absl::InvalidArgumentError("weight must be 2-D");
  const int64_t rows = w.shape[0], cols = w.shape[1];
  RETURN_IF_ERROR(f.Check(p, rows, cols));
  const DeviceKernel* kernel = FindDeviceKernel(f.name());
  if (kernel == nullptr || !kernel->Supports(p, cols, w.dtype)) {
    return absl::UnimplementedError(absl::StrCat("no device kernel for ", std::string(f.name())));
  }
  EncodedWeight shapes = f.Allocate(p, rows, cols, w.dtype);
  const std::vector<DevicePartPlan> plan = kernel->Plan(p, shapes);
  RETURN_IF_CUDA_ERROR(cudaSetDevice(device), "cudaSetDevice");
  DeviceScratch s;
  RETURN_IF_ERROR(s.Events());
  KernelTiming timing;
  timing.input_bytes = w.nbytes;
  void* input = nullptr;
  RETURN_IF_ERROR(s.Alloc(&input, w.nbytes));
  RETURN_IF_CUDA_ERROR(cudaMemcpy(input, w.data, w.nbytes, cudaMemcpyHostToDevice), "cudaMemcpy");
  unsigned long long* bad = nullptr;
  RETURN_IF_ERROR(s.Alloc(reinterpret_cast<void**>(&bad), sizeof(*bad)));
  DeviceEncodeArgs args;
  args.params = &p;
  args.source = w.dtype;
  args.rows = rows;
  args.cols = cols;
  args.input = input;
  args.first_bad = bad;
  for (size_t i = 0; i < shapes.parts.size(); ++i) {
    void* ptr = nullptr;
    if (plan[i].rows_per_index > 0) {
      const size_t n = shapes.parts[i].tensor.nbytes();
      RETURN_IF_ERROR(s.Alloc(&ptr, n));
      timing.output_bytes += n;
    }
    args.parts.push_back(ptr);
  }
  std::vector<double> ms;
  for (int i = -warmup; i < iters; ++i) {
    // Zero-point words are ORed into: clear them as the encoder does (not timed).
    for (size_t k = 0; k < plan.size(); ++k) {
      if (plan[k].zero_before_launch) {
        RETURN_IF_CUDA_ERROR(cudaMemset(args.parts[k], 0, shapes.parts[k].tensor.nbytes()),
                             "cudaMemset");
      }
    }
    RETURN_IF_CUDA_ERROR(cudaMemset(bad, 0xff, sizeof(*bad)), "cudaMemset");
    RETURN_IF_CUDA_ERROR(cudaEventRecord(s.start), "cudaEventRecord");
    RETURN_IF_CUDA_ERROR(kernel->Launch(args), "kernel launch");
    RETURN_IF_CUDA_ERROR(cudaEventRecord(s.stop), "cudaEventRecord");
    RETURN_IF_CUDA_ERROR(cudaEventSynchronize(s.stop), "cudaEventSynchronize");
    float t = 0;
    RETURN_IF_CUDA_ERROR(cudaEventElapsedTime(&t, s.start, s.stop), "cudaEventElapsedTime");
    if (i >= 0) ms.push_back(t);
  }
  timing.median_ms = Median(ms);
  return timing;
}

}  // namespace quantd
