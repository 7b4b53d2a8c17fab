// rmkv_session_* : argument checks, then model/session.cpp and model/state_file.cpp.
#include <cstring>
#include <vector>

#include "api/guard.h"
#include "api/params.h"
#include "io/file.h"
#include "model/session.h"

using namespace rmkv;

extern "C" {

RMKV_API rmkv_session_params rmkv_session_default_params(void) {
    rmkv_session_params p{};
    p.struct_size = sizeof(p);
    p.precision = RMKV_PRECISION_AUTO;
    return p;
}

RMKV_API rmkv_status rmkv_session_new(const rmkv_model *model, const rmkv_session_params *params, rmkv_session **out) {
    return guarded([&] {
        require_not_null(model, "model");
        require_not_null(out, "out");
        const rmkv_session_params p = read_params(params, rmkv_session_default_params(), "rmkv_session_params");
        if (p.n_threads < 0 || p.n_threads > 1024)
            fail(RMKV_ERR_INVALID_ARGUMENT, "rmkv_session_params.n_threads = ", p.n_threads, " is outside [0, 1024] (0 = OpenMP's setting)");
        if (p.precision < RMKV_PRECISION_AUTO || p.precision > RMKV_PRECISION_BF16)
            fail(RMKV_ERR_INVALID_ARGUMENT, "rmkv_session_params.precision = ", p.precision, " is not an rmkv_precision");
        const Backend &be = model->backend();
        if (p.precision == RMKV_PRECISION_BF16 && !be.supports_bf16())
            fail(RMKV_ERR_BACKEND, "rmkv_session_params.precision BF16: the ", be.name(),
                 " backend has no bf16 matrix products on this machine (use AUTO or FP32)");
        // Resolved to whether the products with bf16-stored weights take bf16 inputs:
        // false where no weight is stored in bf16, so that sessions of such a model
        // never differ (and may be stepped together) whatever their precision.
        const bool bf16 = model->has_bf16_matrices() &&
                          (p.precision == RMKV_PRECISION_BF16 || (p.precision == RMKV_PRECISION_AUTO && be.supports_bf16()));
        *out = new rmkv_session(*model, p.n_threads, bf16);
    });
}

RMKV_API rmkv_status rmkv_session_step(rmkv_session *s, const int32_t *tokens, size_t n_tokens, float *logits) {
    return guarded([&] {
        require_not_null(s, "session");
        require_not_null(tokens, "tokens");
        check_size(n_tokens, kMaxTokensPerCall, "n_tokens");
        s->step(tokens, n_tokens, logits, false);
    });
}

RMKV_API rmkv_status rmkv_session_step_all(rmkv_session *s, const int32_t *tokens, size_t n_tokens, float *logits) {
    return guarded([&] {
        require_not_null(s, "session");
        require_not_null(tokens, "tokens");
        require_not_null(logits, "logits");
        check_size(n_tokens, kMaxTokensPerCall, "n_tokens");
        s->step(tokens, n_tokens, logits, true);
    });
}

RMKV_API rmkv_status rmkv_sessions_step(rmkv_session *const *sessions, size_t n_sessions, const int32_t *tokens,
                                        float *logits) {
    return guarded([&] {
        require_not_null(sessions, "sessions");
        require_not_null(tokens, "tokens");
        check_size(n_sessions, kMaxSessionsPerCall, "n_sessions");
        rmkv_session::step_together(sessions, n_sessions, tokens, logits);
    });
}

RMKV_API rmkv_status rmkv_session_flush(rmkv_session *s) {
    return guarded([&] {
        require_not_null(s, "session");
        s->flush();
    });
}

RMKV_API rmkv_status rmkv_session_reset(rmkv_session *s) {
    return guarded([&] {
        require_not_null(s, "session");
        s->reset();
    });
}

RMKV_API rmkv_status rmkv_session_clone(const rmkv_session *s, rmkv_session **out) {
    return guarded([&] {
        require_not_null(s, "session");
        require_not_null(out, "out");
        *out = s->clone().release();
    });
}

RMKV_API rmkv_status rmkv_session_position(const rmkv_session *s, uint64_t *position, size_t *segment_fill) {
    return guarded([&] {
        require_not_null(s, "session");
        if (position) *position = s->position();
        if (segment_fill) *segment_fill = static_cast<size_t>(s->segment_fill());
    });
}

RMKV_API rmkv_status rmkv_session_state_size(const rmkv_session *s, size_t *size) {
    return guarded([&] {
        require_not_null(s, "session");
        require_not_null(size, "size");
        *size = s->state_size();
    });
}

RMKV_API rmkv_status rmkv_session_state_save(const rmkv_session *s, void *buf, size_t capacity, size_t *size) {
    return guarded([&] {
        require_not_null(s, "session");
        require_not_null(size, "size");
        if (!buf && capacity) fail(RMKV_ERR_INVALID_ARGUMENT, "buf is NULL but capacity is ", capacity);
        size_t need = s->state_save(static_cast<uint8_t *>(buf), capacity);
        *size = need;
        if (capacity < need) fail(RMKV_ERR_BUFFER_TOO_SMALL, "state needs ", need, " bytes, the buffer has ", capacity);
    });
}

RMKV_API rmkv_status rmkv_session_state_load(rmkv_session *s, const void *buf, size_t size) {
    return guarded([&] {
        require_not_null(s, "session");
        require_not_null(buf, "buf");
        check_size(size, kMaxBufferBytes, "size");
        s->state_load(static_cast<const uint8_t *>(buf), size, "state buffer");
    });
}

RMKV_API rmkv_status rmkv_session_state_save_file(const rmkv_session *s, const char *path) {
    return guarded([&] {
        require_not_null(s, "session");
        require_not_null(path, "path");
        s->state_save_file(path);
    });
}

RMKV_API rmkv_status rmkv_session_state_load_file(rmkv_session *s, const char *path) {
    return guarded([&] {
        require_not_null(s, "session");
        require_not_null(path, "path");
        MappedFile f(path, false);
        s->state_load(f.data(), f.size(), std::string("state file '") + path + "'");
    });
}

RMKV_API rmkv_sampler_params rmkv_sampler_default_params(void) {
    rmkv_sampler_params p{};
    p.struct_size = sizeof(p);
    p.temperature = 0.8f;
    p.top_k = 0;
    p.top_p = 0.95f;
    p.min_p = 0.0f;
    p.repetition_penalty = 1.0f;
    p.penalty_window = 64;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    p.seed = 0;
    return p;
}

RMKV_API rmkv_status rmkv_session_sample(rmkv_session *s, const rmkv_sampler_params *params, int32_t *token) {
    return guarded([&] {
        require_not_null(s, "session");
        require_not_null(token, "token");
        auto p = read_params(params, rmkv_sampler_default_params(), "rmkv_sampler_params");
        *token = s->sample(p);
    });
}

RMKV_API void rmkv_session_free(rmkv_session *s) { delete s; }

}  // extern "C"
