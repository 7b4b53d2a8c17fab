/* Sessions: causality, incremental = batch, flush, clone, reset, in-process state
   round trips and mismatches. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#define V 61
#define N 23 /* tokens: more than four segments of 5 */

static const char *configs[] = {
    "{\"vocab_size\":61,\"d_model\":24,\"n_layers\":2,\"n_heads\":3,\"memory_slots\":3,\"segment_len\":5,\"cell\":\"gru\"}",
    "{\"vocab_size\":61,\"d_model\":24,\"n_layers\":2,\"n_heads\":4,\"n_kv_heads\":2,\"memory_slots\":2,\"segment_len\":5,"
    "\"cell\":\"lstm\",\"pos\":\"learned\",\"norm\":\"rmsnorm\",\"ffn\":\"gelu\"}",
    "{\"vocab_size\":61,\"d_model\":16,\"n_layers\":3,\"n_heads\":2,\"memory_slots\":7,\"segment_len\":5,"
    "\"cell\":\"minimal\",\"pos\":\"sincos\",\"ffn\":\"none\",\"tie_embeddings\":true}",
};
#define N_CONFIGS (sizeof configs / sizeof configs[0])

/* Logits of every position of `tokens`, stepping in chunks of `chunk` (0 = all at once). */
static void run_all(rmkv_model *m, const int32_t *tokens, size_t n, size_t chunk, float *out) {
    rmkv_session *s = NULL;
    RMKV_CHECK(rmkv_session_new(m, NULL, &s));
    if (chunk == 0) chunk = n;
    for (size_t i = 0; i < n; i += chunk) {
        size_t k = i + chunk > n ? n - i : chunk;
        RMKV_CHECK(rmkv_session_step_all(s, tokens + i, k, out + i * V));
    }
    rmkv_session_free(s);
}

static void causality(void **state) {
    (void)state;
    for (size_t c = 0; c < N_CONFIGS; ++c) {
        rmkv_model *m = make_model(configs[c], 11 + c);
        int32_t toks[N], alt[N];
        float *a = malloc(sizeof(float) * N * V), *b = malloc(sizeof(float) * N * V);
        random_tokens(toks, N, V, 3);
        run_all(m, toks, N, 0, a);
        /* Change every token after u, for u inside and at the edges of segments. */
        for (size_t u = 0; u + 1 < N; u += 3) {
            memcpy(alt, toks, sizeof toks);
            for (size_t j = u + 1; j < N; ++j) alt[j] = (toks[j] + 7 + (int32_t)j) % V;
            run_all(m, alt, N, 0, b);
            /* Positions 0..u see the same prefix: bitwise equal logits. */
            assert_memory_equal(a, b, sizeof(float) * (u + 1) * V);
            /* and the change is visible right after (the test can fail). */
            assert_true(memcmp(a + (u + 1) * V, b + (u + 1) * V, sizeof(float) * V) != 0);
        }
        free(a);
        free(b);
        rmkv_model_free(m);
    }
}

static void incremental_equals_batch(void **state) {
    (void)state;
    for (size_t c = 0; c < N_CONFIGS; ++c) {
        rmkv_model *m = make_model(configs[c], 5 + c);
        int32_t toks[N];
        float *batch = malloc(sizeof(float) * N * V), *inc = malloc(sizeof(float) * N * V);
        float *last = malloc(sizeof(float) * V);
        random_tokens(toks, N, V, 9 + c);
        run_all(m, toks, N, 0, batch);
        run_all(m, toks, N, 1, inc);
        double e = rel_err(inc, batch, N * V);
        if (e >= 1e-5) fail_msg("config %zu: one-by-one vs batch relative error %g", c, e);
        run_all(m, toks, N, 3, inc);
        e = rel_err(inc, batch, N * V);
        if (e >= 1e-5) fail_msg("config %zu: chunks of 3 vs batch relative error %g", c, e);
        /* rmkv_session_step gives the last row of the same computation. */
        rmkv_session *s = NULL;
        RMKV_CHECK(rmkv_session_new(m, NULL, &s));
        RMKV_CHECK(rmkv_session_step(s, toks, N, last));
        e = rel_err(last, batch + (N - 1) * V, V);
        if (e >= 1e-5) fail_msg("config %zu: step vs step_all relative error %g", c, e);
        uint64_t pos;
        size_t fill;
        RMKV_CHECK(rmkv_session_position(s, &pos, &fill));
        assert_int_equal(pos, N);
        assert_int_equal(fill, N % 5);
        rmkv_session_free(s);
        free(batch);
        free(inc);
        free(last);
        rmkv_model_free(m);
    }
}

static void flush_semantics(void **state) {
    (void)state;
    rmkv_model *m = make_model(configs[0], 2);
    rmkv_session *a = NULL, *b = NULL;
    int32_t toks[4] = {1, 2, 3, 4};
    float la[V], lb[V];
    RMKV_CHECK(rmkv_session_new(m, NULL, &a));
    RMKV_CHECK(rmkv_session_new(m, NULL, &b));
    /* Flushing an empty segment changes nothing. */
    RMKV_CHECK(rmkv_session_flush(a));
    RMKV_CHECK(rmkv_session_step(a, toks, 4, la));
    RMKV_CHECK(rmkv_session_step(b, toks, 4, lb));
    assert_memory_equal(la, lb, sizeof la);
    /* A flush rewrites memory: the next token then sees a different memory and
       starts a new segment. */
    RMKV_CHECK(rmkv_session_flush(a));
    RMKV_CHECK(rmkv_session_step(a, toks, 1, la));
    RMKV_CHECK(rmkv_session_step(b, toks, 1, lb));
    assert_true(memcmp(la, lb, sizeof la) != 0);
    size_t fill;
    RMKV_CHECK(rmkv_session_position(a, NULL, &fill));
    assert_int_equal(fill, 1);
    /* Reset returns to the initial state. */
    RMKV_CHECK(rmkv_session_reset(a));
    RMKV_CHECK(rmkv_session_reset(b));
    RMKV_CHECK(rmkv_session_step(a, toks, 3, la));
    RMKV_CHECK(rmkv_session_step(b, toks, 3, lb));
    assert_memory_equal(la, lb, sizeof la);
    rmkv_session_free(a);
    rmkv_session_free(b);
    rmkv_model_free(m);
}

static void clone_branches(void **state) {
    (void)state;
    rmkv_model *m = make_model(configs[1], 4);
    rmkv_session *a = NULL, *b = NULL;
    int32_t toks[N];
    float la[V], lb[V];
    random_tokens(toks, N, V, 1);
    RMKV_CHECK(rmkv_session_new(m, NULL, &a));
    RMKV_CHECK(rmkv_session_step(a, toks, 12, NULL));
    RMKV_CHECK(rmkv_session_clone(a, &b));
    RMKV_CHECK(rmkv_session_step(a, toks + 12, 6, la));
    RMKV_CHECK(rmkv_session_step(b, toks + 12, 6, lb));
    assert_memory_equal(la, lb, sizeof la);
    /* Branches are independent. */
    RMKV_CHECK(rmkv_session_step(b, toks, 2, lb));
    RMKV_CHECK(rmkv_session_step(a, toks + 1, 2, la));
    assert_true(memcmp(la, lb, sizeof la) != 0);
    rmkv_session_free(a);
    rmkv_session_free(b);
    rmkv_model_free(m);
}

/* Save mid-segment and after a flush; load into a fresh session; the continuation
   is bitwise equal. */
static void state_round_trip(void **state) {
    (void)state;
    for (size_t c = 0; c < N_CONFIGS; ++c) {
        rmkv_model *m = make_model(configs[c], 8);
        int32_t toks[N];
        random_tokens(toks, N, V, 77);
        for (int flushed = 0; flushed < 2; ++flushed) {
            rmkv_session *a = NULL, *b = NULL;
            float la[V], lb[V];
            size_t size = 0, size2 = 0;
            RMKV_CHECK(rmkv_session_new(m, NULL, &a));
            RMKV_CHECK(rmkv_session_new(m, NULL, &b));
            RMKV_CHECK(rmkv_session_step(a, toks, 8, NULL));
            if (flushed) RMKV_CHECK(rmkv_session_flush(a));
            RMKV_EXPECT(RMKV_ERR_BUFFER_TOO_SMALL, rmkv_session_state_save(a, NULL, 0, &size));
            RMKV_CHECK(rmkv_session_state_size(a, &size2));
            assert_int_equal(size, size2);
            void *buf = malloc(size);
            RMKV_CHECK(rmkv_session_state_save(a, buf, size, &size2));
            assert_int_equal(size, size2);
            /* The same bytes into an unaligned buffer full of junk (padding included),
               and in a file. */
            unsigned char *odd = malloc(size + 1);
            memset(odd, 0xab, size + 1);
            RMKV_CHECK(rmkv_session_state_save(a, odd + 1, size, &size2));
            assert_memory_equal(odd + 1, buf, size);
            const char *path = tmp_path("round_trip.state");
            RMKV_CHECK(rmkv_session_state_save_file(a, path));
            FILE *f = fopen(path, "rb");
            assert_non_null(f);
            unsigned char *file = malloc(size + 1);
            assert_int_equal(fread(file, 1, size + 1, f), size);
            fclose(f);
            assert_memory_equal(file, buf, size);
            free(file);
            remove(path);
            /* Loaded from the unaligned copy. */
            RMKV_CHECK(rmkv_session_state_load(b, odd + 1, size));
            free(odd);
            RMKV_CHECK(rmkv_session_step(a, toks + 8, N - 8, la));
            RMKV_CHECK(rmkv_session_step(b, toks + 8, N - 8, lb));
            assert_memory_equal(la, lb, sizeof la);
            free(buf);
            rmkv_session_free(a);
            rmkv_session_free(b);
        }
        rmkv_model_free(m);
    }
}

static void flushed_state_is_compact(void **state) {
    (void)state;
    rmkv_model *m = make_model(configs[0], 8);
    rmkv_session *s = NULL;
    int32_t toks[3] = {1, 2, 3};
    size_t mid, flushed;
    RMKV_CHECK(rmkv_session_new(m, NULL, &s));
    RMKV_CHECK(rmkv_session_step(s, toks, 3, NULL));
    RMKV_CHECK(rmkv_session_state_size(s, &mid));
    RMKV_CHECK(rmkv_session_flush(s));
    RMKV_CHECK(rmkv_session_state_size(s, &flushed));
    /* 2 layers x 3 slots x 24 floats of memory, plus a header. */
    assert_true(flushed < mid);
    assert_true(flushed >= 2 * 3 * 24 * 4);
    assert_true(flushed < 2 * 3 * 24 * 4 + 2048);
    rmkv_session_free(s);
    rmkv_model_free(m);
}

static void state_of_another_model_is_refused(void **state) {
    (void)state;
    rmkv_model *m1 = make_model(configs[0], 1), *m2 = make_model(configs[0], 2), *m3 = make_model(configs[2], 1);
    rmkv_session *a = NULL, *b = NULL, *c = NULL;
    int32_t toks[3] = {1, 2, 3};
    float before[V], after[V];
    size_t size;
    RMKV_CHECK(rmkv_session_new(m1, NULL, &a));
    RMKV_CHECK(rmkv_session_new(m2, NULL, &b));
    RMKV_CHECK(rmkv_session_new(m3, NULL, &c));
    RMKV_CHECK(rmkv_session_step(a, toks, 3, NULL));
    RMKV_CHECK(rmkv_session_state_size(a, &size));
    void *buf = malloc(size);
    RMKV_CHECK(rmkv_session_state_save(a, buf, size, &size));
    RMKV_CHECK(rmkv_session_step(b, toks, 2, NULL));
    RMKV_EXPECT(RMKV_ERR_MISMATCH, rmkv_session_state_load(b, buf, size));
    assert_non_null(strstr(rmkv_last_error(), "model"));
    RMKV_EXPECT(RMKV_ERR_MISMATCH, rmkv_session_state_load(c, buf, size));
    /* The failed load left b as it was: same logits as a twin that never tried. */
    rmkv_session *twin = NULL;
    RMKV_CHECK(rmkv_session_new(m2, NULL, &twin));
    RMKV_CHECK(rmkv_session_step(twin, toks, 2, NULL));
    RMKV_CHECK(rmkv_session_step(twin, toks, 1, before));
    RMKV_CHECK(rmkv_session_step(b, toks, 1, after));
    assert_memory_equal(before, after, sizeof before);
    free(buf);
    rmkv_session_free(twin);
    rmkv_session_free(a);
    rmkv_session_free(b);
    rmkv_session_free(c);
    rmkv_model_free(m1);
    rmkv_model_free(m2);
    rmkv_model_free(m3);
}

static void bad_tokens_do_not_advance(void **state) {
    (void)state;
    rmkv_model *m = make_model(configs[0], 1);
    rmkv_session *s = NULL;
    int32_t toks[3] = {1, V, 2};
    uint64_t pos = 99;
    RMKV_CHECK(rmkv_session_new(m, NULL, &s));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_step(s, toks, 3, NULL));
    assert_non_null(strstr(rmkv_last_error(), "tokens[1]"));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_step(s, toks, 0, NULL));
    RMKV_CHECK(rmkv_session_position(s, &pos, NULL));
    assert_int_equal(pos, 0);
    rmkv_session_free(s);
    rmkv_model_free(m);
}

/* rmkv_sessions_step: 4 sessions at different positions (0, 2, 4 and 9 tokens
   read, so that their segments end at different calls, the last two at the same
   ones: their memory rewrites run stacked) stepped together for 12
   tokens give the logits of copies stepped one by one, within float rounding, at
   every call; afterwards they sit at the same positions and continue alike, and
   each can be sampled from. A session listed twice, a session of another model,
   a bad token, a NULL entry or an empty list is refused and moves no session. */
static void stepping_together(void **state) {
    (void)state;
    enum { NS = 4, STEPS = 12, NT = 40 };
    const size_t pre[NS] = {0, 2, 4, 9};
    for (size_t c = 0; c < N_CONFIGS; ++c) {
        rmkv_model *m = make_model(configs[c], 31 + c);
        rmkv_session *tog[NS], *one[NS];
        int32_t toks[NT];
        random_tokens(toks, NT, V, 21 + c);
        for (size_t i = 0; i < NS; ++i) {
            RMKV_CHECK(rmkv_session_new(m, NULL, &tog[i]));
            if (pre[i]) RMKV_CHECK(rmkv_session_step(tog[i], toks + i, pre[i], NULL));
            RMKV_CHECK(rmkv_session_clone(tog[i], &one[i]));
        }
        float together[NS * V], single[V];
        double worst = 0;
        for (size_t k = 0; k < STEPS; ++k) {
            int32_t next[NS];
            for (size_t i = 0; i < NS; ++i) next[i] = toks[(k * NS + i * 7) % NT];
            RMKV_CHECK(rmkv_sessions_step(tog, NS, next, k % 3 == 2 ? NULL : together));
            for (size_t i = 0; i < NS; ++i) {
                RMKV_CHECK(rmkv_session_step(one[i], &next[i], 1, single));
                if (k % 3 == 2) continue;
                double e = rel_err(together + i * V, single, V);
                if (e > worst) worst = e;
            }
        }
        print_message("config %zu: %d sessions together vs one by one, %d steps: rel err %.2e\n", c, NS, STEPS, worst);
        assert_true(worst < 1e-5);
        for (size_t i = 0; i < NS; ++i) {
            uint64_t pa = 0, pb = 1;
            size_t fa = 0, fb = 1;
            RMKV_CHECK(rmkv_session_position(tog[i], &pa, &fa));
            RMKV_CHECK(rmkv_session_position(one[i], &pb, &fb));
            assert_int_equal(pa, pre[i] + STEPS);
            assert_int_equal(pa, pb);
            assert_int_equal(fa, fb);
            /* The continuation one by one agrees too: caches and memory carried. */
            float la[V], lb[V];
            RMKV_CHECK(rmkv_session_step(tog[i], toks, 7, la));
            RMKV_CHECK(rmkv_session_step(one[i], toks, 7, lb));
            assert_true(rel_err(la, lb, V) < 1e-5);
            int32_t drawn = -1;
            rmkv_sampler_params sp = rmkv_sampler_default_params();
            RMKV_CHECK(rmkv_sessions_step(&tog[i], 1, toks + 3, NULL));
            RMKV_CHECK(rmkv_session_sample(tog[i], &sp, &drawn));
            assert_true(drawn >= 0 && drawn < V);
        }
        /* Refusals: nothing moves. */
        uint64_t before[NS], after = 0;
        for (size_t i = 0; i < NS; ++i) RMKV_CHECK(rmkv_session_position(tog[i], &before[i], NULL));
        rmkv_model *m2 = make_model(configs[c], 99);
        rmkv_session *other = NULL;
        RMKV_CHECK(rmkv_session_new(m2, NULL, &other));
        int32_t good[NS] = {1, 2, 3, 4}, bad[NS] = {1, 2, V, 4};
        rmkv_session *twice[3] = {tog[0], tog[1], tog[0]}, *mixed[2] = {tog[0], other}, *holes[2] = {tog[0], NULL};
        RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_sessions_step(twice, 3, good, NULL));
        RMKV_EXPECT(RMKV_ERR_MISMATCH, rmkv_sessions_step(mixed, 2, good, NULL));
        RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_sessions_step(tog, NS, bad, NULL));
        assert_non_null(strstr(rmkv_last_error(), "tokens[2]"));
        RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_sessions_step(holes, 2, good, NULL));
        RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_sessions_step(tog, 0, good, NULL));
        for (size_t i = 0; i < NS; ++i) {
            RMKV_CHECK(rmkv_session_position(tog[i], &after, NULL));
            assert_int_equal(after, before[i]);
        }
        rmkv_session_free(other);
        rmkv_model_free(m2);
        for (size_t i = 0; i < NS; ++i) rmkv_session_free(tog[i]), rmkv_session_free(one[i]);
        rmkv_model_free(m);
    }
}

/* rmkv_session_params.n_threads: a session on one thread computes what the default
   one computes (up to the order of float sums), across segment ends; the calling
   thread's OpenMP setting is what it was after each call; out-of-range counts
   are refused. */
static void thread_count(void **state) {
    (void)state;
    rmkv_model *m = make_model(configs[0], 5);
    rmkv_session_params p = rmkv_session_default_params();
    assert_int_equal(p.n_threads, 0);
    rmkv_session *a = NULL, *b = NULL, *bad = NULL;
    RMKV_CHECK(rmkv_session_new(m, NULL, &a));
    p.n_threads = 1;
    RMKV_CHECK(rmkv_session_new(m, &p, &b));
    const int before = omp_get_max_threads();
    int32_t toks[N];
    random_tokens(toks, N, V, 8);
    float la[V], lb[V];
    for (size_t i = 0; i < N; ++i) {
        RMKV_CHECK(rmkv_session_step(a, &toks[i], 1, la));
        RMKV_CHECK(rmkv_session_step(b, &toks[i], 1, lb));
        assert_true(rel_err(lb, la, V) < 1e-5);
        assert_int_equal(omp_get_max_threads(), before);
    }
    rmkv_session *c = NULL;
    RMKV_CHECK(rmkv_session_clone(b, &c)); /* a clone keeps the count */
    RMKV_CHECK(rmkv_sessions_step(&c, 1, toks, lb));
    assert_int_equal(omp_get_max_threads(), before);
    p.n_threads = -1;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_new(m, &p, &bad));
    assert_non_null(strstr(rmkv_last_error(), "n_threads"));
    p.n_threads = 1025;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_new(m, &p, &bad));
    assert_null(bad);
    rmkv_session_free(a);
    rmkv_session_free(b);
    rmkv_session_free(c);
    rmkv_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(causality),
        cmocka_unit_test(incremental_equals_batch),
        cmocka_unit_test(flush_semantics),
        cmocka_unit_test(clone_branches),
        cmocka_unit_test(state_round_trip),
        cmocka_unit_test(flushed_state_is_compact),
        cmocka_unit_test(state_of_another_model_is_refused),
        cmocka_unit_test(bad_tokens_do_not_advance),
        cmocka_unit_test(stepping_together),
        cmocka_unit_test(thread_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
