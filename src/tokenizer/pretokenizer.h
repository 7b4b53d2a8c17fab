// Pre-tokenizers of tokenizer.json that rmkv supports: ByteLevel (GPT-2 split
// and byte-to-character mapping), Digits, and a Sequence of them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rmkv::tok {

// The GPT-2 byte-to-character table: byte b is written as the character
// byte_char(b); printable Latin-1 bytes map to themselves.
char32_t byte_char(uint8_t b);
// The byte behind a byte-level character, or -1.
int char_byte(char32_t c);
// Maps raw bytes to their byte-level characters (UTF-8).
void append_byte_level(std::string &out, std::string_view raw);

// Calls emit(begin, end) for every match of
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// over s (valid UTF-8), in order; the matches cover s. Hand-written: one pass,
// no backtracking.
template <class Emit>
void gpt2_split(std::string_view s, Emit &&emit);

struct PreTokStep {
    enum class Kind : uint8_t { byte_level, digits };
    Kind kind = Kind::byte_level;
    bool add_prefix_space = false;  // byte_level
    bool trim_offsets = true;       // byte_level (offsets only; kept for writing back)
    bool use_regex = true;          // byte_level
    bool individual_digits = false; // digits
};

// Minimal non-owning callable reference (no allocation on the hot path).
template <class Sig>
class FnRef;
template <class R, class... A>
class FnRef<R(A...)> {
public:
    template <class F>
    FnRef(F &f) : obj_(&f), call_([](void *o, A... a) -> R { return (*static_cast<F *>(o))(a...); }) {}
    R operator()(A... a) const { return call_(obj_, a...); }

private:
    void *obj_;
    R (*call_)(void *, A...);
};

class PreTokenizer {
public:
    std::vector<PreTokStep> steps;

    // Splits a normalised piece into words. emit(word, raw_bytes): raw_bytes means
    // the word is still raw UTF-8 whose bytes the model maps through the byte-level
    // table (ByteLevel was the last step); otherwise the word's characters are
    // looked up in the vocabulary as they are.
    void run(std::string_view piece, FnRef<void(std::string_view, bool)> emit) const;

    // True when the last step is ByteLevel (words come out as raw bytes).
    bool ends_with_byte_level() const {
        return !steps.empty() && steps.back().kind == PreTokStep::Kind::byte_level;
    }

private:
    void run_from(size_t step, std::string_view piece, bool mapped, FnRef<void(std::string_view, bool)> emit) const;
};

}  // namespace rmkv::tok

#include "tokenizer/unicode.h"

namespace rmkv::tok {

template <class Emit>
void gpt2_split(std::string_view s, Emit &&emit) {
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    const size_t n = s.size();
    size_t i = 0;
    auto class_at = [&](size_t at, size_t &len) {
        char32_t cp;
        len = decode_utf8(p + at, cp);
        return char_class(cp);
    };
    auto run_of = [&](size_t at, CharClass cls) {
        while (at < n) {
            size_t l;
            if (class_at(at, l) != cls) break;
            at += l;
        }
        return at;
    };
    while (i < n) {
        const unsigned char c = p[i];
        if (c == '\'' && i + 1 < n) {
            const unsigned char d = p[i + 1];
            if (d == 's' || d == 't' || d == 'm' || d == 'd') {
                emit(i, i + 2);
                i += 2;
                continue;
            }
            if (i + 2 < n && ((d == 'r' && p[i + 2] == 'e') || (d == 'v' && p[i + 2] == 'e') ||
                              (d == 'l' && p[i + 2] == 'l'))) {
                emit(i, i + 3);
                i += 3;
                continue;
            }
        }
        size_t len;
        CharClass cls = class_at(i, len);
        if (c == ' ' && i + 1 < n) {
            size_t len2;
            CharClass next = class_at(i + 1, len2);
            if (next != CharClass::space) {  // ' ?' followed by letters, numbers or others
                size_t end = run_of(i + 1, next);
                emit(i, end);
                i = end;
                continue;
            }
        }
        if (cls != CharClass::space) {
            size_t end = run_of(i, cls);
            emit(i, end);
            i = end;
            continue;
        }
        // whitespace run [i, k)
        size_t k = i, last = i;
        while (k < n) {
            size_t l;
            if (class_at(k, l) != CharClass::space) break;
            last = k;
            k += l;
        }
        if (k == n || last == i) {  // \s+(?!\S) to the end, or a lone \s+
            emit(i, k);
            i = k;
        } else {  // \s+(?!\S): all but the last whitespace character
            emit(i, last);
            i = last;
        }
    }
}

}  // namespace rmkv::tok
