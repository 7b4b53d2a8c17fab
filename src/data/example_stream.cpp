#include "data/example_stream.h"

#include <algorithm>

#include "core/error.h"
#include "core/log.h"

namespace rmkv::data {

using json = nlohmann::json;

ExampleStream::ExampleStream(const Corpus &corpus, const std::vector<uint32_t> &items, const SourceConfig &source,
                             const Formatter &formatter, WalkMode mode, uint64_t seed, uint64_t stream,
                             bool single_pass, const DataConfig &config, const rmkv_tokenizer &tok)
    : corpus_(corpus), items_(items), source_(source), formatter_(formatter), config_(config),
      single_pass_(single_pass), walk_(single_pass ? WalkMode::sequential : mode, items.size(), seed, stream) {}

void ExampleStream::build(const Item &item, int32_t *tokens, int32_t *targets) {
    const std::string &path = corpus_.files[item.file].path;
    reader_.read(path, item.offset, static_cast<size_t>(item.length), line_);
    json j;
    try {
        j = json::parse(line_);
    } catch (const json::exception &e) {
        fail(RMKV_ERR_FORMAT, path, ":", item.line, ": not valid JSON: ", e.what());
    }
    if (!j.is_object()) fail(RMKV_ERR_FORMAT, path, ":", item.line, ": not a JSON object");
    auto field = [&](const std::string &name) -> std::string {
        auto it = j.find(name);
        if (it == j.end()) fail(RMKV_ERR_FORMAT, path, ":", item.line, ": field \"", name, "\" is missing");
        if (!it->is_string()) fail(RMKV_ERR_FORMAT, path, ":", item.line, ": field \"", name, "\" is not a string");
        return it->get<std::string>();
    };
    std::string input = field(source_.input_field), output = field(source_.output_field);
    formatter_.format(input, output, prompt_, response_);
    if (config_.max_prompt_tokens && prompt_.size() > config_.max_prompt_tokens)
        prompt_.erase(prompt_.begin(), prompt_.end() - static_cast<std::ptrdiff_t>(config_.max_prompt_tokens));
    if (config_.eod_token >= 0) response_.push_back(config_.eod_token);
    if (config_.max_completion_tokens && response_.size() > config_.max_completion_tokens)
        response_.resize(config_.max_completion_tokens);

    size_t n = config_.n_tokens, p = prompt_.size();
    prompt_.insert(prompt_.end(), response_.begin(), response_.end());
    std::vector<int32_t> &seq = prompt_;
    size_t len = std::min(seq.size(), n + 1);  // tokens of the sequence used
    size_t used = len ? len - 1 : 0;           // positions with a target
    size_t with_loss = 0;
    for (size_t i = 0; i < used; ++i) {
        tokens[i] = seq[i];
        bool masked = source_.mask_prompt && i + 1 < p;
        targets[i] = masked ? -1 : seq[i + 1];
        with_loss += !masked;
    }
    std::fill(tokens + used, tokens + n, config_.pad_token);
    std::fill(targets + used, targets + n, -1);
    if (with_loss == 0 && !warned_no_target_) {
        warned_no_target_ = true;
        log(RMKV_LOG_WARN, path, ":", item.line, ": the example has no response token within n_tokens = ", n,
            " (prompt of ", p, " tokens); such examples add nothing to the loss (reported once per source)");
    }
}

bool ExampleStream::next(int32_t *tokens, int32_t *targets) {
    size_t bad = 0;
    for (;;) {
        if (single_pass_ && walk_.at_epoch_end()) return false;
        const Item &item = corpus_.items[items_[walk_.next()]];
        try {
            build(item, tokens, targets);
            return true;
        } catch (const Error &e) {
            if (!config_.skip_bad_examples || e.status() != RMKV_ERR_FORMAT) throw;
            log(RMKV_LOG_WARN, "skipped: ", e.what());
            if (++bad > items_.size()) fail(RMKV_ERR_FORMAT, "data source ", source_.path, ": no usable example");
        }
    }
}

json ExampleStream::cursor() const { return {{"walk", walk_state_to_json(walk_.state())}}; }

void ExampleStream::set_cursor(const json &c) {
    if (!c.is_object() || !c.contains("walk")) fail(RMKV_ERR_FORMAT, "data state: bad example cursor ", c.dump());
    walk_.set_state(walk_state_from_json(c["walk"]));
}

}  // namespace rmkv::data
