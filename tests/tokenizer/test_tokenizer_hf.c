/* Oracle tests against Hugging Face tokenizers (the npm package `tokenizers`,
   run with node through hf/hf_tool.js):
   - HF -> rmkv: a tokenizer trained by HF encodes the held-out multilingual text
     and every line of the corpus to the same ids in rmkv, and decodes identically;
   - rmkv -> HF: the same for a tokenizer trained by rmkv, loaded in HF;
   - same training: with the same corpus and settings, rmkv's vocabulary and
     merges equal HF's (several settings);
   - variants: normalisers, pre-tokenizer orders, added-token flags, unk, ...
   Corpus: /usr/share/common-licenses (Debian package base-files).
   Usage: test_tokenizer_hf NODE HF_DIR WORK_DIR. Fails (never skips) when node or
   hf/node_modules is missing. */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "rmkv.h"
#include "tok_test_util.h"

static const char *g_node, *g_hf_dir, *g_work;
static char g_corpus_txt[512], g_heldout_txt[512];

static void run(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0) fail_msg("command failed (%d): %s", rc, cmd);
}

static char *path_in_work(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", g_work, name);
    return buf;
}

static int setup(void **state) {
    (void)state;
    char nm[1024];
    struct stat st;
    snprintf(nm, sizeof nm, "%s/node_modules/tokenizers/package.json", g_hf_dir);
    if (stat(nm, &st) != 0) {
        fprintf(stderr,
                "\nFAILED: the Hugging Face oracle is not installed: %s is missing.\n"
                "Run `npm ci` in %s (CI does this before the tests).\n\n",
                nm, g_hf_dir);
        return -1;
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' --version > /dev/null", g_node);
    if (system(cmd) != 0) {
        fprintf(stderr, "\nFAILED: node (%s) does not run; install the Debian package nodejs.\n\n", g_node);
        return -1;
    }
    mkdir(g_work, 0755);
    /* the corpus as one file (its lines are compared one by one), and the held-out text */
    size_t n_files;
    const char *const *files = tok_corpus_files(&n_files);
    path_in_work(g_corpus_txt, sizeof g_corpus_txt, "corpus.txt");
    FILE *out = fopen(g_corpus_txt, "wb");
    if (!out) return -1;
    for (size_t i = 0; i < n_files; i++) {
        size_t size;
        char *text = tok_read_file(files[i], &size);
        if (!text) return -1;
        fwrite(text, 1, size, out);
        free(text);
    }
    fclose(out);
    path_in_work(g_heldout_txt, sizeof g_heldout_txt, "heldout.txt");
    return tok_write_file(g_heldout_txt, tok_heldout_text, strlen(tok_heldout_text));
}

static char *corpus_args(void) {
    static char buf[8192];
    size_t n;
    const char *const *files = tok_corpus_files(&n);
    buf[0] = 0;
    for (size_t i = 0; i < n; i++) {
        strcat(buf, " '");
        strcat(buf, files[i]);
        strcat(buf, "'");
    }
    return buf;
}

static int32_t *parse_ids(const char *s, const char **end, size_t *n) {
    size_t cap = 64;
    int32_t *ids = malloc(cap * sizeof *ids);
    *n = 0;
    while (*s && *s != '\n') {
        char *e;
        long v = strtol(s, &e, 10);
        if (e == s) break;
        if (*n == cap) ids = realloc(ids, (cap *= 2) * sizeof *ids);
        ids[(*n)++] = (int32_t)v;
        s = e;
        while (*s == ' ') s++;
    }
    if (*s == '\n') s++;
    if (end) *end = s;
    return ids;
}

static void assert_same_ids(const char *what, const int32_t *want, size_t n_want, const int32_t *got, size_t n_got) {
    size_t i = 0;
    while (i < n_want && i < n_got && want[i] == got[i]) i++;
    if (i == n_want && i == n_got) return;
    fprintf(stderr, "%s: HF has %zu ids, rmkv %zu; first difference at %zu:", what, n_want, n_got, i);
    fprintf(stderr, " HF");
    for (size_t k = i; k < i + 5 && k < n_want; k++) fprintf(stderr, " %d", want[k]);
    fprintf(stderr, " / rmkv");
    for (size_t k = i; k < i + 5 && k < n_got; k++) fprintf(stderr, " %d", got[k]);
    fprintf(stderr, "\n");
    fail_msg("%s: ids differ from Hugging Face's", what);
}

/* Encodes the held-out text and every corpus line with HF and with rmkv. */
static void compare_encodings(const char *tokenizer_json) {
    char ids_path[512], dec_path[512], lines_path[512];
    path_in_work(ids_path, sizeof ids_path, "hf_ids.txt");
    path_in_work(dec_path, sizeof dec_path, "hf_decoded.txt");
    path_in_work(lines_path, sizeof lines_path, "hf_lines.txt");
    run("'%s' '%s/hf_tool.js' encode '%s' '%s' '%s' '%s'", g_node, g_hf_dir, tokenizer_json, g_heldout_txt, ids_path,
        dec_path);
    run("'%s' '%s/hf_tool.js' encode-lines '%s' '%s' '%s'", g_node, g_hf_dir, tokenizer_json, g_corpus_txt, lines_path);

    rmkv_tokenizer *tok = NULL;
    if (rmkv_tokenizer_load(tokenizer_json, &tok) != RMKV_OK) fail_msg("rmkv cannot load %s: %s", tokenizer_json, rmkv_last_error());

    size_t size, n_want, n_got;
    char *hf_ids = tok_read_file(ids_path, &size);
    assert_non_null(hf_ids);
    int32_t *want = parse_ids(hf_ids, NULL, &n_want);
    int32_t *got = tok_encode(tok, tok_heldout_text, strlen(tok_heldout_text), &n_got);
    char what[600];
    snprintf(what, sizeof what, "%s: held-out text", tokenizer_json);
    assert_same_ids(what, want, n_want, got, n_got);
    size_t dec_n, hf_dec_n;
    char *dec = tok_decode(tok, got, n_got, &dec_n);
    char *hf_dec = tok_read_file(dec_path, &hf_dec_n);
    assert_non_null(hf_dec);
    if (dec_n != hf_dec_n || memcmp(dec, hf_dec, dec_n) != 0) fail_msg("%s: decoded text differs from HF's", tokenizer_json);
    free(dec); free(hf_dec); free(want); free(got); free(hf_ids);

    /* the whole corpus as one text (long texts are encoded in chunks) */
    run("'%s' '%s/hf_tool.js' encode '%s' '%s' '%s' '%s'", g_node, g_hf_dir, tokenizer_json, g_corpus_txt, ids_path,
        dec_path);
    size_t corpus_n, lines_n;
    char *corpus = tok_read_file(g_corpus_txt, &corpus_n);
    hf_ids = tok_read_file(ids_path, &size);
    assert_non_null(hf_ids);
    want = parse_ids(hf_ids, NULL, &n_want);
    got = tok_encode(tok, corpus, corpus_n, &n_got);
    snprintf(what, sizeof what, "%s: whole corpus", tokenizer_json);
    assert_same_ids(what, want, n_want, got, n_got);
    free(want); free(got); free(hf_ids);

    /* corpus, line by line */

    char *lines = tok_read_file(lines_path, &lines_n);
    assert_non_null(lines);
    const char *c = corpus, *l = lines;
    size_t line_no = 0;
    while (c < corpus + corpus_n) {
        const char *nl = memchr(c, '\n', (size_t)(corpus + corpus_n - c));
        size_t len = nl ? (size_t)(nl - c) : (size_t)(corpus + corpus_n - c);
        want = parse_ids(l, &l, &n_want);
        got = tok_encode(tok, c, len, &n_got);
        snprintf(what, sizeof what, "%s: corpus line %zu", tokenizer_json, line_no + 1);
        assert_same_ids(what, want, n_want, got, n_got);
        free(want);
        free(got);
        line_no++;
        c += len + (nl ? 1 : 0);
    }
    assert_true(line_no > 1000);
    free(corpus);
    free(lines);
    rmkv_tokenizer_free(tok);
}

static const char *kSpecials = "<pad>,<unk>,<start>,<end>,<think>,</think>";

static void test_hf_to_rmkv(void **state) {
    (void)state;
    char hf_json[512];
    path_in_work(hf_json, sizeof hf_json, "hf_trained.json");
    run("'%s' '%s/hf_tool.js' train --specials '%s' '%s' %s > /dev/null 2>&1", g_node, g_hf_dir, kSpecials, hf_json,
        corpus_args());
    compare_encodings(hf_json);
}

static void test_rmkv_to_hf(void **state) {
    (void)state;
    size_t n;
    const char *const *files = tok_corpus_files(&n);
    rmkv_tokenizer *tok = NULL;
    if (rmkv_tokenizer_train(files, n, NULL, &tok) != RMKV_OK) fail_msg("train: %s", rmkv_last_error());
    char rm_json[512];
    path_in_work(rm_json, sizeof rm_json, "rmkv_trained.json");
    assert_int_equal(rmkv_tokenizer_save(tok, rm_json), RMKV_OK);
    rmkv_tokenizer_free(tok);
    compare_encodings(rm_json);
}

static void same_training(int digits, int prefix, const char *normalizer) {
    char hf_json[512], rm_json[512], name[128];
    snprintf(name, sizeof name, "hf_same_%d%d%s.json", digits, prefix, normalizer);
    path_in_work(hf_json, sizeof hf_json, name);
    snprintf(name, sizeof name, "rmkv_same_%d%d%s.json", digits, prefix, normalizer);
    path_in_work(rm_json, sizeof rm_json, name);
    run("'%s' '%s/hf_tool.js' train --digits %d --prefix %d --normalizer %s '%s' %s > /dev/null 2>&1", g_node, g_hf_dir,
        digits, prefix, normalizer, hf_json, corpus_args());

    size_t n;
    const char *const *files = tok_corpus_files(&n);
    rmkv_tokenizer_train_params p = rmkv_tokenizer_train_default_params();
    const char *none[] = {NULL};
    p.special_tokens = none; /* HF's default BpeTrainer: no special tokens, no initial alphabet */
    p.n_special_tokens = 0;
    p.byte_alphabet = 0;
    p.individual_digits = digits;
    p.add_prefix_space = prefix;
    p.normalizer = strcmp(normalizer, "none") == 0 ? "" : normalizer;
    rmkv_tokenizer *tok = NULL;
    if (rmkv_tokenizer_train(files, n, &p, &tok) != RMKV_OK) fail_msg("train: %s", rmkv_last_error());
    assert_int_equal(rmkv_tokenizer_save(tok, rm_json), RMKV_OK);
    rmkv_tokenizer_free(tok);
    run("'%s' '%s/hf_tool.js' compare-models '%s' '%s'", g_node, g_hf_dir, hf_json, rm_json);
}

static void test_same_training_default_setup(void **state) {
    (void)state;
    same_training(1, 0, "NFD");
}

static void test_same_training_other_setups(void **state) {
    (void)state;
    same_training(0, 1, "none");
    same_training(1, 1, "NFKC");
}

static void test_hf_variants(void **state) {
    (void)state;
    char base[512], list[512];
    path_in_work(base, sizeof base, "hf_trained.json");
    struct stat st;
    if (stat(base, &st) != 0)
        run("'%s' '%s/hf_tool.js' train --specials '%s' '%s' %s > /dev/null 2>&1", g_node, g_hf_dir, kSpecials, base,
            corpus_args());
    path_in_work(list, sizeof list, "variants.txt");
    run("'%s' '%s/hf_tool.js' variants '%s' '%s' > '%s'", g_node, g_hf_dir, base, g_work, list);
    size_t size;
    char *names = tok_read_file(list, &size);
    assert_non_null(names);
    int count = 0;
    for (char *line = strtok(names, "\n"); line; line = strtok(NULL, "\n")) {
        compare_encodings(line);
        count++;
    }
    assert_true(count >= 8);
    free(names);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s NODE HF_DIR WORK_DIR\n", argv[0]);
        return 2;
    }
    g_node = argv[1];
    g_hf_dir = argv[2];
    g_work = argv[3];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hf_to_rmkv),
        cmocka_unit_test(test_rmkv_to_hf),
        cmocka_unit_test(test_same_training_default_setup),
        cmocka_unit_test(test_same_training_other_setups),
        cmocka_unit_test(test_hf_variants),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
