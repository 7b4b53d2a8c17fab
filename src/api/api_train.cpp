// rmkv_trainer_* and rmkv_train_* : argument checks, then train/trainer.cpp.
#include "api/guard.h"
#include "api/params.h"
#include "train/trainer.h"

using namespace rmkv;

extern "C" {

RMKV_API rmkv_train_params rmkv_train_default_params(void) {
    rmkv_train_params p{};
    p.struct_size = sizeof(p);
    p.learning_rate = 3e-4f;
    p.min_learning_rate = 3e-5f;
    p.warmup_steps = 100;
    p.total_steps = 0;
    p.weight_decay = 0.1f;
    p.beta1 = 0.9f;
    p.beta2 = 0.95f;
    p.epsilon = 1e-8f;
    p.grad_clip = 1.0f;
    p.grad_accum_steps = 1;
    p.dropout = 0.0f;
    p.seed = 0;
    p.precision = RMKV_PRECISION_AUTO;
    p.recompute = 0;
    p.parallel_sequences = 0;
    p.stacked_sequences = 0;
    p.n_threads = 0;
    return p;
}

RMKV_API rmkv_status rmkv_trainer_new(rmkv_model *model, const rmkv_train_params *params, rmkv_trainer **out) {
    return guarded([&] {
        require_not_null(model, "model");
        require_not_null(out, "out");
        auto p = read_params(params, rmkv_train_default_params(), "rmkv_train_params");
        *out = new rmkv_trainer(*model, p);
    });
}

RMKV_API rmkv_status rmkv_state_tuner_new(const rmkv_model *model, const rmkv_train_params *params, rmkv_trainer **out) {
    return guarded([&] {
        require_not_null(model, "model");
        require_not_null(out, "out");
        auto p = read_params(params, rmkv_train_default_params(), "rmkv_train_params");
        *out = new rmkv_trainer(*model, p, rmkv_trainer::StateTuning{});
    });
}

RMKV_API rmkv_status rmkv_trainer_apply_state(const rmkv_trainer *t, rmkv_session *session) {
    return guarded([&] {
        require_not_null(t, "trainer");
        require_not_null(session, "session");
        t->apply_state(*session);
    });
}

RMKV_API rmkv_status rmkv_train_step(rmkv_trainer *t, const rmkv_batch *batch, rmkv_train_stats *stats) {
    return guarded([&] {
        require_not_null(t, "trainer");
        require_not_null(batch, "batch");
        rmkv_train_stats local{};
        t->step(*batch, &local);
        if (stats) {
            size_t n = stats->struct_size && stats->struct_size < sizeof local ? stats->struct_size : sizeof local;
            local.struct_size = n;
            std::memcpy(static_cast<void *>(stats), &local, n);
        }
    });
}

RMKV_API rmkv_status rmkv_trainer_compute_gradients(rmkv_trainer *t, const rmkv_batch *batch, float *loss) {
    return guarded([&] {
        require_not_null(t, "trainer");
        require_not_null(batch, "batch");
        float l = t->compute_gradients(*batch);
        if (loss) *loss = l;
    });
}

RMKV_API rmkv_status rmkv_trainer_gradient(const rmkv_trainer *t, const char *name, float *buf, size_t capacity, size_t *n) {
    return guarded([&] {
        require_not_null(t, "trainer");
        require_not_null(name, "name");
        require_not_null(n, "n");
        std::vector<float> g = t->gradient(name);
        *n = g.size();
        if (capacity < g.size()) fail(RMKV_ERR_BUFFER_TOO_SMALL, "gradient of '", name, "' has ", g.size(), " floats, capacity is ", capacity);
        require_not_null(buf, "buf");
        std::memcpy(buf, g.data(), g.size() * sizeof(float));
    });
}

RMKV_API rmkv_status rmkv_trainer_evaluate(rmkv_trainer *t, const rmkv_batch *batch, rmkv_eval_stats *stats) {
    return guarded([&] {
        require_not_null(t, "trainer");
        require_not_null(batch, "batch");
        require_not_null(stats, "stats");
        rmkv_eval_stats local{};
        t->evaluate(*batch, local);
        size_t n = stats->struct_size && stats->struct_size < sizeof local ? stats->struct_size : sizeof local;
        local.struct_size = n;
        std::memcpy(static_cast<void *>(stats), &local, n);
    });
}

RMKV_API rmkv_status rmkv_trainer_save_checkpoint(const rmkv_trainer *t, const char *path, const char *user_json) {
    return guarded([&] {
        require_not_null(t, "trainer");
        require_not_null(path, "path");
        t->save_checkpoint(path, user_json ? user_json : "");
    });
}

RMKV_API rmkv_status rmkv_trainer_load_checkpoint(rmkv_trainer *t, const char *path) {
    return guarded([&] {
        require_not_null(t, "trainer");
        require_not_null(path, "path");
        t->load_checkpoint(path);
    });
}

RMKV_API rmkv_status rmkv_checkpoint_user_json(const char *path, char *buf, size_t capacity, size_t *needed) {
    return guarded([&] {
        require_not_null(path, "path");
        require_not_null(needed, "needed");
        std::string j = checkpoint_user_json(path);
        copy_out(j.c_str(), j.size() + 1, buf, capacity, needed);
    });
}

RMKV_API int64_t rmkv_trainer_step_count(const rmkv_trainer *t) { return t ? t->step_count() : 0; }

RMKV_API void rmkv_trainer_free(rmkv_trainer *t) { delete t; }

}  // extern "C"
