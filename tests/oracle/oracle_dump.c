/* oracle_dump: creates (or loads) a model, steps a token stream and writes the
   logits after every token, for the PyTorch oracle (test_forward.py).

   oracle_dump CONFIG_JSON SEED MODEL TOKENS_FILE LOGITS_OUT [--bf16] [--flush-after i,j,...]
   CONFIG_JSON "@load" loads MODEL instead of creating and saving it. The model is
   always reloaded from MODEL before stepping. Tokens are stepped one at a time and,
   as a cross-check, segment by segment with rmkv_session_step_all; both must agree. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rmkv.h"

static int die(const char *what) {
    fprintf(stderr, "oracle_dump: %s: %s\n", what, rmkv_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: oracle_dump CONFIG_JSON|@load SEED MODEL TOKENS_FILE LOGITS_OUT [--bf16] [--flush-after i,j]\n");
        return 2;
    }
    const char *config = argv[1], *model_path = argv[3];
    int bf16 = 0;
    char *flush_list = NULL;
    for (int i = 6; i < argc; ++i) {
        if (!strcmp(argv[i], "--bf16")) bf16 = 1;
        else if (!strcmp(argv[i], "--flush-after") && i + 1 < argc) flush_list = argv[++i];
        else { fprintf(stderr, "oracle_dump: unknown argument %s\n", argv[i]); return 2; }
    }
    rmkv_model *m = NULL;
    if (strcmp(config, "@load") != 0) {
        if (rmkv_model_create(config, NULL, strtoull(argv[2], NULL, 10), NULL, &m) != RMKV_OK) return die("create");
        if (rmkv_model_save_as(m, model_path, bf16 ? RMKV_DTYPE_BF16 : RMKV_DTYPE_F32) != RMKV_OK) return die("save");
        rmkv_model_free(m);
    }
    if (rmkv_model_load(model_path, NULL, &m) != RMKV_OK) return die("load");
    FILE *f = fopen(argv[4], "rb");
    if (!f) { perror(argv[4]); return 1; }
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f) / 4;
    fseek(f, 0, SEEK_SET);
    int32_t *toks = malloc(n * 4 + 4);
    if (fread(toks, 4, n, f) != n) { perror("read tokens"); return 1; }
    fclose(f);
    size_t V = rmkv_model_vocab_size(m);
    char *flush = calloc(n + 1, 1);
    if (flush_list) {
        for (char *p = strtok(flush_list, ","); p; p = strtok(NULL, ",")) {
            long i = strtol(p, NULL, 10);
            if (i >= 0 && (size_t)i < n) flush[i] = 1;
        }
    }
    float *one = malloc(sizeof(float) * n * V), *all = malloc(sizeof(float) * n * V);
    rmkv_session *a = NULL, *b = NULL;
    /* fp32 products whatever the weights' format: the oracle computes in fp32 */
    rmkv_session_params sp = rmkv_session_default_params();
    sp.precision = RMKV_PRECISION_FP32;
    if (rmkv_session_new(m, &sp, &a) != RMKV_OK || rmkv_session_new(m, &sp, &b) != RMKV_OK) return die("session");
    for (size_t i = 0; i < n; ++i) {
        if (rmkv_session_step(a, toks + i, 1, one + i * V) != RMKV_OK) return die("step");
        if (flush[i] && rmkv_session_flush(a) != RMKV_OK) return die("flush");
    }
    /* The same stream in chunks that end at flush points (and cross segment ends). */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && !flush[j] && j - i < 40) ++j;
        if (j == n) --j;
        if (rmkv_session_step_all(b, toks + i, j - i + 1, all + i * V) != RMKV_OK) return die("step_all");
        if (flush[j] && rmkv_session_flush(b) != RMKV_OK) return die("flush");
        i = j + 1;
    }
    double md = 0, mb = 1e-30;
    for (size_t i = 0; i < n * V; ++i) {
        double d = fabs((double)one[i] - all[i]);
        if (d > md) md = d;
        if (fabs((double)all[i]) > mb) mb = fabs((double)all[i]);
    }
    if (!(md / mb < 1e-5)) {
        fprintf(stderr, "oracle_dump: one-by-one and chunked logits differ: relative error %g\n", md / mb);
        return 1;
    }
    f = fopen(argv[5], "wb");
    if (!f || fwrite(one, sizeof(float), n * V, f) != n * V) { perror(argv[5]); return 1; }
    fclose(f);
    rmkv_session_free(a);
    rmkv_session_free(b);
    rmkv_model_free(m);
    free(toks);
    free(flush);
    free(one);
    free(all);
    return 0;
}
