// The state behind rmkv_tokenizer (shared by tokenizer.cpp, json_io.cpp and
// trainer.cpp): the pipeline of tokenizer.json as rmkv runs it.
#pragma once

#include <array>
#include <mutex>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

struct rmkv_tokenizer::Impl {
    using ojson = nlohmann::json;

    // normalizer (flattened Sequence), written back as it was read
    std::vector<rmkv::tok::NormKind> normalizers;
    ojson normalizer_json;  // null when none

    rmkv::tok::PreTokenizer pre_tokenizer;
    ojson pre_tokenizer_json;

    ojson post_processor_json;  // null or ByteLevel (ids unaffected)

    enum class Decoder : uint8_t { none, byte_level } decoder = Decoder::byte_level;
    ojson decoder_json;

    rmkv::tok::BpeModel model;

    std::vector<rmkv::tok::AddedToken> added;       // in file order
    std::vector<int32_t> added_index_by_id;         // id -> index into added, -1
    rmkv::tok::AddedMatcher raw_matcher, normalized_matcher;

    // Decoded bytes of every id (byte-level tokens mapped back to bytes).
    std::vector<std::string> id_bytes;
    std::vector<uint8_t> id_valid;
    size_t n_ids = 0;          // 1 + the largest id
    bool chunkable = true;     // long texts may be cut at safe spaces (see tokenizer.cpp)

    // Word -> ids caches. A thread encoding takes a free slot for the duration of
    // its call (try_lock, starting at a slot chosen by its thread id), so threads
    // do not contend and caches survive from call to call; with every slot busy
    // the call runs uncached.
    struct WordCache {
        std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, rmkv::tok::StringHash, std::equal_to<>> map;
        std::vector<int32_t> ids;
    };
    struct CacheSlot {
        std::mutex mutex;
        WordCache cache;
    };
    mutable std::array<CacheSlot, 8> caches;

    void apply_normalizers(std::string &s) const {
        for (auto k : normalizers) rmkv::tok::normalize(k, s);
    }

    // Adds tokens with HF's id rule (existing id, else the next free one) and
    // builds every derived table. Called once the model is set.
    void add_tokens(std::vector<rmkv::tok::AddedToken> tokens, bool warn_on_id_mismatch);
    void finalize();
};
