// rmkv_data_* : argument checks, then data/pipeline.cpp.
#include <cstring>

#include "api/guard.h"
#include "api/params.h"
#include "data/pipeline.h"

using namespace rmkv;

namespace {

void check_arrays(const rmkv_data *data, const int32_t *tokens, const int32_t *targets, size_t capacity) {
    require_not_null(data, "data");
    size_t need = data->batch_size() * data->n_tokens();
    if (capacity < need)
        fail(RMKV_ERR_BUFFER_TOO_SMALL, "capacity ", capacity, " is too small: a batch is batch_size x n_tokens = ",
             data->batch_size(), " x ", data->n_tokens(), " = ", need, " ids per array");
    require_not_null(tokens, "tokens");
    require_not_null(targets, "targets");
}

void check_info(const rmkv_data_info *info) {
    if (info && (info->struct_size < sizeof(size_t) || info->struct_size > (1u << 16)))
        fail(RMKV_ERR_INVALID_ARGUMENT, "info->struct_size is ", info->struct_size, "; set it to sizeof(rmkv_data_info)");
}

void deliver(const data::Batch &b, int32_t *tokens, int32_t *targets, rmkv_data_info *info) {
    std::memcpy(tokens, b.tokens.data(), b.tokens.size() * sizeof(int32_t));
    std::memcpy(targets, b.targets.data(), b.targets.size() * sizeof(int32_t));
    if (!info) return;
    rmkv_data_info full{};
    full.struct_size = info->struct_size;
    full.n_sequences = b.n_sequences;
    full.n_targets = b.n_targets;
    full.batch_index = b.index;
    full.epoch = static_cast<int64_t>(b.epoch_progress);
    full.epoch_progress = b.epoch_progress;
    std::memcpy(static_cast<void *>(info), &full, info->struct_size < sizeof full ? info->struct_size : sizeof full);
}

}  // namespace

extern "C" {

RMKV_API rmkv_status rmkv_data_new(const char *config_json, const rmkv_tokenizer *tok, rmkv_data **out) {
    return guarded([&] {
        require_not_null(config_json, "config_json");
        require_not_null(tok, "tok");
        require_not_null(out, "out");
        *out = new rmkv_data(config_json, *tok);
    });
}

RMKV_API rmkv_status rmkv_data_batch_shape(const rmkv_data *data, size_t *batch_size, size_t *n_tokens) {
    return guarded([&] {
        require_not_null(data, "data");
        if (batch_size) *batch_size = data->batch_size();
        if (n_tokens) *n_tokens = data->n_tokens();
    });
}

RMKV_API rmkv_status rmkv_data_next(rmkv_data *data, int32_t *tokens, int32_t *targets, size_t capacity,
                                    rmkv_data_info *info) {
    return guarded([&] {
        check_arrays(data, tokens, targets, capacity);
        check_info(info);
        deliver(data->next(), tokens, targets, info);
    });
}

RMKV_API rmkv_status rmkv_data_next_validation(rmkv_data *data, int32_t *tokens, int32_t *targets, size_t capacity,
                                               rmkv_data_info *info) {
    return guarded([&] {
        check_arrays(data, tokens, targets, capacity);
        check_info(info);
        deliver(data->next_validation(), tokens, targets, info);
    });
}

RMKV_API rmkv_status rmkv_data_validation_rewind(rmkv_data *data) {
    return guarded([&] {
        require_not_null(data, "data");
        data->rewind_validation();
    });
}

RMKV_API rmkv_status rmkv_data_state_save(const rmkv_data *data, void *buf, size_t capacity, size_t *size) {
    return guarded([&] {
        require_not_null(data, "data");
        require_not_null(size, "size");
        std::string state = data->save_state();
        copy_out(state.data(), state.size(), buf, capacity, size);
    });
}

RMKV_API rmkv_status rmkv_data_state_load(rmkv_data *data, const void *buf, size_t size) {
    return guarded([&] {
        require_not_null(data, "data");
        require_not_null(buf, "buf");
        check_size(size, kMaxBufferBytes, "size");
        data->load_state(std::string_view(static_cast<const char *>(buf), size));
    });
}

RMKV_API rmkv_status rmkv_data_summary_json(const rmkv_data *data, char *buf, size_t capacity, size_t *needed) {
    return guarded([&] {
        require_not_null(data, "data");
        require_not_null(needed, "needed");
        std::string json = data->summary_json();
        copy_out(json.c_str(), json.size() + 1, buf, capacity, needed);
    });
}

RMKV_API void rmkv_data_free(rmkv_data *data) { delete data; }

}  // extern "C"
