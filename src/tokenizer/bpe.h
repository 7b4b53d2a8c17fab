// The BPE model of tokenizer.json: vocabulary, ranked merges, and the merge of
// one word into ids (Hugging Face's semantics: lowest rank first, leftmost first).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rmkv::tok {

// Open-addressing map from a pair of ids to (rank, new id): the hot lookup of
// encoding and the structure training builds.
class PairMap {
public:
    struct Value {
        int32_t rank;
        int32_t new_id;
    };
    void reserve(size_t n);
    // Inserts or overwrites (a later duplicate merge wins, as in HF).
    void set(int32_t a, int32_t b, Value v);
    const Value *find(int32_t a, int32_t b) const {
        if (slots_.empty()) return nullptr;
        uint64_t key = pack(a, b);
        size_t mask = slots_.size() - 1;
        for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
            const Slot &s = slots_[i];
            if (s.key == key) return &s.value;
            if (s.key == kEmpty) return nullptr;
        }
    }
    size_t size() const { return size_; }

private:
    static constexpr uint64_t kEmpty = ~0ull;
    struct Slot {
        uint64_t key = kEmpty;
        Value value{};
    };
    static uint64_t pack(int32_t a, int32_t b) {
        return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    }
    static size_t hash(uint64_t k) {
        k ^= k >> 33;
        k *= 0xff51afd7ed558ccdull;
        k ^= k >> 33;
        return static_cast<size_t>(k);
    }
    void grow();
    std::vector<Slot> slots_;
    size_t size_ = 0;
};

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct BpeModel {
    Vocab vocab;                                    // token -> id
    std::vector<std::string> id_to_token;           // by id; holes are empty with has_id false
    std::vector<uint8_t> has_id;
    std::vector<std::pair<int32_t, int32_t>> merges;  // by rank
    PairMap merge_map;
    std::optional<std::string> unk_token;
    bool fuse_unk = false;
    bool ignore_merges = false;

    std::array<int32_t, 256> byte_ids{};  // id of each byte's byte-level character, -1 if absent
    int32_t unk_id = -1;

    // Sets vocab (validated: ids >= 0, no duplicate id) and the derived tables.
    void set_vocab(Vocab v);
    // Appends a merge "a b" (both tokens and their concatenation must be in the
    // vocabulary; throws FORMAT otherwise). `where` prefixes error messages.
    void add_merge(std::string_view a, std::string_view b, const std::string &where);
    // Finishes loading: byte table, unk id.
    void finalize();

    int32_t max_id() const { return static_cast<int32_t>(id_to_token.size()) - 1; }

    // Appends the ids of one pre-tokenized word. raw_bytes: the word's bytes are
    // looked up through the byte-level table; otherwise each UTF-8 character.
    void encode_word(std::string_view word, bool raw_bytes, std::vector<int32_t> &out) const;
};

}  // namespace rmkv::tok
