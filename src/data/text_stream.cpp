#include "data/text_stream.h"

#include <algorithm>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace rmkv::data {

using json = nlohmann::json;

TextStream::TextStream(const Corpus &corpus, const std::vector<uint32_t> &items, WalkMode mode, uint64_t seed,
                       uint64_t stream, bool single_pass, const DataConfig &config, const rmkv_tokenizer &tok)
    : corpus_(corpus), items_(items), tok_(tok), n_tokens_(config.n_tokens), chunk_bytes_(config.chunk_bytes),
      eod_(config.eod_token), pad_(config.pad_token), single_pass_(single_pass),
      walk_(single_pass ? WalkMode::sequential : mode, items.size(), seed, stream) {}

namespace {
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
}  // namespace

// Where a full piece ends: where a byte-level pre-tokenizer splits anyway, so that
// the pieces encode to the same ids as the whole document. Preferably before a
// space that follows a word ("word| next") or after a newline that precedes one,
// else at a UTF-8 character boundary. Searched in the second half of the piece.
size_t TextStream::cut_point(const std::string &text) {
    size_t n = text.size(), half = n / 2;
    for (size_t p = n - 1; p > half; --p)
        if ((text[p] == ' ' && !is_space(text[p - 1])) || (text[p - 1] == '\n' && !is_space(text[p]))) return p;
    size_t p = n;
    while (p > half && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
    return p;
}

bool TextStream::load_next_piece() {
    if (!in_doc_) {
        if (single_pass_ && walk_.at_epoch_end()) return false;
        doc_walk_before_ = walk_.state();
        doc_ = &corpus_.items[items_[walk_.next()]];
        next_piece_start_ = 0;
        in_doc_ = true;
    }
    const std::string &path = corpus_.files[doc_->file].path;
    uint64_t start = next_piece_start_, left = doc_->length - start;
    if (left <= chunk_bytes_) {
        reader_.read(path, doc_->offset + start, static_cast<size_t>(left), text_);
    } else {
        reader_.read(path, doc_->offset + start, chunk_bytes_, text_);
        text_.resize(cut_point(text_));
    }
    uint64_t end = start + text_.size();
    std::vector<int32_t> ids = tok_.encode(text_);
    if (end == doc_->length && eod_ >= 0) ids.push_back(eod_);
    if (!ids.empty()) {
        buf_.insert(buf_.end(), ids.begin(), ids.end());
        segs_.push_back({doc_walk_before_, start, 0, ids.size()});
    }
    next_piece_start_ = end;
    if (end == doc_->length) in_doc_ = false;
    return true;
}

bool TextStream::fill(size_t need) {
    size_t empty_docs = 0;
    while (buf_.size() < need) {
        size_t before = buf_.size();
        bool starts_doc = !in_doc_;
        if (!load_next_piece()) return false;
        if (starts_doc && !in_doc_ && buf_.size() == before && ++empty_docs > items_.size() + 16)
            fail(RMKV_ERR_INVALID_ARGUMENT, "data source ", corpus_.files[0].path,
                 ": its documents produce no tokens (empty after tokenisation and no eod_token)");
    }
    return true;
}

void TextStream::drop(size_t n) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n));
    while (n > 0) {
        Segment &s = segs_.front();
        size_t take = std::min(n, s.count);
        s.skip += take;
        s.count -= take;
        n -= take;
        if (s.count == 0) segs_.pop_front();
    }
}

bool TextStream::next(int32_t *tokens, int32_t *targets) {
    size_t n = n_tokens_;
    if (fill(n + 1)) {
        std::copy(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n), tokens);
        std::copy(buf_.begin() + 1, buf_.begin() + static_cast<std::ptrdiff_t>(n + 1), targets);
        drop(n);
        return true;
    }
    // Single pass, at the end: a last, padded window if a target is left.
    size_t m = buf_.size();
    if (m < 2) {
        drop(m);
        return false;
    }
    std::copy(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(m - 1), tokens);
    std::copy(buf_.begin() + 1, buf_.end(), targets);
    std::fill(tokens + (m - 1), tokens + n, pad_);
    std::fill(targets + (m - 1), targets + n, -1);
    drop(m);
    return true;
}

json TextStream::cursor() const {
    if (!segs_.empty()) {
        const Segment &s = segs_.front();
        return {{"walk", walk_state_to_json(s.walk_before)}, {"in_doc", true}, {"piece", s.piece_start}, {"skip", s.skip}};
    }
    if (in_doc_)
        return {{"walk", walk_state_to_json(doc_walk_before_)}, {"in_doc", true}, {"piece", next_piece_start_}, {"skip", 0}};
    return {{"walk", walk_state_to_json(walk_.state())}, {"in_doc", false}, {"piece", 0}, {"skip", 0}};
}

void TextStream::set_cursor(const json &c) {
    if (!c.is_object() || !c.contains("walk") || !c.contains("in_doc") || !c["in_doc"].is_boolean() ||
        !c.contains("piece") || !is_count(c["piece"]) || !c.contains("skip") || !is_count(c["skip"]))
        fail(RMKV_ERR_FORMAT, "data state: bad text cursor ", c.dump());
    buf_.clear();
    segs_.clear();
    in_doc_ = false;
    walk_.set_state(walk_state_from_json(c["walk"]));
    if (!c["in_doc"].get<bool>()) return;
    uint64_t piece = c["piece"].get<uint64_t>(), skip = c["skip"].get<uint64_t>();
    doc_walk_before_ = walk_.state();
    doc_ = &corpus_.items[items_[walk_.next()]];
    if (piece >= doc_->length) fail(RMKV_ERR_FORMAT, "data state: piece offset ", piece, " is past its document");
    in_doc_ = true;
    next_piece_start_ = piece;
    load_next_piece();
    if (skip >= buf_.size() && skip > 0) fail(RMKV_ERR_FORMAT, "data state: token offset ", skip, " is past its piece");
    drop(static_cast<size_t>(skip));
}

}  // namespace rmkv::data
