#include "data/source.h"

#include <algorithm>
#include <cmath>

#include "data/example_stream.h"
#include "data/text_stream.h"

namespace rmkv::data {

namespace {
uint64_t held_out_count(const DataConfig &c, uint64_t n) {
    uint64_t k = 0;
    if (c.validation_count > 0) k = static_cast<uint64_t>(c.validation_count);
    else if (c.validation_fraction > 0) k = std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(c.validation_fraction * static_cast<double>(n))));
    return std::min(k, n - 1);
}
}  // namespace

Source::Source(const SourceConfig &source, size_t index, const DataConfig &config, const rmkv_tokenizer &tok)
    : source_(source), corpus_(Corpus::build(source, config.chunk_bytes)) {
    uint64_t n = corpus_.items.size();
    uint64_t k = held_out_count(config, n);
    std::vector<uint8_t> held(n, 0);
    if (k > 0) {
        // A partial Fisher-Yates: the first k of a seeded permutation.
        std::vector<uint32_t> perm(n);
        for (uint64_t i = 0; i < n; ++i) perm[i] = static_cast<uint32_t>(i);
        Rng rng(config.seed ^ 0x76616c6964617465ull, 1000 + index);
        for (uint64_t i = 0; i < k; ++i) {
            std::swap(perm[i], perm[i + uniform_index(rng, n - i)]);
            held[perm[i]] = 1;
        }
    }
    for (uint64_t i = 0; i < n; ++i) (held[i] ? validation_items_ : train_items_).push_back(static_cast<uint32_t>(i));

    uint64_t train_stream = 2 * index, val_stream = 2 * index + 1;
    if (source.kind == SourceKind::jsonl) {
        formatter_ = std::make_unique<Formatter>(source_.prompt_template, source_.response_template, tok);
        train_ = std::make_unique<ExampleStream>(corpus_, train_items_, source_, *formatter_, source_.walk, config.seed,
                                                 train_stream, false, config, tok);
        if (!validation_items_.empty())
            validation_ = std::make_unique<ExampleStream>(corpus_, validation_items_, source_, *formatter_, source_.walk,
                                                          config.seed, val_stream, true, config, tok);
    } else {
        train_ = std::make_unique<TextStream>(corpus_, train_items_, source_.walk, config.seed, train_stream, false, config, tok);
        if (!validation_items_.empty())
            validation_ = std::make_unique<TextStream>(corpus_, validation_items_, source_.walk, config.seed, val_stream,
                                                       true, config, tok);
    }
}

nlohmann::json Source::summary() const {
    nlohmann::json j = {{"path", source_.path},
            {"kind", source_.kind == SourceKind::text ? "text" : "jsonl"},
            {"weight", source_.weight},
            {"walk", to_string(source_.walk)},
            {"files", corpus_.files.size()},
            {source_.kind == SourceKind::text ? "documents" : "examples", corpus_.items.size()},
            {"train", train_items_.size()},
            {"validation", validation_items_.size()}};
    if (source_.kind == SourceKind::jsonl) {
        j["prompt_template"] = source_.prompt_template;
        j["response_template"] = source_.response_template;
        j["mask_prompt"] = source_.mask_prompt;
    }
    return j;
}

}  // namespace rmkv::data
