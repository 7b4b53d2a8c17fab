#include "data/pipeline.h"

#include <algorithm>

#include "core/error.h"
#include "core/fingerprint.h"

using namespace rmkv;
using namespace rmkv::data;
using json = nlohmann::json;

namespace {

constexpr const char *kStateFormat = "rmkv-data-state";
constexpr int kStateVersion = 1;

std::string fingerprint(const std::string &s) {
    Fingerprint fp;
    fp.update(s.data(), s.size());
    return fp.hex();
}

std::vector<double> weights_of(const DataConfig &c) {
    std::vector<double> w;
    for (auto &s : c.sources) w.push_back(s.weight);
    return w;
}

void mixer_state_to(json &j, const Mixer &m) {
    WalkState w;  // reuse the hex encoding of the walk state
    for (int i = 0; i < 4; ++i) w.rng[i] = m.state()[i];
    j = walk_state_to_json(w)["rng"];
}

}  // namespace

rmkv_data::rmkv_data(std::string_view config_json, const rmkv_tokenizer &tok)
    : config_(parse_data_config(config_json, tok)), mixer_(weights_of(config_), config_.seed),
      prefetcher_(config_.queue_size) {
    config_id_ = fingerprint(config_.identity);
    for (size_t i = 0; i < config_.sources.size(); ++i)
        sources_.push_back(std::make_unique<Source>(config_.sources[i], i, config_, tok));
    consumed_ = generator_state();
    validation_start_ = validation_state();
}

rmkv_data::~rmkv_data() { prefetcher_.stop(); }

void rmkv_data::produce(Batch &b) {
    size_t B = config_.batch_size, n = config_.n_tokens;
    b.tokens.resize(B * n);
    b.targets.resize(B * n);
    for (size_t r = 0; r < B; ++r) {
        SequenceStream &s = sources_[mixer_.pick()]->train();
        s.next(&b.tokens[r * n], &b.targets[r * n]);
    }
    b.n_sequences = B;
    b.n_targets = std::count_if(b.targets.begin(), b.targets.end(), [](int32_t t) { return t >= 0; });
    b.index = batches_made_++;
    b.state_after = generator_state();
    b.epoch_progress = b.state_after["epoch_progress"].get<double>();
}

json rmkv_data::generator_state() const {
    json j = {{"batches", batches_made_}, {"epoch_progress", 0.0}, {"train", json::array()}};
    mixer_state_to(j["mixer"], mixer_);
    for (auto &s : sources_) j["train"].push_back(s->train().cursor());
    double p = -1;  // of the least advanced source that is drawn from
    for (auto &s : sources_)
        if (s->config().weight > 0) p = p < 0 ? s->train().progress() : std::min(p, s->train().progress());
    j["epoch_progress"] = p;
    return j;
}

void rmkv_data::set_generator_state(const json &j) {
    if (!j.is_object() || !j.contains("batches") || !is_count(j["batches"]) || !j.contains("mixer") ||
        !j.contains("train") || !j["train"].is_array() || j["train"].size() != sources_.size())
        fail(RMKV_ERR_FORMAT, "data state: bad training position");
    WalkState w = walk_state_from_json({{"epoch", 0}, {"pos", 0u}, {"rng", j["mixer"]}});
    for (size_t i = 0; i < sources_.size(); ++i) sources_[i]->train().set_cursor(j["train"][i]);
    mixer_.set_state(w.rng);
    batches_made_ = j["batches"].get<int64_t>();
}

json rmkv_data::validation_state() const {
    json j = {{"source", validation_source_}, {"batches", validation_batches_}, {"cursors", json::array()}};
    for (auto &s : sources_) j["cursors"].push_back(s->validation() ? s->validation()->cursor() : json());
    return j;
}

void rmkv_data::set_validation_state(const json &j) {
    if (!j.is_object() || !j.contains("source") || !is_count(j["source"]) || !j.contains("batches") ||
        !is_count(j["batches"]) || !j.contains("cursors") || !j["cursors"].is_array() ||
        j["cursors"].size() != sources_.size() || j["source"].get<uint64_t>() > sources_.size())
        fail(RMKV_ERR_FORMAT, "data state: bad validation position");
    for (size_t i = 0; i < sources_.size(); ++i)
        if (sources_[i]->validation()) sources_[i]->validation()->set_cursor(j["cursors"][i]);
    validation_source_ = j["source"].get<size_t>();
    validation_batches_ = j["batches"].get<int64_t>();
}

Batch rmkv_data::next() {
    Batch b;
    if (config_.queue_size == 0) {
        try {
            produce(b);
        } catch (...) {
            set_generator_state(consumed_);  // the failed batch consumed nothing
            throw;
        }
    } else {
        if (!prefetcher_.running()) {
            set_generator_state(consumed_);
            prefetcher_.start([this](Batch &out) { produce(out); });
        }
        try {
            b = prefetcher_.pop();
        } catch (...) {
            prefetcher_.stop();  // restarted from the consumed position by the next call
            throw;
        }
    }
    consumed_ = b.state_after;
    return b;
}

Batch rmkv_data::next_validation() {
    size_t B = config_.batch_size, n = config_.n_tokens;
    Batch b;
    b.tokens.assign(B * n, config_.pad_token);
    b.targets.assign(B * n, -1);
    json before = validation_state();
    try {
        while (b.n_sequences < B && validation_source_ < sources_.size()) {
            SequenceStream *s = sources_[validation_source_]->validation();
            if (s && s->next(&b.tokens[b.n_sequences * n], &b.targets[b.n_sequences * n])) ++b.n_sequences;
            else ++validation_source_;
        }
    } catch (...) {
        set_validation_state(before);
        throw;
    }
    b.n_targets = std::count_if(b.targets.begin(), b.targets.end(), [](int32_t t) { return t >= 0; });
    b.index = validation_batches_;
    if (b.n_sequences > 0) ++validation_batches_;
    b.epoch_progress = consumed_.value("epoch_progress", 0.0);
    return b;
}

void rmkv_data::rewind_validation() { set_validation_state(validation_start_); }

std::string rmkv_data::save_state() const {
    json j = {{"format", kStateFormat}, {"version", kStateVersion}, {"config_id", config_id_},
              {"corpora", json::array()}, {"train", consumed_}, {"validation", validation_state()}};
    for (auto &s : sources_) j["corpora"].push_back(s->corpus().identity);
    std::string body = j.dump();
    j["checksum"] = fingerprint(body);
    return j.dump();
}

void rmkv_data::load_state(std::string_view blob) {
    json j;
    try {
        j = json::parse(blob.begin(), blob.end());
    } catch (const json::exception &e) {
        fail(RMKV_ERR_FORMAT, "data state is not valid JSON: ", e.what());
    }
    if (!j.is_object() || j.value("format", "") != kStateFormat)
        fail(RMKV_ERR_FORMAT, "not a data pipeline state (format is not \"", kStateFormat, "\")");
    if (!j.contains("version") || j["version"] != kStateVersion)
        fail(RMKV_ERR_FORMAT, "data state version ", j.value("version", json()).dump(), " is not supported (this library reads ", kStateVersion, ")");
    if (!j.contains("checksum") || !j["checksum"].is_string()) fail(RMKV_ERR_FORMAT, "data state has no checksum");
    std::string checksum = j["checksum"].get<std::string>();
    j.erase("checksum");
    if (fingerprint(j.dump()) != checksum) fail(RMKV_ERR_FORMAT, "data state is corrupt (checksum mismatch)");
    if (j.value("config_id", "") != config_id_)
        fail(RMKV_ERR_MISMATCH, "data state was saved by a pipeline with another configuration (sources, batch_size, n_tokens, seed, split, tokens or templates differ)");
    if (!j.contains("corpora") || !j["corpora"].is_array() || j["corpora"].size() != sources_.size())
        fail(RMKV_ERR_FORMAT, "data state: bad corpora list");
    for (size_t i = 0; i < sources_.size(); ++i)
        if (j["corpora"][i] != sources_[i]->corpus().identity)
            fail(RMKV_ERR_MISMATCH, "data state: the files of source ", i, " (", sources_[i]->config().path,
                 ") changed since the state was saved (names, sizes or number of items differ)");
    if (!j.contains("train") || !j.contains("validation")) fail(RMKV_ERR_FORMAT, "data state: position missing");

    prefetcher_.stop();
    json old_validation = validation_state();
    try {
        set_generator_state(j["train"]);
        set_validation_state(j["validation"]);
    } catch (...) {
        set_generator_state(consumed_);
        set_validation_state(old_validation);
        throw;
    }
    consumed_ = j["train"];
}

std::string rmkv_data::summary_json() const {
    json j = {{"batch_size", config_.batch_size}, {"n_tokens", config_.n_tokens}, {"seed", config_.seed},
              {"eod_token", config_.eod_token}, {"pad_token", config_.pad_token}, {"sources", json::array()}};
    for (auto &s : sources_) j["sources"].push_back(s->summary());
    return j.dump();
}
