/* Soak: one session reads N tokens (default 10 million) in chunks of 1 to 512 tokens,
   sampling, saving and restoring its state along the way; its memory stays
   constant. Prints the resident set size (VmRSS) after a warm-up and at the end,
   and the peak (VmHWM); fails if the RSS grew by more than 1 MiB after the
   warm-up. Usage: soak_session_memory [N_TOKENS]. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rmkv.h"

static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n)) {
            kb = atol(line + n + 1);
            break;
        }
    if (f) fclose(f);
    return kb;
}

#define CHECK(call)                                                                      \
    do {                                                                                 \
        rmkv_status st_ = (call);                                                        \
        if (st_ != RMKV_OK) {                                                            \
            fprintf(stderr, "%s: %s (%s)\n", #call, rmkv_status_string(st_), rmkv_last_error()); \
            return 1;                                                                    \
        }                                                                                \
    } while (0)

int main(int argc, char **argv) {
    const uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000ull;
    const char *cfg = "{\"vocab_size\":256,\"d_model\":64,\"n_layers\":2,\"n_heads\":4,\"memory_slots\":8,"
                      "\"segment_len\":64,\"cell\":\"lstm\"}";
    rmkv_model *m = NULL;
    CHECK(rmkv_model_create(cfg, NULL, 1, NULL, &m));
    rmkv_session *s = NULL, *restored = NULL;
    CHECK(rmkv_session_new(m, NULL, &s));
    CHECK(rmkv_session_new(m, NULL, &restored));
    float *logits = malloc(256 * sizeof(float));
    int32_t toks[512];
    size_t cap = 1 << 20, size;
    uint8_t *state = malloc(cap);
    rmkv_sampler_params sp = rmkv_sampler_default_params();
    uint64_t x = 12345, done = 0, chunks = 0;
    /* warm-up: the first state saves and loads allocate their buffers once */
    const uint64_t warmup = total / 20 > 150000 ? total / 20 : 150000;
    long rss_warm = -1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (done < total) {
        static const size_t sizes[6] = {1, 3, 17, 64, 100, 512}; /* a few shapes: the backend's caches fill in the warm-up */
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t n = sizes[(x >> 33) % 6];
        if (n > total - done) n = (size_t)(total - done);
        for (size_t i = 0; i < n; ++i) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            toks[i] = (int32_t)((x >> 33) % 256);
        }
        CHECK(rmkv_session_step(s, toks, n, logits));
        int32_t next;
        CHECK(rmkv_session_sample(s, &sp, &next));
        if (++chunks % 500 == 0) {
            CHECK(rmkv_session_state_save(s, state, cap, &size));
            CHECK(rmkv_session_state_load(restored, state, size));
        }
        uint64_t before = done;
        done += n;
        if (rss_warm < 0 && done >= warmup) rss_warm = status_kb("VmRSS:");
        if (done / (total / 10) != before / (total / 10))
            printf("  %llu tokens: VmRSS %ld kB\n", (unsigned long long)done, status_kb("VmRSS:"));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long rss_end = status_kb("VmRSS:"), hwm = status_kb("VmHWM:");
    uint64_t pos;
    CHECK(rmkv_session_position(s, &pos, NULL));
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("tokens %llu (position %llu) in %.1f s, %.0f tokens/s; state %zu bytes\n", (unsigned long long)done,
           (unsigned long long)pos, secs, (double)done / secs, size);
    printf("VmRSS after %llu tokens: %ld kB; at the end: %ld kB (growth %ld kB); VmHWM %ld kB\n",
           (unsigned long long)warmup, rss_warm, rss_end, rss_end - rss_warm, hwm);
    int ok = pos == total && rss_end - rss_warm <= 1024;
    printf("%s\n", ok ? "constant memory: passed" : "constant memory: FAILED");
    rmkv_session_free(s);
    rmkv_session_free(restored);
    rmkv_model_free(m);
    free(logits);
    free(state);
    return ok ? 0 : 1;
}
