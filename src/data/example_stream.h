// Sequences from JSONL: one example (one line) per sequence. The line's
// input_field and output_field (strings) go through the source's Formatter; the
// prompt keeps its last max_prompt_tokens tokens, the response (with eod_token
// appended when it is set) its first max_completion_tokens; the two are joined
// and cut at n_tokens + 1 tokens, and shorter sequences padded (pad_token,
// targets -1). With mask_prompt, a target that is a prompt token is -1, so the
// loss covers the response only (the first response token is predicted from the
// last prompt token).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/corpus.h"
#include "data/formatter.h"
#include "data/sequence_stream.h"

namespace rmkv::data {

class ExampleStream : public SequenceStream {
public:
    ExampleStream(const Corpus &corpus, const std::vector<uint32_t> &items, const SourceConfig &source,
                  const Formatter &formatter, WalkMode mode, uint64_t seed, uint64_t stream, bool single_pass,
                  const DataConfig &config, const rmkv_tokenizer &tok);

    bool next(int32_t *tokens, int32_t *targets) override;
    nlohmann::json cursor() const override;
    void set_cursor(const nlohmann::json &cursor) override;
    double progress() const override { return walk_.progress(); }

private:
    // Throws RMKV_ERR_FORMAT naming file and line for a bad example.
    void build(const Item &item, int32_t *tokens, int32_t *targets);

    const Corpus &corpus_;
    const std::vector<uint32_t> &items_;
    const SourceConfig &source_;
    const Formatter &formatter_;
    const DataConfig &config_;
    bool single_pass_;
    Walk walk_;
    FileReader reader_;
    std::string line_;
    std::vector<int32_t> prompt_, response_;
    bool warned_no_target_ = false;
};

}  // namespace rmkv::data
