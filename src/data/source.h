// One configured source: its corpus, its split into training and validation
// items, and one stream over each. The split is deterministic: a permutation
// drawn from the seed picks the validation items, either
// round(validation_fraction x items) (at least 1 when the fraction is above 0)
// or validation_count, always leaving at least one training item; both parts
// keep file order.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "data/corpus.h"
#include "data/formatter.h"
#include "data/sequence_stream.h"

namespace rmkv::data {

class Source {
public:
    Source(const SourceConfig &source, size_t index, const DataConfig &config, const rmkv_tokenizer &tok);
    Source(const Source &) = delete;
    Source &operator=(const Source &) = delete;

    const SourceConfig &config() const { return source_; }
    const Corpus &corpus() const { return corpus_; }
    SequenceStream &train() { return *train_; }
    SequenceStream *validation() { return validation_.get(); }  // NULL when nothing is held out
    nlohmann::json summary() const;

private:
    SourceConfig source_;
    Corpus corpus_;
    std::vector<uint32_t> train_items_, validation_items_;
    std::unique_ptr<Formatter> formatter_;
    std::unique_ptr<SequenceStream> train_, validation_;
};

}  // namespace rmkv::data
