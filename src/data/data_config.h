// The data pipeline's configuration: the JSON object given to rmkv_data_new,
// checked key by key (an unknown key or a bad value names itself) and resolved
// against the tokenizer (token names become ids). The keys are documented in
// include/rmkv.h, DATA SECTION.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/walk.h"

struct rmkv_tokenizer;

namespace rmkv::data {

enum class SourceKind { text, jsonl };

struct SourceConfig {
    std::string path;                 // a file or a folder
    SourceKind kind = SourceKind::text;
    double weight = 1.0;
    WalkMode walk = WalkMode::shuffled;
    bool has_separator = false;       // text: documents split by `separator` inside files
    std::string separator;
    std::vector<std::string> extensions;  // folders: file name endings taken (empty = every file)
    std::string input_field = "input", output_field = "output";
    std::string prompt_template, response_template;
    bool mask_prompt = true;          // jsonl: prompt tokens get target -1
};

struct DataConfig {
    std::vector<SourceConfig> sources;
    size_t batch_size = 8;
    size_t n_tokens = 512;
    WalkMode walk = WalkMode::shuffled;
    uint64_t seed = 0;
    double validation_fraction = 0;
    int64_t validation_count = 0;
    int32_t eod_token = -1;           // -1: documents are concatenated
    int32_t pad_token = 0;
    size_t max_prompt_tokens = 0;     // 0: no limit
    size_t max_completion_tokens = 0;
    size_t queue_size = 4;            // batches prepared ahead; 0: no background thread
    size_t chunk_bytes = size_t(1) << 20;
    bool skip_bad_examples = false;   // on_error "skip"

    // Everything that decides which batches come out, as canonical JSON: the
    // identity a saved state is checked against.
    std::string identity;
};

// Throws RMKV_ERR_INVALID_ARGUMENT naming the key and the value.
DataConfig parse_data_config(std::string_view json, const rmkv_tokenizer &tok);

}  // namespace rmkv::data
