// Matching added tokens in text, with Hugging Face's rules.
#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace rmkv::tok {

void AddedMatcher::build(const std::vector<AddedToken> &tokens, bool normalized) {
    entries_.clear();
    by_first_byte_.assign(256, {});
    for (const AddedToken &t : tokens) {
        if (t.normalized != normalized || t.match_form.empty()) continue;
        entries_.push_back({t.match_form, &t});
    }
    std::stable_sort(entries_.begin(), entries_.end(),
                     [](const Entry &a, const Entry &b) { return a.pattern.size() > b.pattern.size(); });
    for (size_t i = 0; i < entries_.size(); ++i)
        by_first_byte_[static_cast<unsigned char>(entries_[i].pattern[0])].push_back(static_cast<uint32_t>(i));
}

namespace {

// Last character of s (valid UTF-8), or 0 when empty.
char32_t last_char(std::string_view s) {
    if (s.empty()) return 0;
    size_t i = s.size() - 1;
    while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    char32_t cp;
    decode_utf8(reinterpret_cast<const unsigned char *>(s.data()) + i, cp);
    return cp;
}

char32_t first_char(std::string_view s) {
    if (s.empty()) return 0;
    char32_t cp;
    decode_utf8(reinterpret_cast<const unsigned char *>(s.data()), cp);
    return cp;
}

// Start of the whitespace run that ends s.
size_t trailing_space_start(std::string_view s) {
    size_t i = s.size();
    while (i > 0) {
        size_t j = i - 1;
        while (j > 0 && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) --j;
        char32_t cp;
        decode_utf8(reinterpret_cast<const unsigned char *>(s.data()) + j, cp);
        if (!is_white_space(cp)) break;
        i = j;
    }
    return i;
}

// Length of the whitespace run that starts s.
size_t leading_space_len(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        char32_t cp;
        size_t l = decode_utf8(reinterpret_cast<const unsigned char *>(s.data()) + i, cp);
        if (!is_white_space(cp)) break;
        i += l;
    }
    return i;
}

}  // namespace

void AddedMatcher::split(std::string_view text, std::vector<Segment> &out) const {
    size_t start_offset = 0;
    if (!entries_.empty()) {
        size_t i = 0;
        while (i < text.size()) {
            const auto &cands = by_first_byte_[static_cast<unsigned char>(text[i])];
            const Entry *hit = nullptr;
            for (uint32_t k : cands) {
                const Entry &e = entries_[k];
                if (text.compare(i, e.pattern.size(), e.pattern) == 0) {
                    hit = &e;  // candidates are longest first
                    break;
                }
            }
            if (!hit) {
                ++i;
                continue;
            }
            size_t start = i, stop = i + hit->pattern.size();
            i = stop;  // matches never overlap, even discarded ones
            const AddedToken &t = *hit->token;
            if (t.single_word) {
                bool start_ok = start == 0 || !is_word_char(last_char(text.substr(0, start)));
                bool stop_ok = stop == text.size() || !is_word_char(first_char(text.substr(stop)));
                if (!start_ok || !stop_ok) continue;
            }
            if (t.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), start_offset);
            if (t.rstrip) stop += leading_space_len(text.substr(stop));
            if (start_offset < start) out.push_back({start_offset, start, -1});
            out.push_back({start, stop, t.id});
            start_offset = stop;
        }
    }
    if (start_offset < text.size() || text.empty()) out.push_back({start_offset, text.size(), -1});
}

}  // namespace rmkv::tok
