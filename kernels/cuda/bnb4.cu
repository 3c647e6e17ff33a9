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
#include "kernels/cuda/source_bits.cuh"

namespace quantd {
namespace {

using bnb4::QuantType;

using source_bits::Element;
using source_bits::Raw16;
using source_bits::Src;

// The bucket table of bnb4_layout.h in the compact form the kernel's
// parameters carry (1,548 bytes, under the 4 KB of a plain launch): each
// CTA expands it into shared memory.
struct CompactTable {
  float threshold[bnb4::kBuckets];
  uint16_t codes[bnb4::kBuckets];  // below | above << 8
};

// The table of `type`, built once (nullptr if BuildCodeBuckets fails).
const CompactTable* TableFor(QuantType type) {
  static const auto build = [](QuantType t) -> const CompactTable* {
    bnb4::CodeBucket b[bnb4::kBuckets];
    if (!bnb4::BuildCodeBuckets(t, b)) return nullptr;
    auto* c = new CompactTable;
    for (int i = 0; i < bnb4::kBuckets; ++i) {
      c->threshold[i] = b[i].threshold;
      c->codes[i] = static_cast<uint16_t>((b[i].below & 0xfu) | (b[i].above & 0xfu) << 8);
    }
    return c;
  };
  static const CompactTable* nf4 = build(QuantType::kNf4);
  static const CompactTable* fp4 = build(QuantType::kFp4);
  return type == QuantType::kNf4 ? nf4 : fp4;
}

// What the kernel reads.
struct KernelArgs {
  const void* input;
  int64_t n;
  uint8_t* packed;
  float* absmax;
  unsigned long long* first_bad;
  CompactTable table;
};

// Threads per CTA for kTeam threads per bnb block: whole teams, >= 256.
template <int kTeam>
constexpr int kCtaSize = kTeam > 256 ? kTeam : 256;

// CTAs per SM the register allocation must allow: 1024 threads (64
// registers), whose loads in flight (32 bytes each) cover the memory latency.
template <int kTeam>
constexpr int kMinCtasPerSm = 1024 / kCtaSize<kTeam>;

// Copies of the bucket table in shared memory: lane l reads copy l % 8, so
// the 8 lanes of a 128-bit shared load (one wavefront) hit 32 distinct banks
// whatever buckets they look up. Bucket i of copy c is at i * kCopies + c.
constexpr int kCopies = 8;

// Elements per thread: two 16-byte loads of a 16-bit source.
constexpr int kPerThread = 16;

// Elements [first, first + kPerThread) (first a multiple of kPerThread);
// those at or past n are +0.0 (all bits zero), bitsandbytes' padding.
template <Src S>
__device__ __forceinline__ Raw16<S> LoadRaw(const void* in, uint32_t first, uint32_t n) {
  if (first + kPerThread <= n) return source_bits::LoadRaw16<S>(in, first);
  Raw16<S> r = source_bits::ZeroRaw16<S>();
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {  // unrolled: registers, not a stack array
    if (first + i >= n) continue;
    if constexpr (S == Src::kF32) {
      r.w[i] = __ldcs(static_cast<const uint32_t*>(in) + first + i);
    } else {
      const uint32_t h = __ldcs(static_cast<const unsigned short*>(in) + first + i);
      r.w[i / 2] |= h << (16 * (i % 2));
    }
  }
  return r;
}

// x * r with subnormal inputs and result flushed: bnb4::Normalised.
__device__ __forceinline__ float MulFtz(float x, float r) {
  float v;
  asm("mul.rn.ftz.f32 %0, %1, %2;" : "=f"(v) : "f"(x), "f"(r));
  return v;
}

// Codes of elements [8h, 8h + 8) as one little-endian word: element 2j in
// the high nibble of byte j. r is the block's factor; the block is not all
// zero. `buckets` is the thread's copy of the table (stride kCopies); a
// bucket gives its code in every nibble, so placing it is one masked OR.
template <Src S>
__device__ __forceinline__ uint32_t Codes8(const Raw16<S>& raw, int h, float r,
                                           const bnb4::CodeBucket* buckets) {
  uint32_t word = 0;
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    const float v = MulFtz(Element<S>(raw, 8 * h + e), r);
    const int shift = 8 * (e / 2) + (e % 2 == 0 ? 4 : 0);
    word |= bnb4::CodeNibbles(v, buckets, kCopies) & (0xfu << shift);
  }
  return word;
}

// One thread per kPerThread elements, kTeam = blocksize / kPerThread
// threads per bnb block. CTAs stride over the tensor (a grid of the CTAs
// that fit on the device at once) so that each copies the bucket table to
// shared memory once; every thread loads its next elements (raw bits) before
// it encodes the current ones.
template <Src S, int kTeam>
__global__ void __launch_bounds__(kCtaSize<kTeam>, kMinCtasPerSm<kTeam>) Bnb4Kernel(KernelArgs a) {
  constexpr int kCta = kCtaSize<kTeam>;
  __shared__ bnb4::CodeBucket table[bnb4::kBuckets * kCopies];
  __shared__ float warp_max[2][kCta / 32];
  for (int i = threadIdx.x; i < bnb4::kBuckets * kCopies; i += kCta) {
    const uint32_t codes = a.table.codes[i / kCopies];
    table[i] = bnb4::CodeBucket{a.table.threshold[i / kCopies], (codes & 0xfu) * 0x11111111u,
                                (codes >> 8) * 0x11111111u, 0u};
  }
  __syncthreads();
  const bnb4::CodeBucket* buckets = table + threadIdx.x % kCopies;
  // 32-bit indices: n <= kMaxElements < 2^31, and no t * kPerThread below
  // (threads + stride) * kPerThread reaches 2^32.
  const uint32_t n = static_cast<uint32_t>(a.n);
  const uint32_t threads = (n + kPerThread - 1) / kPerThread;
  const uint32_t stride = gridDim.x * kCta;
  uint32_t t = blockIdx.x * kCta + threadIdx.x;
  // Threads past the end carry zeros, which leave their team's max alone.
  Raw16<S> next =
      t < threads ? LoadRaw<S>(a.input, t * kPerThread, n) : source_bits::ZeroRaw16<S>();
  for (int iter = 0; t - threadIdx.x < threads; t += stride, ++iter) {
    const uint32_t first = t * kPerThread;
    const Raw16<S> raw = next;
    if (t + stride < threads) {
      next = LoadRaw<S>(a.input, first + stride * kPerThread, n);
    } else {
      next = source_bits::ZeroRaw16<S>();
    }
    // bitsandbytes' max.ftz of |x|: a subnormal float32 maximum is 0.
    const uint32_t mbits = source_bits::MaxMagnitudeBits<S>(raw);
    float m = bnb4::FlushSubnormal(source_bits::MagnitudeToFloat<S>(mbits));
    // Every lane of the CTA runs the same iterations: shuffles and barriers
    // are reached by all. A block with a non-finite element is reported
    // below (first_bad), which fails the whole encode.
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
    if (t >= threads) continue;
    if (source_bits::NonFiniteBits<S>(mbits)) {
      int bad = 0;
#pragma unroll
      for (int i = kPerThread - 1; i >= 0; --i) {
        if (!isfinite(Element<S>(raw, i))) bad = i;
      }
      atomicMin(a.first_bad, static_cast<unsigned long long>(first + bad));
      continue;
    }
    if (threadIdx.x % kTeam == 0) a.absmax[first / (kPerThread * kTeam)] = m;
    // An all-zero block: every x * r is NaN, code 0 for NF4 and FP4.
    uint2 words = make_uint2(0u, 0u);
    if (m != 0.0f) {
      const float r = bnb4::BlockFactor(m);
      words = make_uint2(Codes8<S>(raw, 0, r, buckets), Codes8<S>(raw, 1, r, buckets));
    }
    if (first + kPerThread <= n) {
      __stcs(reinterpret_cast<uint2*>(a.packed) + first / kPerThread, words);
    } else {
      const uint64_t all = (static_cast<uint64_t>(words.y) << 32) | words.x;
      const uint32_t bytes = (n - first + 1) / 2;
      for (uint32_t j = 0; j < bytes; ++j) {
        a.packed[first / 2 + j] = static_cast<uint8_t>(all >> (8 * j));
      }
    }
  }
}

template <Src S, int kTeam>
cudaError_t LaunchTyped(const KernelArgs& k, cudaStream_t stream) {
  constexpr int kCta = kCtaSize<kTeam>;
  static const int resident = [] {
    int device = 0, sms = 0, per_sm = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    cudaFuncSetAttribute(Bnb4Kernel<S, kTeam>, cudaFuncAttributePreferredSharedMemoryCarveout,
                         cudaSharedmemCarveoutMaxShared);
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, Bnb4Kernel<S, kTeam>, kCta, 0);
    return std::max(1, sms) * std::max(1, per_sm);
  }();
  const int64_t threads = (k.n + kPerThread - 1) / kPerThread;
  const int64_t blocks = std::min<int64_t>((threads + kCta - 1) / kCta, resident);
  Bnb4Kernel<S, kTeam><<<static_cast<unsigned>(blocks), kCta, 0, stream>>>(k);
  return cudaGetLastError();
}

template <Src S>
cudaError_t LaunchBlock(int blocksize, const KernelArgs& k, cudaStream_t stream) {
  switch (blocksize) {
    case 32:
      return LaunchTyped<S, 32 / kPerThread>(k, stream);
    case 64:
      return LaunchTyped<S, 64 / kPerThread>(k, stream);
    case 128:
      return LaunchTyped<S, 128 / kPerThread>(k, stream);
    case 256:
      return LaunchTyped<S, 256 / kPerThread>(k, stream);
    case 512:
      return LaunchTyped<S, 512 / kPerThread>(k, stream);
    case 1024:
      return LaunchTyped<S, 1024 / kPerThread>(k, stream);
    case 2048:
      return LaunchTyped<S, 2048 / kPerThread>(k, stream);
    case 4096:
      return LaunchTyped<S, 4096 / kPerThread>(k, stream);
    default:
      return cudaErrorInvalidValue;
  }
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
  const CompactTable* table = TableFor(a.type);
  if (table == nullptr) return cudaErrorInvalidValue;
  k.table = *table;
  switch (a.source) {
    case DType::kF32:
      return LaunchBlock<Src::kF32>(a.blocksize, k, a.stream);
    case DType::kF16:
      return LaunchBlock<Src::kF16>(a.blocksize, k, a.stream);
    case DType::kBF16:
      return LaunchBlock<Src::kBF16>(a.blocksize, k, a.stream);
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
