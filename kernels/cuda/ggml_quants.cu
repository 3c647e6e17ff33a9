#include <cuda_runtime.h>

#include <cstdint>

#include "core/gguf/ggml_blocks.h"
#include "core/gguf/ggml_format.h"
#include "core/gguf/ggml_quants.h"
#include "core/gguf/ggml_quants_k_impl.h"
#include "core/gguf/ggml_quants_legacy_impl.h"
#include "kernels/cuda/ggml_quants.cuh"

namespace quantd {
namespace {

using namespace ggml;  // NOLINT: the shared block functions

constexpr int kThreads = 128;

enum class Src { kF32, kF16, kBF16 };

template <Src kSrc>
__device__ __forceinline__ float LoadElement(const void* in, int64_t i) {
  if constexpr (kSrc == Src::kF32) {
    return __ldg(static_cast<const float*>(in) + i);
  } else {
    const uint16_t h = __ldg(static_cast<const unsigned short*>(in) + i);
    return kSrc == Src::kBF16 ? Bf16ToFloat(h) : F16ToFloat(h);
  }
}

__device__ __forceinline__ bool NonFinite(float v) {
  return (__float_as_uint(v) & 0x7fffffffu) >= 0x7f800000u;
}

// ------------------------------------------------------------ float types
template <Src kSrc, GgmlType kType>
__global__ void __launch_bounds__(256)
    FloatKernel(const void* in, int64_t n, uint8_t* out, unsigned long long* first_bad) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float v = LoadElement<kSrc>(in, i);
  if (NonFinite(v)) {
    atomicMin(first_bad, static_cast<unsigned long long>(i));
    return;
  }
  if constexpr (kType == GgmlType::kF32) {
    reinterpret_cast<float*>(out)[i] = v;
  } else if constexpr (kType == GgmlType::kF16) {
    reinterpret_cast<uint16_t*>(out)[i] = FloatToF16(v);
  } else {
    reinterpret_cast<uint16_t*>(out)[i] = FloatToBf16(v);
  }
}

// ----------------------------------------------------------- legacy types
template <class Block, void (*kRef)(const float*, Block*),
          void (*kImpl)(const float*, const float*, float, Block*)>
struct LegacyOp {
  using BlockType = Block;
  __device__ static void Run(const float* x, const float* qw, float sigma2, Block* y) {
    if constexpr (kImpl != nullptr) {
      if (qw != nullptr) {
        kImpl(x, qw, sigma2, y);
        return;
      }
    }
    kRef(x, y);
  }
};

// RowSigma2 (the legacy types' importance weighting) of each row, one
// thread per row, summing in the reference's order.
template <Src kSrc>
__global__ void __launch_bounds__(kThreads)
    RowSigma2Kernel(const void* in, int64_t rows, int64_t cols, float* sigma2) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  float s = 0;
  for (int64_t i = 0; i < cols; ++i) {
    const float v = LoadElement<kSrc>(in, r * cols + i);
    s += v * v;
  }
  sigma2[r] = s / static_cast<float>(cols);
}

// qw: null, or the importance of each column (device); sigma2: each row's
// RowSigma2 when qw is given.
template <Src kSrc, class Op>
__global__ void __launch_bounds__(kThreads)
    LegacyKernel(const void* in, int64_t blocks, int64_t cols, const float* qw, const float* sigma2,
                 uint8_t* out, unsigned long long* first_bad) {
  using Block = typename Op::BlockType;
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= blocks) return;
  float x[32];
  int bad = -1;
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    x[j] = LoadElement<kSrc>(in, b * 32 + j);
    if (bad < 0 && NonFinite(x[j])) bad = j;
  }
  if (bad >= 0) {
    atomicMin(first_bad, static_cast<unsigned long long>(b * 32 + bad));
    return;
  }
  // Rows are whole blocks and every block size is even, so blocks are
  // 2-byte aligned as their ggml_half members need.
  const int64_t row_blocks = cols / 32;
  Op::Run(x, qw == nullptr ? nullptr : qw + (b % row_blocks) * 32,
          qw == nullptr ? 0.0f : sigma2[b / row_blocks],
          reinterpret_cast<Block*>(out + b * static_cast<int64_t>(sizeof(Block))));
}

// --------------------------------------------------------------- k-quants
// kQ2kSigma: the importance weighting's sigma2 as Q2_K computes it (see
// KSigma2).
template <class Block, int kSub, bool kQ2kSigma,
          void (*kSubblock)(const float*, const float*, float, int, KScratch*),
          void (*kFinish)(const float*, const float*, KScratch*, Block*)>
struct KOp {
  using BlockType = Block;
  static constexpr int kSubblocks = kSub;
  __device__ static float Sigma2(const float* x) { return KSigma2(kQ2kSigma, x); }
  __device__ static void Subblock(const float* x, const float* qw, float sigma2, int j,
                                  KScratch* s) {
    kSubblock(x, qw, sigma2, j, s);
  }
  __device__ static void Finish(const float* x, const float* qw, KScratch* s, Block* y) {
    kFinish(x, qw, s, y);
  }
};

__device__ void Q4KSubblockDev(const float* x, const float* qw, float sigma2, int j, KScratch* s) {
  Q45KSubblock(15, x, qw, sigma2, j, s);
}
__device__ void Q5KSubblockDev(const float* x, const float* qw, float sigma2, int j, KScratch* s) {
  Q45KSubblock(31, x, qw, sigma2, j, s);
}

template <class Op>
constexpr int kSuperBlocksPerCta = kThreads / Op::kSubblocks;

// qw: null, or the importance of each column (device); a super-block's
// sigma2 is computed from its staged values by one thread, as the reference
// does before its sub-blocks.
template <Src kSrc, class Op>
__global__ void __launch_bounds__(kThreads)
    KKernel(const void* in, int64_t super_blocks, int64_t cols, const float* qw, uint8_t* out,
            unsigned long long* first_bad) {
  using Block = typename Op::BlockType;
  constexpr int kSb = kSuperBlocksPerCta<Op>;
  __shared__ float xs[kSb][kQK_K];
  __shared__ KScratch scratch[kSb];
  __shared__ int bad[kSb];
  __shared__ float sigma2[kSb];
  const int64_t first_sb = static_cast<int64_t>(blockIdx.x) * kSb;
  const int64_t first_elem = first_sb * kQK_K;
  const int64_t n_elems = (super_blocks - first_sb < kSb ? super_blocks - first_sb : kSb) * kQK_K;
  if (threadIdx.x < kSb) bad[threadIdx.x] = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < kSb * kQK_K; i += kThreads) {
    if (i < n_elems) {
      const float v = LoadElement<kSrc>(in, first_elem + i);
      xs[i / kQK_K][i % kQK_K] = v;
      if (NonFinite(v)) {
        bad[i / kQK_K] = 1;
        atomicMin(first_bad, static_cast<unsigned long long>(first_elem + i));
      }
    }
  }
  __syncthreads();
  const int s = threadIdx.x / Op::kSubblocks;
  const int j = threadIdx.x % Op::kSubblocks;
  const bool active = first_sb + s < super_blocks && !bad[s];
  const float* qw_s = qw == nullptr ? nullptr : qw + ((first_sb + s) * kQK_K) % cols;
  if (qw != nullptr) {
    if (active && j == 0) sigma2[s] = Op::Sigma2(xs[s]);
    __syncthreads();
  }
  if (active) Op::Subblock(xs[s], qw_s, qw == nullptr ? 0.0f : sigma2[s], j, &scratch[s]);
  __syncthreads();
  if (active && j == 0) {
    Op::Finish(
        xs[s], qw_s, &scratch[s],
        reinterpret_cast<Block*>(out + (first_sb + s) * static_cast<int64_t>(sizeof(Block))));
  }
}

// ---------------------------------------------------------------- launch
using Q4_0Op = LegacyOp<BlockQ4_0, QuantizeQ4_0Ref, QuantizeQ4_0Impl>;
using Q4_1Op = LegacyOp<BlockQ4_1, QuantizeQ4_1Ref, QuantizeQ4_1Impl>;
using Q5_0Op = LegacyOp<BlockQ5_0, QuantizeQ5_0Ref, QuantizeQ5_0Impl>;
using Q5_1Op = LegacyOp<BlockQ5_1, QuantizeQ5_1Ref, QuantizeQ5_1Impl>;
using Q8_0Op = LegacyOp<BlockQ8_0, QuantizeQ8_0Ref, nullptr>;
using Q2KOp = KOp<BlockQ2_K, 16, true, Q2KSubblock, Q2KFinish>;
using Q3KOp = KOp<BlockQ3_K, 16, false, Q3KSubblock, Q3KFinish>;
using Q4KOp = KOp<BlockQ4_K, 8, false, Q4KSubblockDev, Q4KFinish>;
using Q5KOp = KOp<BlockQ5_K, 8, false, Q5KSubblockDev, Q5KFinish>;
using Q6KOp = KOp<BlockQ6_K, 16, false, Q6KSubblock, Q6KFinish>;

// qw: null or the device copy of the importance (cols values); sigma2: room
// for `rows` floats when qw is given.
template <Src kSrc>
cudaError_t LaunchSrc(GgmlType t, const void* in, int64_t rows, int64_t cols, const float* qw,
                      float* sigma2, uint8_t* out, unsigned long long* first_bad,
                      cudaStream_t stream) {
  const int64_t n = rows * cols;
  const auto grid = [](int64_t items, int64_t per) {
    return static_cast<unsigned>((items + per - 1) / per);
  };
  const int64_t blocks = n / 32, super_blocks = n / kQK_K;
  switch (t) {
    case GgmlType::kF32:
      FloatKernel<kSrc, GgmlType::kF32><<<grid(n, 256), 256, 0, stream>>>(in, n, out, first_bad);
      break;
    case GgmlType::kF16:
      FloatKernel<kSrc, GgmlType::kF16><<<grid(n, 256), 256, 0, stream>>>(in, n, out, first_bad);
      break;
    case GgmlType::kBF16:
      FloatKernel<kSrc, GgmlType::kBF16><<<grid(n, 256), 256, 0, stream>>>(in, n, out, first_bad);
      break;
#define QUANTD_LEGACY(Type, Op)                                                    \
  case GgmlType::Type:                                                             \
    if (qw != nullptr) {                                                           \
      RowSigma2Kernel<kSrc>                                                        \
          <<<grid(rows, kThreads), kThreads, 0, stream>>>(in, rows, cols, sigma2); \
    }                                                                              \
    LegacyKernel<kSrc, Op><<<grid(blocks, kThreads), kThreads, 0, stream>>>(       \
        in, blocks, cols, qw, sigma2, out, first_bad);                             \
    break;
      QUANTD_LEGACY(kQ4_0, Q4_0Op)
      QUANTD_LEGACY(kQ4_1, Q4_1Op)
      QUANTD_LEGACY(kQ5_0, Q5_0Op)
      QUANTD_LEGACY(kQ5_1, Q5_1Op)
      QUANTD_LEGACY(kQ8_0, Q8_0Op)
#undef QUANTD_LEGACY
#define QUANTD_K(Type, Op)                                                                  \
  case GgmlType::Type:                                                                      \
    KKernel<kSrc, Op><<<grid(super_blocks, kSuperBlocksPerCta<Op>), kThreads, 0, stream>>>( \
        in, super_blocks, cols, qw, out, first_bad);                                        \
    break;
      QUANTD_K(kQ2_K, Q2KOp)
      QUANTD_K(kQ3_K, Q3KOp)
      QUANTD_K(kQ4_K, Q4KOp)
      QUANTD_K(kQ5_K, Q5KOp)
      QUANTD_K(kQ6_K, Q6KOp)
#undef QUANTD_K
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

class GgmlKernel final : public DeviceKernel {
 public:
  bool Supports(const FormatParams& p, int64_t cols, DType source) const override {
    absl::StatusOr<GgmlType> t = GgmlFormatType(p);
    if (!t.ok() || !IsFloatWeightType(source)) return false;
    return RowBytes(*t, cols).ok();
  }

  std::vector<DevicePartPlan> Plan(const FormatParams& p,
                                   const EncodedWeight& shapes) const override {
    std::vector<DevicePartPlan> plan(shapes.parts.size());
    for (size_t i = 0; i < shapes.parts.size(); ++i) {
      if (shapes.parts[i].suffix == kGgmlDataSuffix) plan[i].rows_per_index = 1;
    }
    return plan;
  }

  void FillHostParts(const FormatParams& p, int64_t rows, int64_t cols,
                     EncodedWeight* e) const override {}

  cudaError_t Launch(const DeviceEncodeArgs& d) const override {
    absl::StatusOr<GgmlType> t = GgmlFormatType(*d.params);
    if (!t.ok() || d.parts.empty() || d.parts[0] == nullptr) return cudaErrorInvalidValue;
    const int64_t n = d.rows * d.cols;
    if (n == 0) return cudaSuccess;
    uint8_t* out = static_cast<uint8_t*>(d.parts[0]);
    // With an importance matrix: a stream-ordered device copy of it (cols
    // floats, copied from pageable memory before the call returns) and room
    // for the legacy types' per-row sigma2, freed in stream order.
    float* scratch = nullptr;
    const bool weighted = d.params->importance != nullptr && GgmlUsesImportance(*t);
    if (weighted) {
      const size_t bytes = static_cast<size_t>(d.cols + d.rows) * sizeof(float);
      cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&scratch), bytes, d.stream);
      if (e != cudaSuccess) return e;
      e = cudaMemcpyAsync(scratch, d.params->importance,
                          static_cast<size_t>(d.cols) * sizeof(float), cudaMemcpyHostToDevice,
                          d.stream);
      if (e != cudaSuccess) {
        cudaFreeAsync(scratch, d.stream);
        return e;
      }
    }
    const float* qw = scratch;
    float* sigma2 = weighted ? scratch + d.cols : nullptr;
    cudaError_t e = cudaErrorInvalidValue;
    switch (d.source) {
      case DType::kF32:
        e = LaunchSrc<Src::kF32>(*t, d.input, d.rows, d.cols, qw, sigma2, out, d.first_bad,
                                 d.stream);
        break;
      case DType::kF16:
        e = LaunchSrc<Src::kF16>(*t, d.input, d.rows, d.cols, qw, sigma2, out, d.first_bad,
                                 d.stream);
        break;
      case DType::kBF16:
        e = LaunchSrc<Src::kBF16>(*t, d.input, d.rows, d.cols, qw, sigma2, out, d.first_bad,
                                  d.stream);
        break;
      default:
        break;
    }
    if (scratch != nullptr) {
      const cudaError_t f = cudaFreeAsync(scratch, d.stream);
      if (e == cudaSuccess) e = f;
    }
    return e;
  }
};

}  // namespace

const DeviceKernel& GgmlDeviceKernel() {
  static const GgmlKernel* kernel = new GgmlKernel();
  return *kernel;
}

}  // namespace quantd
