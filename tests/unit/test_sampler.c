/* Sampling through the ABI: greedy is the argmax, the same seed gives the same
   draws, a restored state continues the same draws, top-k keeps exactly the k
   most likely tokens, penalties change the draws, bad params are refused. */
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#define V 48
static const char *cfg =
    "{\"vocab_size\":48,\"d_model\":16,\"n_layers\":1,\"n_heads\":2,\"memory_slots\":2,\"segment_len\":8}";

static void draw(rmkv_session *s, const rmkv_sampler_params *p, int32_t *out, int n) {
    for (int i = 0; i < n; ++i) {
        RMKV_CHECK(rmkv_session_sample(s, p, &out[i]));
        RMKV_CHECK(rmkv_session_step(s, &out[i], 1, NULL));
    }
}

static void greedy_is_argmax(void **state) {
    (void)state;
    rmkv_model *m = make_model(cfg, 3);
    rmkv_session *s = NULL;
    int32_t tok = 5, got;
    float logits[V];
    RMKV_CHECK(rmkv_session_new(m, NULL, &s));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_sample(s, NULL, &got)); /* nothing stepped yet */
    RMKV_CHECK(rmkv_session_step(s, &tok, 1, logits));
    rmkv_sampler_params p = rmkv_sampler_default_params();
    p.temperature = 0;
    RMKV_CHECK(rmkv_session_sample(s, &p, &got));
    int best = 0;
    for (int i = 1; i < V; ++i)
        if (logits[i] > logits[best]) best = i;
    assert_int_equal(got, best);
    rmkv_session_free(s);
    rmkv_model_free(m);
}

static void seeds_and_restored_states(void **state) {
    (void)state;
    rmkv_model *m = make_model(cfg, 4);
    rmkv_session *a = NULL, *b = NULL;
    int32_t tok = 7, x[40], y[40];
    rmkv_sampler_params p = rmkv_sampler_default_params();
    p.temperature = 1.5f;
    p.top_p = 1.0f;
    p.seed = 1234;
    RMKV_CHECK(rmkv_session_new(m, NULL, &a));
    RMKV_CHECK(rmkv_session_new(m, NULL, &b));
    RMKV_CHECK(rmkv_session_step(a, &tok, 1, NULL));
    RMKV_CHECK(rmkv_session_step(b, &tok, 1, NULL));
    draw(a, &p, x, 40);
    draw(b, &p, y, 40);
    assert_memory_equal(x, y, sizeof x);
    /* Another seed, other draws (the check can fail). */
    RMKV_CHECK(rmkv_session_reset(b));
    RMKV_CHECK(rmkv_session_step(b, &tok, 1, NULL));
    p.seed = 99;
    draw(b, &p, y, 40);
    assert_true(memcmp(x, y, sizeof x) != 0);
    /* Save after 20 draws; a restored session continues with the same draws. */
    p.seed = 1234;
    RMKV_CHECK(rmkv_session_reset(a));
    RMKV_CHECK(rmkv_session_step(a, &tok, 1, NULL));
    draw(a, &p, x, 20);
    size_t size;
    RMKV_CHECK(rmkv_session_state_size(a, &size));
    void *buf = malloc(size);
    RMKV_CHECK(rmkv_session_state_save(a, buf, size, &size));
    rmkv_session *c = NULL;
    RMKV_CHECK(rmkv_session_new(m, NULL, &c));
    RMKV_CHECK(rmkv_session_state_load(c, buf, size));
    int32_t last = x[19];
    RMKV_CHECK(rmkv_session_step(c, &last, 1, NULL));
    RMKV_CHECK(rmkv_session_step(a, &last, 1, NULL));
    draw(a, &p, x + 20, 20);
    draw(c, &p, y + 20, 20);
    assert_memory_equal(x + 20, y + 20, 20 * sizeof(int32_t));
    free(buf);
    rmkv_session_free(a);
    rmkv_session_free(b);
    rmkv_session_free(c);
    rmkv_model_free(m);
}

static void top_k_keeps_the_k_best(void **state) {
    (void)state;
    rmkv_model *m = make_model(cfg, 5);
    rmkv_session *s = NULL;
    int32_t tok = 2, got;
    float logits[V];
    RMKV_CHECK(rmkv_session_new(m, NULL, &s));
    RMKV_CHECK(rmkv_session_step(s, &tok, 1, logits));
    /* The 3 most likely ids. */
    int top[3] = {-1, -1, -1};
    for (int k = 0; k < 3; ++k) {
        int best = -1;
        for (int i = 0; i < V; ++i) {
            if (i == top[0] || i == top[1]) continue;
            if (best < 0 || logits[i] > logits[best]) best = i;
        }
        top[k] = best;
    }
    rmkv_sampler_params p = rmkv_sampler_default_params();
    p.temperature = 5.0f; /* flat: without top_k every id would appear */
    p.top_k = 3;
    p.top_p = 1.0f;
    int seen[V] = {0};
    for (int i = 0; i < 600; ++i) {
        p.seed = (uint64_t)i;
        RMKV_CHECK(rmkv_session_sample(s, &p, &got));
        assert_true(got == top[0] || got == top[1] || got == top[2]);
        seen[got]++;
    }
    assert_true(seen[top[0]] > 0 && seen[top[1]] > 0 && seen[top[2]] > 0);
    rmkv_session_free(s);
    rmkv_model_free(m);
}

static void penalties_and_bad_params(void **state) {
    (void)state;
    rmkv_model *m = make_model(cfg, 6);
    rmkv_session *s = NULL;
    int32_t tok = 9, got, first;
    RMKV_CHECK(rmkv_session_new(m, NULL, &s));
    RMKV_CHECK(rmkv_session_step(s, &tok, 1, NULL));
    rmkv_sampler_params p = rmkv_sampler_default_params();
    p.temperature = 0;
    RMKV_CHECK(rmkv_session_sample(s, &p, &first));
    /* Step the greedy choice, then forbid it through a huge presence penalty. */
    RMKV_CHECK(rmkv_session_step(s, &first, 1, NULL));
    p.presence_penalty = 1e6f;
    p.penalty_window = 2;
    RMKV_CHECK(rmkv_session_sample(s, &p, &got));
    assert_true(got != first && got != tok);
    p = rmkv_sampler_default_params();
    p.top_p = 0.0f;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_sample(s, &p, &got));
    p = rmkv_sampler_default_params();
    p.penalty_window = 5000;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_sample(s, &p, &got));
    p = rmkv_sampler_default_params();
    p.temperature = -1;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_sample(s, &p, &got));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_sample(NULL, NULL, &got));
    rmkv_session_free(s);
    rmkv_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(greedy_is_argmax),
        cmocka_unit_test(seeds_and_restored_states),
        cmocka_unit_test(top_k_keeps_the_k_best),
        cmocka_unit_test(penalties_and_bad_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
