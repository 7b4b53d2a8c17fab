// The tokenizer behind the opaque rmkv_tokenizer: byte-level BPE compatible with
// Hugging Face tokenizer.json (SPEC section 8).
//
// The model code relies only on from_json / to_json / vocab_size / clone; the rest
// of the class serves the rmkv_tokenizer_* functions.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

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

private:
    rmkv_tokenizer();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};
