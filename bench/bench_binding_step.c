/* The C side of bench/bench_python_step.py: the time of one rmkv_session_step call
   (one token, logits into a caller buffer), to set against the Python binding's
   Session.step on the same model and tokens.

   rmkv-bench-binding-step MODEL N REPEATS
   Each repeat: a new session, N calls stepping tokens i % vocab_size. Prints one
   JSON line: the best repeat's microseconds per call, and the median. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rmkv.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: rmkv-bench-binding-step MODEL N REPEATS\n");
        return 2;
    }
    rmkv_model *m = NULL;
    if (rmkv_model_load(argv[1], NULL, &m) != RMKV_OK) {
        fprintf(stderr, "load: %s\n", rmkv_last_error());
        return 1;
    }
    int n = atoi(argv[2]), reps = atoi(argv[3]);
    if (n < 1 || reps < 1 || reps > 1000) return 2;
    size_t V = rmkv_model_vocab_size(m);
    float *logits = malloc(sizeof(float) * V);
    double times[1000];
    for (int r = 0; r < reps; ++r) {
        rmkv_session *s = NULL;
        if (rmkv_session_new(m, NULL, &s) != RMKV_OK) return 1;
        double t0 = now();
        for (int i = 0; i < n; ++i) {
            int32_t tok = (int32_t)((size_t)i % V);
            if (rmkv_session_step(s, &tok, 1, logits) != RMKV_OK) {
                fprintf(stderr, "step: %s\n", rmkv_last_error());
                return 1;
            }
        }
        times[r] = (now() - t0) / n * 1e6;
        rmkv_session_free(s);
    }
    qsort(times, (size_t)reps, sizeof times[0], cmp);
    printf("{\"c_us_per_step_best\": %.4f, \"c_us_per_step_median\": %.4f}\n", times[0], times[reps / 2]);
    free(logits);
    rmkv_model_free(m);
    return 0;
}
