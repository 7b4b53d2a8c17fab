// BPE training, merge phase, with Hugging Face's BpeTrainer semantics:
// - ids: special tokens, then the alphabet sorted by code point, then merges;
// - the next merge is the pair with the highest count, ties to the smallest
//   (left id, right id);
// - counts change only in the words where a merge applies (a pair -> words index
//   is kept per queue entry), and the queue re-checks stale counts lazily;
// - HF's quirks are kept so that the merges are equal: a merged pair's own count
//   is not decremented, and a queue entry only merges the words it recorded.
#include <algorithm>
#include <queue>

#include "core/error.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/trainer.h"

namespace rmkv::tok {

namespace {

uint64_t pack(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct PairHash {
    size_t operator()(uint64_t k) const noexcept {
        k ^= k >> 33;
        k *= 0xff51afd7ed558ccdull;
        k ^= k >> 33;
        return static_cast<size_t>(k);
    }
};

struct QueueEntry {
    uint64_t count;
    uint64_t pair;     // packed (a, b)
    uint32_t pos;      // index into the position lists
    bool operator<(const QueueEntry &o) const {  // max-heap: larger count, then smaller pair
        if (count != o.count) return count < o.count;
        return pair > o.pair;
    }
};

// All words' symbols in one array; a word is [begin, begin + len).
struct Corpus {
    std::vector<int32_t> symbols;
    std::vector<uint64_t> begin;
    std::vector<uint32_t> len;
    std::vector<uint64_t> count;
};

// Word::merge of HF: merges every (a, b) in the word left to right and reports
// the pair count changes (the merged pair itself is not reported).
template <class Change>
void merge_word(int32_t *w, uint32_t &len, int32_t a, int32_t b, int32_t z, Change &&change) {
    uint32_t i = 0;
    while (i < len) {
        if (w[i] == a && i + 1 < len && w[i + 1] == b) {
            if (i > 0) {
                change(w[i - 1], a, -1);
                change(w[i - 1], z, +1);
            }
            w[i] = z;
            std::copy(w + i + 2, w + len, w + i + 1);
            --len;
            if (i + 1 < len) {
                change(b, w[i + 1], -1);
                change(z, w[i + 1], +1);
            }
        }
        ++i;
    }
}

}  // namespace

BpeTrainResult train_bpe(const TrainOptions &o, const WordCounts &words) {
    BpeTrainResult r;
    std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> w2id;
    auto add = [&](const std::string &s) {
        if (w2id.count(s)) return;
        w2id.emplace(s, static_cast<int32_t>(r.id_to_token.size()));
        r.id_to_token.push_back(s);
    };
    for (const auto &s : o.special_tokens) add(s);

    // alphabet: the bytes seen (and all 256 with byte_alphabet), by code point of their character
    bool seen[256] = {};
    for (const auto &[w, c] : words)
        for (unsigned char b : w) seen[b] = true;
    std::vector<std::pair<char32_t, uint8_t>> alphabet;
    for (int b = 0; b < 256; ++b)
        if (seen[b] || o.byte_alphabet) alphabet.emplace_back(byte_char(static_cast<uint8_t>(b)), static_cast<uint8_t>(b));
    std::sort(alphabet.begin(), alphabet.end());
    int32_t byte_id[256];
    for (auto [ch, b] : alphabet) {
        std::string s;
        append_utf8(s, ch);
        add(s);
        byte_id[b] = w2id[s];
    }

    // words as symbol ids
    Corpus c;
    c.begin.reserve(words.size());
    c.len.reserve(words.size());
    c.count.reserve(words.size());
    {
        size_t total = 0;
        for (const auto &[w, n] : words) total += w.size();
        c.symbols.reserve(total);
    }
    for (const auto &[w, n] : words) {
        c.begin.push_back(c.symbols.size());
        c.len.push_back(static_cast<uint32_t>(w.size()));
        c.count.push_back(n);
        for (unsigned char b : w) c.symbols.push_back(byte_id[b]);
    }
    const size_t n_words = c.begin.size();
    report_progress(o, "count pairs", 0, n_words);

    std::unordered_map<uint64_t, int64_t, PairHash> pair_counts;
    std::unordered_map<uint64_t, std::vector<uint32_t>, PairHash> where;
    for (size_t i = 0; i < n_words; ++i) {
        const int32_t *w = c.symbols.data() + c.begin[i];
        for (uint32_t k = 0; k + 1 < c.len[i]; ++k) {
            uint64_t p = pack(w[k], w[k + 1]);
            pair_counts[p] += static_cast<int64_t>(c.count[i]);
            auto &v = where[p];
            if (v.empty() || v.back() != i) v.push_back(static_cast<uint32_t>(i));
        }
    }
    std::vector<std::vector<uint32_t>> positions;
    std::priority_queue<QueueEntry> queue;
    auto drain = [&] {
        for (auto &[p, v] : where) {
            int64_t n = pair_counts[p];
            if (n <= 0) continue;
            std::sort(v.begin(), v.end());
            v.erase(std::unique(v.begin(), v.end()), v.end());
            positions.push_back(std::move(v));
            queue.push({static_cast<uint64_t>(n), p, static_cast<uint32_t>(positions.size() - 1)});
        }
        where.clear();
    };
    drain();
    report_progress(o, "count pairs", n_words, n_words);

    const size_t target = o.vocab_size;
    uint64_t last_report = 0;
    while (w2id.size() < target && !queue.empty()) {
        QueueEntry top = queue.top();
        queue.pop();
        int64_t current = pair_counts[top.pair];
        if (static_cast<int64_t>(top.count) != current) {
            top.count = static_cast<uint64_t>(std::max<int64_t>(current, 0));
            queue.push(top);
            continue;
        }
        if (top.count < 1 || o.min_frequency > top.count) break;
        auto a = static_cast<int32_t>(top.pair >> 32), b = static_cast<int32_t>(top.pair & 0xffffffffu);
        std::string joined = r.id_to_token[static_cast<size_t>(a)] + r.id_to_token[static_cast<size_t>(b)];
        int32_t z;
        if (auto it = w2id.find(joined); it != w2id.end()) {
            z = it->second;
        } else {
            z = static_cast<int32_t>(r.id_to_token.size());
            w2id.emplace(joined, z);
            r.id_to_token.push_back(std::move(joined));
        }
        r.merges.emplace_back(a, b);

        std::vector<uint32_t> pos = std::move(positions[top.pos]);
        for (uint32_t wi : pos) {
            const auto n = static_cast<int64_t>(c.count[wi]);
            merge_word(c.symbols.data() + c.begin[wi], c.len[wi], a, b, z, [&](int32_t x, int32_t y, int change) {
                uint64_t p = pack(x, y);
                pair_counts[p] += change * n;
                if (change > 0) where[p].push_back(wi);
            });
        }
        drain();
        if (o.progress && (w2id.size() - last_report >= std::max<size_t>(target / 200, 1))) {
            last_report = w2id.size();
            report_progress(o, "merges", w2id.size(), target);
        }
    }
    report_progress(o, "merges", w2id.size(), target);
    return r;
}

namespace {

std::vector<NormKind> parse_normalizer_list(const std::string &spec, nlohmann::json &j) {
    std::vector<NormKind> kinds;
    std::vector<nlohmann::json> parts;
    size_t start = 0;
    while (start <= spec.size()) {
        size_t comma = spec.find(',', start);
        std::string name = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        name.erase(0, name.find_first_not_of(" \t"));
        name.erase(name.find_last_not_of(" \t") + 1);
        std::string up;
        for (char ch : name) up.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
        if (!up.empty()) {
            if (up == "NFD") kinds.push_back(NormKind::nfd), parts.push_back({{"type", "NFD"}});
            else if (up == "NFC") kinds.push_back(NormKind::nfc), parts.push_back({{"type", "NFC"}});
            else if (up == "NFKD") kinds.push_back(NormKind::nfkd), parts.push_back({{"type", "NFKD"}});
            else if (up == "NFKC") kinds.push_back(NormKind::nfkc), parts.push_back({{"type", "NFKC"}});
            else if (up == "LOWERCASE") kinds.push_back(NormKind::lowercase), parts.push_back({{"type", "Lowercase"}});
            else fail(RMKV_ERR_INVALID_ARGUMENT, "normalizer \"", name, "\" is not one of NFD, NFC, NFKD, NFKC, Lowercase");
        }
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    if (parts.empty()) j = nullptr;
    else if (parts.size() == 1) j = parts[0];
    else j = {{"type", "Sequence"}, {"normalizers", parts}};
    return kinds;
}

}  // namespace

}  // namespace rmkv::tok

std::unique_ptr<rmkv_tokenizer> rmkv_tokenizer::train(const rmkv::tok::TrainOptions &o) {
    using namespace rmkv::tok;
    using nlohmann::json;
    auto impl = std::make_unique<Impl>();
    impl->normalizers = parse_normalizer_list(o.normalizer, impl->normalizer_json);
    json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", o.add_prefix_space}, {"trim_offsets", true}, {"use_regex", true}};
    PreTokStep bl;
    bl.kind = PreTokStep::Kind::byte_level;
    bl.add_prefix_space = o.add_prefix_space;
    if (o.individual_digits) {
        PreTokStep d;
        d.kind = PreTokStep::Kind::digits;
        d.individual_digits = true;
        impl->pre_tokenizer.steps = {d, bl};
        impl->pre_tokenizer_json = {{"type", "Sequence"},
                                    {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level}}};
    } else {
        impl->pre_tokenizer.steps = {bl};
        impl->pre_tokenizer_json = byte_level;
    }
    impl->decoder = Impl::Decoder::byte_level;
    impl->decoder_json = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
    impl->post_processor_json = nullptr;

    const Impl &m = *impl;
    // Each sequence: normalise, pre-tokenize, count (the added vocabulary is empty
    // while HF counts, so special tokens in the text are ordinary text).
    auto count_sequence = [&m](std::string_view seq, WordCounts &counts) {
        std::string fixed;
        if (!is_valid_utf8(seq)) {
            fixed = utf8_lossy(seq);
            seq = fixed;
        }
        std::string buf;
        if (!m.normalizers.empty()) {
            buf.assign(seq);
            m.apply_normalizers(buf);
            seq = buf;
        }
        auto emit = [&counts](std::string_view w, bool) {
            auto it = counts.find(w);
            if (it != counts.end())
                ++it->second;
            else
                counts.emplace(std::string(w), 1);
        };
        m.pre_tokenizer.run(seq, emit);
    };
    WordCounts words = count_words(o, count_sequence);
    BpeTrainResult r = train_bpe(o, words);
    WordCounts().swap(words);

    Vocab vocab;
    vocab.reserve(r.id_to_token.size());
    for (size_t i = 0; i < r.id_to_token.size(); ++i) vocab.emplace(r.id_to_token[i], static_cast<int32_t>(i));
    impl->model.set_vocab(std::move(vocab));
    impl->model.merges.reserve(r.merges.size());
    impl->model.merge_map.reserve(r.merges.size());
    for (auto [a, b] : r.merges)
        impl->model.add_merge(r.id_to_token[static_cast<size_t>(a)], r.id_to_token[static_cast<size_t>(b)], "training");
    std::vector<AddedToken> specials;
    for (const auto &s : o.special_tokens) {
        AddedToken t;
        t.content = s;
        t.special = true;
        t.normalized = false;
        specials.push_back(std::move(t));
    }
    impl->add_tokens(std::move(specials), false);
    return from_impl(std::move(impl));
}
