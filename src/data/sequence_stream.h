// A stream of training sequences from one source: the common face of
// TextStream (windows of a packed token stream) and ExampleStream (one JSONL
// example per sequence). A stream walks a list of item indices (the training or
// the validation part of a corpus); its cursor is a small JSON object from which
// set_cursor continues exactly.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include "data/walk.h"

namespace rmkv::data {

class SequenceStream {
public:
    virtual ~SequenceStream() = default;

    // Writes n_tokens tokens and targets (-1: no loss). Returns false only for a
    // single-pass stream (validation) that has nothing left.
    virtual bool next(int32_t *tokens, int32_t *targets) = 0;

    virtual nlohmann::json cursor() const = 0;
    // Throws RMKV_ERR_FORMAT for a cursor that does not fit this stream.
    virtual void set_cursor(const nlohmann::json &cursor) = 0;

    // Epochs walked, with the fraction of the current one (2.25 = a quarter into the third).
    virtual double progress() const = 0;
};

// A non-negative integer (however the JSON reader stored it).
inline bool is_count(const nlohmann::json &j) {
    return j.is_number_unsigned() || (j.is_number_integer() && j.get<int64_t>() >= 0);
}

nlohmann::json walk_state_to_json(const WalkState &s);
WalkState walk_state_from_json(const nlohmann::json &j);  // throws RMKV_ERR_FORMAT

}  // namespace rmkv::data
