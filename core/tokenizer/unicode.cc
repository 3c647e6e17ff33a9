#include "core/tokenizer/unicode.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace quantd {
namespace tokenizer_internal {
namespace {

// Length of the longest prefix of s[pos..] that is a well-formed UTF-8
// sequence or the beginning of one (0 for a byte that can begin none);
// *complete tells whether the whole sequence is there, and then *cp holds it.
size_t ValidPrefix(std::string_view s, size_t pos, bool* complete, char32_t* cp) {
  const unsigned char b0 = static_cast<unsigned char>(s[pos]);
  *complete = false;
  if (b0 < 0x80) {
    *complete = true;
    *cp = b0;
    return 1;
  }
  int need = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // Range of the second byte.
  char32_t value = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    value = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    value = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // No surrogates.
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    value = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  size_t len = 1;
  for (int k = 0; k < need; ++k) {
    if (pos + len >= s.size()) return len;
    const unsigned char b = static_cast<unsigned char>(s[pos + len]);
    if (k == 0 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return len;
    value = (value << 6) | (b & 0x3F);
    ++len;
  }
  *complete = true;
  *cp = value;
  return len;
}

constexpr char32_t kHangulSBase = 0xAC00, kHangulLBase = 0x1100, kHangulVBase = 0x1161,
                   kHangulTBase = 0x11A7;
constexpr char32_t kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
constexpr char32_t kHangulNCount = kHangulVCount * kHangulTCount;
constexpr char32_t kHangulSCount = kHangulLCount * kHangulNCount;

const Decomposition* FindDecomposition(char32_t cp) {
  const Decomposition* end = kDecompositions + kNumDecompositions;
  const Decomposition* it = std::lower_bound(
      kDecompositions, end, cp, [](const Decomposition& d, char32_t c) { return d.cp < c; });
  return it != end && it->cp == cp ? it : nullptr;
}

void Decompose(char32_t cp, std::vector<char32_t>* out) {
  if (cp >= kHangulSBase && cp < kHangulSBase + kHangulSCount) {
    const char32_t s = cp - kHangulSBase;
    out->push_back(kHangulLBase + s / kHangulNCount);
    out->push_back(kHangulVBase + (s % kHangulNCount) / kHangulTCount);
    if (s % kHangulTCount != 0) out->push_back(kHangulTBase + s % kHangulTCount);
    return;
  }
  const Decomposition* d = cp < 0xC0 ? nullptr : FindDecomposition(cp);
  if (d == nullptr) {
    out->push_back(cp);
    return;
  }
  Decompose(d->first, out);
  if (d->second != 0) Decompose(d->second, out);
}

// The primary composite of (a, b), or 0.
char32_t Compose(char32_t a, char32_t b) {
  if (a >= kHangulLBase && a < kHangulLBase + kHangulLCount && b >= kHangulVBase &&
      b < kHangulVBase + kHangulVCount) {
    return kHangulSBase + ((a - kHangulLBase) * kHangulVCount + (b - kHangulVBase)) * kHangulTCount;
  }
  if (a >= kHangulSBase && a < kHangulSBase + kHangulSCount &&
      (a - kHangulSBase) % kHangulTCount == 0 && b > kHangulTBase &&
      b < kHangulTBase + kHangulTCount) {
    return a + (b - kHangulTBase);
  }
  static const auto* const kPairs = [] {
    auto* pairs = new absl::flat_hash_map<uint64_t, char32_t>();
    for (size_t i = 0; i < kNumDecompositions; ++i) {
      const Decomposition& d = kDecompositions[i];
      if (d.composes) (*pairs)[(uint64_t{d.first} << 32) | d.second] = d.cp;
    }
    return pairs;
  }();
  auto it = kPairs->find((uint64_t{a} << 32) | b);
  return it == kPairs->end() ? 0 : it->second;
}

}  // namespace

bool DecodeUtf8(std::string_view s, size_t* pos, char32_t* cp) {
  if (*pos >= s.size()) return false;
  bool complete = false;
  const size_t len = ValidPrefix(s, *pos, &complete, cp);
  if (!complete) return false;
  *pos += len;
  return true;
}

bool IsValidUtf8(std::string_view s) {
  size_t pos = 0;
  char32_t cp;
  while (pos < s.size()) {
    if (static_cast<unsigned char>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    if (!DecodeUtf8(s, &pos, &cp)) return false;
  }
  return true;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

CharClass ClassOf(char32_t cp) {
  if (cp < 0x80) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return kLetter;
    if (cp >= '0' && cp <= '9') return kNumberWord;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return kSpace;
    if (cp == '_') return kWordOther;
    return kOther;
  }
  const ClassRange* end = kClassRanges + kNumClassRanges;
  const ClassRange* it = std::upper_bound(
      kClassRanges, end, cp, [](char32_t c, const ClassRange& r) { return c < r.first; });
  if (it == kClassRanges) return kOther;
  --it;
  return cp <= it->last ? static_cast<CharClass>(it->cls) : kOther;
}

uint8_t CombiningClass(char32_t cp) {
  if (cp < 0x300) return 0;
  const CccRange* end = kCccRanges + kNumCccRanges;
  const CccRange* it = std::upper_bound(kCccRanges, end, cp,
                                        [](char32_t c, const CccRange& r) { return c < r.first; });
  if (it == kCccRanges) return 0;
  --it;
  return cp <= it->last ? it->ccc : 0;
}

std::string ToNfc(std::string_view text) {
  if (std::all_of(text.begin(), text.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
    return std::string(text);
  }
  // 1. Full canonical decomposition.
  std::vector<char32_t> cps;
  cps.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    char32_t cp;
    if (!DecodeUtf8(text, &pos, &cp)) {
      cp = 0xFFFD;  // Callers pass valid UTF-8; be safe regardless.
      ++pos;
    }
    Decompose(cp, &cps);
  }
  // 2. Canonical ordering: stable sort of each run of non-starters by class.
  for (size_t i = 0; i < cps.size();) {
    if (CombiningClass(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && CombiningClass(cps[j]) != 0) ++j;
    std::stable_sort(cps.begin() + i, cps.begin() + j,
                     [](char32_t a, char32_t b) { return CombiningClass(a) < CombiningClass(b); });
    i = j;
  }
  // 3. Canonical composition (the algorithm of UAX #15).
  if (!cps.empty()) {
    size_t starter_pos = 0;
    char32_t starter = cps[0];
    int last_class = CombiningClass(starter) != 0 ? 256 : 0;
    size_t out = 1;
    for (size_t i = 1; i < cps.size(); ++i) {
      const char32_t cp = cps[i];
      const int cls = CombiningClass(cp);
      if (last_class < cls || last_class == 0) {
        const char32_t composite = Compose(starter, cp);
        if (composite != 0) {
          cps[starter_pos] = composite;
          starter = composite;
          continue;
        }
      }
      if (cls == 0) {
        starter_pos = out;
        starter = cp;
      }
      last_class = cls;
      cps[out++] = cp;
    }
    cps.resize(out);
  }
  std::string result;
  result.reserve(text.size());
  for (char32_t cp : cps) AppendUtf8(cp, &result);
  return result;
}

std::string Utf8Lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t pos = 0; pos < bytes.size();) {
    bool complete = false;
    char32_t cp;
    const size_t len = ValidPrefix(bytes, pos, &complete, &cp);
    if (complete) {
      out.append(bytes.substr(pos, len));
      pos += len;
    } else {
      out.append("\xEF\xBF\xBD");
      pos += std::max<size_t>(len, 1);
    }
  }
  return out;
}

namespace {

struct ByteLevelTables {
  std::string chars[256];
  int16_t bytes[324];  // Indexed by code point; every mapped one is < 324.
};

const ByteLevelTables& GetByteLevelTables() {
  static const ByteLevelTables* const kTables = [] {
    auto* t = new ByteLevelTables();
    for (int16_t& b : t->bytes) b = -1;
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const char32_t cp = printable ? b : next++;
      AppendUtf8(cp, &t->chars[b]);
      t->bytes[cp] = static_cast<int16_t>(b);
    }
    return t;
  }();
  return *kTables;
}

}  // namespace

const std::string& ByteLevelChar(uint8_t b) { return GetByteLevelTables().chars[b]; }

int ByteLevelByte(char32_t cp) { return cp < 324 ? GetByteLevelTables().bytes[cp] : -1; }

}  // namespace tokenizer_internal
}  // namespace quantd
