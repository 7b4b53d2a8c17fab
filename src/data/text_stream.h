// Sequences from plain text: the documents, in walk order, are tokenised and
// joined into one token stream (with eod_token after each document when it is
// set); a sequence is a window of n_tokens + 1 consecutive tokens (inputs and
// next-token targets), and consecutive windows share one token, so every token
// of the stream is a target exactly once.
//
// Only the documents under the window are in memory: a document is read and
// tokenised in pieces of at most chunk_bytes (so a huge single-document file
// streams too), cut where a byte-level pre-tokenizer splits anyway (before a
// space after a word, after a newline before one), else at a UTF-8 character
// boundary; see cut_point.
//
// A single-pass stream (validation) walks its documents once in file order and
// pads its last window (pad_token, targets -1).
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "data/corpus.h"
#include "data/sequence_stream.h"

namespace rmkv::data {

class TextStream : public SequenceStream {
public:
    // `items` indexes corpus.items and must outlive the stream, as must corpus and tok.
    TextStream(const Corpus &corpus, const std::vector<uint32_t> &items, WalkMode mode, uint64_t seed,
               uint64_t stream, bool single_pass, const DataConfig &config, const rmkv_tokenizer &tok);

    bool next(int32_t *tokens, int32_t *targets) override;
    nlohmann::json cursor() const override;
    void set_cursor(const nlohmann::json &cursor) override;
    double progress() const override { return walk_.progress(); }

private:
    // Where the tokens of one piece sit in buf_: enough to find them again.
    struct Segment {
        WalkState walk_before;  // the walk before the piece's document was drawn
        uint64_t piece_start;   // byte offset of the piece in its document
        uint64_t skip;          // tokens of the piece already dropped from buf_
        size_t count;           // tokens of the piece still in buf_
    };

    static size_t cut_point(const std::string &text);
    bool fill(size_t need);
    bool load_next_piece();
    void drop(size_t n);

    const Corpus &corpus_;
    const std::vector<uint32_t> &items_;
    const rmkv_tokenizer &tok_;
    size_t n_tokens_, chunk_bytes_;
    int32_t eod_, pad_;
    bool single_pass_;
    Walk walk_;
    FileReader reader_;
    std::string text_;

    bool in_doc_ = false;        // a document is drawn and not wholly read
    const Item *doc_ = nullptr;
    WalkState doc_walk_before_;
    uint64_t next_piece_start_ = 0;

    std::deque<int32_t> buf_;  // the stream ahead (front: the next window)
    std::deque<Segment> segs_;
};

}  // namespace rmkv::data
