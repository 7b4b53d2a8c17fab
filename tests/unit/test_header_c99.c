/* The public header compiles as strict C99 (this file is built with -std=c99
   -pedantic -Werror) and a C program links and calls the library. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "rmkv.h"

static void version_matches_macros(void **state) {
    char want[64];
    (void)state;
    snprintf(want, sizeof want, "%d.%d.%d", RMKV_VERSION_MAJOR, RMKV_VERSION_MINOR, RMKV_VERSION_PATCH);
    assert_string_equal(rmkv_version(), want);
}

static void status_strings(void **state) {
    (void)state;
    assert_string_equal(rmkv_status_string(RMKV_OK), "RMKV_OK");
    assert_string_equal(rmkv_status_string(RMKV_ERR_FORMAT), "RMKV_ERR_FORMAT");
    assert_string_equal(rmkv_status_string(RMKV_ERR_INTERNAL), "RMKV_ERR_INTERNAL");
    assert_int_equal(RMKV_ERR_CANCELLED, 8);
}

static void defaults_and_null_handles(void **state) {
    rmkv_model_params mp = rmkv_model_default_params();
    rmkv_session_params sp = rmkv_session_default_params();
    rmkv_model *m = NULL;
    rmkv_session *s = NULL;
    (void)state;
    assert_int_equal(mp.struct_size, sizeof mp);
    assert_int_equal(sp.struct_size, sizeof sp);
    assert_int_equal(rmkv_model_load(NULL, NULL, &m), RMKV_ERR_INVALID_ARGUMENT);
    assert_true(strstr(rmkv_last_error(), "path") != NULL);
    assert_int_equal(rmkv_session_new(NULL, NULL, &s), RMKV_ERR_INVALID_ARGUMENT);
    assert_null(s);
    rmkv_model_free(NULL);
    rmkv_session_free(NULL);
    rmkv_tokenizer_free(NULL);
}

static int log_lines;
static void count_log(rmkv_log_level level, const char *line, void *user) {
    (void)level;
    (void)user;
    if (line && line[0]) log_lines++;
}

static void create_step_and_log(void **state) {
    rmkv_model *m = NULL;
    rmkv_session *s = NULL;
    int32_t toks[3] = {1, 2, 3};
    float logits[32];
    size_t n;
    char path[256];
    (void)state;
    rmkv_set_log_callback(count_log, NULL, RMKV_LOG_DEBUG);
    assert_int_equal(rmkv_model_create("{\"vocab_size\":32,\"d_model\":16,\"n_layers\":1,\"n_heads\":2,"
                                       "\"memory_slots\":2,\"segment_len\":4}", NULL, 1, NULL, &m), RMKV_OK);
    snprintf(path, sizeof path, "/tmp/rmkv-c99-%d.safetensors", (int)sizeof(path));
    assert_int_equal(rmkv_model_save(m, path), RMKV_OK);
    rmkv_model_free(m);
    assert_int_equal(rmkv_model_load(path, NULL, &m), RMKV_OK);
    assert_true(log_lines > 0);
    rmkv_set_log_callback(NULL, NULL, RMKV_LOG_DEBUG);
    remove(path);
    assert_int_equal(rmkv_model_vocab_size(m), 32);
    assert_int_equal(rmkv_session_new(m, NULL, &s), RMKV_OK);
    assert_int_equal(rmkv_session_step(s, toks, 3, logits), RMKV_OK);
    assert_int_equal(rmkv_session_state_save(s, NULL, 0, &n), RMKV_ERR_BUFFER_TOO_SMALL);
    assert_true(n > 0);
    rmkv_session_free(s);
    rmkv_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(version_matches_macros),
        cmocka_unit_test(status_strings),
        cmocka_unit_test(defaults_and_null_handles),
        cmocka_unit_test(create_step_and_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
