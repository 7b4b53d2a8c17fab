// Unicode pieces of the tokenizer: UTF-8 repair and decoding, the character
// classes of the ByteLevel regex, and the normalisers (through utf8proc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rmkv::tok {

// True when `s` is well-formed UTF-8 (shortest forms, no surrogates, <= U+10FFFF).
bool is_valid_utf8(std::string_view s);

// Replaces every maximal invalid subsequence by U+FFFD, exactly as Rust's
// String::from_utf8_lossy (and Python's errors="replace") do. Valid input comes
// back unchanged.
std::string utf8_lossy(std::string_view s);

// Appends utf8_lossy(s) to out.
void append_utf8_lossy(std::string &out, std::string_view s);

// Length of the incomplete but so far valid UTF-8 sequence at the end of s (0..3):
// the bytes a streaming decoder holds back.
size_t incomplete_utf8_tail(std::string_view s);

// Decodes the character at p (valid UTF-8 assumed), returns its length.
inline size_t decode_utf8(const unsigned char *p, char32_t &cp) {
    unsigned char c = p[0];
    if (c < 0x80) { cp = c; return 1; }
    if (c < 0xE0) { cp = ((c & 0x1Fu) << 6) | (p[1] & 0x3Fu); return 2; }
    if (c < 0xF0) { cp = ((c & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu); return 3; }
    cp = ((c & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
    return 4;
}

inline size_t utf8_char_len(unsigned char lead) {
    return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

void append_utf8(std::string &out, char32_t cp);

// Classes of the GPT-2 pattern: \p{L}, \p{N}, \s (Unicode White_Space, as
// Oniguruma has it) and everything else.
enum class CharClass : uint8_t { letter, number, space, other };
CharClass char_class(char32_t cp);

bool is_white_space(char32_t cp);  // Unicode White_Space (Rust char::is_whitespace, regex \s)
bool is_numeric(char32_t cp);      // Nd, Nl, No (Rust char::is_numeric)
bool is_word_char(char32_t cp);    // regex \w: letters, marks, Nd, Nl, Pc, ZWJ/ZWNJ

enum class NormKind : uint8_t { nfd, nfc, nfkd, nfkc, lowercase };

// Applies one normaliser to valid UTF-8 text, in place.
void normalize(NormKind kind, std::string &s);

}  // namespace rmkv::tok
