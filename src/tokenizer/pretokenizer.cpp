// Pre-tokenizers: Digits, ByteLevel, and their Sequence, with Hugging Face's
// semantics (each step splits the pieces left by the previous one).
#include "tokenizer/pretokenizer.h"

#include <array>

namespace rmkv::tok {

namespace {

struct ByteTables {
    std::array<char32_t, 256> to_char{};
    std::array<std::string, 256> to_utf8;
    std::array<int16_t, 512> from_char{};  // byte of each character below U+0200, or -1
    ByteTables() {
        from_char.fill(-1);
        int n = 0;
        for (int b = 0; b < 256; ++b) {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char32_t c = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
            to_char[static_cast<size_t>(b)] = c;
            from_char[c] = static_cast<int16_t>(b);
            append_utf8(to_utf8[static_cast<size_t>(b)], c);
        }
    }
};

const ByteTables &tables() {
    static const ByteTables t;
    return t;
}

}  // namespace

char32_t byte_char(uint8_t b) { return tables().to_char[b]; }

int char_byte(char32_t c) { return c < 512 ? tables().from_char[c] : -1; }

void append_byte_level(std::string &out, std::string_view raw) {
    const auto &t = tables();
    for (unsigned char b : raw) out += t.to_utf8[b];
}

void PreTokenizer::run(std::string_view piece, FnRef<void(std::string_view, bool)> emit) const {
    if (piece.empty()) return;
    run_from(0, piece, false, emit);
}

void PreTokenizer::run_from(size_t step, std::string_view piece, bool mapped,
                            FnRef<void(std::string_view, bool)> emit) const {
    if (step == steps.size()) {
        emit(piece, mapped);
        return;
    }
    if (mapped) {
        // A previous ByteLevel left raw bytes; later steps see its characters.
        std::string text;
        append_byte_level(text, piece);
        run_from(step, text, false, emit);
        return;
    }
    const PreTokStep &st = steps[step];
    const auto *p = reinterpret_cast<const unsigned char *>(piece.data());
    const size_t n = piece.size();
    if (st.kind == PreTokStep::Kind::digits) {
        size_t start = 0, i = 0;
        while (i < n) {
            char32_t cp;
            size_t l = decode_utf8(p + i, cp);
            if (!is_numeric(cp)) {
                i += l;
                continue;
            }
            if (start < i) run_from(step + 1, piece.substr(start, i - start), false, emit);
            size_t end = i + l;
            if (!st.individual_digits) {
                while (end < n) {
                    size_t l2 = decode_utf8(p + end, cp);
                    if (!is_numeric(cp)) break;
                    end += l2;
                }
            }
            run_from(step + 1, piece.substr(i, end - i), false, emit);
            start = i = end;
        }
        if (start < n) run_from(step + 1, piece.substr(start), false, emit);
        return;
    }
    // ByteLevel
    std::string prefixed;
    std::string_view s = piece;
    if (st.add_prefix_space && piece.front() != ' ') {
        prefixed.reserve(piece.size() + 1);
        prefixed.push_back(' ');
        prefixed.append(piece);
        s = prefixed;
    }
    if (!st.use_regex) {
        run_from(step + 1, s, true, emit);
        return;
    }
    gpt2_split(s, [&](size_t b, size_t e) { run_from(step + 1, s.substr(b, e - b), true, emit); });
}

}  // namespace rmkv::tok
