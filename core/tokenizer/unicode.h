// UTF-8 and Unicode helpers for the tokenizer: decoding, character classes
// as the pre-tokenizer patterns see them, NFC, and Rust's lossy UTF-8
// decoding (which Hugging Face decoders use).
#ifndef QUANTD_CORE_TOKENIZER_UNICODE_H_
#define QUANTD_CORE_TOKENIZER_UNICODE_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "core/tokenizer/unicode_tables.h"

namespace quantd {
namespace tokenizer_internal {

// Decodes the code point at s[*pos] and advances *pos past it. Returns false
// (and leaves *pos) on a malformed, overlong or surrogate sequence.
bool DecodeUtf8(std::string_view s, size_t* pos, char32_t* cp);

// True when `s` is well-formed UTF-8.
bool IsValidUtf8(std::string_view s);

// Byte length of the UTF-8 character that starts with byte `lead` of valid
// UTF-8 text (1 for a stray byte).
inline size_t Utf8Length(unsigned char lead) {
  return lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

void AppendUtf8(char32_t cp, std::string* out);

CharClass ClassOf(char32_t cp);

inline bool IsLetter(char32_t cp) { return ClassOf(cp) == kLetter; }
// \p{N}, which is also Rust's char::is_numeric (Nd, Nl, No).
inline bool IsNumber(char32_t cp) {
  CharClass c = ClassOf(cp);
  return c == kNumberWord || c == kNumberOther;
}
// White_Space: \s of the patterns, Rust's char::is_whitespace.
inline bool IsSpace(char32_t cp) { return ClassOf(cp) == kSpace; }
// Rust regex's Unicode \w: Alphabetic, M, Nd, Pc, Join_Control.
inline bool IsWordChar(char32_t cp) {
  CharClass c = ClassOf(cp);
  return c == kLetter || c == kNumberWord || c == kMark || c == kWordOther;
}

// Canonical combining class.
uint8_t CombiningClass(char32_t cp);

// Unicode Normalization Form C of valid UTF-8 text.
std::string ToNfc(std::string_view text);

// Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes
// one U+FFFD.
std::string Utf8Lossy(std::string_view bytes);

// GPT-2's bytes_to_unicode(), which byte-level BPE vocabularies are written
// in: the UTF-8 of the character that stands for byte `b`, and the byte that
// code point `cp` stands for (-1 for none).
const std::string& ByteLevelChar(uint8_t b);
int ByteLevelByte(char32_t cp);

}  // namespace tokenizer_internal
}  // namespace quantd

#endif  // QUANTD_CORE_TOKENIZER_UNICODE_H_
