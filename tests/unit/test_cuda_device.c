/* Device names: "gpu", "cuda:x" and the like are INVALID_ARGUMENT; "cuda" on a
   machine without the CUDA plugin, driver or device is RMKV_ERR_BACKEND with a
   message saying which, and works (a session steps) where there is one. */
#include <stdio.h>
#include <string.h>

#include "test_util.h"

static const char *cfg =
    "{\"vocab_size\":16,\"d_model\":16,\"n_layers\":1,\"n_heads\":2,\"memory_slots\":2,\"segment_len\":4}";

static rmkv_status create_on(const char *device, rmkv_model **m) {
    rmkv_model_params p = rmkv_model_default_params();
    p.device = device;
    *m = NULL;
    return rmkv_model_create(cfg, NULL, 1, &p, m);
}

static void bad_names(void **state) {
    (void)state;
    const char *names[] = {"gpu", "cuda:x", "cuda:", "cuda:-1", "cuda:1x", "CUDA", "cuda0", "cpu:0", "metal"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i) {
        rmkv_model *m;
        RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, create_on(names[i], &m));
        assert_null(m);
        assert_non_null(strstr(rmkv_last_error(), names[i]));
    }
}

static void cuda_absent_or_working(void **state) {
    (void)state;
    rmkv_model *m;
    rmkv_status st = create_on("cuda", &m);
    if (st == RMKV_OK) {
        print_message("a CUDA device is here: a session steps on it\n");
        rmkv_session *s = NULL;
        float logits[16];
        int32_t tok[6] = {1, 2, 3, 4, 5, 6};
        RMKV_CHECK(rmkv_session_new(m, NULL, &s));
        RMKV_CHECK(rmkv_session_step(s, tok, 6, logits));
        for (int i = 0; i < 16; ++i) assert_true(logits[i] == logits[i]);
        rmkv_session_free(s);
        rmkv_model_free(m);
    } else {
        print_message("cuda: %s: %s\n", rmkv_status_string(st), rmkv_last_error());
        assert_int_equal(st, RMKV_ERR_BACKEND);
        assert_null(m);
        const char *msg = rmkv_last_error();
        assert_non_null(strstr(msg, "CUDA"));
        assert_true(strstr(msg, "plugin") || strstr(msg, "driver") || strstr(msg, "device"));
        /* The same answer the second time (nothing half-initialised). */
        RMKV_EXPECT(RMKV_ERR_BACKEND, create_on("cuda:0", &m));
    }
    /* No machine has a thousand devices. */
    RMKV_EXPECT(RMKV_ERR_BACKEND, create_on("cuda:999", &m));
    assert_null(m);
    print_message("cuda:999: %s\n", rmkv_last_error());
    /* The CPU is unaffected. */
    RMKV_CHECK(create_on("cpu", &m));
    rmkv_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_names),
        cmocka_unit_test(cuda_absent_or_working),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
