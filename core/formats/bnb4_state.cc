// The parts of bitsandbytes' QuantState that are not per-block codes: the
// dynamic 8-bit map and double quantization of the block absmax, and the
// quant_state JSON (Python's json.dumps of its non-tensor items).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/formats/bnb4.h"

namespace quantd {
namespace {

// create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8) as
// torch 2.15 builds it on an AVX2 CPU (float32 bit patterns, ascending):
// per exponent i = 0..6, the means of adjacent points of
// torch.linspace(0.1, 1, 2^i + 1) times 10^(i - 6), both signs, then 0 and
// 1. Checked against bitsandbytes.functional.create_dynamic_map() itself
// (docs/research/bitsandbytes_format.md §4).
constexpr uint32_t kDynamicMapBits[256] = {
    0xbf7e3333u, 0xbf7a999au, 0xbf770000u, 0xbf736666u, 0xbf6fcccdu, 0xbf6c3333u, 0xbf68999au,
    0xbf650000u, 0xbf616666u, 0xbf5dcccdu, 0xbf5a3333u, 0xbf56999au, 0xbf530000u, 0xbf4f6666u,
    0xbf4bcccdu, 0xbf483333u, 0xbf44999au, 0xbf410000u, 0xbf3d6666u, 0xbf39cccdu, 0xbf363334u,
    0xbf32999au, 0xbf2f0000u, 0xbf2b6666u, 0xbf27cccdu, 0xbf243334u, 0xbf20999au, 0xbf1d0000u,
    0xbf196666u, 0xbf15cccdu, 0xbf123334u, 0xbf0e999au, 0xbf0b0000u, 0xbf076666u, 0xbf03ccccu,
    0xbf003333u, 0xbef93332u, 0xbef20000u, 0xbeeaccccu, 0xbee3999au, 0xbedc6666u, 0xbed53333u,
    0xbece0000u, 0xbec6ccccu, 0xbebf999au, 0xbeb86666u, 0xbeb13333u, 0xbeaa0000u, 0xbea2ccccu,
    0xbe9b999au, 0xbe946666u, 0xbe8d3334u, 0xbe860000u, 0xbe7d9999u, 0xbe6f3333u, 0xbe60cccdu,
    0xbe526666u, 0xbe440000u, 0xbe35999au, 0xbe273333u, 0xbe18cccdu, 0xbe0a6666u, 0xbdf80000u,
    0xbddb3334u, 0xbdc9eb85u, 0xbdc428f7u, 0xbdbe6667u, 0xbdb8a3d7u, 0xbdb2e148u, 0xbdad1eb8u,
    0xbda75c2au, 0xbda1999au, 0xbd9bd70au, 0xbd96147bu, 0xbd9051ebu, 0xbd8a8f5du, 0xbd84cccdu,
    0xbd7e147bu, 0xbd728f5du, 0xbd670a3du, 0xbd5b851fu, 0xbd500000u, 0xbd447ae1u, 0xbd38f5c3u,
    0xbd2d70a3u, 0xbd21eb85u, 0xbd166667u, 0xbd0ae148u, 0xbcfeb852u, 0xbce7ae15u, 0xbcd0a3d7u,
    0xbcb9999au, 0xbca28f5du, 0xbc8b851fu, 0xbc68f5c3u, 0xbc3ae148u, 0xbc1f3b64u, 0xbc160418u,
    0xbc0ccccdu, 0xbc039581u, 0xbbf4bc6au, 0xbbe24dd3u, 0xbbcfdf3bu, 0xbbbd70a4u, 0xbbab020du,
    0xbb989374u, 0xbb8624ddu, 0xbb676c8au, 0xbb428f5cu, 0xbb1db22du, 0xbaf1a9fcu, 0xbaa7ef9du,
    0xba7765ffu, 0xba59e83eu, 0xba3c6a80u, 0xba1eecc1u, 0xba016f01u, 0xb9c7e283u, 0xb98ce705u,
    0xb923d70bu, 0xb8ba1f4bu, 0xb88aefb3u, 0xb8378034u, 0xb7b24206u, 0xb70205ffu, 0xb65a1a94u,
    0xb513a3b7u, 0x00000000u, 0x3513a3b7u, 0x365a1a94u, 0x370205ffu, 0x37b24206u, 0x38378034u,
    0x388aefb3u, 0x38ba1f4bu, 0x3923d70bu, 0x398ce705u, 0x39c7e283u, 0x3a016f01u, 0x3a1eecc1u,
    0x3a3c6a80u, 0x3a59e83eu, 0x3a7765ffu, 0x3aa7ef9du, 0x3af1a9fcu, 0x3b1db22du, 0x3b428f5cu,
    0x3b676c8au, 0x3b8624ddu, 0x3b989374u, 0x3bab020du, 0x3bbd70a4u, 0x3bcfdf3bu, 0x3be24dd3u,
    0x3bf4bc6au, 0x3c039581u, 0x3c0ccccdu, 0x3c160418u, 0x3c1f3b64u, 0x3c3ae148u, 0x3c68f5c3u,
    0x3c8b851fu, 0x3ca28f5du, 0x3cb9999au, 0x3cd0a3d7u, 0x3ce7ae15u, 0x3cfeb852u, 0x3d0ae148u,
    0x3d166667u, 0x3d21eb85u, 0x3d2d70a3u, 0x3d38f5c3u, 0x3d447ae1u, 0x3d500000u, 0x3d5b851fu,
    0x3d670a3du, 0x3d728f5du, 0x3d7e147bu, 0x3d84cccdu, 0x3d8a8f5du, 0x3d9051ebu, 0x3d96147bu,
    0x3d9bd70au, 0x3da1999au, 0x3da75c2au, 0x3dad1eb8u, 0x3db2e148u, 0x3db8a3d7u, 0x3dbe6667u,
    0x3dc428f7u, 0x3dc9eb85u, 0x3ddb3334u, 0x3df80000u, 0x3e0a6666u, 0x3e18cccdu, 0x3e273333u,
    0x3e35999au, 0x3e440000u, 0x3e526666u, 0x3e60cccdu, 0x3e6f3333u, 0x3e7d9999u, 0x3e860000u,
    0x3e8d3334u, 0x3e946666u, 0x3e9b999au, 0x3ea2ccccu, 0x3eaa0000u, 0x3eb13333u, 0x3eb86666u,
    0x3ebf999au, 0x3ec6ccccu, 0x3ece0000u, 0x3ed53333u, 0x3edc6666u, 0x3ee3999au, 0x3eeaccccu,
    0x3ef20000u, 0x3ef93332u, 0x3f003333u, 0x3f03ccccu, 0x3f076666u, 0x3f0b0000u, 0x3f0e999au,
    0x3f123334u, 0x3f15cccdu, 0x3f196666u, 0x3f1d0000u, 0x3f20999au, 0x3f243334u, 0x3f27cccdu,
    0x3f2b6666u, 0x3f2f0000u, 0x3f32999au, 0x3f363334u, 0x3f39cccdu, 0x3f3d6666u, 0x3f410000u,
    0x3f44999au, 0x3f483333u, 0x3f4bcccdu, 0x3f4f6666u, 0x3f530000u, 0x3f56999au, 0x3f5a3333u,
    0x3f5dcccdu, 0x3f616666u, 0x3f650000u, 0x3f68999au, 0x3f6c3333u, 0x3f6fcccdu, 0x3f736666u,
    0x3f770000u, 0x3f7a999au, 0x3f7e3333u, 0x3f800000u,
};

// Longest Python repr of a non-negative float32 converted to double:
// 17 significant digits in "0.000ddddddddddddddddd" or
// "d.dddddddddddddddde-05" form.
constexpr int kMaxOffsetReprLength = 22;

const char* SourceDTypeName(DType t) {
  switch (t) {
    case DType::kBF16:
      return "bfloat16";
    case DType::kF16:
      return "float16";
    default:
      return "float32";
  }
}

std::string JsonWithOffsetText(const Bnb4Dims& d, DType source, const std::string& offset) {
  std::string json =
      absl::StrCat("{\"quant_type\": \"", d.type == bnb4::QuantType::kNf4 ? "nf4" : "fp4",
                   "\", \"blocksize\": ", d.blocksize, ", \"dtype\": \"", SourceDTypeName(source),
                   "\", \"shape\": [", d.rows, ", ", d.cols, "]");
  if (d.double_quant) {
    absl::StrAppend(&json, ", \"nested_blocksize\": ", bnb4::kNestedBlockSize,
                    ", \"nested_dtype\": \"float32\", \"nested_offset\": ", offset);
  }
  json += "}";
  return json;
}

}  // namespace

std::string BnbQuantStateSuffix(bnb4::QuantType t) {
  return t == bnb4::QuantType::kNf4 ? "weight.quant_state.bitsandbytes__nf4"
                                    : "weight.quant_state.bitsandbytes__fp4";
}

const float* BnbDynamicMap() {
  static const float* map = [] {
    auto* m = new float[256];
    for (int i = 0; i < 256; ++i) m[i] = BitsToFloat(kDynamicMapBits[i]);
    return m;
  }();
  return map;
}

uint32_t BnbDynamicCode(const float* code, float x) {
  int pivot = 127, upper_pivot = 255, lower_pivot = 0;
  float lower = -1.0f, upper = 1.0f;
  float val = code[pivot];
  for (int i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lower_pivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upper_pivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = code[pivot];
  }
  if (upper_pivot == 255) upper = code[upper_pivot];
  if (lower_pivot == 0) lower = code[lower_pivot];
  if (x > val) {
    const float midpoint = (upper + val) * 0.5f;
    return static_cast<uint32_t>(x > midpoint ? upper_pivot : pivot);
  }
  const float midpoint = (lower + val) * 0.5f;
  return static_cast<uint32_t>(x < midpoint ? lower_pivot : pivot);
}

Bnb4DoubleQuant Bnb4DoubleQuantize(const std::vector<float>& absmax) {
  Bnb4DoubleQuant q;
  const int64_t n = static_cast<int64_t>(absmax.size());
  double sum = 0;
  for (float a : absmax) sum += a;
  q.offset = n > 0 ? static_cast<float>(sum / static_cast<double>(n)) : 0.0f;
  const float* code = BnbDynamicMap();
  const int64_t nested = (n + bnb4::kNestedBlockSize - 1) / bnb4::kNestedBlockSize;
  q.codes.resize(static_cast<size_t>(n));
  q.nested_absmax.resize(static_cast<size_t>(nested));
  std::vector<float> centred(bnb4::kNestedBlockSize);
  for (int64_t b = 0; b < nested; ++b) {
    const int64_t i0 = b * bnb4::kNestedBlockSize;
    const int64_t len = std::min<int64_t>(bnb4::kNestedBlockSize, n - i0);
    float m = 0.0f;
    for (int64_t i = 0; i < len; ++i) {
      centred[i] = absmax[i0 + i] - q.offset;  // torch: IEEE, subnormals kept
      m = std::max(m, bnb4::AbsForMax(centred[i]));
    }
    q.nested_absmax[b] = m;
    const float r = bnb4::BlockFactor(m);
    for (int64_t i = 0; i < len; ++i) {
      q.codes[i0 + i] = static_cast<uint8_t>(BnbDynamicCode(code, bnb4::Normalised(centred[i], r)));
    }
  }
  return q;
}

std::string PythonFloatRepr(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  if (v == 0.0) return std::signbit(v) ? "-0.0" : "0.0";
  char buf[64];
  const std::to_chars_result r =
      std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  const std::string sci(buf, r.ptr);  // "-d.ddde+XX"
  const size_t epos = sci.find('e');
  std::string mantissa = sci.substr(0, epos);
  const int exp10 = std::stoi(sci.substr(epos + 1));
  std::string sign;
  if (mantissa[0] == '-') {
    sign = "-";
    mantissa.erase(0, 1);
  }
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits += c;
  }
  const int decpt = exp10 + 1;  // value = 0.digits * 10^decpt
  const int nd = static_cast<int>(digits.size());
  std::string out;
  if (decpt <= -4 || decpt > 16) {
    out = digits.substr(0, 1);
    if (nd > 1) out += "." + digits.substr(1);
    const int e = decpt - 1;
    out += e < 0 ? "e-" : "e+";
    const std::string ae = std::to_string(e < 0 ? -e : e);
    out += (ae.size() < 2 ? "0" : "") + ae;
  } else if (decpt <= 0) {
    out = "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
  } else if (decpt < nd) {
    out = digits.substr(0, static_cast<size_t>(decpt)) + "." +
          digits.substr(static_cast<size_t>(decpt));
  } else {
    out = digits + std::string(static_cast<size_t>(decpt - nd), '0') + ".0";
  }
  return sign + out;
}

std::string Bnb4QuantStateJson(const Bnb4Dims& d, DType source, float offset) {
  return JsonWithOffsetText(d, source, PythonFloatRepr(static_cast<double>(offset)));
}

int64_t Bnb4QuantStateCapacity(const Bnb4Dims& d, DType source) {
  return static_cast<int64_t>(
      JsonWithOffsetText(d, source, std::string(kMaxOffsetReprLength, '0')).size());
}

}  // namespace quantd
