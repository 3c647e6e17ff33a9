// ggml's k-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): rows of 256-element
// super-blocks quantized with the two phases of ggml_quants_k_impl.h, and
// ggml's dequantize_row_<type>.
//
// No contraction into FMA anywhere in this file (see ggml_quants_math.h).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <cstring>
#include <type_traits>

#include "core/gguf/ggml_blocks.h"
#include "core/gguf/ggml_quants.h"
#include "core/gguf/ggml_quants_k_impl.h"

namespace quantd {
namespace ggml {
namespace {

template <class Block, int kSubblocks,
          void (*kSubblock)(const float*, const float*, float, int, KScratch*),
          void (*kFinish)(const float*, const float*, KScratch*, Block*)>
void QuantizeRow(const float* x, int64_t cols, const float* importance, bool q2k_sigma,
                 uint8_t* out) {
  KScratch s;
  Block b;
  const int64_t nb = cols / kQK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float* xb = x + i * kQK_K;
    const float* qw = importance == nullptr ? nullptr : importance + i * kQK_K;
    const float sigma2 = qw == nullptr ? 0.0f : KSigma2(q2k_sigma, xb);
    for (int j = 0; j < kSubblocks; ++j) kSubblock(xb, qw, sigma2, j, &s);
    kFinish(xb, qw, &s, &b);
    std::memcpy(out + i * sizeof(Block), &b, sizeof(Block));
  }
}

void Q4KSubblock(const float* x, const float* qw, float sigma2, int j, KScratch* s) {
  Q45KSubblock(15, x, qw, sigma2, j, s);
}
void Q5KSubblock(const float* x, const float* qw, float sigma2, int j, KScratch* s) {
  Q45KSubblock(31, x, qw, sigma2, j, s);
}

template <class Block>
Block LoadBlock(const uint8_t* p) {
  Block b;
  std::memcpy(&b, p, sizeof(Block));
  return b;
}

void DequantizeQ2K(const uint8_t* p, float* y) {
  const auto b = LoadBlock<BlockQ2_K>(p);
  const float d = FromHalf(b.d);
  const float min = FromHalf(b.dmin);
  const uint8_t* q = b.qs;
  int is = 0;
  for (int n = 0; n < kQK_K; n += 128) {
    int shift = 0;
    for (int j = 0; j < 4; ++j) {
      uint8_t sc = b.scales[is++];
      float dl = d * static_cast<float>(sc & 0xF), ml = min * static_cast<float>(sc >> 4);
      for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((q[l] >> shift) & 3) - ml;
      sc = b.scales[is++];
      dl = d * static_cast<float>(sc & 0xF);
      ml = min * static_cast<float>(sc >> 4);
      for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((q[l + 16] >> shift) & 3) - ml;
      shift += 2;
    }
    q += 32;
  }
}

void DequantizeQ3K(const uint8_t* p, float* y) {
  const auto b = LoadBlock<BlockQ3_K>(p);
  const uint32_t kmask1 = 0x03030303;
  const uint32_t kmask2 = 0x0f0f0f0f;
  uint32_t aux[4];
  std::memcpy(aux, b.scales, 12);
  const uint32_t tmp = aux[2];
  aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
  aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
  aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
  aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
  int8_t scales[16];
  std::memcpy(scales, aux, 16);
  const float d_all = FromHalf(b.d);
  const uint8_t* q = b.qs;
  const uint8_t* hm = b.hmask;
  uint8_t m = 1;
  int is = 0;
  for (int n = 0; n < kQK_K; n += 128) {
    int shift = 0;
    for (int j = 0; j < 4; ++j) {
      float dl = d_all * static_cast<float>(scales[is++] - 32);
      for (int l = 0; l < 16; ++l) {
        *y++ = dl * static_cast<float>(((q[l + 0] >> shift) & 3) - ((hm[l + 0] & m) ? 0 : 4));
      }
      dl = d_all * static_cast<float>(scales[is++] - 32);
      for (int l = 0; l < 16; ++l) {
        *y++ = dl * static_cast<float>(((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
      }
      shift += 2;
      m = static_cast<uint8_t>(m << 1);
    }
    q += 32;
  }
}

// Q4_K (kBits 4) and Q5_K (kBits 5).
template <int kBits>
void DequantizeQ45K(const uint8_t* p, float* y) {
  using Block = std::conditional_t<kBits == 4, BlockQ4_K, BlockQ5_K>;
  const auto b = LoadBlock<Block>(p);
  const float d = FromHalf(b.d);
  const float min = FromHalf(b.dmin);
  const uint8_t* ql = b.qs;
  int is = 0;
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0; j < kQK_K; j += 64) {
    uint8_t sc, m;
    GetScaleMinK4(is + 0, b.scales, &sc, &m);
    const float d1 = d * static_cast<float>(sc), m1 = min * static_cast<float>(m);
    GetScaleMinK4(is + 1, b.scales, &sc, &m);
    const float d2 = d * static_cast<float>(sc), m2 = min * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) {
      int v = ql[l] & 0xF;
      if constexpr (kBits == 5) v += (b.qh[l] & u1) ? 16 : 0;
      *y++ = d1 * static_cast<float>(v) - m1;
    }
    for (int l = 0; l < 32; ++l) {
      int v = ql[l] >> 4;
      if constexpr (kBits == 5) v += (b.qh[l] & u2) ? 16 : 0;
      *y++ = d2 * static_cast<float>(v) - m2;
    }
    ql += 32;
    is += 2;
    u1 = static_cast<uint8_t>(u1 << 2);
    u2 = static_cast<uint8_t>(u2 << 2);
  }
}

void DequantizeQ6K(const uint8_t* p, float* y) {
  const auto b = LoadBlock<BlockQ6_K>(p);
  const float d = FromHalf(b.d);
  const uint8_t* ql = b.ql;
  const uint8_t* qh = b.qh;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b.scales);
  for (int n = 0; n < kQK_K; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = static_cast<int8_t>((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = static_cast<int8_t>((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l + 0] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

}  // namespace

bool IsKQuant(GgmlType t) {
  return t == GgmlType::kQ2_K || t == GgmlType::kQ3_K || t == GgmlType::kQ4_K ||
         t == GgmlType::kQ5_K || t == GgmlType::kQ6_K;
}

void QuantizeKRows(GgmlType t, const float* x, int64_t rows, int64_t cols, const float* importance,
                   uint8_t* out) {
  int64_t block_bytes = 0;
  switch (t) {
    case GgmlType::kQ2_K:
      block_bytes = sizeof(BlockQ2_K);
      break;
    case GgmlType::kQ3_K:
      block_bytes = sizeof(BlockQ3_K);
      break;
    case GgmlType::kQ4_K:
      block_bytes = sizeof(BlockQ4_K);
      break;
    case GgmlType::kQ5_K:
      block_bytes = sizeof(BlockQ5_K);
      break;
    default:
      block_bytes = sizeof(BlockQ6_K);
      break;
  }
  const int64_t row_bytes = cols / kQK_K * block_bytes;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    uint8_t* o = out + r * row_bytes;
    switch (t) {
      case GgmlType::kQ2_K:
        QuantizeRow<BlockQ2_K, 16, Q2KSubblock, Q2KFinish>(row, cols, importance, true, o);
        break;
      case GgmlType::kQ3_K:
        QuantizeRow<BlockQ3_K, 16, Q3KSubblock, Q3KFinish>(row, cols, importance, false, o);
        break;
      case GgmlType::kQ4_K:
        QuantizeRow<BlockQ4_K, 8, Q4KSubblock, Q4KFinish>(row, cols, importance, false, o);
        break;
      case GgmlType::kQ5_K:
        QuantizeRow<BlockQ5_K, 8, Q5KSubblock, Q5KFinish>(row, cols, importance, false, o);
        break;
      default:
        QuantizeRow<BlockQ6_K, 16, Q6KSubblock, Q6KFinish>(row, cols, importance, false, o);
        break;
    }
  }
}

void DequantizeKRows(GgmlType t, const uint8_t* data, int64_t rows, int64_t cols, float* out) {
  const int64_t blocks = rows * (cols / kQK_K);
  for (int64_t i = 0; i < blocks; ++i) {
    float* y = out + i * kQK_K;
    switch (t) {
      case GgmlType::kQ2_K:
        DequantizeQ2K(data + i * sizeof(BlockQ2_K), y);
        break;
      case GgmlType::kQ3_K:
        DequantizeQ3K(data + i * sizeof(BlockQ3_K), y);
        break;
      case GgmlType::kQ4_K:
        DequantizeQ45K<4>(data + i * sizeof(BlockQ4_K), y);
        break;
      case GgmlType::kQ5_K:
        DequantizeQ45K<5>(data + i * sizeof(BlockQ5_K), y);
        break;
      default:
        DequantizeQ6K(data + i * sizeof(BlockQ6_K), y);
        break;
    }
  }
}

}  // namespace ggml
}  // namespace quantd
