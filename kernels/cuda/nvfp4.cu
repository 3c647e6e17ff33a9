#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/formats/nvfp4.h"
#include "core/formats/nvfp4_layout.h"
#include "kernels/cuda/nvfp4.cuh"
#include "kernels/cuda/source_bits.cuh"

namespace quantd {
namespace {

using nvfp4::kBlockSize;
using nvfp4::Layout;

constexpr int kThreads = 256;

using source_bits::Raw16;
using source_bits::Src;

// Kernel arguments, passed by value.
struct Args {
  int64_t blocks;  // 16-element blocks in the chunk
  float global;    // the stored tensor scale (G or G2)
  // ModelOpt: the block-scale divisor RN(6 G2) and its reciprocal
  // (nvfp4::BlockScaleCode); unused for compressed-tensors.
  float div, div_reciprocal;
  const void* input;
  uint2* packed;    // 8 bytes per block
  uint8_t* scales;  // 1 byte per block
  unsigned long long* first_bad;
};

// ---------------------------------------------------------------------------
// Element codes
//
// The reference's element code is E2M1MagnitudeRef(RN(|x| / d)) plus 8 for
// x < 0. The kernel computes RN(|x| / d) as nvfp4::FastQuotient (a multiply
// by y = RN(1 / d) and two FMA corrections) wherever nvfp4::Fast holds for
// the block (any other block divides), and the code as
// nvfp4::E2M1MagnitudeBiased (three FMAs and three min): an element costs
// about a dozen FP-pipe instructions and one integer multiply-add to pack,
// where compares and selects would load the slower integer pipe. d and y of
// each of the 128 scale codes are computed once per CTA, in shared memory.
// tests/kernels/nvfp4_kernels_test.cc runs this arithmetic on the host
// against nvfp4::EncodeElement on every BF16 value for every scale code,
// both layouts and tensor scales from 0 to FLT_MAX; its GPU tests compare
// the kernel with the reference.

// The divisor and reciprocal of every scale code (0x7f, NaN, never occurs:
// E4M3 conversion saturates), filled by each CTA.
template <Layout kLayout>
__device__ __forceinline__ void FillQuotientTable(float2* table, float global) {
  for (uint32_t c = threadIdx.x; c < 128; c += kThreads) {
    const nvfp4::Quotient q = nvfp4::MakeQuotient(nvfp4::BlockDivisor(c, global, kLayout));
    table[c] = make_float2(q.d, q.y);
  }
}

// Sum over the 8 nibbles of kE2M1BiasedBits << 4e: what packing the biased
// floats' bits by multiply-adds leaves on top of the codes.
constexpr uint32_t kPackBias = nvfp4::kE2M1BiasedBits * 0x11111111u;

// Codes of the 16 elements packed as the format stores them (element e at
// bits 4e of the little-endian 8 bytes); sign 8 for x < 0 (not for -0.0).
// kFast: the block's quotients by FastQuotient, else by division.
template <bool kFast>
__device__ __forceinline__ uint2 PackCodes(const float (&x)[kBlockSize], nvfp4::Quotient q) {
  uint32_t w[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    uint32_t acc = 0;
#pragma unroll
    for (int e = 8 * half + 7; e >= 8 * half; --e) {
      const float ax = fabsf(x[e]);
      const float a = kFast ? nvfp4::FastQuotient(ax, q) : nvfp4::DivRn(ax, q.d);
      const float sign = x[e] < 0.0f ? 8.0f : 0.0f;
      const float biased = __fadd_rn(nvfp4::E2M1MagnitudeBiased(a), sign);  // exact
      acc = acc * 16u + __float_as_uint(biased);
    }
    w[half] = acc - kPackBias;
  }
  return make_uint2(w[0], w[1]);
}

// Blocks per thread and group: all their loads are issued together (and,
// in a CTA's first group, before it builds its quotient table).
constexpr int kBlocksPerThread = 4;

// Encodes block k (loaded as `raw`).
template <Src kSrc, Layout kLayout>
__device__ __forceinline__ void EncodeBlock(const Args& a, const float2* table,
                                            const Raw16<kSrc>& raw, int64_t k) {
  float x[kBlockSize];
#pragma unroll
  for (int e = 0; e < kBlockSize; ++e) x[e] = source_bits::Element<kSrc>(raw, e);
  const uint32_t mbits = source_bits::MaxMagnitudeBits<kSrc>(raw);
  if (source_bits::NonFiniteBits<kSrc>(mbits)) {
    int bad = kBlockSize;
#pragma unroll
    for (int e = kBlockSize - 1; e >= 0; --e) {
      if (!isfinite(x[e])) bad = e;
    }
    atomicMin(a.first_bad, static_cast<unsigned long long>(k * kBlockSize + bad));
    return;
  }
  const float b = source_bits::MagnitudeToFloat<kSrc>(mbits);
  const uint32_t code = nvfp4::BlockScaleCode(b, a.global, a.div, a.div_reciprocal, kLayout);
  a.scales[k] = static_cast<uint8_t>(code);
  const float2 dy = table[code];
  const nvfp4::Quotient q{dy.x, dy.y};
  __stcs(a.packed + k, nvfp4::Fast(q, b) ? PackCodes<true>(x, q) : PackCodes<false>(x, q));
}

// CTAs per SM the register allocation must allow (64 registers for BF16,
// which fit without spilling; the other sources need more).
template <Src kSrc>
constexpr int kMinCtasPerSm = kSrc == Src::kBF16  ? 4
                              : kSrc == Src::kF16 ? 3
                                                  : 2;

// Thread t of a CTA encodes, per group g of kThreads * kBlocksPerThread
// blocks, blocks g * kThreads * kBlocksPerThread + t + i * kThreads,
// i < kBlocksPerThread (a warp's load instructions each cover 32 adjacent
// blocks). CTAs stride over the groups (a grid of the CTAs that fit on the
// device at once), so each builds its quotient table once, overlapped with
// its first group's loads.
template <Src kSrc, Layout kLayout>
__global__ void __launch_bounds__(kThreads, kMinCtasPerSm<kSrc>) EncodeBlocksKernel(Args a) {
  __shared__ float2 table[128];
  constexpr int64_t kPerCta = int64_t{kThreads} * kBlocksPerThread;
  const int64_t groups = (a.blocks + kPerCta - 1) / kPerCta;
  for (int64_t g = blockIdx.x; g < groups; g += gridDim.x) {
    const int64_t first = g * kPerCta + threadIdx.x;
    Raw16<kSrc> raw[kBlocksPerThread];
#pragma unroll
    for (int i = 0; i < kBlocksPerThread; ++i) {
      const int64_t k = first + i * kThreads;
      if (k < a.blocks) raw[i] = source_bits::LoadRaw16<kSrc>(a.input, k * kBlockSize);
    }
    if (g == blockIdx.x) {
      FillQuotientTable<kLayout>(table, a.global);
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < kBlocksPerThread; ++i) {
      const int64_t k = first + i * kThreads;
      if (k < a.blocks) EncodeBlock<kSrc, kLayout>(a, table, raw[i], k);
    }
  }
}

// The CTAs of `kernel` that fit on the current device at once.
template <typename Kernel>
int64_t ResidentCtas(Kernel kernel) {
  int device = 0, sms = 0, per_sm = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0);
  return int64_t{std::max(1, sms)} * std::max(1, per_sm);
}

template <Src kSrc>
cudaError_t LaunchSrc(const Args& a, Layout layout, cudaStream_t stream) {
  constexpr int64_t kPerCta = int64_t{kThreads} * kBlocksPerThread;
  const int64_t groups = (a.blocks + kPerCta - 1) / kPerCta;
  if (layout == Layout::kModelOpt) {
    static const int64_t resident = ResidentCtas(EncodeBlocksKernel<kSrc, Layout::kModelOpt>);
    EncodeBlocksKernel<kSrc, Layout::kModelOpt>
        <<<static_cast<unsigned>(std::min(groups, resident)), kThreads, 0, stream>>>(a);
  } else {
    static const int64_t resident =
        ResidentCtas(EncodeBlocksKernel<kSrc, Layout::kCompressedTensors>);
    EncodeBlocksKernel<kSrc, Layout::kCompressedTensors>
        <<<static_cast<unsigned>(std::min(groups, resident)), kThreads, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

class Nvfp4DeviceKernelImpl final : public DeviceKernel {
 public:
  bool Supports(const FormatParams& p, int64_t cols, DType source) const override {
    return IsFloatWeightType(source) && cols % kBlockSize == 0 && Nvfp4GlobalScale(p).ok();
  }

  std::vector<DevicePartPlan> Plan(const FormatParams& p,
                                   const EncodedWeight& shapes) const override {
    // Allocate() order: packed, block scales (per row), tensor scale (host).
    std::vector<DevicePartPlan> plan(shapes.parts.size());
    for (size_t i = 0; i < plan.size() && i < 2; ++i) plan[i].rows_per_index = 1;
    return plan;
  }

  void FillHostParts(const FormatParams& p, int64_t rows, int64_t cols,
                     EncodedWeight* e) const override {
    absl::StatusOr<nvfp4::Layout> layout = Nvfp4LayoutOf(p);
    absl::StatusOr<float> global = Nvfp4GlobalScale(p);
    if (!layout.ok() || !global.ok()) return;  // Supports() rules these out
    if (Tensor* t = e->Find(Nvfp4Parts(*layout).global)) *t->as<float>() = *global;
  }

  cudaError_t Launch(const DeviceEncodeArgs& d) const override {
    const FormatParams& p = *d.params;
    absl::StatusOr<nvfp4::Layout> layout = Nvfp4LayoutOf(p);
    absl::StatusOr<float> global = Nvfp4GlobalScale(p);
    if (!layout.ok() || !global.ok() || d.parts.size() < 2 || d.cols % kBlockSize != 0) {
      return cudaErrorInvalidValue;
    }
    Args a;
    a.blocks = d.rows * (d.cols / kBlockSize);
    a.global = *global;
    a.div = nvfp4::MulRn(nvfp4::kE2M1Max, a.global);
    a.div_reciprocal = nvfp4::DivRn(1.0f, a.div);
    a.input = d.input;
    a.packed = static_cast<uint2*>(d.parts[0]);
    a.scales = static_cast<uint8_t*>(d.parts[1]);
    a.first_bad = d.first_bad;
    if (a.blocks == 0) return cudaSuccess;
    switch (d.source) {
      case DType::kF32:
        return LaunchSrc<Src::kF32>(a, *layout, d.stream);
      case DType::kF16:
        return LaunchSrc<Src::kF16>(a, *layout, d.stream);
      case DType::kBF16:
        return LaunchSrc<Src::kBF16>(a, *layout, d.stream);
      default:
        return cudaErrorInvalidValue;
    }
  }
};

}  // namespace

const DeviceKernel& Nvfp4DeviceKernel() {
  static const Nvfp4DeviceKernelImpl* kernel = new Nvfp4DeviceKernelImpl();
  return *kernel;
}

}  // namespace quantd
