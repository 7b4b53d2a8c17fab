// The tokenizer behind the opaque rmkv_tokenizer: byte-level BPE compatible with
// Hugging Face tokenizer.json (SPEC section 8).
//
// The model code relies only on from_json / to_json / vocab_size / clone; the rest
// of the class serves the rmkv_tokenizer_* functions. The pieces live in
// src/tokenizer/: unicode (UTF-8, classes, normalisers), pretokenizer (ByteLevel,
// Digits), bpe (vocabulary, merges), added_tokens, json_io (tokenizer.json),
// trainer (BPE training), token_stream (streaming decoder).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace rmkv::tok {
struct TrainOptions;
}

struct rmkv_tokenizer {
public:
    // Parses a tokenizer.json. Throws rmkv::Error(RMKV_ERR_FORMAT, ...) naming the
    // bad or unsupported component.
    static std::unique_ptr<rmkv_tokenizer> from_json(std::string_view json);

    // The tokenizer.json text (loads back to an identical tokenizer, here and in HF).
    std::string to_json() const;

    std::unique_ptr<rmkv_tokenizer> clone() const { return from_json(to_json()); }

    size_t vocab_size() const;
    int32_t token_id(std::string_view token) const;  // -1 if absent

    std::vector<int32_t> encode(std::string_view text) const;
    std::string decode(const int32_t *ids, size_t n) const;  // throws INVALID_ARGUMENT on a bad id

    ~rmkv_tokenizer();

    // --- beyond what the model code uses ---

    // Appends the ids of text (any bytes; invalid UTF-8 becomes U+FFFD first).
    void encode_into(std::string_view text, std::vector<int32_t> &out) const;

    // The raw bytes one token contributes to decode() (before invalid UTF-8 is
    // replaced); `first` is false for every token after the first of a sequence.
    void append_token_bytes(int32_t id, bool first, std::string &out) const;  // throws on a bad id

    // The vocabulary string of an id ("" and false when the id is unused).
    bool token_string(int32_t id, std::string &out) const;

    // Trains a byte-level BPE tokenizer (src/tokenizer/trainer.cpp).
    static std::unique_ptr<rmkv_tokenizer> train(const rmkv::tok::TrainOptions &options);

    struct Impl;
    const Impl &impl() const { return *impl_; }
    static std::unique_ptr<rmkv_tokenizer> from_impl(std::unique_ptr<Impl> impl);

private:
    rmkv_tokenizer();
    std::unique_ptr<Impl> impl_;
};
