/* Bad input: every truncation of a model file and of a state file, random byte
   flips in their headers and data, NULL handles and absurd sizes. Nothing may
   crash; every failure has its status and a message; a failed load changes
   nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static const char *cfg =
    "{\"vocab_size\":20,\"d_model\":8,\"n_layers\":1,\"n_heads\":2,\"memory_slots\":2,\"segment_len\":3,"
    "\"cell\":\"lstm\",\"ffn\":\"gelu\",\"ffn_hidden\":8}";

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint8_t *model_bytes(size_t *size) {
    rmkv_model *m = make_model(cfg, 5);
    const char *path = tmp_path("bad-model.safetensors");
    RMKV_CHECK(rmkv_model_save(m, path));
    rmkv_model_free(m);
    uint8_t *bytes = read_whole(path, size);
    remove(path);
    assert_non_null(bytes);
    return bytes;
}

static size_t header_end(const uint8_t *b) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | b[i];
    return 8 + (size_t)n;
}

static void model_truncations(void **state) {
    (void)state;
    size_t size;
    uint8_t *bytes = model_bytes(&size);
    for (size_t len = 0; len < size; ++len) {
        rmkv_model *m = NULL;
        uint8_t *copy = malloc(len + 1);
        memcpy(copy, bytes, len);
        rmkv_status st = rmkv_model_load_from_memory(copy, len, NULL, &m);
        if (st != RMKV_ERR_FORMAT) fail_msg("truncated to %zu of %zu bytes: %s", len, size, rmkv_status_string(st));
        assert_true(strlen(rmkv_last_error()) > 10);
        assert_null(m);
        free(copy);
    }
    free(bytes);
}

static void model_header_flips(void **state) {
    (void)state;
    size_t size;
    uint8_t *bytes = model_bytes(&size);
    size_t hend = header_end(bytes);
    int ok = 0, format = 0;
    for (int trial = 0; trial < 3000; ++trial) {
        uint8_t *copy = malloc(size);
        memcpy(copy, bytes, size);
        int flips = 1 + (int)(next_rand() % 3);
        for (int f = 0; f < flips; ++f) copy[next_rand() % hend] ^= (uint8_t)(1u << (next_rand() % 8));
        rmkv_model *m = NULL;
        rmkv_status st = rmkv_model_load_from_memory(copy, size, NULL, &m);
        if (st == RMKV_OK) {
            /* A flip that leaves a valid file (a digit of norm_eps, say) gives a working model. */
            rmkv_session *s = NULL;
            int32_t t[2] = {1, 2};
            RMKV_CHECK(rmkv_session_new(m, NULL, &s));
            RMKV_CHECK(rmkv_session_step(s, t, 2, NULL));
            rmkv_session_free(s);
            rmkv_model_free(m);
            ok++;
        } else {
            if (st != RMKV_ERR_FORMAT) fail_msg("trial %d: %s (%s)", trial, rmkv_status_string(st), rmkv_last_error());
            assert_true(strlen(rmkv_last_error()) > 10);
            format++;
        }
        free(copy);
    }
    print_message("header flips: %d refused with RMKV_ERR_FORMAT, %d still valid\n", format, ok);
    assert_true(format > 2000);
    free(bytes);
}

static uint8_t *state_bytes(rmkv_model *m, size_t n_tokens, size_t *size) {
    rmkv_session *s = NULL;
    int32_t toks[5] = {1, 2, 3, 4, 5};
    RMKV_CHECK(rmkv_session_new(m, NULL, &s));
    RMKV_CHECK(rmkv_session_step(s, toks, n_tokens, NULL));
    RMKV_CHECK(rmkv_session_state_size(s, size));
    uint8_t *buf = malloc(*size);
    RMKV_CHECK(rmkv_session_state_save(s, buf, *size, size));
    rmkv_session_free(s);
    return buf;
}

static void state_damage(void **state) {
    (void)state;
    rmkv_model *m = make_model(cfg, 5);
    rmkv_session *s = NULL;
    int32_t tok = 3;
    RMKV_CHECK(rmkv_session_new(m, NULL, &s));
    RMKV_CHECK(rmkv_session_step(s, &tok, 1, NULL));
    for (size_t n_tokens = 4; n_tokens <= 5; ++n_tokens) { /* mid-segment (1 of 3) and (2 of 3) */
        size_t size;
        uint8_t *bytes = state_bytes(m, n_tokens, &size);
        for (size_t len = 0; len < size; ++len) {
            rmkv_status st = rmkv_session_state_load(s, bytes, len);
            if (st != RMKV_ERR_FORMAT) fail_msg("state truncated to %zu of %zu: %s", len, size, rmkv_status_string(st));
        }
        int refused = 0;
        for (int trial = 0; trial < 3000; ++trial) {
            uint8_t *copy = malloc(size);
            memcpy(copy, bytes, size);
            copy[next_rand() % size] ^= (uint8_t)(1u << (next_rand() % 8));
            rmkv_status st = rmkv_session_state_load(s, copy, size);
            if (st != RMKV_OK && st != RMKV_ERR_FORMAT && st != RMKV_ERR_MISMATCH)
                fail_msg("state flip: %s (%s)", rmkv_status_string(st), rmkv_last_error());
            if (st != RMKV_OK) {
                refused++;
                uint64_t pos;
                RMKV_CHECK(rmkv_session_position(s, &pos, NULL));
                if (pos != 1 && pos != 4 && pos != 5) fail_msg("failed load changed the session (position %llu)", (unsigned long long)pos);
            }
            free(copy);
        }
        print_message("state flips: %d of 3000 refused\n", refused);
        assert_true(refused > 2800); /* only flips in JSON whitespace can pass */
        free(bytes);
    }
    rmkv_session_free(s);
    rmkv_model_free(m);
}

static void null_handles_and_absurd_sizes(void **state) {
    (void)state;
    rmkv_model *m = make_model(cfg, 5);
    rmkv_session *s = NULL;
    int32_t tok = 1;
    float logits[20];
    size_t size = 0;
    char buf[16];
    RMKV_CHECK(rmkv_session_new(m, NULL, &s));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_model_load(NULL, NULL, NULL));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_model_load_from_memory(NULL, 10, NULL, &m));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_model_load_from_memory(buf, (size_t)-1, NULL, &m));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_model_create(cfg, NULL, 1, NULL, NULL));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_model_save(NULL, "x"));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_model_save(m, NULL));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_model_config_json(NULL, buf, sizeof buf, &size));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_new(NULL, NULL, &s));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_step(NULL, &tok, 1, logits));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_step(s, NULL, 1, logits));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_step(s, &tok, (size_t)-1, logits));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_step_all(s, &tok, 1, NULL));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_flush(NULL));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_reset(NULL));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_clone(NULL, &s));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_clone(s, NULL));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_state_size(s, NULL));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_state_save(NULL, buf, sizeof buf, &size));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_state_load(s, NULL, 10));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_state_load(s, buf, (size_t)-1));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_state_save_file(s, NULL));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_state_load_file(NULL, "x"));
    RMKV_EXPECT(RMKV_ERR_IO, rmkv_session_state_load_file(s, "/nonexistent/state"));
    RMKV_EXPECT(RMKV_ERR_FORMAT, rmkv_session_state_load(s, buf, 0));
    rmkv_model_params p = rmkv_model_default_params();
    p.struct_size = 3;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_model_create(cfg, NULL, 1, &p, &m));
    p = rmkv_model_default_params();
    p.device = "tpu";
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_model_create(cfg, NULL, 1, &p, &m));
    assert_int_equal(rmkv_model_vocab_size(NULL), 0);
    assert_null(rmkv_model_id(NULL));
    assert_null(rmkv_model_tokenizer(NULL));
    rmkv_session_free(s);
    rmkv_model_free(m);
}

static void cuda_absent_is_a_backend_error(void **state) {
    (void)state;
    rmkv_model_params p = rmkv_model_default_params();
    rmkv_model *m = NULL;
    p.device = "cuda";
    rmkv_status st = rmkv_model_create(cfg, NULL, 1, &p, &m);
    if (st == RMKV_OK) {
        skip(); /* built with CUDA and a GPU is present */
    }
    assert_int_equal(st, RMKV_ERR_BACKEND);
    assert_non_null(strstr(rmkv_last_error(), "cuda"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(model_truncations),
        cmocka_unit_test(model_header_flips),
        cmocka_unit_test(state_damage),
        cmocka_unit_test(null_handles_and_absurd_sizes),
        cmocka_unit_test(cuda_absent_is_a_backend_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
