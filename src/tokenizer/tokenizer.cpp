// The encode / decode pipeline of rmkv_tokenizer, in Hugging Face's order:
// added tokens on the raw text, normalisation, normalised added tokens,
// pre-tokenization, BPE per word (through a per-thread word cache).
#include <functional>
#include <thread>
#include <unordered_map>

#include "core/log.h"
#include "tokenizer/tokenizer_impl.h"

using rmkv::fail;
namespace tok = rmkv::tok;

rmkv_tokenizer::rmkv_tokenizer() : impl_(std::make_unique<Impl>()) {}
rmkv_tokenizer::~rmkv_tokenizer() = default;

std::unique_ptr<rmkv_tokenizer> rmkv_tokenizer::from_impl(std::unique_ptr<Impl> impl) {
    std::unique_ptr<rmkv_tokenizer> t(new rmkv_tokenizer());
    t->impl_ = std::move(impl);
    return t;
}

size_t rmkv_tokenizer::vocab_size() const { return impl_->n_ids; }

int32_t rmkv_tokenizer::token_id(std::string_view token) const {
    for (const auto &a : impl_->added)
        if (a.content == token) return a.id;
    auto it = impl_->model.vocab.find(token);
    return it == impl_->model.vocab.end() ? -1 : it->second;
}

bool rmkv_tokenizer::token_string(int32_t id, std::string &out) const {
    const Impl &m = *impl_;
    if (id < 0 || static_cast<size_t>(id) >= m.n_ids) return false;
    if (static_cast<size_t>(id) < m.added_index_by_id.size() && m.added_index_by_id[static_cast<size_t>(id)] >= 0) {
        out = m.added[static_cast<size_t>(m.added_index_by_id[static_cast<size_t>(id)])].content;
        return true;
    }
    if (id <= m.model.max_id() && m.model.has_id[static_cast<size_t>(id)]) {
        out = m.model.id_to_token[static_cast<size_t>(id)];
        return true;
    }
    return false;
}

// ---------------------------------------------------------------------------
// Building the derived tables

void rmkv_tokenizer::Impl::add_tokens(std::vector<tok::AddedToken> tokens, bool warn_on_id_mismatch) {
    // HF's AddedVocabulary::add_tokens: a token already known (added or in the
    // model vocabulary) keeps that id, the others get the next ids after the
    // model's vocabulary size; the ids written in the file are not used.
    int32_t max_added = -1;
    for (const auto &a : added) max_added = std::max(max_added, a.id);
    auto model_size = static_cast<int32_t>(model.vocab.size());
    int32_t next_id = max_added < 0 ? model_size : (max_added >= model_size || model_size == 0 ? max_added + 1 : model_size);
    for (auto &t : tokens) {
        if (t.content.empty()) continue;
        auto same = std::find_if(added.begin(), added.end(), [&](const tok::AddedToken &a) { return a.content == t.content; });
        int32_t id;
        if (same != added.end()) {
            id = same->id;
        } else if (auto it = model.vocab.find(t.content); it != model.vocab.end()) {
            id = it->second;
        } else {
            id = next_id++;
        }
        if (warn_on_id_mismatch && t.id >= 0 && t.id != id)
            rmkv::log(RMKV_LOG_WARN, "tokenizer.json: added token \"", t.content, "\" has id ", t.id, " in the file but id ",
                      id, " by Hugging Face's rule (used)");
        t.id = id;
        // one token per id: a later one replaces an earlier one with the same id
        added.erase(std::remove_if(added.begin(), added.end(),
                                   [&](const tok::AddedToken &a) { return a.id == id || a.content == t.content; }),
                    added.end());
        added.push_back(std::move(t));
    }
    finalize();
}

void rmkv_tokenizer::Impl::finalize() {
    model.finalize();
    n_ids = static_cast<size_t>(model.max_id() + 1);
    for (auto &a : added) {
        n_ids = std::max(n_ids, static_cast<size_t>(a.id) + 1);
        a.match_form = a.content;
        if (a.normalized) apply_normalizers(a.match_form);
    }
    added_index_by_id.assign(n_ids, -1);
    for (size_t i = 0; i < added.size(); ++i) added_index_by_id[static_cast<size_t>(added[i].id)] = static_cast<int32_t>(i);
    raw_matcher.build(added, false);
    normalized_matcher.build(added, true);

    // A long text may be cut before a space between two ASCII graphic characters
    // when no normalised added token could span or strip across such a space.
    chunkable = true;
    for (const auto &a : added) {
        if (!a.normalized) continue;
        if (a.lstrip || a.rstrip) chunkable = false;
        for (unsigned char c : a.match_form)
            if (c == ' ' || c >= 0x80) chunkable = false;
    }

    id_bytes.assign(n_ids, std::string());
    id_valid.assign(n_ids, 0);
    for (size_t id = 0; id < n_ids; ++id) {
        const std::string *s = nullptr;
        if (added_index_by_id[id] >= 0) {
            s = &added[static_cast<size_t>(added_index_by_id[id])].match_form;  // HF decodes the normalised form
        } else if (static_cast<int32_t>(id) <= model.max_id() && model.has_id[id]) {
            s = &model.id_to_token[id];
        }
        if (!s) continue;
        id_valid[id] = 1;
        if (decoder == Decoder::byte_level) {
            // every character must be a byte-level character, else the token is kept as it is
            std::string bytes;
            const auto *p = reinterpret_cast<const unsigned char *>(s->data());
            bool all = true;
            for (size_t i = 0; i < s->size();) {
                char32_t cp;
                i += tok::decode_utf8(p + i, cp);
                int b = tok::char_byte(cp);
                if (b < 0) {
                    all = false;
                    break;
                }
                bytes.push_back(static_cast<char>(b));
            }
            id_bytes[id] = all ? bytes : *s;
        } else {
            id_bytes[id] = *s;
        }
    }
    for (auto &slot : caches) {
        slot.cache.map.clear();
        slot.cache.ids.clear();
    }
}

// ---------------------------------------------------------------------------
// Encoding

namespace {

using WordCache = rmkv_tokenizer::Impl::WordCache;

constexpr size_t kMaxCachedWord = 256;
constexpr size_t kMaxCacheWords = 1u << 17;
constexpr size_t kChunk = 1u << 16;

// A cache slot held for one encode call (or none: a private, throw-away cache).
class CacheLease {
public:
    explicit CacheLease(const rmkv_tokenizer::Impl &m) {
        auto &slots = m.caches;
        size_t start = std::hash<std::thread::id>{}(std::this_thread::get_id()) % slots.size();
        for (size_t k = 0; k < slots.size(); ++k) {
            auto &slot = slots[(start + k) % slots.size()];
            if (slot.mutex.try_lock()) {
                slot_ = &slot;
                break;
            }
        }
        cache_ = slot_ ? &slot_->cache : &private_;
        if (cache_->map.size() >= kMaxCacheWords) {
            cache_->map.clear();
            cache_->ids.clear();
        }
    }
    ~CacheLease() {
        if (slot_) slot_->mutex.unlock();
    }
    CacheLease(const CacheLease &) = delete;
    CacheLease &operator=(const CacheLease &) = delete;
    WordCache &cache() { return *cache_; }

private:
    rmkv_tokenizer::Impl::CacheSlot *slot_ = nullptr;
    WordCache private_;
    WordCache *cache_;
};

bool ascii_graphic(unsigned char c) { return c > 0x20 && c < 0x7F; }

}  // namespace

namespace {

struct Encoder {
    const rmkv_tokenizer::Impl &m;
    std::vector<int32_t> &out;
    WordCache &cache;

    void word(std::string_view w, bool raw) {
        if (w.size() > kMaxCachedWord) {
            m.model.encode_word(w, raw, out);
            return;
        }
        auto it = cache.map.find(w);
        if (it != cache.map.end()) {
            out.insert(out.end(), cache.ids.begin() + it->second.first,
                       cache.ids.begin() + it->second.first + it->second.second);
            return;
        }
        size_t before = out.size();
        m.model.encode_word(w, raw, out);
        auto off = static_cast<uint32_t>(cache.ids.size());
        cache.ids.insert(cache.ids.end(), out.begin() + static_cast<std::ptrdiff_t>(before), out.end());
        cache.map.emplace(std::string(w), std::make_pair(off, static_cast<uint32_t>(out.size() - before)));
    }

    void pre_tokenize(std::string_view piece) {
        auto emit = [this](std::string_view w, bool raw) { word(w, raw); };
        m.pre_tokenizer.run(piece, emit);
    }

    void normalized_piece(std::string_view s) {
        std::string buf;
        std::string_view v = s;
        if (!m.normalizers.empty()) {
            buf.assign(s);
            m.apply_normalizers(buf);
            v = buf;
        }
        if (m.normalized_matcher.empty()) {
            pre_tokenize(v);
            return;
        }
        std::vector<tok::Segment> segs;
        m.normalized_matcher.split(v, segs);
        for (const auto &g : segs) {
            if (g.id >= 0)
                out.push_back(g.id);
            else
                pre_tokenize(v.substr(g.begin, g.end - g.begin));
        }
    }

    // Plain text between raw added tokens; long texts go in chunks cut before a
    // space that sits between two ASCII graphic characters: the GPT-2 split, the
    // Digits split, every normaliser and the prefix space give the same words on
    // both sides of such a cut as without it.
    void plain(std::string_view s) {
        if (!m.chunkable || s.size() <= kChunk) {
            normalized_piece(s);
            return;
        }
        size_t begin = 0;
        while (s.size() - begin > kChunk) {
            size_t cut = 0;
            for (size_t i = begin + kChunk; i + 1 < s.size() && i < begin + 4 * kChunk; ++i) {
                if (s[i] == ' ' && ascii_graphic(static_cast<unsigned char>(s[i - 1])) &&
                    ascii_graphic(static_cast<unsigned char>(s[i + 1]))) {
                    cut = i;
                    break;
                }
            }
            if (!cut) break;
            normalized_piece(s.substr(begin, cut - begin));
            begin = cut;
        }
        normalized_piece(s.substr(begin));
    }
};

}  // namespace

void rmkv_tokenizer::encode_into(std::string_view text, std::vector<int32_t> &out) const {
    const Impl &m = *impl_;
    std::string fixed;
    if (!tok::is_valid_utf8(text)) {
        fixed = tok::utf8_lossy(text);
        text = fixed;
    }
    CacheLease lease(m);
    Encoder enc{m, out, lease.cache()};
    if (m.raw_matcher.empty()) {
        enc.plain(text);
        return;
    }
    std::vector<tok::Segment> segs;
    m.raw_matcher.split(text, segs);
    for (const auto &g : segs) {
        if (g.id >= 0)
            out.push_back(g.id);
        else
            enc.plain(text.substr(g.begin, g.end - g.begin));
    }
}

std::vector<int32_t> rmkv_tokenizer::encode(std::string_view text) const {
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    encode_into(text, ids);
    return ids;
}

// ---------------------------------------------------------------------------
// Decoding

void rmkv_tokenizer::append_token_bytes(int32_t id, bool first, std::string &out) const {
    const Impl &m = *impl_;
    if (id < 0 || static_cast<size_t>(id) >= m.n_ids || !m.id_valid[static_cast<size_t>(id)])
        fail(RMKV_ERR_INVALID_ARGUMENT, "token id ", id, " is not in the vocabulary (", m.n_ids, " ids)");
    if (m.decoder == Impl::Decoder::none && !first) out.push_back(' ');  // HF joins tokens with spaces
    out += m.id_bytes[static_cast<size_t>(id)];
}

std::string rmkv_tokenizer::decode(const int32_t *ids, size_t n) const {
    std::string bytes;
    for (size_t i = 0; i < n; ++i) append_token_bytes(ids[i], i == 0, bytes);
    if (tok::is_valid_utf8(bytes)) return bytes;
    return tok::utf8_lossy(bytes);
}
