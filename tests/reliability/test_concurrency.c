/* Concurrency: 16 threads, each with its own sessions on one shared model (loaded
   from a mapped, read-only file), step (also two sessions together), sample, save
   and restore states (buffers and files), clone, flush and reset for a bounded time. Every thread's results
   (a digest of every logit and sampled token) equal the same work done on one
   thread, and the model is never written: its file mapping is read-only, and a
   save of it after the run is byte for byte the file it was loaded from.
   RMKV_CONCURRENCY_SECONDS (default 3) bounds the threaded part; at least one
   full pass always runs. Run under ThreadSanitizer by scripts/test.sh. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

#define N_THREADS 16
#define ROUNDS 40

/* Head size 16 and segments of 24: steps of up to 16 tokens take both the
   one-row-at-a-time attention and, for chunks of 16 rows, the many-row one (the
   fused kernel on CPUs with AVX-512, oneDNN products elsewhere). */
static const char *cfg =
    "{\"vocab_size\":64,\"d_model\":64,\"n_layers\":2,\"n_heads\":4,\"memory_slots\":4,\"segment_len\":24,\"cell\":\"lstm\"}";

static rmkv_model *shared;

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

typedef struct {
    int tid;
    uint64_t digest;
    int failed; /* a call failed; error text in msg */
    char msg[256];
} work;

#define TRY(call)                                                                                      \
    do {                                                                                               \
        rmkv_status st_ = (call);                                                                      \
        if (st_ != RMKV_OK) {                                                                          \
            snprintf(w->msg, sizeof w->msg, "%s: %s (%s)", #call, rmkv_status_string(st_), rmkv_last_error()); \
            w->failed = 1;                                                                             \
            goto done;                                                                                 \
        }                                                                                              \
    } while (0)

/* One thread's script; deterministic in w->tid. */
static void run_script(work *w) {
    const size_t V = rmkv_model_vocab_size(shared);
    float *logits = malloc(V * sizeof(float)), *logits2 = malloc(V * sizeof(float));
    float *rows = malloc(16 * V * sizeof(float));
    uint8_t *state = NULL;
    size_t cap = 0;
    char path[512];
    const char *dir = getenv("RMKV_TEST_TMP"); /* tmp_path() is not for threads */
    snprintf(path, sizeof path, "%s/%d-concurrency-%d.state", dir && dir[0] ? dir : "/tmp", (int)getpid(), w->tid);
    rmkv_session *a = NULL, *b = NULL, *c = NULL;
    uint64_t h = 1469598103934665603ull;
    w->failed = 0;
    TRY(rmkv_session_new(shared, NULL, &a));
    TRY(rmkv_session_new(shared, NULL, &b));
    rmkv_sampler_params sp = rmkv_sampler_default_params();
    sp.seed = (uint64_t)w->tid + 1;
    for (int r = 0; r < ROUNDS; ++r) {
        int32_t toks[16];
        size_t n = 1 + (size_t)((w->tid * 7 + r * 13) % 16);
        random_tokens(toks, n, (int32_t)V, (uint64_t)(w->tid * 1000 + r));
        if (r % 6 == 5) {
            TRY(rmkv_session_step_all(a, toks, n, rows));
            h = fnv(h, rows, n * V * sizeof(float));
        } else {
            TRY(rmkv_session_step(a, toks, n, logits));
            h = fnv(h, logits, V * sizeof(float));
        }
        int32_t next;
        TRY(rmkv_session_sample(a, &sp, &next));
        h = fnv(h, &next, sizeof next);
        if (r % 3 == 0) { /* save to a buffer, restore elsewhere: the copy continues identically */
            size_t need;
            TRY(rmkv_session_state_size(a, &need));
            if (need > cap) {
                free(state);
                state = malloc(need);
                cap = need;
            }
            TRY(rmkv_session_state_save(a, state, cap, &need));
            h = fnv(h, state, need);
            TRY(rmkv_session_state_load(b, state, need));
            TRY(rmkv_session_step(a, &next, 1, logits));
            TRY(rmkv_session_step(b, &next, 1, logits2));
            if (memcmp(logits, logits2, V * sizeof(float)) != 0) {
                snprintf(w->msg, sizeof w->msg, "round %d: a restored state diverged", r);
                w->failed = 1;
                goto done;
            }
            h = fnv(h, logits, V * sizeof(float));
        }
        if (r % 4 == 1) { /* clone, and step the clone */
            TRY(rmkv_session_clone(a, &c));
            TRY(rmkv_session_step(c, toks, n, logits));
            h = fnv(h, logits, V * sizeof(float));
            rmkv_session_free(c);
            c = NULL;
        }
        if (r % 4 == 3) { /* both sessions stepped together (a's scratch) */
            rmkv_session *both[2] = {a, b};
            int32_t two[2] = {next, toks[0]};
            TRY(rmkv_sessions_step(both, 2, two, rows));
            h = fnv(h, rows, 2 * V * sizeof(float));
        }
        if (r % 5 == 2) { /* through a file */
            TRY(rmkv_session_state_save_file(a, path));
            TRY(rmkv_session_state_load_file(b, path));
            TRY(rmkv_session_step(b, toks, n, logits));
            h = fnv(h, logits, V * sizeof(float));
        }
        if (r % 7 == 3) TRY(rmkv_session_flush(a));
        if (r % 11 == 10) TRY(rmkv_session_reset(b));
        uint64_t pos;
        size_t fill;
        TRY(rmkv_session_position(a, &pos, &fill));
        h = fnv(h, &pos, sizeof pos);
        h = fnv(h, &fill, sizeof fill);
        const char *id = rmkv_model_id(shared);
        h = fnv(h, id, strlen(id));
    }
done:
    remove(path);
    rmkv_session_free(a);
    rmkv_session_free(b);
    rmkv_session_free(c);
    free(state);
    free(logits);
    free(logits2);
    free(rows);
    w->digest = h;
}

static void *thread_main(void *arg) {
    run_script(arg);
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sixteen_threads_equal_one(void **state) {
    (void)state;
    /* the shared model: created, saved, loaded back mapped read-only */
    const char *file = tmp_path("concurrency.safetensors");
    rmkv_model *made = make_model(cfg, 11);
    RMKV_CHECK(rmkv_model_save(made, file));
    rmkv_model_free(made);
    rmkv_model_params mp = rmkv_model_default_params();
    mp.use_mmap = 1;
    RMKV_CHECK(rmkv_model_load(file, &mp, &shared));
    size_t file_size;
    uint8_t *file_bytes = read_whole(file, &file_size);
    char id_before[80];
    snprintf(id_before, sizeof id_before, "%s", rmkv_model_id(shared));

    /* reference: the same work, one script after the other on this thread */
    work ref[N_THREADS];
    for (int t = 0; t < N_THREADS; ++t) {
        ref[t].tid = t;
        run_script(&ref[t]);
        if (ref[t].failed) fail_msg("reference %d: %s", t, ref[t].msg);
    }
    const char *env = getenv("RMKV_CONCURRENCY_SECONDS");
    double budget = env ? atof(env) : 3.0, start = now();
    int passes = 0;
    do {
        work w[N_THREADS];
        pthread_t th[N_THREADS];
        for (int t = 0; t < N_THREADS; ++t) {
            w[t].tid = t;
            assert_int_equal(pthread_create(&th[t], NULL, thread_main, &w[t]), 0);
        }
        for (int t = 0; t < N_THREADS; ++t) assert_int_equal(pthread_join(th[t], NULL), 0);
        for (int t = 0; t < N_THREADS; ++t) {
            if (w[t].failed) fail_msg("pass %d thread %d: %s", passes, t, w[t].msg);
            if (w[t].digest != ref[t].digest)
                fail_msg("pass %d thread %d: results differ from the same work on one thread", passes, t);
        }
        passes++;
    } while (now() - start < budget);
    print_message("%d passes of %d threads x %d rounds in %.1f s, identical to one thread\n", passes, N_THREADS,
                  ROUNDS, now() - start);

    /* the model was never written */
    assert_string_equal(rmkv_model_id(shared), id_before);
    const char *again = tmp_path("concurrency-after.safetensors");
    RMKV_CHECK(rmkv_model_save(shared, again));
    size_t again_size;
    uint8_t *again_bytes = read_whole(again, &again_size);
    assert_int_equal(again_size, file_size);
    assert_memory_equal(again_bytes, file_bytes, file_size);
    free(again_bytes);
    free(file_bytes);
    remove(again);
    rmkv_model_free(shared);
    remove(file);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(sixteen_threads_equal_one)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
