// BPE model: vocabulary tables and the per-word merge.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <queue>

#include "core/error.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode.h"

namespace rmkv::tok {

void PairMap::reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    if (cap <= slots_.size()) return;
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(cap, Slot{});
    size_ = 0;
    for (const Slot &s : old)
        if (s.key != kEmpty) set(static_cast<int32_t>(s.key >> 32), static_cast<int32_t>(s.key & 0xffffffffu), s.value);
}

void PairMap::grow() { reserve(slots_.empty() ? 8 : slots_.size()); }

void PairMap::set(int32_t a, int32_t b, Value v) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    uint64_t key = pack(a, b);
    size_t mask = slots_.size() - 1;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
        Slot &s = slots_[i];
        if (s.key == key) {
            s.value = v;
            return;
        }
        if (s.key == kEmpty) {
            s.key = key;
            s.value = v;
            ++size_;
            return;
        }
    }
}

void BpeModel::set_vocab(Vocab v) {
    vocab = std::move(v);
    int32_t max = -1;
    for (const auto &[tok, id] : vocab) {
        if (id < 0) fail(RMKV_ERR_FORMAT, "tokenizer.json: model.vocab: token \"", tok, "\" has a negative id ", id);
        max = std::max(max, id);
    }
    id_to_token.assign(static_cast<size_t>(max + 1), std::string());
    has_id.assign(static_cast<size_t>(max + 1), 0);
    for (const auto &[tok, id] : vocab) {
        auto i = static_cast<size_t>(id);
        if (has_id[i])
            fail(RMKV_ERR_FORMAT, "tokenizer.json: model.vocab: id ", id, " is used by both \"", id_to_token[i], "\" and \"",
                 tok, "\"");
        has_id[i] = 1;
        id_to_token[i] = tok;
    }
}

void BpeModel::add_merge(std::string_view a, std::string_view b, const std::string &where) {
    auto ia = vocab.find(a), ib = vocab.find(b);
    if (ia == vocab.end()) fail(RMKV_ERR_FORMAT, where, ": token \"", a, "\" is not in the vocabulary");
    if (ib == vocab.end()) fail(RMKV_ERR_FORMAT, where, ": token \"", b, "\" is not in the vocabulary");
    std::string joined;
    joined.reserve(a.size() + b.size());
    joined.append(a).append(b);
    auto in = vocab.find(joined);
    if (in == vocab.end()) fail(RMKV_ERR_FORMAT, where, ": merged token \"", joined, "\" is not in the vocabulary");
    merge_map.set(ia->second, ib->second, {static_cast<int32_t>(merges.size()), in->second});
    merges.emplace_back(ia->second, ib->second);
}

void BpeModel::finalize() {
    for (int b = 0; b < 256; ++b) {
        std::string s;
        append_utf8(s, byte_char(static_cast<uint8_t>(b)));
        auto it = vocab.find(s);
        byte_ids[static_cast<size_t>(b)] = it == vocab.end() ? -1 : it->second;
    }
    unk_id = -1;
    if (unk_token) {
        auto it = vocab.find(*unk_token);
        if (it != vocab.end()) unk_id = it->second;
    }
}

namespace {

struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
};

struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate &o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

void BpeModel::encode_word(std::string_view word, bool raw_bytes, std::vector<int32_t> &out) const {
    if (ignore_merges) {
        std::string mapped;
        std::string_view key = word;
        if (raw_bytes) {
            append_byte_level(mapped, word);
            key = mapped;
        }
        auto it = vocab.find(key);
        if (it != vocab.end()) {
            out.push_back(it->second);
            return;
        }
    }
    // Initial symbols, with HF's unknown-character rule: dropped without an
    // unk_token, else one unk per character (fused runs with fuse_unk).
    thread_local std::vector<Symbol> syms;
    syms.clear();
    bool pending_unk = false;
    auto push = [&](int32_t id) { syms.push_back({id, 0, 0, true}); };
    auto unknown = [&]() {
        if (!unk_token) return;
        if (unk_id < 0) fail(RMKV_ERR_FORMAT, "tokenizer: unk_token \"", *unk_token, "\" is not in the vocabulary");
        if (pending_unk && fuse_unk) return;
        push(unk_id);
        pending_unk = true;
    };
    if (raw_bytes) {
        for (unsigned char b : word) {
            int32_t id = byte_ids[b];
            if (id < 0) {
                unknown();
            } else {
                push(id);
                pending_unk = false;
            }
        }
    } else {
        const auto *p = reinterpret_cast<const unsigned char *>(word.data());
        for (size_t i = 0; i < word.size();) {
            size_t l = utf8_char_len(p[i]);
            auto it = vocab.find(word.substr(i, l));
            if (it == vocab.end()) {
                unknown();
            } else {
                push(it->second);
                pending_unk = false;
            }
            i += l;
        }
    }
    const auto n = static_cast<int32_t>(syms.size());
    for (int32_t i = 0; i < n; ++i) {
        syms[static_cast<size_t>(i)].prev = i - 1;
        syms[static_cast<size_t>(i)].next = i + 1 < n ? i + 1 : -1;
    }
    if (n >= 2 && merge_map.size()) {
        thread_local std::vector<Candidate> heap;
        heap.clear();
        auto cmp = std::greater<Candidate>();
        for (int32_t i = 0; i + 1 < n; ++i) {
            if (const auto *m = merge_map.find(syms[static_cast<size_t>(i)].id, syms[static_cast<size_t>(i + 1)].id))
                heap.push_back({m->rank, i, m->new_id});
        }
        std::make_heap(heap.begin(), heap.end(), cmp);
        while (!heap.empty()) {
            std::pop_heap(heap.begin(), heap.end(), cmp);
            Candidate top = heap.back();
            heap.pop_back();
            Symbol &s = syms[static_cast<size_t>(top.pos)];
            if (!s.alive || s.next < 0) continue;
            Symbol &r = syms[static_cast<size_t>(s.next)];
            const auto *m = merge_map.find(s.id, r.id);
            if (!m || m->new_id != top.new_id) continue;  // stale entry
            s.id = top.new_id;
            r.alive = false;
            s.next = r.next;
            if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = top.pos;
            if (s.prev >= 0) {
                if (const auto *mp = merge_map.find(syms[static_cast<size_t>(s.prev)].id, s.id)) {
                    heap.push_back({mp->rank, s.prev, mp->new_id});
                    std::push_heap(heap.begin(), heap.end(), cmp);
                }
            }
            if (s.next >= 0) {
                if (const auto *mn = merge_map.find(s.id, syms[static_cast<size_t>(s.next)].id)) {
                    heap.push_back({mn->rank, top.pos, mn->new_id});
                    std::push_heap(heap.begin(), heap.end(), cmp);
                }
            }
        }
    }
    for (const Symbol &s : syms)
        if (s.alive) out.push_back(s.id);
}

}  // namespace rmkv::tok
