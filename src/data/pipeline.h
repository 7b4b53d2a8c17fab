// The data pipeline behind the opaque rmkv_data: sources mixed at their
// weights, batches in the layout of rmkv_batch prepared on a background thread,
// a validation pass, and the position as a small saved state.
//
// Determinism: a batch is a pure function of the configuration, the corpus and
// the position before it (the mixer's generator and every source's cursor), so
// a state saved after batch k, loaded into a fresh pipeline, gives batch k+1,
// k+2, ... exactly as the uninterrupted run, on every platform.
//
// Threads: the producer thread owns the training streams; the caller's thread
// owns the validation streams and the consumed position. One caller thread at a time.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "data/batch.h"
#include "data/data_config.h"
#include "data/mixer.h"
#include "data/prefetcher.h"
#include "data/source.h"

struct rmkv_data {
public:
    // The tokenizer is borrowed: it must outlive the pipeline.
    rmkv_data(std::string_view config_json, const rmkv_tokenizer &tok);
    ~rmkv_data();

    size_t batch_size() const { return config_.batch_size; }
    size_t n_tokens() const { return config_.n_tokens; }

    // The next training batch. On failure nothing is consumed: the next call
    // tries the same batch again.
    rmkv::data::Batch next();
    // The next validation batch; n_sequences 0 when the pass is over.
    rmkv::data::Batch next_validation();
    void rewind_validation();

    std::string save_state() const;
    void load_state(std::string_view blob);  // all or nothing
    std::string summary_json() const;

private:
    void produce(rmkv::data::Batch &batch);          // producer side: the next batch from the generator
    nlohmann::json generator_state() const;
    void set_generator_state(const nlohmann::json &s);
    nlohmann::json validation_state() const;
    void set_validation_state(const nlohmann::json &s);

    rmkv::data::DataConfig config_;
    std::string config_id_;
    std::vector<std::unique_ptr<rmkv::data::Source>> sources_;

    // Generator (producer thread while prefetching).
    rmkv::data::Mixer mixer_;
    int64_t batches_made_ = 0;

    // Consumer side.
    nlohmann::json consumed_;      // generator state after the last batch served
    nlohmann::json validation_start_;
    size_t validation_source_ = 0;
    int64_t validation_batches_ = 0;
    rmkv::data::Prefetcher prefetcher_;
};
