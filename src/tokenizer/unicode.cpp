// UTF-8 repair and the Unicode properties the tokenizer needs, on top of utf8proc.
#include "tokenizer/unicode.h"

#include <utf8proc.h>

#include <vector>

#include "core/error.h"

namespace rmkv::tok {

namespace {

// Length of the valid sequence at p (n bytes left), or 0 when invalid; `consumed`
// receives the length of the maximal invalid subpart when invalid (>= 1).
size_t valid_seq_len(const unsigned char *p, size_t n, size_t &consumed) {
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        consumed = 1;
        return 0;
    }
    size_t i = 1;
    for (; i < need; ++i) {
        if (i >= n) break;
        unsigned char b = p[i];
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) break;
    }
    if (i == need) return need;
    consumed = i;  // lead byte plus the continuation bytes that were still acceptable
    return 0;
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    size_t n = s.size(), i = 0;
    while (i < n) {
        // ASCII fast path, 8 bytes at a time
        while (i + 8 <= n) {
            uint64_t w;
            __builtin_memcpy(&w, p + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (p[i] < 0x80) { ++i; continue; }
        size_t bad = 0;
        size_t len = valid_seq_len(p + i, n - i, bad);
        if (!len) return false;
        i += len;
    }
    return true;
}

void append_utf8_lossy(std::string &out, std::string_view s) {
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    size_t n = s.size(), i = 0, start = 0;
    while (i < n) {
        if (p[i] < 0x80) { ++i; continue; }
        size_t bad = 0;
        size_t len = valid_seq_len(p + i, n - i, bad);
        if (len) { i += len; continue; }
        out.append(s.data() + start, i - start);
        out.append("\xEF\xBF\xBD");
        i += bad;
        start = i;
    }
    out.append(s.data() + start, n - start);
}

std::string utf8_lossy(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    append_utf8_lossy(out, s);
    return out;
}

size_t incomplete_utf8_tail(std::string_view s) {
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    size_t n = s.size();
    // A lead byte within the last 3 bytes whose sequence is cut short by the end.
    for (size_t back = 1; back <= 3 && back <= n; ++back) {
        size_t i = n - back;
        if ((p[i] & 0xC0) == 0x80) continue;  // continuation byte: look further back
        if (p[i] < 0xC2 || p[i] > 0xF4) return 0;
        size_t bad = 0;
        size_t need = utf8_char_len(p[i]);
        if (need <= back) return 0;  // complete (or invalid) already
        size_t len = valid_seq_len(p + i, back, bad);
        if (len) return 0;
        return bad == back ? back : 0;  // every byte so far acceptable: wait for more
    }
    return 0;
}

void append_utf8(std::string &out, char32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

bool is_white_space(char32_t cp) {
    if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20;
    switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

CharClass char_class(char32_t cp) {
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CharClass::letter;
        if (cp >= '0' && cp <= '9') return CharClass::number;
        if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x20) return CharClass::space;
        return CharClass::other;
    }
    if (is_white_space(cp)) return CharClass::space;
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        return CharClass::letter;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return CharClass::number;
    default:
        return CharClass::other;
    }
}

bool is_numeric(char32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    auto c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

bool is_word_char(char32_t cp) {
    if (cp < 0x80) return ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') || (cp >= '0' && cp <= '9') || cp == '_';
    if (cp == 0x200C || cp == 0x200D) return true;
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
        return true;
    default:
        return false;
    }
}

namespace {

bool all_ascii(std::string_view s) {
    for (unsigned char c : s)
        if (c >= 0x80) return false;
    return true;
}

bool is_cased(char32_t cp) {
    auto c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
    if (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT) return true;
    auto u = static_cast<utf8proc_int32_t>(cp);
    return utf8proc_tolower(u) != u || utf8proc_toupper(u) != u;
}

bool is_case_ignorable(char32_t cp) {
    switch (cp) {
    case '\'': case '.': case ':': case '^': case '`': case 0xB7: case 0x2018: case 0x2019: case 0x2024: case 0x2027:
        return true;
    default:
        break;
    }
    auto c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
    return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_ME || c == UTF8PROC_CATEGORY_CF ||
           c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_SK;
}

// Rust's str::to_lowercase: per-character lowercase mapping, U+0130 to "i\u0307",
// and the final-sigma rule for U+03A3.
void lowercase(std::string &s) {
    if (all_ascii(s)) {
        for (char &c : s)
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
        return;
    }
    std::vector<char32_t> cps;
    cps.reserve(s.size());
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    for (size_t i = 0; i < s.size();) {
        char32_t cp;
        i += decode_utf8(p + i, cp);
        cps.push_back(cp);
    }
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < cps.size(); ++i) {
        char32_t cp = cps[i];
        if (cp == 0x130) {
            out.append("i\xCC\x87");
        } else if (cp == 0x3A3) {
            bool before = false, after = false;
            for (size_t j = i; j-- > 0;) {
                if (is_case_ignorable(cps[j])) continue;
                before = is_cased(cps[j]);
                break;
            }
            for (size_t j = i + 1; j < cps.size(); ++j) {
                if (is_case_ignorable(cps[j])) continue;
                after = is_cased(cps[j]);
                break;
            }
            append_utf8(out, before && !after ? 0x3C2 : 0x3C3);
        } else {
            append_utf8(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
        }
    }
    s.swap(out);
}

void unicode_normalize(std::string &s, utf8proc_option_t options) {
    if (all_ascii(s)) return;  // ASCII is invariant under NFC, NFD, NFKC and NFKD
    options = static_cast<utf8proc_option_t>(options | UTF8PROC_STABLE);
    auto *in = reinterpret_cast<const utf8proc_uint8_t *>(s.data());
    auto len = static_cast<utf8proc_ssize_t>(s.size());
    std::vector<utf8proc_int32_t> buf(s.size() + 16);
    utf8proc_ssize_t n;
    for (;;) {
        n = utf8proc_decompose(in, len, buf.data(), static_cast<utf8proc_ssize_t>(buf.size()),
                               static_cast<utf8proc_option_t>(options & ~UTF8PROC_COMPOSE));
        if (n < 0) fail(RMKV_ERR_INTERNAL, "utf8proc: ", utf8proc_errmsg(n));
        if (static_cast<size_t>(n) <= buf.size()) break;
        buf.resize(static_cast<size_t>(n) + 1);  // need room for reencode's in-place write
    }
    if (buf.size() < static_cast<size_t>(n) + 1) buf.resize(static_cast<size_t>(n) + 1);
    n = utf8proc_normalize_utf32(buf.data(), n, options);
    if (n < 0) fail(RMKV_ERR_INTERNAL, "utf8proc: ", utf8proc_errmsg(n));
    std::string out;
    out.reserve(static_cast<size_t>(n) * 2);
    for (utf8proc_ssize_t i = 0; i < n; ++i) append_utf8(out, static_cast<char32_t>(buf[static_cast<size_t>(i)]));
    s.swap(out);
}

}  // namespace

void normalize(NormKind kind, std::string &s) {
    switch (kind) {
    case NormKind::nfd: unicode_normalize(s, UTF8PROC_DECOMPOSE); break;
    case NormKind::nfc: unicode_normalize(s, static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPOSE)); break;
    case NormKind::nfkd: unicode_normalize(s, static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT)); break;
    case NormKind::nfkc:
        unicode_normalize(s, static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
        break;
    case NormKind::lowercase: lowercase(s); break;
    }
}

}  // namespace rmkv::tok
