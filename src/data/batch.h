// One prepared batch, in the layout of rmkv_batch, with the pipeline position
// after it (what a state saved right after consuming it holds).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

namespace rmkv::data {

struct Batch {
    std::vector<int32_t> tokens, targets;  // [batch_size][n_tokens]
    size_t n_sequences = 0;
    int64_t n_targets = 0;
    int64_t index = 0;                     // batches served before this one
    double epoch_progress = 0;
    nlohmann::json state_after;
};

}  // namespace rmkv::data
