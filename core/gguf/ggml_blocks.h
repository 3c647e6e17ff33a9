// ggml's quantized blocks, byte for byte as ggml/src/ggml-common.h defines
// them, for the types quantd encodes. Shared by host and device code (plain
// structs of bytes: a 16-bit half is stored as its raw bits). Every struct
// is packed by construction (only uint8_t/uint16_t members, 2-byte aligned)
// and its size is asserted against ggml's formula.
//
// Elements of a block are stored in row order; which element each nibble or
// bit holds is documented per struct (and in docs/research/ggml_quants.md).
#ifndef QUANTD_CORE_GGUF_GGML_BLOCKS_H_
#define QUANTD_CORE_GGUF_GGML_BLOCKS_H_

#include <stdint.h>

namespace quantd {
namespace ggml {

// IEEE binary16 bits (ggml_half).
using Half = uint16_t;

constexpr int kQK4_0 = 32;
constexpr int kQK4_1 = 32;
constexpr int kQK5_0 = 32;
constexpr int kQK5_1 = 32;
constexpr int kQK8_0 = 32;
// Elements of a k-quant super-block.
constexpr int kQK_K = 256;
// Bytes of the packed 6-bit scales and mins of Q4_K and Q5_K.
constexpr int kKScaleSize = 12;

// x = d * (q - 8), q in [0, 15].
struct BlockQ4_0 {
  Half d;                  // delta
  uint8_t qs[kQK4_0 / 2];  // qs[j]: element j in the low nibble, j + 16 in the high
};
static_assert(sizeof(BlockQ4_0) == 2 + kQK4_0 / 2, "wrong q4_0 block size/padding");

// x = d * q + m, q in [0, 15].
struct BlockQ4_1 {
  Half d;                  // delta
  Half m;                  // min
  uint8_t qs[kQK4_1 / 2];  // as BlockQ4_0
};
static_assert(sizeof(BlockQ4_1) == 2 * 2 + kQK4_1 / 2, "wrong q4_1 block size/padding");

// x = d * (q - 16), q in [0, 31].
struct BlockQ5_0 {
  Half d;                  // delta
  uint8_t qh[4];           // bit j of the little-endian word: bit 4 of element j's q
  uint8_t qs[kQK5_0 / 2];  // low 4 bits, nibbles as BlockQ4_0
};
static_assert(sizeof(BlockQ5_0) == 2 + 4 + kQK5_0 / 2, "wrong q5_0 block size/padding");

// x = d * q + m, q in [0, 31].
struct BlockQ5_1 {
  Half d;                  // delta
  Half m;                  // min
  uint8_t qh[4];           // as BlockQ5_0
  uint8_t qs[kQK5_1 / 2];  // as BlockQ5_0
};
static_assert(sizeof(BlockQ5_1) == 2 * 2 + 4 + kQK5_1 / 2, "wrong q5_1 block size/padding");

// x = d * q, q in [-127, 127] (two's complement bytes).
struct BlockQ8_0 {
  Half d;              // delta
  uint8_t qs[kQK8_0];  // quants (int8_t in ggml)
};
static_assert(sizeof(BlockQ8_0) == 2 + kQK8_0, "wrong q8_0 block size/padding");

// 16 sub-blocks of 16: x = d * sc * q - dmin * m, q in [0, 3].
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];  // sub-block j: scale sc in the low nibble, min m in the high
  uint8_t qs[kQK_K / 4];       // 2-bit quants: qs[32 h + l] holds element 128 h + l + 32 s
                               // in bits 2s..2s+1 (s = 0..3)
  Half d;                      // super-block scale for quantized scales
  Half dmin;                   // super-block scale for quantized mins
};
static_assert(sizeof(BlockQ2_K) == 2 * 2 + kQK_K / 16 + kQK_K / 4, "wrong q2_K block size/padding");

// 16 sub-blocks of 16: x = d * (sc - 32) * (q - 4), q in [0, 7].
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];  // high bit: element i's in bit i / 32 of hmask[i % 32]
  uint8_t qs[kQK_K / 4];     // low 2 bits, laid out as BlockQ2_K::qs
  uint8_t scales[12];        // 16 6-bit scales: low nibbles in bytes 0-7 (j < 8 low,
                             // j >= 8 high nibble of byte j - 8); high 2 bits of scale j
                             // in bits 2 (j / 4).. of byte 8 + j % 4
  Half d;                    // super-block scale
};
static_assert(sizeof(BlockQ3_K) == 2 + kQK_K / 4 + kQK_K / 8 + 12, "wrong q3_K block size/padding");

// 8 sub-blocks of 32: x = d * sc * q - dmin * m, q in [0, 15].
struct BlockQ4_K {
  Half d;                       // super-block scale for quantized scales
  Half dmin;                    // super-block scale for quantized mins
  uint8_t scales[kKScaleSize];  // 8 6-bit scales and 8 6-bit mins (get_scale_min_k4)
  uint8_t qs[kQK_K / 2];        // qs[32 c + l]: element 64 c + l low nibble, + 32 high
};
static_assert(sizeof(BlockQ4_K) == 2 * 2 + kKScaleSize + kQK_K / 2,
              "wrong q4_K block size/padding");

// 8 sub-blocks of 32: x = d * sc * q - dmin * m, q in [0, 31].
struct BlockQ5_K {
  Half d;                       // super-block scale for quantized scales
  Half dmin;                    // super-block scale for quantized mins
  uint8_t scales[kKScaleSize];  // as BlockQ4_K
  uint8_t qh[kQK_K / 8];        // bit 4 of element 32 s + l in bit s of qh[l]
  uint8_t qs[kQK_K / 2];        // low 4 bits, laid out as BlockQ4_K::qs
};
static_assert(sizeof(BlockQ5_K) == 2 * 2 + kKScaleSize + kQK_K / 2 + kQK_K / 8,
              "wrong q5_K block size/padding");

// 16 sub-blocks of 16: x = d * sc * (q - 32), q in [0, 63].
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];       // low 4 bits: per 128 elements, ql[l] holds l (low) and
                               // l + 64 (high), ql[l + 32] holds l + 32 and l + 96
  uint8_t qh[kQK_K / 4];       // high 2 bits: per 128, qh[l] holds l, l + 32, l + 64, l + 96
                               // in bits 0-1, 2-3, 4-5, 6-7
  uint8_t scales[kQK_K / 16];  // 8-bit scales (int8_t in ggml)
  Half d;                      // super-block scale
};
static_assert(sizeof(BlockQ6_K) == 2 + kQK_K / 16 + 3 * kQK_K / 4, "wrong q6_K block size/padding");

}  // namespace ggml
}  // namespace quantd

#endif  // QUANTD_CORE_GGUF_GGML_BLOCKS_H_
