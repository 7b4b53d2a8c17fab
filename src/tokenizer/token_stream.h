// The streaming decoder behind rmkv_token_stream: token-by-token text that never
// splits a UTF-8 character.
#pragma once

#include <string>

#include "tokenizer/tokenizer.h"

struct rmkv_token_stream {
public:
    explicit rmkv_token_stream(const rmkv_tokenizer &tok) : tok_(tok) {}

    // The text that becomes final once `id` is added (may be empty). Does not
    // change the stream: commit() does, so a caller whose buffer is too small
    // can retry.
    std::string peek_feed(int32_t id, size_t &held_after) const;
    void commit_feed(int32_t id, size_t held_after);

    std::string peek_flush() const;
    void commit_flush();

    // peek + commit in one pass, for a caller that always takes the text.
    std::string feed(int32_t id);
    std::string flush();

private:
    const rmkv_tokenizer &tok_;
    std::string held_;   // bytes of an incomplete character
    bool first_ = true;  // no token fed since the start or the last flush
};
