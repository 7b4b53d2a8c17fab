// Added tokens (special or not) of tokenizer.json and how they are found in a
// text before the model sees it (HF's AddedVocabulary: leftmost-longest matches,
// single_word / lstrip / rstrip).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rmkv::tok {

struct AddedToken {
    std::string content;
    int32_t id = -1;
    bool single_word = false;
    bool lstrip = false;
    bool rstrip = false;
    bool normalized = true;
    bool special = false;
    std::string match_form;  // content, or its normalised form when `normalized`
};

// A piece of text: an added token (id >= 0) or plain text (id < 0).
struct Segment {
    size_t begin, end;
    int32_t id;
};

// Finds a set of tokens in text. Built for either the non-normalized tokens
// (matched on the raw text) or the normalized ones (matched on normalised text).
class AddedMatcher {
public:
    void build(const std::vector<AddedToken> &tokens, bool normalized);
    bool empty() const { return entries_.empty(); }
    // Splits text into segments covering it.
    void split(std::string_view text, std::vector<Segment> &out) const;

private:
    struct Entry {
        std::string pattern;
        const AddedToken *token;
    };
    std::vector<Entry> entries_;                      // longest first
    std::vector<std::vector<uint32_t>> by_first_byte_;  // indices into entries_
};

}  // namespace rmkv::tok
