// Byte-level BPE training with Hugging Face's BpeTrainer semantics (same merges
// on the same corpus), incremental: pair counts change only where a merge
// applies, and a priority queue picks the next pair.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rmkv.h"
#include "tokenizer/bpe.h"

namespace rmkv::tok {

struct TrainOptions {
    size_t vocab_size = 30000;
    uint64_t min_frequency = 0;
    std::vector<std::string> special_tokens;
    std::string normalizer = "NFD";  // comma-separated, "" = none
    bool individual_digits = true;
    bool add_prefix_space = false;
    bool byte_alphabet = true;
    unsigned n_threads = 1;
    rmkv_tokenizer_progress_callback progress = nullptr;
    void *progress_user_data = nullptr;
    std::vector<std::string> files;        // read line by line
    std::vector<std::string_view> texts;   // each one sequence
};

// Calls the user's progress callback; throws RMKV_ERR_CANCELLED when it asks to stop.
void report_progress(const TrainOptions &o, const char *stage, uint64_t done, uint64_t total);

// Distinct words (raw bytes, as the pre-tokenizer leaves them) and their counts.
using WordCounts = std::unordered_map<std::string, uint64_t, StringHash, std::equal_to<>>;

// Counts the words of the corpus (files or texts of o) on o.n_threads threads.
WordCounts count_words(const TrainOptions &o, const std::function<void(std::string_view, WordCounts &)> &count_sequence);

// The result of the merge phase: vocabulary (token strings in byte-level form)
// by id, and the merges in order (HF may repeat a pair; a later one wins).
struct BpeTrainResult {
    std::vector<std::string> id_to_token;
    std::vector<std::pair<int32_t, int32_t>> merges;
};

BpeTrainResult train_bpe(const TrainOptions &o, const WordCounts &words);

}  // namespace rmkv::tok
