// rmkv_model_* : argument checks, then model/model.cpp.
#include "api/guard.h"
#include "api/params.h"
#include "model/model.h"

using namespace rmkv;

extern "C" {

RMKV_API rmkv_model_params rmkv_model_default_params(void) {
    rmkv_model_params p{};
    p.struct_size = sizeof(p);
    p.device = "cpu";
    p.flags = 0;
    p.use_mmap = 1;
    return p;
}

RMKV_API rmkv_status rmkv_model_load(const char *path, const rmkv_model_params *params, rmkv_model **out) {
    return guarded([&] {
        require_not_null(path, "path");
        require_not_null(out, "out");
        auto p = read_params(params, rmkv_model_default_params(), "rmkv_model_params");
        *out = rmkv_model::load_file(path, p).release();
    });
}

RMKV_API rmkv_status rmkv_model_load_from_memory(const void *data, size_t size, const rmkv_model_params *params,
                                                 rmkv_model **out) {
    return guarded([&] {
        require_not_null(data, "data");
        require_not_null(out, "out");
        check_size(size, kMaxBufferBytes, "size");
        auto p = read_params(params, rmkv_model_default_params(), "rmkv_model_params");
        if ((p.flags & RMKV_MODEL_ZERO_COPY) && reinterpret_cast<uintptr_t>(data) % 8)
            fail(RMKV_ERR_INVALID_ARGUMENT, "RMKV_MODEL_ZERO_COPY needs an 8-byte aligned buffer");
        *out = rmkv_model::load_memory(data, size, p).release();
    });
}

RMKV_API rmkv_status rmkv_model_create(const char *config_json, const rmkv_tokenizer *tokenizer, uint64_t seed,
                                       const rmkv_model_params *params, rmkv_model **out) {
    return guarded([&] {
        require_not_null(out, "out");
        auto p = read_params(params, rmkv_model_default_params(), "rmkv_model_params");
        *out = rmkv_model::create(config_json ? config_json : "{}", tokenizer, seed, p).release();
    });
}

RMKV_API rmkv_status rmkv_model_save(const rmkv_model *model, const char *path) {
    return rmkv_model_save_as(model, path, RMKV_DTYPE_F32);
}

RMKV_API rmkv_status rmkv_model_save_as(const rmkv_model *model, const char *path, rmkv_dtype dtype) {
    return guarded([&] {
        require_not_null(model, "model");
        require_not_null(path, "path");
        int dt = raw_enum(dtype);
        if (dt != RMKV_DTYPE_F32 && dt != RMKV_DTYPE_BF16 && dt != RMKV_DTYPE_F16)
            fail(RMKV_ERR_INVALID_ARGUMENT, "dtype ", dt, " is not RMKV_DTYPE_F32, _BF16 or _F16");
        model->save(path, static_cast<rmkv_dtype>(dt));
    });
}

RMKV_API const rmkv_tokenizer *rmkv_model_tokenizer(const rmkv_model *model) { return model ? model->tokenizer() : nullptr; }

RMKV_API size_t rmkv_model_vocab_size(const rmkv_model *model) {
    return model ? static_cast<size_t>(model->config().vocab_size) : 0;
}

RMKV_API rmkv_status rmkv_model_config_json(const rmkv_model *model, char *buf, size_t capacity, size_t *needed) {
    return guarded([&] {
        require_not_null(model, "model");
        require_not_null(needed, "needed");
        std::string json = model->config().to_json();
        copy_out(json.c_str(), json.size() + 1, buf, capacity, needed);
    });
}

RMKV_API const char *rmkv_model_id(const rmkv_model *model) { return model ? model->model_id().c_str() : nullptr; }

RMKV_API size_t rmkv_model_n_params(const rmkv_model *model) { return model ? model->n_params() : 0; }

RMKV_API void rmkv_model_free(rmkv_model *model) { delete model; }

}  // extern "C"
