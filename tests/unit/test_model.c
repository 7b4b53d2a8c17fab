/* Models: create, save and load (F32, BF16, F16; mapped, read, from memory,
   zero-copy), config validation messages, fingerprints. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static const char *cfg =
    "{\"vocab_size\":50,\"d_model\":16,\"n_layers\":2,\"n_heads\":2,\"memory_slots\":3,\"segment_len\":6,\"cell\":\"lstm\"}";

static void logits_of(rmkv_model *m, float *out) {
    rmkv_session *s = NULL;
    int32_t toks[9] = {1, 5, 7, 9, 11, 2, 3, 4, 49};
    RMKV_CHECK(rmkv_session_new(m, NULL, &s));
    RMKV_CHECK(rmkv_session_step(s, toks, 9, out));
    rmkv_session_free(s);
}

static void create_is_deterministic(void **state) {
    (void)state;
    rmkv_model *a = make_model(cfg, 42), *b = make_model(cfg, 42), *c = make_model(cfg, 43);
    assert_string_equal(rmkv_model_id(a), rmkv_model_id(b));
    assert_string_not_equal(rmkv_model_id(a), rmkv_model_id(c));
    assert_int_equal(strlen(rmkv_model_id(a)), 64);
    float la[50], lb[50];
    logits_of(a, la);
    logits_of(b, lb);
    assert_memory_equal(la, lb, sizeof la);
    assert_true(rmkv_model_n_params(a) > 0);
    rmkv_model_free(a);
    rmkv_model_free(b);
    rmkv_model_free(c);
}

static void config_defaults_and_json(void **state) {
    (void)state;
    rmkv_model *m = make_model("{\"vocab_size\":10}", 1);
    size_t need = 0;
    RMKV_EXPECT(RMKV_ERR_BUFFER_TOO_SMALL, rmkv_model_config_json(m, NULL, 0, &need));
    char *buf = malloc(need);
    RMKV_CHECK(rmkv_model_config_json(m, buf, need, &need));
    assert_non_null(strstr(buf, "\"d_model\":256"));
    assert_non_null(strstr(buf, "\"cell\":\"gru\""));
    assert_non_null(strstr(buf, "\"pos\":\"rope\""));
    assert_non_null(strstr(buf, "\"ffn\":\"swiglu\""));
    assert_non_null(strstr(buf, "\"ffn_hidden\":704"));
    assert_non_null(strstr(buf, "\"n_kv_heads\":4"));
    free(buf);
    rmkv_model_free(m);
}

static void config_errors_name_key_and_value(void **state) {
    (void)state;
    struct { const char *json, *needle; } cases[] = {
        {"{\"vocab_size\":10,\"cell\":\"rnn\"}", "\"cell\": \"rnn\""},
        {"{\"vocab_size\":10,\"d_model\":30,\"n_heads\":4}", "d_model"},
        {"{\"vocab_size\":10,\"d_model\":12,\"n_heads\":4}", "head_dim"},
        {"{\"vocab_size\":10,\"n_kv_heads\":3}", "n_kv_heads"},
        {"{\"vocab_size\":10,\"segment_len\":0}", "segment_len"},
        {"{\"vocab_size\":10,\"memory_slot\":4}", "unknown key \"memory_slot\""},
        {"{\"vocab_size\":-3}", "vocab_size"},
        {"{\"vocab_size\":10,\"tie_embeddings\":1}", "tie_embeddings"},
        {"{\"vocab_size\":10,\"norm_eps\":\"x\"}", "norm_eps"},
        {"{}", "vocab_size"},
        {"[1,2]", "JSON object"},
        {"{\"vocab_size\":", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        rmkv_model *m = NULL;
        RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_model_create(cases[i].json, NULL, 1, NULL, &m));
        assert_null(m);
        if (!strstr(rmkv_last_error(), cases[i].needle))
            fail_msg("config %s: message '%s' does not name '%s'", cases[i].json, rmkv_last_error(), cases[i].needle);
    }
}

static void save_load_round_trip(void **state) {
    (void)state;
    rmkv_model *m = make_model(cfg, 7);
    float want[50], got[50];
    logits_of(m, want);
    const char *path = tmp_path("model.safetensors");
    RMKV_CHECK(rmkv_model_save(m, path));
    for (int mmap_on = 0; mmap_on < 2; ++mmap_on) {
        rmkv_model_params p = rmkv_model_default_params();
        p.use_mmap = mmap_on;
        rmkv_model *l = NULL;
        RMKV_CHECK(rmkv_model_load(path, &p, &l));
        assert_string_equal(rmkv_model_id(l), rmkv_model_id(m));
        logits_of(l, got);
        assert_memory_equal(want, got, sizeof want);
        rmkv_model_free(l);
    }
    size_t size;
    void *bytes = read_whole(path, &size);
    assert_non_null(bytes);
    for (int zero_copy = 1; zero_copy >= 0; --zero_copy) {
        rmkv_model_params p = rmkv_model_default_params();
        p.flags = zero_copy ? RMKV_MODEL_ZERO_COPY : 0;
        rmkv_model *l = NULL;
        RMKV_CHECK(rmkv_model_load_from_memory(bytes, size, &p, &l));
        if (!zero_copy) memset(bytes, 0, 64); /* the copy does not depend on the buffer */
        logits_of(l, got);
        assert_memory_equal(want, got, sizeof want);
        rmkv_model_free(l);
    }
    free(bytes);
    remove(path);
    rmkv_model_free(m);
}

static void half_precision_files(void **state) {
    (void)state;
    rmkv_model *m = make_model(cfg, 9);
    float want[50], got[50];
    logits_of(m, want);
    rmkv_dtype dts[2] = {RMKV_DTYPE_BF16, RMKV_DTYPE_F16};
    for (int i = 0; i < 2; ++i) {
        const char *path = tmp_path("half.safetensors");
        RMKV_CHECK(rmkv_model_save_as(m, path, dts[i]));
        size_t size, f32_size;
        free(read_whole(path, &size));
        rmkv_model *l = NULL;
        RMKV_CHECK(rmkv_model_load(path, NULL, &l));
        logits_of(l, got);
        double e = rel_err(got, want, 50);
        if (!(e < 0.05)) fail_msg("dtype %d: relative error %g", (int)dts[i], e);
        /* reloading a half-precision model and saving it again is lossless */
        const char *path2 = tmp_path("half2.safetensors");
        RMKV_CHECK(rmkv_model_save(l, path2));
        free(read_whole(path2, &f32_size));
        assert_true(size < f32_size);
        rmkv_model *l2 = NULL;
        RMKV_CHECK(rmkv_model_load(path2, NULL, &l2));
        assert_string_equal(rmkv_model_id(l2), rmkv_model_id(l));
        float again[50];
        logits_of(l2, again);
        assert_memory_equal(got, again, sizeof got);
        remove(path);
        remove(path2);
        rmkv_model_free(l);
        rmkv_model_free(l2);
    }
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_model_save_as(m, tmp_path("x"), (rmkv_dtype)7));
    rmkv_model_free(m);
}

static void save_failures_keep_old_file(void **state) {
    (void)state;
    rmkv_model *m = make_model(cfg, 1);
    RMKV_EXPECT(RMKV_ERR_IO, rmkv_model_save(m, "/nonexistent-dir/model.safetensors"));
    assert_non_null(strstr(rmkv_last_error(), "/nonexistent-dir/model.safetensors"));
    rmkv_model *l = NULL;
    RMKV_EXPECT(RMKV_ERR_IO, rmkv_model_load("/nonexistent-dir/model.safetensors", NULL, &l));
    rmkv_model_free(m);
}

static void every_option_builds(void **state) {
    (void)state;
    const char *cells[] = {"gru", "lstm", "minimal"}, *pos[] = {"rope", "learned", "sincos"};
    const char *norms[] = {"layernorm", "rmsnorm"}, *ffns[] = {"swiglu", "gelu", "none"};
    char json[512];
    for (int c = 0; c < 3; ++c)
        for (int p = 0; p < 3; ++p)
            for (int n = 0; n < 2; ++n)
                for (int f = 0; f < 3; ++f) {
                    snprintf(json, sizeof json,
                             "{\"vocab_size\":50,\"d_model\":16,\"n_layers\":1,\"n_heads\":4,\"n_kv_heads\":2,"
                             "\"memory_slots\":2,\"segment_len\":4,\"cell\":\"%s\",\"pos\":\"%s\",\"norm\":\"%s\","
                             "\"ffn\":\"%s\",\"tie_embeddings\":%s}",
                             cells[c], pos[p], norms[n], ffns[f], (c + p + f) % 2 ? "true" : "false");
                    rmkv_model *m = make_model(json, 3);
                    float l[50];
                    logits_of(m, l);
                    for (int i = 0; i < 50; ++i) assert_true(isfinite(l[i]));
                    rmkv_model_free(m);
                }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_is_deterministic),
        cmocka_unit_test(config_defaults_and_json),
        cmocka_unit_test(config_errors_name_key_and_value),
        cmocka_unit_test(save_load_round_trip),
        cmocka_unit_test(half_precision_files),
        cmocka_unit_test(save_failures_keep_old_file),
        cmocka_unit_test(every_option_builds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
