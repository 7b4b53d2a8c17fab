#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

rmkv_model *make_model(const char *config_json, uint64_t seed) {
    rmkv_model *m = NULL;
    RMKV_CHECK(rmkv_model_create(config_json, NULL, seed, NULL, &m));
    return m;
}

const char *tmp_path(const char *name) {
    static char buf[8][512];
    static int next = 0;
    const char *dir = getenv("RMKV_TEST_TMP");
    char *out = buf[next++ % 8];
    snprintf(out, 512, "%s/%d-%s", dir && dir[0] ? dir : "/tmp", (int)getpid(), name);
    return out;
}

double rel_err(const float *a, const float *b, size_t n) {
    double md = 0, mb = 1e-30;
    for (size_t i = 0; i < n; ++i) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > md || isnan(d)) md = isnan(d) ? INFINITY : d;
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    return md / mb;
}

void random_tokens(int32_t *out, size_t n, int32_t vocab, uint64_t seed) {
    uint64_t x = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (size_t i = 0; i < n; ++i) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        out[i] = (int32_t)((x >> 33) % (uint64_t)vocab);
    }
}

void *read_whole(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc((size_t)n + 1);
    if (fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return p;
}
