/* Helpers shared by the C tests: small models, temp paths, comparisons. */
#ifndef RMKV_TEST_UTIL_H
#define RMKV_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "rmkv.h"

/* Asserts a call returned RMKV_OK, printing rmkv_last_error() if not. */
#define RMKV_CHECK(call)                                                                  \
    do {                                                                                  \
        rmkv_status st_ = (call);                                                         \
        if (st_ != RMKV_OK) fail_msg("%s -> %s: %s", #call, rmkv_status_string(st_), rmkv_last_error()); \
    } while (0)

/* Asserts a call failed with `expected` and left a non-empty message. */
#define RMKV_EXPECT(expected, call)                                                       \
    do {                                                                                  \
        rmkv_status st_ = (call);                                                         \
        if (st_ != (expected))                                                            \
            fail_msg("%s -> %s, expected %s (%s)", #call, rmkv_status_string(st_),       \
                     rmkv_status_string(expected), rmkv_last_error());                   \
        assert_true(rmkv_last_error()[0] != '\0');                                        \
    } while (0)

rmkv_model *make_model(const char *config_json, uint64_t seed);
/* A path under the test temp dir (RMKV_TEST_TMP or /tmp), unique per process. */
const char *tmp_path(const char *name);
/* max |a-b| / max(max |b|, 1e-30) */
double rel_err(const float *a, const float *b, size_t n);
void random_tokens(int32_t *out, size_t n, int32_t vocab, uint64_t seed);
void *read_whole(const char *path, size_t *size);

#endif
