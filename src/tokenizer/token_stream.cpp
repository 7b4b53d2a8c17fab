// Streaming decoder: appends each token's bytes, releases everything but an
// incomplete trailing character. Replacing invalid bytes by U+FFFD is local (one
// per maximal invalid subsequence), so releasing in pieces gives the same text as
// decoding everything at once.
#include "tokenizer/token_stream.h"

#include "tokenizer/unicode.h"

std::string rmkv_token_stream::peek_feed(int32_t id, size_t &held_after) const {
    std::string bytes = held_;
    tok_.append_token_bytes(id, first_, bytes);
    held_after = rmkv::tok::incomplete_utf8_tail(bytes);
    return rmkv::tok::utf8_lossy(std::string_view(bytes).substr(0, bytes.size() - held_after));
}

void rmkv_token_stream::commit_feed(int32_t id, size_t held_after) {
    std::string bytes = held_;
    tok_.append_token_bytes(id, first_, bytes);
    held_ = bytes.substr(bytes.size() - held_after);
    first_ = false;
}

std::string rmkv_token_stream::peek_flush() const { return rmkv::tok::utf8_lossy(held_); }

void rmkv_token_stream::commit_flush() {
    held_.clear();
    first_ = true;
}

std::string rmkv_token_stream::feed(int32_t id) {
    tok_.append_token_bytes(id, first_, held_);
    first_ = false;
    const size_t tail = rmkv::tok::incomplete_utf8_tail(held_);
    std::string out = rmkv::tok::utf8_lossy(std::string_view(held_).substr(0, held_.size() - tail));
    held_.erase(0, held_.size() - tail);
    return out;
}

std::string rmkv_token_stream::flush() {
    std::string out = peek_flush();
    commit_flush();
    return out;
}
