#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/formats/bnb4.h"
#include "core/formats/bnb4_layout.h"
#include "core/util/status_macros.h"
#include "kernels/cuda/bnb4.cuh"
#include "kernels/cuda/cuda_encoder.h"

namespace quantd {
namespace {

using bnb4::QuantType;

enum class Src { kF32, kF16, kBF16 };

// What the kernel reads; the code buckets travel in the parameter block
// (2,064 bytes) so that host and device use the one table of bnb4_layout.h.
struct KernelArgs {
  const void* input;
  int64_t n;
  uint8_t* packed;
  float* absmax;
  unsigned long long* first_bad;
  bnb4::CodeBucket buckets[bnb4::kBuckets];  // copied to shared memory per CTA
};

// Threads per CTA for kTeam threads per bnb block: whole teams, >= 256.
template <int kTeam>
constexpr int kCtaSize = kTeam > 256 ? kTeam : 256;

template <Src S>
__device__ __forceinline__ float LoadOne(const void* in, int64_t i) {
  if constexpr (S == Src::kF32) {
    return __ldcs(static_cast<const float*>(in) + i);
  } else {
    const unsigned short h = __ldcs(static_cast<const unsigned short*>(in) + i);
    return S == Src::kBF16 ? __uint_as_float(static_cast<uint32_t>(h) << 16)
                           : __half2float(__ushort_as_half(h));
  }
}

// Elements [first, first + 8) (first a multiple of 8) as float32; those at
// or past n are +0.0, bitsandbytes' padding.
template <Src S>
__device__ __forceinline__ void Load8(const void* in, int64_t first, int64_t n, float (&x)[8]) {
  if (first + 8 <= n) {
    if constexpr (S == Src::kF32) {
      const float4* p = static_cast<const float4*>(in) + first / 4;
      const float4 a = __ldcs(p), b = __ldcs(p + 1);
      x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w;
      x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
    } else {
      const uint4 v = __ldcs(static_cast<const uint4*>(in) + first / 8);
      const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int k = 0; k < 4; ++k) {  // little-endian: element 2k in the low half
        if constexpr (S == Src::kBF16) {
          x[2 * k] = __uint_as_float(w[k] << 16);
          x[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
        } else {
          x[2 * k] = __half2float(__ushort_as_half(static_cast<unsigned short>(w[k] & 0xffffu)));
          x[2 * k + 1] = __half2float(__ushort_as_half(static_cast<unsigned short>(w[k] >> 16)));
        }
      }
    }
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) x[i] = first + i < n ? LoadOne<S>(in, first + i) : 0.0f;
  }
}

// max(a, b) with subnormal inputs flushed to zero (bitsandbytes' fmaxf
// under --use_fast_math); with a >= 0 and b = |x| this is
// max(a, bnb4::AbsForMax(x)).
__device__ __forceinline__ float MaxFtz(float a, float b) {
  float r;
  asm("max.ftz.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}

// x * r with subnormal inputs and result flushed: bnb4::Normalised.
__device__ __forceinline__ float MulFtz(float x, float r) {
  float v;
  asm("mul.rn.ftz.f32 %0, %1, %2;" : "=f"(v) : "f"(x), "f"(r));
  return v;
}

// Codes of 8 elements as one little-endian word: element 2j in the high
// nibble of byte j. r is the block's factor; the block is not all zero.
template <QuantType kType>
__device__ __forceinline__ uint32_t Codes8(const float (&x)[8], float r,
                                           const bnb4::CodeBucket* buckets) {
  uint32_t word = 0;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float v0 = MulFtz(x[2 * j], r), v1 = MulFtz(x[2 * j + 1], r);
    const uint32_t c0 = kType == QuantType::kNf4 ? bnb4::Nf4CodeBucket(v0, buckets)
                                                 : bnb4::Fp4CodeBucket(v0, buckets);
    const uint32_t c1 = kType == QuantType::kNf4 ? bnb4::Nf4CodeBucket(v1, buckets)
                                                 : bnb4::Fp4CodeBucket(v1, buckets);
    word |= bnb4::PackPair(c0, c1) << (8 * j);
  }
  return word;
}

// One thread per 8 elements, kTeam = blocksize / 8 threads per bnb block.
// CTAs stride over the tensor (a grid of a few CTAs per SM) so that each
// copies the bucket table to shared memory once; every thread loads its next
// 8 elements before it encodes the current ones.
template <Src S, int kTeam, QuantType kType>
__global__ void __launch_bounds__(kCtaSize<kTeam>) Bnb4Kernel(KernelArgs a) {
  constexpr int kCta = kCtaSize<kTeam>;
  __shared__ bnb4::CodeBucket buckets[bnb4::kBuckets];
  __shared__ float warp_max[2][kCta / 32];
  for (int i = threadIdx.x; i < bnb4::kBuckets; i += kCta) buckets[i] = a.buckets[i];
  __syncthreads();
  const int64_t threads = (a.n + 7) / 8;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kCta;
  int64_t t = static_cast<int64_t>(blockIdx.x) * kCta + threadIdx.x;
  float next[8];
  if (t < threads) Load8<S>(a.input, t * 8, a.n, next);
  for (int iter = 0; t - threadIdx.x < threads; t += stride, ++iter) {
    const int64_t first = t * 8;
    const bool active = t < threads;
    float x[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) x[i] = active ? next[i] : 0.0f;
    if (t + stride < threads) Load8<S>(a.input, (t + stride) * 8, a.n, next);
    float m = 0.0f;
    float nonfinite = 0.0f;  // x * 0 is NaN exactly for Inf and NaN
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      m = MaxFtz(m, fabsf(x[i]));
      nonfinite = __fmaf_rn(x[i], 0.0f, nonfinite);
    }
    // Every lane of the CTA runs the same iterations: shuffles and barriers
    // are reached by all.
    constexpr int kShuffleWidth = kTeam < 32 ? kTeam : 32;
#pragma unroll
    for (int offset = kShuffleWidth / 2; offset > 0; offset >>= 1) {
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
    }
    if constexpr (kTeam > 32) {
      float* wm = warp_max[iter & 1];
      if ((threadIdx.x & 31) == 0) wm[threadIdx.x >> 5] = m;
      __syncthreads();
      const int w0 = (threadIdx.x / kTeam) * (kTeam / 32);
      m = wm[w0];
#pragma unroll
      for (int w = 1; w < kTeam / 32; ++w) m = fmaxf(m, wm[w0 + w]);
    }
    if (!active) continue;
    if (nonfinite != nonfinite) {
      for (int i = 0; i < 8; ++i) {
        if (!isfinite(x[i])) {
          atomicMin(a.first_bad, static_cast<unsigned long long>(first + i));
          break;
        }
      }
      continue;
    }
    if (threadIdx.x % kTeam == 0) a.absmax[first / (8 * kTeam)] = m;
    // An all-zero block: every x * r is NaN, code 0 for NF4 and FP4.
    const uint32_t word = m == 0.0f ? 0u : Codes8<kType>(x, bnb4::BlockFactor(m), buckets);
    if (first + 8 <= a.n) {
      __stcs(reinterpret_cast<uint32_t*>(a.packed) + first / 8, word);
    } else {
      const int64_t bytes = (a.n - first + 1) / 2;
      for (int64_t j = 0; j < bytes; ++j) {
        a.packed[first / 2 + j] = static_cast<uint8_t>(word >> (8 * j));
      }
    }
  }
}

template <Src S, int kTeam, QuantType kType>
cudaError_t LaunchTyped(const KernelArgs& k, cudaStream_t stream) {
  constexpr int kCta = kCtaSize<kTeam>;
  static const int resident = [] {
    int device = 0, sms = 0, per_sm = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, Bnb4Kernel<S, kTeam, kType>, kCta, 0);
    return std::max(1, sms) * std::max(1, per_sm);
  }();
  const int64_t threads = (k.n + 7) / 8;
  const int64_t blocks = std::min<int64_t>((threads + kCta - 1) / kCta, resident);
  Bnb4Kernel<S, kTeam, kType><<<static_cast<unsigned>(blocks), kCta, 0, stream>>>(k);
  return cudaGetLastError();
}

template <Src S, QuantType kType>
cudaError_t LaunchBlock(int blocksize, const KernelArgs& k, cudaStream_t stream) {
  switch (blocksize) {
    case 32:
      return LaunchTyped<S, 4, kType>(k, stream);
    case 64:
      return LaunchTyped<S, 8, kType>(k, stream);
    case 128:
      return LaunchTyped<S, 16, kType>(k, stream);
    case 256:
      return LaunchTyped<S, 32, kType>(k, stream);
    case 512:
      return LaunchTyped<S, 64, kType>(k, stream);
    case 1024:
      return LaunchTyped<S, 128, kType>(k, stream);
    case 2048:
      return LaunchTyped<S, 256, kType>(k, stream);
    case 4096:
      return LaunchTyped<S, 512, kType>(k, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

template <Src S>
cudaError_t LaunchSrc(const Bnb4DeviceArgs& a, const KernelArgs& k) {
  return a.type == QuantType::kNf4 ? LaunchBlock<S, QuantType::kNf4>(a.blocksize, k, a.stream)
                                   : LaunchBlock<S, QuantType::kFp4>(a.blocksize, k, a.stream);
}

// Device buffers freed on scope exit.
struct DeviceBuffers {
  std::vector<void*> ptrs;
  ~DeviceBuffers() {
    for (void* p : ptrs) cudaFree(p);
  }
  absl::Status Alloc(void** p, size_t n) {
    RETURN_IF_ERROR(CudaStatus(cudaMalloc(p, n > 0 ? n : 1), "cudaMalloc"));
    ptrs.push_back(*p);
    return absl::OkStatus();
  }
};

// The registry entry: the packed codes are indexed by element pairs and the
// float32 block absmax (weight.absmax, or the scratch with double
// quantization) by block, so chunks of blocksize rows start on a block
// boundary (Bnb4Format().RowGranularity()); the host writes the code books,
// the JSON and double quantization (Allocate, FinalizeRef).
class Bnb4RegistryKernel final : public DeviceKernel {
 public:
  bool Supports(const FormatParams& p, int64_t cols, DType source) const override {
    return IsFloatWeightType(source) && MakeBnb4Dims(p, 1, cols).ok();
  }

  std::vector<DevicePartPlan> Plan(const FormatParams& p,
                                   const EncodedWeight& shapes) const override {
    const absl::StatusOr<Bnb4Dims> d = MakeBnb4Dims(p, 1, 1);
    const int64_t blocksize = d.ok() ? d->blocksize : 64;
    const bool dq = d.ok() && d->double_quant;
    std::vector<DevicePartPlan> plan;
    for (const EncodedPart& part : shapes.parts) {
      DevicePartPlan e;
      if (part.suffix == kBnbWeightSuffix) e.elements_per_index = 2;
      if (part.suffix == kBnbAbsmaxSuffix && !dq) e.elements_per_index = blocksize;
      plan.push_back(e);
    }
    for (const EncodedPart& part : shapes.scratch) {
      DevicePartPlan e;
      if (part.suffix == kBnbFloatAbsmaxScratch) e.elements_per_index = blocksize;
      plan.push_back(e);
    }
    return plan;
  }

  void FillHostParts(const FormatParams& p, int64_t rows, int64_t cols,
                     EncodedWeight* e) const override {}

  // Parts in Allocate() order: weight, weight.absmax, ..., then with double
  // quantization the float32 absmax scratch last.
  cudaError_t Launch(const DeviceEncodeArgs& args) const override {
    const absl::StatusOr<Bnb4Dims> d = MakeBnb4Dims(*args.params, args.rows, args.cols);
    if (!d.ok() || args.parts.size() < 2) return cudaErrorInvalidValue;
    Bnb4DeviceArgs a;
    a.input = args.input;
    a.source = args.source;
    a.numel = d->numel;
    a.blocksize = static_cast<int>(d->blocksize);
    a.type = d->type;
    a.packed = static_cast<uint8_t*>(args.parts[0]);
    a.absmax = static_cast<float*>(d->double_quant ? args.parts.back() : args.parts[1]);
    a.first_bad = args.first_bad;
    a.stream = args.stream;
    return LaunchBnb4(a);
  }
};

}  // namespace

cudaError_t LaunchBnb4(const Bnb4DeviceArgs& a) {
  if (a.numel <= 0 || a.numel > bnb4::kMaxElements || a.input == nullptr || a.packed == nullptr ||
      a.absmax == nullptr || a.first_bad == nullptr) {
    return a.numel == 0 ? cudaSuccess : cudaErrorInvalidValue;
  }
  KernelArgs k;
  k.input = a.input;
  k.n = a.numel;
  k.packed = a.packed;
  k.absmax = a.absmax;
  k.first_bad = a.first_bad;
  if (!bnb4::BuildCodeBuckets(a.type, k.buckets)) return cudaErrorInvalidValue;
  switch (a.source) {
    case DType::kF32:
      return LaunchSrc<Src::kF32>(a, k);
    case DType::kF16:
      return LaunchSrc<Src::kF16>(a, k);
    case DType::kBF16:
      return LaunchSrc<Src::kBF16>(a, k);
    default:
      return cudaErrorInvalidValue;
  }
}

absl::StatusOr<EncodedWeight> Bnb4EncodeOnDevice(const FormatParams& p, const TensorView& w,
                                                 int device) {
  if (w.shape.size() != 2) {
    return absl::InvalidArgumentError("weight must be 2-D, got " + ShapeString(w.shape));
  }
  const int64_t rows = w.shape[0], cols = w.shape[1];
  ASSIGN_OR_RETURN(const Bnb4Dims d, MakeBnb4Dims(p, rows, cols));
  if (!IsFloatWeightType(w.dtype) || w.data == nullptr ||
      w.nbytes != static_cast<size_t>(d.numel) * DTypeSize(w.dtype)) {
    return absl::InvalidArgumentError("weight view is not a whole F16, BF16 or F32 tensor");
  }
  RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device), "cudaSetDevice"));
  DeviceBuffers buf;
  Bnb4DeviceArgs a;
  void *input = nullptr, *packed = nullptr, *absmax = nullptr, *bad = nullptr;
  const size_t absmax_bytes = static_cast<size_t>(d.blocks) * sizeof(float);
  RETURN_IF_ERROR(buf.Alloc(&input, w.nbytes));
  RETURN_IF_ERROR(buf.Alloc(&packed, static_cast<size_t>(d.packed_bytes)));
  RETURN_IF_ERROR(buf.Alloc(&absmax, absmax_bytes));
  RETURN_IF_ERROR(buf.Alloc(&bad, sizeof(unsigned long long)));
  RETURN_IF_ERROR(
      CudaStatus(cudaMemcpy(input, w.data, w.nbytes, cudaMemcpyHostToDevice), "cudaMemcpy"));
  RETURN_IF_ERROR(CudaStatus(cudaMemset(bad, 0xff, sizeof(unsigned long long)), "cudaMemset"));
  a.input = input;
  a.source = w.dtype;
  a.numel = d.numel;
  a.blocksize = static_cast<int>(d.blocksize);
  a.type = d.type;
  a.packed = static_cast<uint8_t*>(packed);
  a.absmax = static_cast<float*>(absmax);
  a.first_bad = static_cast<unsigned long long*>(bad);
  RETURN_IF_ERROR(CudaStatus(LaunchBnb4(a), "bnb4 kernel launch"));
  RETURN_IF_ERROR(CudaStatus(cudaDeviceSynchronize(), "bnb4 kernel"));
  unsigned long long first_bad = 0;
  RETURN_IF_ERROR(CudaStatus(cudaMemcpy(&first_bad, bad, sizeof(first_bad), cudaMemcpyDeviceToHost),
                             "cudaMemcpy"));
  if (first_bad != ~0ull) {
    const int64_t i = static_cast<int64_t>(first_bad);
    return absl::InvalidArgumentError(
        absl::StrCat("non-finite value at row ", i / cols, ", column ", i % cols));
  }
  EncodedWeight out = Bnb4Format().Allocate(p, rows, cols, w.dtype);
  RETURN_IF_ERROR(
      CudaStatus(cudaMemcpy(out.Find(kBnbWeightSuffix)->data(), packed,
                            static_cast<size_t>(d.packed_bytes), cudaMemcpyDeviceToHost),
                 "cudaMemcpy"));
  Tensor* block_absmax =
      d.double_quant ? out.FindScratch(kBnbFloatAbsmaxScratch) : out.Find(kBnbAbsmaxSuffix);
  RETURN_IF_ERROR(
      CudaStatus(cudaMemcpy(block_absmax->data(), absmax, absmax_bytes, cudaMemcpyDeviceToHost),
                 "cudaMemcpy"));
  // The host side of the encoding: code books, double quantization, JSON.
  RETURN_IF_ERROR(Bnb4Format().FinalizeRef(p, rows, cols, &out));
  out.scratch.clear();
  return out;
}

const DeviceKernel& Bnb4DeviceKernel() {
  static const Bnb4RegistryKernel* kernel = new Bnb4RegistryKernel();
  return *kernel;
}

}  // namespace quantd
