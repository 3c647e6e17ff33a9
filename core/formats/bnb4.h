// bitsandbytes 4-bit weights (NF4 / FP4), stored exactly as transformers
// saves a model loaded with BitsAndBytesConfig(load_in_4bit=True): the
// tensors of bitsandbytes' Params4bit plus QuantState.as_dict(packed=True)
// (docs/research/bitsandbytes_format.md).
//
// Registry name "bnb4". FormatParams:
//   group_size  the block size: a power of two in [32, 4096] (bitsandbytes'
//               quantize_4bit accepts exactly these); 0 means 64.
//   extra       "quant_type": "nf4" or "fp4" (required);
//               "double_quant": "1" or "0" (default "0"): quantize the
//               block absmax to 8 bits (bnb_4bit_use_double_quant);
//               "compute_dtype": "bfloat16", "float16" or "float32": not
//               used for encoding, only recorded by the method in
//               quantization_config (bnb_4bit_compute_dtype).
//   bits, symmetric, scale_dtype, tensor_amax are ignored.
//
// Blocks run over the FLATTENED row-major tensor of n = rows * cols
// elements (n < 2^31, bitsandbytes' limit), so a block spans rows when
// cols is not a multiple of the block size; the last block may be partial.
// The math per block is in core/formats/bnb4_layout.h.
//
// Parts of a [rows, cols] weight read from `source` dtype, in bitsandbytes'
// order (suffixes are appended to "<module>."):
//   weight               U8  [(n + 1) / 2, 1]  codes, element 2i in the high
//                        nibble of byte i; an odd n pads with +0.0
//   weight.absmax        F32 [nblocks]  max |x| per block, or, with double
//                        quantization, U8 [nblocks]: the 8-bit codes of
//                        absmax - offset
//   weight.quant_map     F32 [16]  the code book (bnb4_layout.h)
//   weight.nested_absmax     F32 [ceil(nblocks / 256)]  (double quant only)
//   weight.nested_quant_map  F32 [256] create_dynamic_map() (double quant)
//   weight.quant_state.bitsandbytes__<nf4|fp4>  U8 [len]  the UTF-8 JSON of
//                        QuantState.as_dict(packed=True)'s non-tensor items:
//                        {"quant_type": "nf4", "blocksize": 64, "dtype":
//                        "bfloat16", "shape": [rows, cols]} and with double
//                        quantization "nested_blocksize": 256,
//                        "nested_dtype": "float32", "nested_offset": <Python
//                        repr of the float32 mean of the absmax>. The nested
//                        offset's length varies with its value while the
//                        part's size must be known before encoding: with
//                        double quantization the JSON is padded with
//                        trailing spaces to its longest possible length
//                        (json.loads ignores them).
//
// With double quantization Allocate also adds one scratch tensor (never
// stored): kBnbFloatAbsmaxScratch, F32 [nblocks], every block's float32
// absmax.
//
// Encoding: Allocate writes the JSON (nested_offset 0.0); EncodeRowsRef
// writes the codes and float32 block absmax of its rows (into weight.absmax,
// or with double quantization into the scratch), and the JSON again in the
// call whose range starts at row 0 (it names the source dtype); a range must
// start and end on a block boundary (or end at the last row).
// RowGranularity() is the block size (blocksize / gcd(cols, blocksize)
// would do, but it does not see cols). FinalizeRef writes the code book(s)
// and, with double quantization, quantizes the scratch absmax (offset =
// mean, then 8-bit blockwise with the dynamic map, as bitsandbytes'
// quantize_blockwise does) into weight.absmax and weight.nested_absmax and
// writes the nested offset into the JSON.
#ifndef QUANTD_CORE_FORMATS_BNB4_H_
#define QUANTD_CORE_FORMATS_BNB4_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/formats/bnb4_layout.h"
#include "core/formats/format.h"

namespace quantd {

// The "bnb4" format (a process-wide singleton).
const WeightFormat& Bnb4Format();

// Part names.
inline constexpr char kBnbWeightSuffix[] = "weight";
inline constexpr char kBnbAbsmaxSuffix[] = "weight.absmax";
inline constexpr char kBnbQuantMapSuffix[] = "weight.quant_map";
inline constexpr char kBnbNestedAbsmaxSuffix[] = "weight.nested_absmax";
inline constexpr char kBnbNestedQuantMapSuffix[] = "weight.nested_quant_map";
// "weight.quant_state.bitsandbytes__nf4" or "..__fp4".
std::string BnbQuantStateSuffix(bnb4::QuantType t);

// The scratch tensor of the float32 block absmax (double quantization).
inline constexpr char kBnbFloatAbsmaxScratch[] = "float_absmax";

// Sizes of a [rows, cols] weight, valid after Check().
struct Bnb4Dims {
  bnb4::QuantType type = bnb4::QuantType::kNf4;
  bool double_quant = false;
  int64_t rows = 0, cols = 0;
  int64_t blocksize = 64;
  int64_t numel = 0;
  int64_t blocks = 0;         // ceil(numel / blocksize)
  int64_t packed_bytes = 0;   // (numel + 1) / 2
  int64_t nested_blocks = 0;  // ceil(blocks / 256), double quant only
};

// The dims for `p` (INVALID_ARGUMENT as Check()).
absl::StatusOr<Bnb4Dims> MakeBnb4Dims(const FormatParams& p, int64_t rows, int64_t cols);

// bitsandbytes' create_dynamic_map(signed=True): 256 float32 values,
// ascending, as torch builds them on x86 with AVX2 or AVX-512 (torch's
// linspace then contracts start + step * i into a fused multiply-add; a CPU
// without AVX2 gives 42 entries one ulp apart).
const float* BnbDynamicMap();

// bitsandbytes' dQuantize<0>: the index of the dynamic-map entry x rounds
// to (a 7-step binary search, then the nearer neighbour by the float
// midpoint; NaN gives 0).
uint32_t BnbDynamicCode(const float* code, float x);

// The result of quantize_blockwise(absmax - offset, blocksize=256).
struct Bnb4DoubleQuant {
  float offset = 0;                  // mean of the absmax
  std::vector<uint8_t> codes;        // one per block
  std::vector<float> nested_absmax;  // one per 256 blocks
};

// Double-quantizes the (finite, non-empty) float32 block absmax. The offset
// is their mean, summed in double and rounded once to float32 (torch sums
// in float32 in an order of its own, so its mean may differ in the last
// bit). Each nested block of 256 then follows kQuantizeBlockwise with the
// dynamic map, with the ftz and reciprocal rules of bnb4_layout.h.
Bnb4DoubleQuant Bnb4DoubleQuantize(const std::vector<float>& absmax);

// Python's repr() of a float (shortest round-trip digits; exponent form
// below 1e-4 and from 1e16 on), as json.dumps writes a float.
std::string PythonFloatRepr(double v);

// The quant_state JSON (unpadded); `offset` is used with double_quant only.
std::string Bnb4QuantStateJson(const Bnb4Dims& d, DType source, float offset);

// Longest JSON any double-quant offset can give (the part's size).
int64_t Bnb4QuantStateCapacity(const Bnb4Dims& d, DType source);

}  // namespace quantd

#endif  // QUANTD_CORE_FORMATS_BNB4_H_
