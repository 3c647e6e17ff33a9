#include "core/formats/rtn_int.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/formats/cpu_lanes.h"
#include "core/tensor/float_bits.h"
#include "core/util/status_macros.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rtn_int writes little-endian int32 words by storing bytes"
#endif

namespace quantd {
namespace {

using cpu_lanes::Bf16Src;
using cpu_lanes::Clamp4;
using cpu_lanes::F16Src;
using cpu_lanes::F32Src;
using cpu_lanes::F4;
using cpu_lanes::I4;
using cpu_lanes::Lanes8;
using cpu_lanes::Load8;
using cpu_lanes::MaxMagnitude;
using cpu_lanes::U4;

// Sizes derived from FormatParams for a [rows, cols] weight; valid only
// after Check().
struct Dims {
  int bits = 0;
  int pf = 1;
  bool symmetric = true;
  int64_t rows = 0, cols = 0;
  int64_t group_size = 0;  // resolved: cols when per channel
  int64_t groups = 0;
  int64_t words = 0;    // packed words per row
  int64_t zp_rows = 0;  // rows of weight_zero_point
};

Dims MakeDims(const FormatParams& p, int64_t rows, int64_t cols) {
  Dims d;
  d.bits = p.bits;
  d.pf = rtn::PackFactor(p.bits);
  d.symmetric = p.symmetric;
  d.rows = rows;
  d.cols = cols;
  d.group_size = RtnGroupSize(p, cols);
  d.groups = cols / d.group_size;
  d.words = cols / d.pf;
  d.zp_rows = (rows + d.pf - 1) / d.pf;
  return d;
}

// Key of raw bits b (as signed s): s >= 0 -> s; else s ^ kMagMask, i.e.
// -1 - magnitude. Monotone in the float value (-0 < +0) and its own inverse.
template <class Src>
inline typename Src::Signed Key(typename Src::Signed s) {
  constexpr int kShift = 8 * sizeof(s) - 1;
  return static_cast<typename Src::Signed>(s ^ ((s >> kShift) & Src::kMagMask));
}

template <class Src>
absl::Status NonFiniteError(const typename Src::Bits* x, int64_t n, int64_t row, int64_t col0) {
  for (int64_t i = 0; i < n; ++i) {
    if (static_cast<typename Src::Signed>(x[i] & Src::kMagMask) >= Src::kNonFinite) {
      return absl::InvalidArgumentError(
          absl::StrCat("non-finite value at row ", row, ", column ", col0 + i));
    }
  }
  return absl::InternalError("non-finite value not found again");
}

// Keys of min(min(x), +0) and max(max(x), +0), and the largest magnitude.
template <class Src>
void MinMaxKeys(const typename Src::Bits* __restrict x, int64_t n, typename Src::Signed* lo,
                typename Src::Signed* hi, typename Src::Signed* mag) {
  using S = typename Src::Signed;
  S l = 0, h = 0, m = 0;
  for (int64_t i = 0; i < n; ++i) {
    const S s = static_cast<S>(x[i]);
    const S a = static_cast<S>(s & Src::kMagMask);
    const S k = Key<Src>(s);
    m = a > m ? a : m;
    l = k < l ? k : l;
    h = k > h ? k : h;
  }
  *lo = l;
  *hi = h;
  *mag = m;
}

// Unsigned codes (q + offset) of one group.
template <class Src, int kBits>
void QuantizeGroup(const typename Src::Bits* __restrict x, int64_t n, float scale, float zero_point,
                   uint8_t* __restrict out) {
  constexpr float kQMin = static_cast<float>(rtn::QMin(kBits));
  constexpr float kQMax = static_cast<float>(rtn::QMax(kBits));
  constexpr int kOffset = rtn::CodeOffset(kBits);
  for (int64_t i = 0; i < n; ++i) {
    const int q = rtn::QuantizeValue(Src::ToFloat(x[i]), scale, zero_point, kQMin, kQMax);
    out[i] = static_cast<uint8_t>(q + kOffset);
  }
}

// 8 int4 codes, one per byte, to one word (code i at bits [4i, 4i + 4)).
inline uint32_t PackNibbles(uint64_t v) {
  v = (v | (v >> 4)) & 0x00ff00ff00ff00ffull;
  v = (v | (v >> 8)) & 0x0000ffff0000ffffull;
  v = (v | (v >> 16)) & 0x00000000ffffffffull;
  return static_cast<uint32_t>(v);
}

// Packs a row of unsigned int4 codes (one per byte, 8 | n) into words.
void PackInt4Row(const uint8_t* __restrict codes, int64_t words, uint32_t* __restrict out) {
  for (int64_t j = 0; j < words; ++j) {
    uint64_t v;
    std::memcpy(&v, codes + 8 * j, 8);  // byte i = code i (little-endian)
    out[j] = PackNibbles(v);
  }
}

// The vectorised path for groups of a multiple of 8 elements (gcc -O2 does
// not vectorise the scalar loop). Written with GCC/Clang vector extensions,
// plus SSE2 intrinsics (baseline on x86-64) for min/max, widening and
// narrowing. Lane by lane it performs exactly the IEEE operations of
// rtn::QuantizeValue: x / S, ClampF as max-then-min (MAXPS(lo, v) is
// lo > v ? lo : v; MINPS(hi, v) is hi < v ? hi : v), the 1.5 * 2^23
// rounding, truncation of an integral value; so its bytes equal the scalar
// path's (RtnPackGroupForTest checks that).

struct QuantConsts {
  F4 scale, zero_point, in_lo, in_hi, qmin, qmax, magic;
};

// Signed codes of 4 values as floats (rtn::QuantizeValue before the int
// conversion). kClampInput = false skips the +-1024 clamp of x / S where
// the caller proved |x / S| <= 1024, so that it changes nothing.
template <bool kClampInput>
inline F4 Quantize4(F4 x, const QuantConsts& c) {
  F4 v = x / c.scale;
  if (kClampInput) v = Clamp4(v, c.in_lo, c.in_hi);
  return Clamp4(((v + c.magic) - c.magic) + c.zero_point, c.qmin, c.qmax);
}

// Unsigned codes (q + offset) of 8 values, code i in byte i.
template <int kBits>
inline uint64_t CodeBytes8(F4 qa, F4 qb) {
#if defined(__SSE2__)
  const __m128i a = _mm_cvttps_epi32(reinterpret_cast<__m128>(qa));
  const __m128i b = _mm_cvttps_epi32(reinterpret_cast<__m128>(qb));
  const __m128i w = _mm_add_epi16(_mm_packs_epi32(a, b),
                                  _mm_set1_epi16(static_cast<int16_t>(rtn::CodeOffset(kBits))));
  return static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_packus_epi16(w, w)));
#else
  const U4 a = reinterpret_cast<U4>(__builtin_convertvector(qa, I4) + rtn::CodeOffset(kBits));
  const U4 b = reinterpret_cast<U4>(__builtin_convertvector(qb, I4) + rtn::CodeOffset(kBits));
  uint64_t v = 0;
  for (int i = 0; i < 4; ++i) {
    v |= static_cast<uint64_t>(a[i]) << (8 * i);
    v |= static_cast<uint64_t>(b[i]) << (8 * i + 32);
  }
  return v;
#endif
}

template <class Src, int kBits, bool kClampInput>
void QuantizePackGroupT(const typename Src::Bits* __restrict x, int64_t n, const QuantConsts& c,
                        uint32_t* __restrict out) {
  for (int64_t i = 0; i < n; i += 8) {
    const Lanes8 l = Load8<Src>(x + i);
    const uint64_t bytes =
        CodeBytes8<kBits>(Quantize4<kClampInput>(l.lo, c), Quantize4<kClampInput>(l.hi, c));
    if (kBits == 4) {
      out[i / 8] = PackNibbles(bytes);
    } else {
      std::memcpy(out + i / 4, &bytes, 8);  // little-endian: the two words
    }
  }
}

// Quantizes n (8 | n) values whose largest magnitude is `absmax` into packed
// words (n / 8 for int4, n / 4 for int8).
template <class Src, int kBits>
void QuantizePackGroup(const typename Src::Bits* __restrict x, int64_t n, float absmax, float scale,
                       float zero_point, uint32_t* __restrict out) {
  QuantConsts c;
  c.scale = F4{} + scale;
  c.zero_point = F4{} + zero_point;
  c.in_lo = F4{} - 1024.0f;
  c.in_hi = F4{} + 1024.0f;
  c.qmin = F4{} + static_cast<float>(rtn::QMin(kBits));
  c.qmax = F4{} + static_cast<float>(rtn::QMax(kBits));
  c.magic = F4{} + 12582912.0f;  // as RoundHalfEvenSmall
  // |x| <= absmax and IEEE division is monotone, so |x / S| <= absmax / S.
  if (rtn::DivRn(absmax, scale) <= 1024.0f) {
    QuantizePackGroupT<Src, kBits, false>(x, n, c, out);
  } else {
    QuantizePackGroupT<Src, kBits, true>(x, n, c, out);
  }
}

struct Outputs {
  uint32_t* packed = nullptr;
  uint8_t* scales = nullptr;  // scale_bytes per element
  int scale_bytes = 2;
  uint32_t* zero_points = nullptr;
};

inline void StoreScaleBits(const Outputs& o, int64_t index, uint32_t bits) {
  if (o.scale_bytes == 4) {
    std::memcpy(o.scales + 4 * index, &bits, 4);
  } else {
    const uint16_t h = static_cast<uint16_t>(bits);
    std::memcpy(o.scales + 2 * index, &h, 2);
  }
}

template <class Src, int kBits, bool kSymmetric>
absl::Status EncodeRowsT(const Dims& d, rtn::ScaleType st, const typename Src::Bits* w, int64_t r0,
                         int64_t r1, const Outputs& o) {
  using S = typename Src::Signed;
  using Bits = typename Src::Bits;
  const bool vectorised = d.group_size % 8 == 0;
  // Scalar path, int4: the row's codes, one per byte, packed at the end.
  std::vector<uint8_t> codes(kBits == 4 && !vectorised ? static_cast<size_t>(d.cols) : 0);
  if (!kSymmetric) {
    // This call owns the zero-point words of its pf-row blocks.
    const int64_t zr0 = r0 / d.pf, zr1 = (r1 + d.pf - 1) / d.pf;
    std::memset(o.zero_points + zr0 * d.groups, 0, (zr1 - zr0) * d.groups * sizeof(uint32_t));
  }
  for (int64_t r = r0; r < r1; ++r) {
    const Bits* row = w + r * d.cols;
    uint32_t* row_words = o.packed + r * d.words;
    uint8_t* row_codes = kBits == 4 ? codes.data() : reinterpret_cast<uint8_t*>(row_words);
    for (int64_t g = 0; g < d.groups; ++g) {
      const Bits* x = row + g * d.group_size;
      rtn::GroupParams gp;
      S m;
      if (kSymmetric) {
        m = MaxMagnitude<Src>(x, d.group_size);
        if (m >= Src::kNonFinite) return NonFiniteError<Src>(x, d.group_size, r, g * d.group_size);
        gp = rtn::SymmetricParams(Src::ToFloat(static_cast<Bits>(m)), kBits, st);
      } else {
        S lo, hi;
        MinMaxKeys<Src>(x, d.group_size, &lo, &hi, &m);
        if (m >= Src::kNonFinite) return NonFiniteError<Src>(x, d.group_size, r, g * d.group_size);
        const float mn = Src::ToFloat(static_cast<Bits>(Key<Src>(lo)));
        const float mx = Src::ToFloat(static_cast<Bits>(Key<Src>(hi)));
        gp = rtn::AsymmetricParams(mn, mx, kBits, st);
        o.zero_points[(r / d.pf) * d.groups + g] |=
            rtn::PlaceCode(static_cast<uint32_t>(gp.zero_point + rtn::CodeOffset(kBits)), kBits,
                           static_cast<int>(r % d.pf));
      }
      StoreScaleBits(o, r * d.groups + g, gp.scale.bits);
      const float zp = static_cast<float>(gp.zero_point);
      if (vectorised) {
        QuantizePackGroup<Src, kBits>(x, d.group_size, Src::ToFloat(static_cast<Bits>(m)),
                                      gp.scale.value, zp,
                                      row_words + g * d.group_size * kBits / 32);
      } else {
        QuantizeGroup<Src, kBits>(x, d.group_size, gp.scale.value, zp,
                                  row_codes + g * d.group_size);
      }
    }
    // Scalar int8: the unsigned code bytes, in order, are the little-endian
    // words already.
    if (kBits == 4 && !vectorised) PackInt4Row(row_codes, d.words, row_words);
  }
  return absl::OkStatus();
}

template <class Src>
absl::Status EncodeRowsSrc(const Dims& d, rtn::ScaleType st, const uint8_t* data, int64_t r0,
                           int64_t r1, const Outputs& o) {
  const auto* w = reinterpret_cast<const typename Src::Bits*>(data);
  if (d.bits == 4) {
    return d.symmetric ? EncodeRowsT<Src, 4, true>(d, st, w, r0, r1, o)
                       : EncodeRowsT<Src, 4, false>(d, st, w, r0, r1, o);
  }
  return d.symmetric ? EncodeRowsT<Src, 8, true>(d, st, w, r0, r1, o)
                     : EncodeRowsT<Src, 8, false>(d, st, w, r0, r1, o);
}

absl::Status CheckPart(const EncodedWeight& e, const char* suffix, DType dtype,
                       const Shape& shape) {
  const Tensor* t = e.Find(suffix);
  if (t == nullptr) return absl::InvalidArgumentError(absl::StrCat("missing part ", suffix));
  if (t->dtype() != dtype || t->shape() != shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        "part ", suffix, " is ", std::string(DTypeName(t->dtype())), " ", ShapeString(t->shape()),
        ", expected ", std::string(DTypeName(dtype)), " ", ShapeString(shape)));
  }
  return absl::OkStatus();
}

absl::Status CheckParts(const Dims& d, DType scale_dtype, const EncodedWeight& e) {
  RETURN_IF_ERROR(CheckPart(e, kPackedSuffix, DType::kI32, {d.rows, d.words}));
  RETURN_IF_ERROR(CheckPart(e, kScaleSuffix, scale_dtype, {d.rows, d.groups}));
  RETURN_IF_ERROR(CheckPart(e, kShapeSuffix, DType::kI64, {2}));
  if (!d.symmetric) {
    RETURN_IF_ERROR(CheckPart(e, kZeroPointSuffix, DType::kI32, {d.zp_rows, d.groups}));
  }
  return absl::OkStatus();
}

class RtnInt final : public WeightFormat {
 public:
  std::string_view name() const override { return "rtn_int"; }

  absl::Status Check(const FormatParams& p, int64_t rows, int64_t cols) const override {
    if (p.bits != 4 && p.bits != 8) {
      return absl::InvalidArgumentError(absl::StrCat("bits ", p.bits, " is not 4 or 8"));
    }
    if (p.bits == 8 && !p.symmetric) {
      return absl::InvalidArgumentError(
          "asymmetric int8 is not supported (vLLM runs it only on SM90); use symmetric");
    }
    if (rows < 1 || cols < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight shape [", rows, ", ", cols, "] has an empty dimension"));
    }
    if (cols > std::numeric_limits<int64_t>::max() / 4 / rows) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight shape [", rows, ", ", cols, "] is too large"));
    }
    const int pf = rtn::PackFactor(p.bits);
    if (cols % pf != 0) {
      return absl::InvalidArgumentError(absl::StrCat("cols ", cols, " is not a multiple of ", pf,
                                                     " (int", p.bits, " codes per int32 word)"));
    }
    if (p.group_size < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("group_size ", p.group_size, " is negative (0 means per channel)"));
    }
    if (p.group_size > 0 && cols % p.group_size != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("group_size ", p.group_size, " does not divide cols ", cols));
    }
    RETURN_IF_ERROR(RtnScaleType(p.scale_dtype).status());
    if (!p.extra.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("rtn_int has no setting \"", p.extra.begin()->first, "\""));
    }
    return absl::OkStatus();
  }

  int64_t RowGranularity(const FormatParams& p) const override {
    if (p.symmetric || (p.bits != 4 && p.bits != 8)) return 1;
    return rtn::PackFactor(p.bits);
  }

  EncodedWeight Allocate(const FormatParams& p, int64_t rows, int64_t cols,
                         DType source) const override {
    EncodedWeight e;
    if (!Check(p, rows, cols).ok()) return e;  // Callers must Check() first.
    const Dims d = MakeDims(p, rows, cols);
    e.parts.push_back({kPackedSuffix, Tensor::Allocate(DType::kI32, {rows, d.words})});
    e.parts.push_back({kScaleSuffix, Tensor::Allocate(p.scale_dtype, {rows, d.groups})});
    e.parts.push_back({kShapeSuffix, Tensor::Allocate(DType::kI64, {2})});
    if (!p.symmetric) {
      e.parts.push_back({kZeroPointSuffix, Tensor::Allocate(DType::kI32, {d.zp_rows, d.groups})});
    }
    return e;
  }

  absl::Status EncodeRowsRef(const FormatParams& p, const TensorView& w, int64_t r0, int64_t r1,
                             EncodedWeight* out) const override {
    if (w.shape.size() != 2) {
      return absl::InvalidArgumentError("weight must be 2-D, got " + ShapeString(w.shape));
    }
    const int64_t rows = w.shape[0], cols = w.shape[1];
    RETURN_IF_ERROR(Check(p, rows, cols));
    if (!IsFloatWeightType(w.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weight dtype ", std::string(DTypeName(w.dtype)), " is not F16, BF16 or F32"));
    }
    if (w.data == nullptr || w.nbytes != static_cast<size_t>(rows * cols) * DTypeSize(w.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat("weight view holds ", w.nbytes,
                                                     " bytes, not those of ", ShapeString(w.shape),
                                                     " ", std::string(DTypeName(w.dtype))));
    }
    const int64_t gran = RowGranularity(p);
    if (r0 < 0 || r0 > r1 || r1 > rows || r0 % gran != 0 || (r1 % gran != 0 && r1 != rows)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "row range [", r0, ", ", r1, ") is not aligned to ", gran, " in ", rows, " rows"));
    }
    const Dims d = MakeDims(p, rows, cols);
    RETURN_IF_ERROR(CheckParts(d, p.scale_dtype, *out));
    ASSIGN_OR_RETURN(const rtn::ScaleType st, RtnScaleType(p.scale_dtype));
    Outputs o;
    o.packed = out->Find(kPackedSuffix)->as<uint32_t>();
    o.scales = out->Find(kScaleSuffix)->data();
    o.scale_bytes = static_cast<int>(DTypeSize(p.scale_dtype));
    if (!p.symmetric) o.zero_points = out->Find(kZeroPointSuffix)->as<uint32_t>();
    if (r0 == 0) {
      int64_t* shape = out->Find(kShapeSuffix)->as<int64_t>();
      shape[0] = rows;
      shape[1] = cols;
    }
    if (r0 == r1) return absl::OkStatus();
    switch (w.dtype) {
      case DType::kBF16:
        return EncodeRowsSrc<Bf16Src>(d, st, w.data, r0, r1, o);
      case DType::kF16:
        return EncodeRowsSrc<F16Src>(d, st, w.data, r0, r1, o);
      default:
        return EncodeRowsSrc<F32Src>(d, st, w.data, r0, r1, o);
    }
  }

  absl::StatusOr<std::vector<float>> DecodeRef(const FormatParams& p, const EncodedWeight& e,
                                               int64_t rows, int64_t cols) const override {
    RETURN_IF_ERROR(Check(p, rows, cols));
    const Dims d = MakeDims(p, rows, cols);
    RETURN_IF_ERROR(CheckParts(d, p.scale_dtype, e));
    const int64_t* shape = e.Find(kShapeSuffix)->as<int64_t>();
    if (shape[0] != rows || shape[1] != cols) {
      return absl::InvalidArgumentError(absl::StrCat("weight_shape is [", shape[0], ", ", shape[1],
                                                     "], expected [", rows, ", ", cols, "]"));
    }
    const uint32_t* packed = e.Find(kPackedSuffix)->as<uint32_t>();
    const TensorView scales = e.Find(kScaleSuffix)->view();
    const uint32_t* zps = d.symmetric ? nullptr : e.Find(kZeroPointSuffix)->as<uint32_t>();
    std::vector<float> out(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t g = c / d.group_size;
        const int q =
            rtn::ExtractCode(packed[r * d.words + c / d.pf], d.bits, static_cast<int>(c % d.pf));
        const int zp = zps == nullptr ? 0
                                      : rtn::ExtractCode(zps[(r / d.pf) * d.groups + g], d.bits,
                                                         static_cast<int>(r % d.pf));
        const float s = LoadAsFloat(scales, r * d.groups + g);
        out[r * cols + c] = static_cast<float>(q - zp) * s;
      }
    }
    return out;
  }
};

}  // namespace

absl::StatusOr<rtn::ScaleType> RtnScaleType(DType scale_dtype) {
  switch (scale_dtype) {
    case DType::kF32:
      return rtn::ScaleType::kF32;
    case DType::kF16:
      return rtn::ScaleType::kF16;
    case DType::kBF16:
      return rtn::ScaleType::kBF16;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "scale_dtype ", std::string(DTypeName(scale_dtype)), " is not F16, BF16 or F32"));
  }
}

void RtnPackGroupForTest(bool vectorised, int bits, const float* x, int64_t n, float scale,
                         int zero_point, uint32_t* words) {
  const auto* raw = reinterpret_cast<const uint32_t*>(x);
  const float zp = static_cast<float>(zero_point);
  if (vectorised) {
    float absmax = 0.0f;
    for (int64_t i = 0; i < n; ++i) absmax = std::max(absmax, std::fabs(x[i]));
    if (bits == 4) {
      QuantizePackGroup<F32Src, 4>(raw, n, absmax, scale, zp, words);
    } else {
      QuantizePackGroup<F32Src, 8>(raw, n, absmax, scale, zp, words);
    }
    return;
  }
  std::vector<uint8_t> codes(static_cast<size_t>(n));
  if (bits == 4) {
    QuantizeGroup<F32Src, 4>(raw, n, scale, zp, codes.data());
    PackInt4Row(codes.data(), n / 8, words);
  } else {
    QuantizeGroup<F32Src, 8>(raw, n, scale, zp, codes.data());
    std::memcpy(words, codes.data(), static_cast<size_t>(n));
  }
}

const WeightFormat& RtnIntFormat() {
  static const RtnInt* format = new RtnInt();
  return *format;
}

}  // namespace quantd
