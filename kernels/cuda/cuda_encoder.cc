#include "kernels/cuda/cuda_encoder.h"

#include <algorithm>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/util/status_macros.h"
#include "kernels/cuda/registry.h"
#include "kernels/encoders.h"

namespace quantd {
namespace {

#define RETURN_IF_CUDA_ERROR(expr, what) RETURN_IF_ERROR(CudaStatus((expr), (what)))

// Part regions inside a slot's output buffer start at multiples of this.
constexpr size_t kAlign = 256;

size_t AlignUp(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Whether the device writes a part.
bool DeviceWritten(const DevicePartPlan& plan) {
  return plan.rows_per_index > 0 || plan.elements_per_index > 0;
}

// The indices [first, second) of a part's first dimension that rows
// [r0, r1) of a weight with `cols` columns write (r0 on an index boundary).
std::pair<int64_t, int64_t> IndexRange(const DevicePartPlan& plan, int64_t r0, int64_t r1,
                                       int64_t cols) {
  if (plan.rows_per_index > 0) {
    const int64_t k = plan.rows_per_index;
    return {r0 / k, (r1 + k - 1) / k};
  }
  const int64_t e = plan.elements_per_index;
  return {r0 * cols / e, (r1 * cols + e - 1) / e};
}

// Where one part's rows of a chunk live.
struct PartChunk {
  size_t offset_in_part = 0;  // bytes from the part's start
  size_t bytes = 0;
  size_t offset_in_slot = 0;  // in the slot's output buffer
};

}  // namespace

absl::Status CudaStatus(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return absl::OkStatus();
  cudaGetLastError();  // clear non-sticky errors
  if (e == cudaErrorMemoryAllocation) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, ": out of memory (", cudaGetErrorString(e), ")"));
  }
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(e)));
}

CudaEncoder::CudaEncoder(const CudaEncoderOptions& options) : options_(options) {}

absl::StatusOr<std::unique_ptr<CudaEncoder>> CudaEncoder::Create(
    const CudaEncoderOptions& options) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    n = 0;
  }
  if (options.device < 0 || options.device >= n) {
    return absl::UnavailableError(
        absl::StrCat("no CUDA device ", options.device, " (found ", n, ")"));
  }
  std::unique_ptr<CudaEncoder> e(new CudaEncoder(options));
  RETURN_IF_ERROR(e->Init());
  return e;
}

absl::Status CudaEncoder::Init() {
  RETURN_IF_CUDA_ERROR(cudaSetDevice(options_.device), "cudaSetDevice");
  for (Slot& s : slots_) {
    RETURN_IF_CUDA_ERROR(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking),
                         "cudaStreamCreate");
    RETURN_IF_CUDA_ERROR(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming),
                         "cudaEventCreate");
    for (cudaEvent_t* e : {&s.t_start, &s.t_copied_in, &s.t_kernel_done, &s.t_copied_out}) {
      RETURN_IF_CUDA_ERROR(cudaEventCreate(e), "cudaEventCreate");
    }
    RETURN_IF_CUDA_ERROR(
        cudaMalloc(reinterpret_cast<void**>(&s.dev_bad), sizeof(unsigned long long)), "cudaMalloc");
    RETURN_IF_CUDA_ERROR(cudaHostAlloc(reinterpret_cast<void**>(&s.host_bad),
                                       sizeof(unsigned long long), cudaHostAllocDefault),
                         "cudaHostAlloc");
  }
  cpu_ = MakeCpuEncoder(options_.cpu_threads);
  copy_pool_ = std::make_unique<ThreadPool>(
      std::min(8, std::max(1, static_cast<int>(std::thread::hardware_concurrency()))));
  return absl::OkStatus();
}

void CudaEncoder::ParallelCopy(void* dst, const void* src, size_t n) {
  constexpr size_t kSlice = size_t{4} << 20;
  const int64_t slices = static_cast<int64_t>((n + kSlice - 1) / kSlice);
  copy_pool_->ParallelFor(slices, [&](int64_t i) {
    const size_t begin = static_cast<size_t>(i) * kSlice;
    std::memcpy(static_cast<uint8_t*>(dst) + begin, static_cast<const uint8_t*>(src) + begin,
                std::min(kSlice, n - begin));
  });
}

void CudaEncoder::FreeSlot(Slot& s) {
  if (s.host_in) cudaFreeHost(s.host_in);
  if (s.host_out) cudaFreeHost(s.host_out);
  if (s.dev_in) cudaFree(s.dev_in);
  if (s.dev_out) cudaFree(s.dev_out);
  s.host_in = s.host_out = s.dev_in = s.dev_out = nullptr;
  s.in_capacity = s.out_capacity = 0;
}

CudaEncoder::~CudaEncoder() {
  if (cudaSetDevice(options_.device) != cudaSuccess) return;
  Drain();
  for (Slot& s : slots_) {
    FreeSlot(s);
    if (s.dev_bad) cudaFree(s.dev_bad);
    if (s.host_bad) cudaFreeHost(s.host_bad);
    if (s.done) cudaEventDestroy(s.done);
    for (cudaEvent_t e : {s.t_start, s.t_copied_in, s.t_kernel_done, s.t_copied_out}) {
      if (e) cudaEventDestroy(e);
    }
    if (s.stream) cudaStreamDestroy(s.stream);
  }
}

std::string CudaEncoder::device() const { return absl::StrCat("cuda:", options_.device); }

void CudaEncoder::Drain() {
  for (Slot& s : slots_) {
    if (s.stream) cudaStreamSynchronize(s.stream);
  }
  cudaGetLastError();
}

absl::Status CudaEncoder::Reserve(Slot& s, size_t in_bytes, size_t out_bytes) {
  if (in_bytes > s.in_capacity) {
    if (s.host_in) cudaFreeHost(s.host_in);
    if (s.dev_in) cudaFree(s.dev_in);
    s.host_in = s.dev_in = nullptr;
    s.in_capacity = 0;
    RETURN_IF_CUDA_ERROR(cudaHostAlloc(&s.host_in, in_bytes, cudaHostAllocDefault),
                         "cudaHostAlloc (input staging)");
    RETURN_IF_CUDA_ERROR(cudaMalloc(&s.dev_in, in_bytes), "cudaMalloc (input)");
    s.in_capacity = in_bytes;
  }
  if (out_bytes > s.out_capacity) {
    if (s.host_out) cudaFreeHost(s.host_out);
    if (s.dev_out) cudaFree(s.dev_out);
    s.host_out = s.dev_out = nullptr;
    s.out_capacity = 0;
    RETURN_IF_CUDA_ERROR(cudaHostAlloc(&s.host_out, out_bytes, cudaHostAllocDefault),
                         "cudaHostAlloc (output staging)");
    RETURN_IF_CUDA_ERROR(cudaMalloc(&s.dev_out, out_bytes), "cudaMalloc (output)");
    s.out_capacity = out_bytes;
  }
  return absl::OkStatus();
}

absl::StatusOr<EncodedWeight> CudaEncoder::Encode(const WeightFormat& f, const FormatParams& p,
                                                  const TensorView& w, const CancelToken& cancel) {
  std::lock_guard<std::mutex> lock(mu_);
  last_on_device_ = false;
  RETURN_IF_ERROR(cancel.Check());
  if (w.shape.size() != 2) {
    return absl::InvalidArgumentError("weight must be 2-D, got " + ShapeString(w.shape));
  }
  const int64_t rows = w.shape[0], cols = w.shape[1];
  RETURN_IF_ERROR(f.Check(p, rows, cols));
  if (!IsFloatWeightType(w.dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight dtype ", std::string(DTypeName(w.dtype)), " is not F16, BF16 or F32"));
  }
  const size_t esize = DTypeSize(w.dtype);
  const size_t row_bytes = static_cast<size_t>(cols) * esize;
  if (w.data == nullptr || w.nbytes != row_bytes * static_cast<size_t>(rows)) {
    return absl::InvalidArgumentError(absl::StrCat("weight view holds ", w.nbytes,
                                                   " bytes, not those of ", ShapeString(w.shape),
                                                   " ", std::string(DTypeName(w.dtype))));
  }
  const DeviceKernel* kernel = FindDeviceKernel(f.name());
  if (kernel == nullptr || !kernel->Supports(p, cols, w.dtype)) {
    return cpu_->Encode(f, p, w, cancel);
  }

  EncodedWeight out = f.Allocate(p, rows, cols, w.dtype);
  // Parts then scratch tensors, as the plan and DeviceEncodeArgs::parts
  // list them.
  std::vector<Tensor*> tensors;
  for (EncodedPart& part : out.parts) tensors.push_back(&part.tensor);
  for (EncodedPart& part : out.scratch) tensors.push_back(&part.tensor);
  std::vector<DevicePartPlan> plan = kernel->Plan(p, out);
  if (plan.size() == out.parts.size()) plan.resize(tensors.size());
  if (plan.size() != tensors.size()) return absl::InternalError("device kernel plan mismatch");

  const int64_t gran = std::max<int64_t>(1, f.RowGranularity(p));
  int64_t chunk_rows = static_cast<int64_t>(options_.chunk_bytes / std::max<size_t>(1, row_bytes));
  chunk_rows = std::max<int64_t>(gran, chunk_rows / gran * gran);
  chunk_rows = std::min(chunk_rows, rows);
  const int64_t chunks = (rows + chunk_rows - 1) / chunk_rows;

  // Bytes per index of each device part's first dimension, and the slot
  // layout of a full chunk.
  std::vector<size_t> index_bytes(tensors.size(), 0);
  size_t slot_out_bytes = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!DeviceWritten(plan[i])) continue;
    const Tensor& t = *tensors[i];
    if (t.shape().empty() || t.shape()[0] <= 0) return absl::InternalError("bad part shape");
    if (plan[i].rows_per_index > 0 && plan[i].elements_per_index > 0) {
      return absl::InternalError("device part plan sets both rows and elements per index");
    }
    // Element-indexed parts need every chunk to start on an index boundary
    // (chunk r0 is a multiple of chunk_rows); otherwise encode on the CPU.
    if (plan[i].elements_per_index > 0 && chunks > 1 &&
        (chunk_rows * cols) % plan[i].elements_per_index != 0) {
      return cpu_->Encode(f, p, w, cancel);
    }
    if (IndexRange(plan[i], 0, rows, cols).second > t.shape()[0]) {
      return absl::InternalError("device part plan exceeds the part's shape");
    }
    index_bytes[i] = t.nbytes() / static_cast<size_t>(t.shape()[0]);
    const int64_t max_indices = IndexRange(plan[i], 0, chunk_rows, cols).second;
    slot_out_bytes += AlignUp(index_bytes[i] * static_cast<size_t>(max_indices));
  }
  kernel->FillHostParts(p, rows, cols, &out);
  const size_t slot_in_bytes = row_bytes * static_cast<size_t>(chunk_rows);

  RETURN_IF_CUDA_ERROR(cudaSetDevice(options_.device), "cudaSetDevice");
  for (Slot& s : slots_)
    RETURN_IF_ERROR(Reserve(s, slot_in_bytes, std::max<size_t>(1, slot_out_bytes)));

  // The parts' regions of chunk c.
  auto layout = [&](int64_t c) {
    std::vector<PartChunk> pc(tensors.size());
    const int64_t r0 = c * chunk_rows, r1 = std::min(rows, r0 + chunk_rows);
    size_t offset = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (!DeviceWritten(plan[i])) continue;
      const auto [i0, i1] = IndexRange(plan[i], r0, r1, cols);
      pc[i].offset_in_part = static_cast<size_t>(i0) * index_bytes[i];
      pc[i].bytes = static_cast<size_t>(i1 - i0) * index_bytes[i];
      pc[i].offset_in_slot = offset;
      offset += AlignUp(pc[i].bytes);
    }
    return pc;
  };

  // Completes chunk c: waits for its slot, checks for non-finite input and
  // copies its parts out of the staging buffer.
  auto finish = [&](int64_t c) -> absl::Status {
    Slot& s = slots_[c % 2];
    RETURN_IF_CUDA_ERROR(cudaEventSynchronize(s.done), "encoding on the device");
    float ms = 0;
    if (cudaEventElapsedTime(&ms, s.t_start, s.t_copied_in) == cudaSuccess) {
      timings_.host_to_device += ms / 1e3;
    }
    if (cudaEventElapsedTime(&ms, s.t_copied_in, s.t_kernel_done) == cudaSuccess) {
      timings_.kernel += ms / 1e3;
    }
    if (cudaEventElapsedTime(&ms, s.t_kernel_done, s.t_copied_out) == cudaSuccess) {
      timings_.device_to_host += ms / 1e3;
    }
    if (*s.host_bad != ~0ull) {
      const int64_t r0 = c * chunk_rows;
      const int64_t bad = static_cast<int64_t>(*s.host_bad);
      return absl::InvalidArgumentError(
          absl::StrCat("non-finite value at row ", r0 + bad / cols, ", column ", bad % cols));
    }
    const std::vector<PartChunk> pc = layout(c);
    const absl::Time h0 = absl::Now();
    absl::Cleanup account = [&] { timings_.host += absl::ToDoubleSeconds(absl::Now() - h0); };
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (!DeviceWritten(plan[i])) continue;
      ParallelCopy(tensors[i]->data() + pc[i].offset_in_part,
                   static_cast<const uint8_t*>(s.host_out) + pc[i].offset_in_slot, pc[i].bytes);
    }
    return absl::OkStatus();
  };

  auto launch = [&](int64_t c) -> absl::Status {
    Slot& s = slots_[c % 2];
    const int64_t r0 = c * chunk_rows, r1 = std::min(rows, r0 + chunk_rows);
    const size_t in_bytes = row_bytes * static_cast<size_t>(r1 - r0);
    const absl::Time h0 = absl::Now();
    ParallelCopy(s.host_in, w.data + row_bytes * static_cast<size_t>(r0), in_bytes);
    timings_.host += absl::ToDoubleSeconds(absl::Now() - h0);
    RETURN_IF_CUDA_ERROR(cudaEventRecord(s.t_start, s.stream), "cudaEventRecord");
    RETURN_IF_CUDA_ERROR(
        cudaMemcpyAsync(s.dev_in, s.host_in, in_bytes, cudaMemcpyHostToDevice, s.stream),
        "cudaMemcpyAsync (input)");
    RETURN_IF_CUDA_ERROR(cudaEventRecord(s.t_copied_in, s.stream), "cudaEventRecord");
    const std::vector<PartChunk> pc = layout(c);
    DeviceEncodeArgs args;
    args.params = &p;
    args.source = w.dtype;
    args.rows = r1 - r0;
    args.cols = cols;
    args.input = s.dev_in;
    args.first_bad = s.dev_bad;
    args.stream = s.stream;
    size_t out_bytes = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
      void* ptr = nullptr;
      if (DeviceWritten(plan[i])) {
        ptr = static_cast<uint8_t*>(s.dev_out) + pc[i].offset_in_slot;
        out_bytes = pc[i].offset_in_slot + pc[i].bytes;
        if (plan[i].zero_before_launch) {
          RETURN_IF_CUDA_ERROR(cudaMemsetAsync(ptr, 0, pc[i].bytes, s.stream), "cudaMemsetAsync");
        }
      }
      args.parts.push_back(ptr);
    }
    RETURN_IF_CUDA_ERROR(cudaMemsetAsync(s.dev_bad, 0xff, sizeof(unsigned long long), s.stream),
                         "cudaMemsetAsync");
    RETURN_IF_CUDA_ERROR(kernel->Launch(args), "kernel launch");
    RETURN_IF_CUDA_ERROR(cudaEventRecord(s.t_kernel_done, s.stream), "cudaEventRecord");
    if (out_bytes > 0) {
      RETURN_IF_CUDA_ERROR(
          cudaMemcpyAsync(s.host_out, s.dev_out, out_bytes, cudaMemcpyDeviceToHost, s.stream),
          "cudaMemcpyAsync (output)");
    }
    RETURN_IF_CUDA_ERROR(cudaMemcpyAsync(s.host_bad, s.dev_bad, sizeof(unsigned long long),
                                         cudaMemcpyDeviceToHost, s.stream),
                         "cudaMemcpyAsync (flag)");
    RETURN_IF_CUDA_ERROR(cudaEventRecord(s.t_copied_out, s.stream), "cudaEventRecord");
    RETURN_IF_CUDA_ERROR(cudaEventRecord(s.done, s.stream), "cudaEventRecord");
    return absl::OkStatus();
  };

  absl::Status status;
  for (int64_t c = 0; c < chunks && status.ok(); ++c) {
    if (c >= 2) status = finish(c - 2);  // frees slot c % 2
    if (status.ok()) status = cancel.Check();
    if (status.ok()) status = launch(c);
  }
  for (int64_t c = std::max<int64_t>(0, chunks - 2); c < chunks && status.ok(); ++c) {
    status = finish(c);
  }
  if (!status.ok()) {
    Drain();
    return status;
  }
  last_on_device_ = true;
  const absl::Time f0 = absl::Now();
  RETURN_IF_ERROR(f.FinalizeRef(p, rows, cols, &out));
  out.scratch.clear();
  timings_.host += absl::ToDoubleSeconds(absl::Now() - f0);
  return out;
}

float CudaEncoder::AbsMax(const TensorView& w) { return cpu_->AbsMax(w); }

EncoderTimings CudaEncoder::TakeTimings() {
  std::lock_guard<std::mutex> lock(mu_);
  EncoderTimings t = std::exchange(timings_, EncoderTimings{});
  const EncoderTimings cpu = cpu_->TakeTimings();
  t.host += cpu.host;
  return t;
}

absl::StatusOr<std::unique_ptr<WeightEncoder>> MakeCudaEncoder(int device) {
  CudaEncoderOptions options;
  options.device = device;
  ASSIGN_OR_RETURN(std::unique_ptr<CudaEncoder> e, CudaEncoder::Create(options));
  return std::unique_ptr<WeightEncoder>(std::move(e));
}

}  // namespace quantd
