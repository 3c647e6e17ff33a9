// ggml's float and 32-element block types (F32, F16, BF16, Q4_0, Q4_1,
// Q5_0, Q5_1, Q8_0), and the QuantizeGgml / DequantizeGgml entry points.
//
// No contraction into FMA anywhere in this file: ggml's reference does
// plain float multiplies and adds (see ggml_quants_math.h).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/gguf/ggml_blocks.h"
#include "core/gguf/ggml_quants.h"
#include "core/gguf/ggml_quants_legacy_impl.h"
#include "core/tensor/float_bits.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ggml blocks are little-endian; this code stores them with host byte order"
#endif

namespace quantd {
namespace ggml {
namespace {

// Quantizes one row block by block: each block is built in a local struct
// and copied out, so `out` needs no alignment.
template <class Block, void (*kRef)(const float*, Block*),
          void (*kImpl)(const float*, const float*, float, Block*)>
void QuantizeRow(const float* x, int64_t cols, const float* importance, uint8_t* out) {
  constexpr int kQK = 32;
  const int64_t nb = cols / kQK;
  Block b;
  if (importance == nullptr || kImpl == nullptr) {
    if (reinterpret_cast<uintptr_t>(out) % alignof(Block) == 0) {
      // The usual case: blocks written in place, as ggml does (building
      // each in `b` and copying it out cost Q4_1 a store-forwarding stall
      // per block).
      Block* y = reinterpret_cast<Block*>(out);
      for (int64_t i = 0; i < nb; ++i) kRef(x + i * kQK, y + i);
      return;
    }
    for (int64_t i = 0; i < nb; ++i) {
      kRef(x + i * kQK, &b);
      std::memcpy(out + i * sizeof(Block), &b, sizeof(Block));
    }
    return;
  }
  const float sigma2 = RowSigma2(x, cols);
  for (int64_t i = 0; i < nb; ++i) {
    kImpl(x + i * kQK, importance + i * kQK, sigma2, &b);
    std::memcpy(out + i * sizeof(Block), &b, sizeof(Block));
  }
}

template <class Block>
Block LoadBlock(const uint8_t* p) {
  Block b;
  std::memcpy(&b, p, sizeof(Block));
  return b;
}

// dequantize_row_<type>, one block of 32 into y.
void DequantizeBlock(GgmlType t, const uint8_t* p, float* y) {
  constexpr int qk = 32;
  switch (t) {
    case GgmlType::kQ4_0: {
      const auto b = LoadBlock<BlockQ4_0>(p);
      const float d = FromHalf(b.d);
      for (int j = 0; j < qk / 2; ++j) {
        const int x0 = (b.qs[j] & 0x0F) - 8;
        const int x1 = (b.qs[j] >> 4) - 8;
        y[j + 0] = static_cast<float>(x0) * d;
        y[j + qk / 2] = static_cast<float>(x1) * d;
      }
      break;
    }
    case GgmlType::kQ4_1: {
      const auto b = LoadBlock<BlockQ4_1>(p);
      const float d = FromHalf(b.d);
      const float m = FromHalf(b.m);
      for (int j = 0; j < qk / 2; ++j) {
        const int x0 = b.qs[j] & 0x0F;
        const int x1 = b.qs[j] >> 4;
        y[j + 0] = static_cast<float>(x0) * d + m;
        y[j + qk / 2] = static_cast<float>(x1) * d + m;
      }
      break;
    }
    case GgmlType::kQ5_0: {
      const auto b = LoadBlock<BlockQ5_0>(p);
      const float d = FromHalf(b.d);
      const uint32_t qh = LoadQh(b.qh);
      for (int j = 0; j < qk / 2; ++j) {
        const uint8_t xh_0 = static_cast<uint8_t>(((qh >> (j + 0)) << 4) & 0x10);
        const uint8_t xh_1 = static_cast<uint8_t>(((qh >> (j + 12))) & 0x10);
        const int32_t x0 = ((b.qs[j] & 0x0F) | xh_0) - 16;
        const int32_t x1 = ((b.qs[j] >> 4) | xh_1) - 16;
        y[j + 0] = static_cast<float>(x0) * d;
        y[j + qk / 2] = static_cast<float>(x1) * d;
      }
      break;
    }
    case GgmlType::kQ5_1: {
      const auto b = LoadBlock<BlockQ5_1>(p);
      const float d = FromHalf(b.d);
      const float m = FromHalf(b.m);
      const uint32_t qh = LoadQh(b.qh);
      for (int j = 0; j < qk / 2; ++j) {
        const uint8_t xh_0 = static_cast<uint8_t>(((qh >> (j + 0)) << 4) & 0x10);
        const uint8_t xh_1 = static_cast<uint8_t>(((qh >> (j + 12))) & 0x10);
        const int x0 = (b.qs[j] & 0x0F) | xh_0;
        const int x1 = (b.qs[j] >> 4) | xh_1;
        y[j + 0] = static_cast<float>(x0) * d + m;
        y[j + qk / 2] = static_cast<float>(x1) * d + m;
      }
      break;
    }
    default: {  // kQ8_0
      const auto b = LoadBlock<BlockQ8_0>(p);
      const float d = FromHalf(b.d);
      for (int j = 0; j < qk; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b.qs[j])) * d;
      break;
    }
  }
}

size_t LegacyBlockBytes(GgmlType t) {
  switch (t) {
    case GgmlType::kQ4_0:
      return sizeof(BlockQ4_0);
    case GgmlType::kQ4_1:
      return sizeof(BlockQ4_1);
    case GgmlType::kQ5_0:
      return sizeof(BlockQ5_0);
    case GgmlType::kQ5_1:
      return sizeof(BlockQ5_1);
    default:
      return sizeof(BlockQ8_0);
  }
}

absl::Status CheckSizes(GgmlType t, int64_t rows, int64_t cols) {
  if (!CanEncodeGgml(t)) {
    return absl::InvalidArgumentError(
        absl::StrCat("quantd has no quantizer for ggml type ", std::string(GgmlTypeName(t))));
  }
  if (rows < 0) return absl::InvalidArgumentError(absl::StrCat("negative row count ", rows));
  absl::StatusOr<int64_t> row_bytes = RowBytes(t, cols);
  return row_bytes.status();
}

}  // namespace

void QuantizeLegacyRows(GgmlType t, const float* x, int64_t rows, int64_t cols,
                        const float* importance, uint8_t* out) {
  const int64_t row_bytes = cols / 32 * static_cast<int64_t>(LegacyBlockBytes(t));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    uint8_t* o = out + r * row_bytes;
    switch (t) {
      case GgmlType::kQ4_0:
        QuantizeRow<BlockQ4_0, QuantizeQ4_0Ref, QuantizeQ4_0Impl>(row, cols, importance, o);
        break;
      case GgmlType::kQ4_1:
        QuantizeRow<BlockQ4_1, QuantizeQ4_1Ref, QuantizeQ4_1Impl>(row, cols, importance, o);
        break;
      case GgmlType::kQ5_0:
        QuantizeRow<BlockQ5_0, QuantizeQ5_0Ref, QuantizeQ5_0Impl>(row, cols, importance, o);
        break;
      case GgmlType::kQ5_1:
        QuantizeRow<BlockQ5_1, QuantizeQ5_1Ref, QuantizeQ5_1Impl>(row, cols, importance, o);
        break;
      default:  // Q8_0: quantize_q8_0 ignores quant_weights
        QuantizeRow<BlockQ8_0, QuantizeQ8_0Ref, nullptr>(row, cols, nullptr, o);
        break;
    }
  }
}

void DequantizeLegacyRows(GgmlType t, const uint8_t* data, int64_t rows, int64_t cols, float* out) {
  const size_t block_bytes = LegacyBlockBytes(t);
  const int64_t blocks = rows * (cols / 32);
  for (int64_t i = 0; i < blocks; ++i) DequantizeBlock(t, data + i * block_bytes, out + i * 32);
}

}  // namespace ggml

bool GgmlUsesImportance(GgmlType t) {
  switch (t) {
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_0:
    case GgmlType::kQ5_1:
    case GgmlType::kQ2_K:
    case GgmlType::kQ3_K:
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
    case GgmlType::kQ6_K:
      return true;
    default:
      return false;
  }
}

absl::Status QuantizeGgml(GgmlType t, const float* x, int64_t rows, int64_t cols,
                          const float* importance, uint8_t* out) {
  if (absl::Status s = ggml::CheckSizes(t, rows, cols); !s.ok()) return s;
  const int64_t n = rows * cols;
  switch (t) {
    case GgmlType::kF32:
      if (n > 0) std::memcpy(out, x, static_cast<size_t>(n) * 4);
      return absl::OkStatus();
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = FloatToF16(x[i]);  // ggml_compute_fp32_to_fp16: RNE
        std::memcpy(out + 2 * i, &h, 2);
      }
      return absl::OkStatus();
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = FloatToBf16(x[i]);  // ggml_compute_fp32_to_bf16: RNE
        std::memcpy(out + 2 * i, &h, 2);
      }
      return absl::OkStatus();
    default:
      break;
  }
  if (!GgmlUsesImportance(t)) importance = nullptr;
  if (ggml::IsKQuant(t)) {
    ggml::QuantizeKRows(t, x, rows, cols, importance, out);
  } else {
    ggml::QuantizeLegacyRows(t, x, rows, cols, importance, out);
  }
  return absl::OkStatus();
}

absl::Status DequantizeGgml(GgmlType t, const uint8_t* data, int64_t rows, int64_t cols,
                            float* out) {
  if (absl::Status s = ggml::CheckSizes(t, rows, cols); !s.ok()) return s;
  const int64_t n = rows * cols;
  switch (t) {
    case GgmlType::kF32:
      if (n > 0) std::memcpy(out, data, static_cast<size_t>(n) * 4);
      return absl::OkStatus();
    case GgmlType::kF16:
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, data + 2 * i, 2);
        out[i] = t == GgmlType::kF16 ? F16ToFloat(h) : Bf16ToFloat(h);
      }
      return absl::OkStatus();
    default:
      break;
  }
  if (ggml::IsKQuant(t)) {
    ggml::DequantizeKRows(t, data, rows, cols, out);
  } else {
    ggml::DequantizeLegacyRows(t, data, rows, cols, out);
  }
  return absl::OkStatus();
}

}  // namespace quantd
