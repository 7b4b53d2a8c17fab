/* Unit tests of the tokenizer ABI: training, tokenizer.json round trips, encode /
   decode round trips on random Unicode and random bytes (invalid UTF-8, NUL),
   special tokens, refusal of unsupported components, streaming decoder, batch
   encoding, argument checks. No network, no Hugging Face: see test_tokenizer_hf.c. */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>
#include <utf8proc.h>

#include "rmkv.h"
#include "tok_test_util.h"

static rmkv_tokenizer *g_default;  /* default params, trained on the corpus */
static rmkv_tokenizer *g_plain;    /* no normaliser, no digits split */

static const char *tmp_dir(void) {
    const char *d = getenv("RMKV_TEST_TMP");
    return d ? d : "/tmp";
}

static int setup(void **state) {
    (void)state;
    size_t n = 0;
    const char *const *files = tok_corpus_files(&n);
    rmkv_tokenizer_train_params p = rmkv_tokenizer_train_default_params();
    p.vocab_size = 2000;
    if (rmkv_tokenizer_train(files, n, &p, &g_default) != RMKV_OK) {
        fprintf(stderr, "train: %s\n", rmkv_last_error());
        return -1;
    }
    p.normalizer = "";
    p.individual_digits = 0;
    if (rmkv_tokenizer_train(files, n, &p, &g_plain) != RMKV_OK) {
        fprintf(stderr, "train: %s\n", rmkv_last_error());
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    rmkv_tokenizer_free(g_default);
    rmkv_tokenizer_free(g_plain);
    return 0;
}

static void test_defaults_and_special_ids(void **state) {
    (void)state;
    assert_int_equal(rmkv_tokenizer_vocab_size(g_default), 2000);
    const char *specials[] = {"<pad>", "<unk>", "<start>", "<end>", "<think>", "</think>"};
    for (int i = 0; i < 6; i++) assert_int_equal(rmkv_tokenizer_token_id(g_default, specials[i]), i);
    assert_int_equal(rmkv_tokenizer_token_id(g_default, "no such token"), -1);
    assert_int_equal(rmkv_tokenizer_token_id(NULL, "<pad>"), -1);
    assert_int_equal(rmkv_tokenizer_vocab_size(NULL), 0);
    char buf[64];
    size_t needed = 0;
    assert_int_equal(rmkv_tokenizer_token_string(g_default, 3, buf, sizeof buf, &needed), RMKV_OK);
    assert_string_equal(buf, "<end>");
    assert_int_equal(needed, 6);
    assert_int_equal(rmkv_tokenizer_token_string(g_default, 999999, buf, sizeof buf, &needed), RMKV_ERR_INVALID_ARGUMENT);

    rmkv_tokenizer_train_params d = rmkv_tokenizer_train_default_params();
    assert_int_equal(d.struct_size, sizeof d);
    assert_int_equal(d.vocab_size, 30000);
    assert_null(d.special_tokens);
    assert_int_equal(d.individual_digits, 1);
    assert_int_equal(d.byte_alphabet, 1);
}

static void test_special_tokens_split_out(void **state) {
    (void)state;
    const char *text = "<start>hello<end> <sta rt><think>x</think>";
    size_t n;
    int32_t *ids = tok_encode(g_default, text, strlen(text), &n);
    assert_true(n > 6);
    assert_int_equal(ids[0], 2);
    int found_end = 0, found_think = 0, found_close = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == 3) found_end++;
        if (ids[i] == 4) found_think++;
        if (ids[i] == 5) found_close++;
    }
    assert_int_equal(found_end, 1);
    assert_int_equal(found_think, 1);
    assert_int_equal(found_close, 1);
    size_t size;
    char *back = tok_decode(g_default, ids, n, &size);
    assert_string_equal(back, text);
    free(back);
    free(ids);
}

static void check_round_trip_nfd(const rmkv_tokenizer *tok, const char *text, size_t size, int nfd) {
    size_t lossy_n;
    char *lossy = tok_utf8_lossy(text, size, &lossy_n);
    char *expect = lossy;
    size_t expect_n = lossy_n;
    utf8proc_uint8_t *norm = NULL;
    if (nfd) {
        /* NUL-safe NFD: decompose with an explicit length */
        utf8proc_int32_t *buf = malloc((lossy_n * 4 + 16) * sizeof *buf);
        utf8proc_ssize_t m = utf8proc_decompose((const utf8proc_uint8_t *)lossy, (utf8proc_ssize_t)lossy_n, buf,
                                                (utf8proc_ssize_t)(lossy_n * 4 + 16), UTF8PROC_DECOMPOSE | UTF8PROC_STABLE);
        assert_true(m >= 0);
        m = utf8proc_reencode(buf, m, UTF8PROC_DECOMPOSE | UTF8PROC_STABLE);
        assert_true(m >= 0);
        norm = (utf8proc_uint8_t *)buf;
        expect = (char *)norm;
        expect_n = (size_t)m;
    }
    size_t n, back_n;
    int32_t *ids = tok_encode(tok, text, size, &n);
    char *back = tok_decode(tok, ids, n, &back_n);
    assert_int_equal(back_n, expect_n);
    assert_memory_equal(back, expect, expect_n);
    free(back);
    free(ids);
    free(norm);
    free(lossy);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static size_t put_utf8(char *out, uint32_t cp) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static uint32_t random_code_point(void) {
    static const uint32_t ranges[][2] = {{0x00, 0x7F}, {0x80, 0x24F}, {0x300, 0x36F}, {0x370, 0x3FF}, {0x400, 0x4FF},
                                         {0x600, 0x6FF}, {0x900, 0x97F}, {0x1100, 0x11FF}, {0x2000, 0x206F},
                                         {0x3000, 0x30FF}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0xF900, 0xFFFD},
                                         {0x1F300, 0x1FAFF}, {0x10000, 0x10FFFF}};
    for (;;) {
        const uint32_t *r = ranges[rnd() % (sizeof ranges / sizeof ranges[0])];
        uint32_t cp = r[0] + rnd() % (r[1] - r[0] + 1);
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        if (rnd() % 4 == 0) cp = " \t\n'0a."[rnd() % 7];
        return cp;
    }
}

static void test_round_trip_random_unicode(void **state) {
    (void)state;
    char buf[4096];
    for (int iter = 0; iter < 300; iter++) {
        size_t len = 0, n_chars = rnd() % 200;
        for (size_t i = 0; i < n_chars; i++) len += put_utf8(buf + len, random_code_point());
        check_round_trip_nfd(g_plain, buf, len, 0);
        check_round_trip_nfd(g_default, buf, len, 1);
    }
}

static void test_round_trip_random_bytes(void **state) {
    (void)state;
    char buf[512];
    for (int iter = 0; iter < 300; iter++) {
        size_t len = rnd() % sizeof buf;
        for (size_t i = 0; i < len; i++) {
            uint32_t r = rnd();
            buf[i] = r % 3 == 0 ? "ab \n'1\0"[r % 7] : (char)((r >> 8) & 0xFF);
        }
        check_round_trip_nfd(g_plain, buf, len, 0);
        check_round_trip_nfd(g_default, buf, len, 1);
    }
}

static void test_invalid_utf8_and_nul(void **state) {
    (void)state;
    /* an invalid byte encodes as U+FFFD; a truncated sequence as one U+FFFD */
    size_t n1, n2, n3, n4;
    int32_t *a = tok_encode(g_plain, "x\xFFy", 3, &n1);
    int32_t *b = tok_encode(g_plain, "x\xEF\xBF\xBDy", 5, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1 * sizeof(int32_t));
    int32_t *c = tok_encode(g_plain, "x\xE2\x82y", 4, &n3);
    assert_int_equal(n3, n2);
    assert_memory_equal(c, b, n3 * sizeof(int32_t));
    /* surrogates and overlong forms are invalid too */
    int32_t *d = tok_encode(g_plain, "\xED\xA0\x80\xC0\xAF", 5, &n4);
    size_t size;
    char *back = tok_decode(g_plain, d, n4, &size);
    assert_int_equal(size, 15); /* ED A0 80 -> 3 x U+FFFD (ED A0 is no prefix); C0, AF -> 2 */
    free(back);
    free(a); free(b); free(c); free(d);

    const char with_nul[] = "a\0b\0\0 c";
    size_t n;
    int32_t *ids = tok_encode(g_default, with_nul, sizeof with_nul - 1, &n);
    assert_true(n >= 4);
    back = tok_decode(g_default, ids, n, &size);
    assert_int_equal(size, sizeof with_nul - 1);
    assert_memory_equal(back, with_nul, size);
    free(back);
    free(ids);

    /* empty text */
    size_t n0 = 99;
    assert_int_equal(rmkv_tokenizer_encode(g_default, NULL, 0, NULL, 0, &n0), RMKV_OK);
    assert_int_equal(n0, 0);
}

static void test_buffers_and_arguments(void **state) {
    (void)state;
    const char *text = "hello world";
    size_t n = 0;
    assert_int_equal(rmkv_tokenizer_encode(g_default, text, strlen(text), NULL, 0, &n), RMKV_ERR_BUFFER_TOO_SMALL);
    assert_true(n > 0);
    int32_t ids[64];
    size_t n2 = 0;
    assert_int_equal(rmkv_tokenizer_encode(g_default, text, strlen(text), ids, n - 1, &n2), RMKV_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(n2, n);
    assert_int_equal(rmkv_tokenizer_encode(NULL, text, 1, ids, 64, &n2), RMKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(rmkv_tokenizer_encode(g_default, NULL, 5, ids, 64, &n2), RMKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(rmkv_tokenizer_encode(g_default, text, 5, ids, 64, NULL), RMKV_ERR_INVALID_ARGUMENT);

    int32_t bad[] = {7, -1};
    char out[16];
    size_t size;
    assert_int_equal(rmkv_tokenizer_decode(g_default, bad, 2, out, sizeof out, &size), RMKV_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(rmkv_last_error(), "-1"));
    int32_t big[] = {2000};
    assert_int_equal(rmkv_tokenizer_decode(g_default, big, 1, out, sizeof out, &size), RMKV_ERR_INVALID_ARGUMENT);
    size = 99;
    assert_int_equal(rmkv_tokenizer_decode(g_default, NULL, 0, NULL, 0, &size), RMKV_OK);
    assert_int_equal(size, 0);
    rmkv_tokenizer *t = (rmkv_tokenizer *)1;
    assert_int_equal(rmkv_tokenizer_from_json(NULL, 0, &t), RMKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(rmkv_tokenizer_load("/nonexistent/tokenizer.json", &t), RMKV_ERR_IO);
    assert_non_null(strstr(rmkv_last_error(), "/nonexistent/tokenizer.json"));
    assert_ptr_equal(t, (rmkv_tokenizer *)1); /* out untouched on failure */
    rmkv_tokenizer_free(NULL);
    rmkv_token_stream_free(NULL);
}

static char *to_json(const rmkv_tokenizer *tok, size_t *len) {
    size_t needed = 0;
    assert_int_equal(rmkv_tokenizer_to_json(tok, NULL, 0, &needed), RMKV_ERR_BUFFER_TOO_SMALL);
    char *buf = malloc(needed);
    assert_int_equal(rmkv_tokenizer_to_json(tok, buf, needed, &needed), RMKV_OK);
    assert_int_equal(buf[needed - 1], 0);
    *len = needed - 1;
    return buf;
}

static void test_json_round_trip(void **state) {
    (void)state;
    size_t len, len2;
    char *json = to_json(g_default, &len);
    rmkv_tokenizer *t = NULL;
    assert_int_equal(rmkv_tokenizer_from_json(json, len, &t), RMKV_OK);
    char *json2 = to_json(t, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(json, json2, len);
    size_t n1, n2;
    int32_t *a = tok_encode(g_default, tok_heldout_text, strlen(tok_heldout_text), &n1);
    int32_t *b = tok_encode(t, tok_heldout_text, strlen(tok_heldout_text), &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1 * sizeof(int32_t));

    /* save / load through a file */
    char path[512];
    snprintf(path, sizeof path, "%s/tok_unit_roundtrip.json", tmp_dir());
    assert_int_equal(rmkv_tokenizer_save(t, path), RMKV_OK);
    rmkv_tokenizer *t2 = NULL;
    assert_int_equal(rmkv_tokenizer_load(path, &t2), RMKV_OK);
    assert_int_equal(rmkv_tokenizer_vocab_size(t2), rmkv_tokenizer_vocab_size(g_default));
    rmkv_tokenizer_free(t2);
    rmkv_tokenizer_free(t);
    free(a); free(b); free(json); free(json2);
}

/* A tiny hand-written tokenizer.json exercising HF features. */
static const char *mini_json(const char *normalizer, const char *pre, const char *extra_model, const char *added) {
    static char buf[8192];
    snprintf(buf, sizeof buf,
             "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[%s],"
             "\"normalizer\":%s,\"pre_tokenizer\":%s,\"post_processor\":null,"
             "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
             "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
             "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false%s,"
             "\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"\xC4\xA0\":3,\"ab\":4,\"abc\":5,\"\xC4\xA0""a\":6,\"[X]\":7},"
             "\"merges\":[\"a b\",\"ab c\",\"\xC4\xA0 a\"]}}",
             added, normalizer, pre, extra_model);
    return buf;
}

static void expect_ids(const char *json, const char *text, const int32_t *want, size_t n_want) {
    rmkv_tokenizer *t = NULL;
    if (rmkv_tokenizer_from_json(json, strlen(json), &t) != RMKV_OK) fail_msg("from_json: %s", rmkv_last_error());
    size_t n;
    int32_t *ids = tok_encode(t, text, strlen(text), &n);
    if (n != n_want || memcmp(ids, want, n * sizeof(int32_t)) != 0) {
        fprintf(stderr, "text \"%s\": got", text);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
        fail_msg("unexpected ids");
    }
    free(ids);
    rmkv_tokenizer_free(t);
}

static void test_hand_written_json(void **state) {
    (void)state;
    const char *bl = "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}";
    const char *blp = "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true}";
    /* merges in rank order; unknown characters are dropped without unk_token */
    expect_ids(mini_json("null", bl, "", ""), "abc a", (int32_t[]){5, 6}, 2);
    expect_ids(mini_json("null", bl, "", ""), "abzc", (int32_t[]){5}, 1); /* z is dropped before merging */
    expect_ids(mini_json("null", blp, "", ""), "a", (int32_t[]){6}, 1);
    expect_ids(mini_json("{\"type\":\"Lowercase\"}", bl, "", ""), "ABC", (int32_t[]){5}, 1);
    /* unk_token, fused or not */
    expect_ids(mini_json("null", bl, ",\"unk_token\":\"[X]\"", ""), "azzb", (int32_t[]){0, 7, 7, 1}, 4);
    expect_ids(mini_json("null", bl, ",\"unk_token\":\"[X]\",\"fuse_unk\":true", ""), "azzb", (int32_t[]){0, 7, 1}, 3);
    /* added tokens: special, not normalised; lstrip/rstrip take the spaces */
    expect_ids(mini_json("null", bl, "",
                         "{\"id\":8,\"content\":\"<e>\",\"single_word\":false,\"lstrip\":true,\"rstrip\":true,"
                         "\"normalized\":false,\"special\":true}"),
               "ab  <e>  c", (int32_t[]){4, 8, 2}, 3);
    /* single_word: not matched inside a word */
    expect_ids(mini_json("null", bl, "",
                         "{\"id\":8,\"content\":\"cc\",\"single_word\":true,\"lstrip\":false,\"rstrip\":false,"
                         "\"normalized\":true,\"special\":false}"),
               "acc cc", (int32_t[]){0, 2, 2, 3, 8}, 5);
    /* an added token's id comes from HF's rule, not from the file */
    expect_ids(mini_json("null", bl, "",
                         "{\"id\":100,\"content\":\"zz\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
                         "\"normalized\":false,\"special\":true}"),
               "zz", (int32_t[]){8}, 1);
}

static void expect_refused(const char *json, const char *needle) {
    rmkv_tokenizer *t = NULL;
    assert_int_equal(rmkv_tokenizer_from_json(json, strlen(json), &t), RMKV_ERR_FORMAT);
    if (!strstr(rmkv_last_error(), needle)) fail_msg("error \"%s\" does not name \"%s\"", rmkv_last_error(), needle);
    assert_null(t);
}

static void test_unsupported_refused(void **state) {
    (void)state;
    const char *bl = "{\"type\":\"ByteLevel\",\"add_prefix_space\":false}";
    expect_refused(mini_json("{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"\"}", bl, "", ""), "Precompiled");
    expect_refused(mini_json("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFD\"},{\"type\":\"StripAccents\"}]}", bl,
                             "", ""),
                   "StripAccents");
    expect_refused(mini_json("null", "{\"type\":\"Metaspace\"}", "", ""), "Metaspace");
    expect_refused(mini_json("null", "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"x\"}}", "", ""), "Split");
    expect_refused(mini_json("null", bl, ",\"byte_fallback\":true", ""), "byte_fallback");
    expect_refused(mini_json("null", bl, ",\"dropout\":0.1", ""), "dropout");
    expect_refused(mini_json("null", bl, ",\"continuing_subword_prefix\":\"##\"", ""), "continuing_subword_prefix");
    expect_refused("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", "WordPiece");
    expect_refused("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b\"]}}", "\"b\"");
    expect_refused("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"post_processor\":"
                   "{\"type\":\"TemplateProcessing\"}}",
                   "TemplateProcessing");
    expect_refused("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"decoder\":{\"type\":\"WordPiece\"}}",
                   "WordPiece");
    expect_refused("{\"truncation\":{\"max_length\":5},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
                   "truncation");
    expect_refused("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}", "id 0");
    /* ids index dense tables: two entries cannot ask for 14 million ids (a fuzzer's
       input made the reader take 2 GB), but holes within 16 x the entries + 1024 load */
    expect_refused("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":14444444},\"merges\":[]}}",
                   "ids index dense tables");
    expect_refused("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1056},\"merges\":[]}}", "0 .. 1055");
    {
        const char *sparse = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1055},\"merges\":[]}}";
        rmkv_tokenizer *t = NULL;
        if (rmkv_tokenizer_from_json(sparse, strlen(sparse), &t) != RMKV_OK) fail_msg("from_json: %s", rmkv_last_error());
        assert_int_equal(rmkv_tokenizer_vocab_size(t), 1056);
        rmkv_tokenizer_free(t);
    }
    /* steps run over every encode's whole text, so their number and nesting are
       bounded; N ByteLevel steps grow the text up to 2^N-fold (a fuzzer's file of 15
       made 20 million ids from 4 KB) */
    {
        char seq[4096];
        size_t at = (size_t)snprintf(seq, sizeof seq, "{\"type\":\"Sequence\",\"pretokenizers\":[");
        for (int i = 0; i < 5; i++) at += (size_t)snprintf(seq + at, sizeof seq - at, "%s%s", i ? "," : "", bl);
        snprintf(seq + at, sizeof seq - at, "]}");
        expect_refused(mini_json("null", seq, "", ""), "5 ByteLevel steps");
        /* four load (test_tokenizer_hf's variant four_bytelevel compares their ids with
           Hugging Face's) */
        seq[strlen(seq) - 2 - strlen(bl) - 1] = '\0';
        strcat(seq, "]}");
        rmkv_tokenizer *t = NULL;
        const char *json = mini_json("null", seq, ",\"unk_token\":\"[X]\"", "");
        if (rmkv_tokenizer_from_json(json, strlen(json), &t) != RMKV_OK) fail_msg("from_json: %s", rmkv_last_error());
        rmkv_tokenizer_free(t);

        const char *digits = "{\"type\":\"Digits\"}";
        at = (size_t)snprintf(seq, sizeof seq, "{\"type\":\"Sequence\",\"pretokenizers\":[");
        for (int i = 0; i < 33; i++) at += (size_t)snprintf(seq + at, sizeof seq - at, "%s%s", i ? "," : "", digits);
        snprintf(seq + at, sizeof seq - at, "]}");
        expect_refused(mini_json("null", seq, "", ""), "33 steps");
        const char *lower = "{\"type\":\"Lowercase\"}";
        at = (size_t)snprintf(seq, sizeof seq, "{\"type\":\"Sequence\",\"normalizers\":[");
        for (int i = 0; i < 33; i++) at += (size_t)snprintf(seq + at, sizeof seq - at, "%s%s", i ? "," : "", lower);
        snprintf(seq + at, sizeof seq - at, "]}");
        expect_refused(mini_json(seq, bl, "", ""), "normalizer has 33 steps");
        /* Sequences nested nine deep */
        at = 0;
        for (int i = 0; i < 9; i++) at += (size_t)snprintf(seq + at, sizeof seq - at, "{\"type\":\"Sequence\",\"pretokenizers\":[");
        at += (size_t)snprintf(seq + at, sizeof seq - at, "%s", digits);
        for (int i = 0; i < 9; i++) at += (size_t)snprintf(seq + at, sizeof seq - at, "]}");
        expect_refused(mini_json("null", seq, "", ""), "nest more than 8");
    }
    expect_refused("{not json", "JSON");
    expect_refused("[1,2]", "object");
}

static void test_stream_decoder(void **state) {
    (void)state;
    size_t n, size;
    int32_t *ids = tok_encode(g_default, tok_heldout_text, strlen(tok_heldout_text), &n);
    char *whole = tok_decode(g_default, ids, n, &size);
    rmkv_token_stream *s = NULL;
    assert_int_equal(rmkv_token_stream_new(g_default, &s), RMKV_OK);
    char *acc = malloc(size + 64);
    size_t acc_n = 0;
    for (size_t i = 0; i < n; i++) {
        char piece[256];
        size_t got = 0;
        assert_int_equal(rmkv_token_stream_feed(s, ids[i], piece, sizeof piece, &got), RMKV_OK);
        assert_true(tok_is_valid_utf8(piece, got)); /* never half a character */
        memcpy(acc + acc_n, piece, got);
        acc_n += got;
    }
    size_t got = 0;
    char piece[64];
    assert_int_equal(rmkv_token_stream_flush(s, piece, sizeof piece, &got), RMKV_OK);
    memcpy(acc + acc_n, piece, got);
    acc_n += got;
    assert_int_equal(acc_n, size);
    assert_memory_equal(acc, whole, size);

    /* an emoji split over byte tokens: nothing comes out until it is complete */
    const char *emoji = "\xF0\x9F\x98\x80";  /* absent from the corpus: one token per byte */
    size_t m;
    int32_t *eids = tok_encode(g_plain, emoji, 4, &m);
    size_t total = 0;
    for (size_t i = 0; i < m; i++) {
        char out[32];
        size_t k = 0;
        assert_int_equal(rmkv_token_stream_feed(s, eids[i], out, sizeof out, &k), RMKV_OK);
        if (i + 1 < m) assert_int_equal(k, 0);
        total += k;
    }
    assert_int_equal(total, 4);
    assert_true(m >= 2);
    free(eids);

    /* a too small buffer leaves the stream unchanged; an invalid sequence comes out as U+FFFD */
    int32_t lead = rmkv_tokenizer_token_id(g_plain, "\xC3\xB0"); /* byte-level character of byte F0 */
    int32_t bang = rmkv_tokenizer_token_id(g_plain, "!");
    assert_true(lead >= 0 && bang >= 0);
    size_t k = 0;
    char out[16];
    assert_int_equal(rmkv_token_stream_feed(s, lead, out, sizeof out, &k), RMKV_OK);
    assert_int_equal(k, 0);
    assert_int_equal(rmkv_token_stream_feed(s, bang, out, 1, &k), RMKV_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(k, 4);
    assert_int_equal(rmkv_token_stream_feed(s, bang, out, sizeof out, &k), RMKV_OK);
    assert_int_equal(k, 4);
    assert_memory_equal(out, "\xEF\xBF\xBD!", 4);
    assert_int_equal(rmkv_token_stream_feed(s, lead, out, sizeof out, &k), RMKV_OK);
    assert_int_equal(rmkv_token_stream_flush(s, out, sizeof out, &k), RMKV_OK);
    assert_int_equal(k, 3);
    assert_int_equal(rmkv_token_stream_feed(s, -5, out, sizeof out, &k), RMKV_ERR_INVALID_ARGUMENT);
    rmkv_token_stream_free(s);
    free(acc);
    free(whole);
    free(ids);
}

static void test_batch_encode(void **state) {
    (void)state;
    const char *texts[] = {tok_heldout_text, "", "hello <end> world", "\xFF\xFE", "1234 5678"};
    const size_t n_texts = 5;
    size_t total = 0;
    assert_int_equal(rmkv_tokenizer_encode_batch(g_default, texts, NULL, n_texts, 2, NULL, 0, NULL, &total),
                     RMKV_ERR_BUFFER_TOO_SMALL);
    int32_t *ids = malloc(total * sizeof(int32_t));
    size_t offsets[6];
    assert_int_equal(rmkv_tokenizer_encode_batch(g_default, texts, NULL, n_texts, 2, ids, total, offsets, &total), RMKV_OK);
    assert_int_equal(offsets[0], 0);
    assert_int_equal(offsets[n_texts], total);
    for (size_t i = 0; i < n_texts; i++) {
        size_t n;
        int32_t *one = tok_encode(g_default, texts[i], strlen(texts[i]), &n);
        assert_int_equal(offsets[i + 1] - offsets[i], n);
        if (n) assert_memory_equal(ids + offsets[i], one, n * sizeof(int32_t));
        free(one);
    }
    free(ids);
}

struct thread_arg {
    const int32_t *want;
    size_t n_want;
    int ok;
};

static void *encode_many(void *p) {
    struct thread_arg *a = p;
    a->ok = 1;
    for (int i = 0; i < 50; i++) {
        size_t n = 0;
        int32_t ids[4096];
        if (rmkv_tokenizer_encode(g_default, tok_heldout_text, strlen(tok_heldout_text), ids, 4096, &n) != RMKV_OK ||
            n != a->n_want || memcmp(ids, a->want, n * sizeof(int32_t)) != 0)
            a->ok = 0;
    }
    return NULL;
}

static void test_threads_share_tokenizer(void **state) {
    (void)state;
    size_t n;
    int32_t *want = tok_encode(g_default, tok_heldout_text, strlen(tok_heldout_text), &n);
    pthread_t th[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){want, n, 0};
        pthread_create(&th[i], NULL, encode_many, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(args[i].ok);
    }
    free(want);
}

static int progress_calls;
static int cancel_at;
static int on_progress(const char *stage, uint64_t done, uint64_t total, void *user) {
    (void)user;
    assert_non_null(stage);
    assert_true(done <= total);
    progress_calls++;
    return cancel_at && progress_calls >= cancel_at;
}

static void test_training_options(void **state) {
    (void)state;
    const char *texts[] = {"low lower lowest newer newest wider", "low low low newest newest", "\xFF invalid"};
    rmkv_tokenizer_train_params p = rmkv_tokenizer_train_default_params();
    p.vocab_size = 300;
    p.progress = on_progress;
    progress_calls = 0;
    cancel_at = 0;
    rmkv_tokenizer *t = NULL;
    assert_int_equal(rmkv_tokenizer_train_from_texts(texts, NULL, 3, &p, &t), RMKV_OK);
    assert_true(progress_calls >= 3);
    /* every byte has a token, so anything encodes and decodes */
    check_round_trip_nfd(t, "\x01\x7F\xC3\xA9", 4, 1);
    assert_true(rmkv_tokenizer_vocab_size(t) <= 300);
    assert_true(rmkv_tokenizer_token_id(t, "\xC4\xA0low") >= 0); /* " low" */
    rmkv_tokenizer_free(t);

    /* min_frequency: no pair seen fewer than 100 times is merged */
    p.min_frequency = 100;
    t = NULL;
    assert_int_equal(rmkv_tokenizer_train_from_texts(texts, NULL, 3, &p, &t), RMKV_OK);
    assert_int_equal(rmkv_tokenizer_vocab_size(t), 6 + 256);
    rmkv_tokenizer_free(t);

    /* no special tokens, only the bytes seen */
    const char *none[] = {NULL};
    p.min_frequency = 0;
    p.special_tokens = none;
    p.n_special_tokens = 0;
    p.byte_alphabet = 0;
    t = NULL;
    assert_int_equal(rmkv_tokenizer_train_from_texts(texts, NULL, 2, &p, &t), RMKV_OK);
    assert_int_equal(rmkv_tokenizer_token_id(t, "<pad>"), -1);
    assert_true(rmkv_tokenizer_token_id(t, "l") >= 0);
    assert_int_equal(rmkv_tokenizer_token_id(t, "Q"), -1);
    rmkv_tokenizer_free(t);

    /* cancellation from the callback */
    p = rmkv_tokenizer_train_default_params();
    p.progress = on_progress;
    progress_calls = 0;
    cancel_at = 2;
    t = NULL;
    assert_int_equal(rmkv_tokenizer_train_from_texts(texts, NULL, 3, &p, &t), RMKV_ERR_CANCELLED);
    assert_null(t);
    cancel_at = 0;

    /* bad arguments */
    p = rmkv_tokenizer_train_default_params();
    p.normalizer = "NFX";
    assert_int_equal(rmkv_tokenizer_train_from_texts(texts, NULL, 3, &p, &t), RMKV_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(rmkv_last_error(), "NFX"));
    const char *missing[] = {"/nonexistent/corpus.txt"};
    assert_int_equal(rmkv_tokenizer_train(missing, 1, NULL, &t), RMKV_ERR_IO);
    assert_non_null(strstr(rmkv_last_error(), "/nonexistent/corpus.txt"));
    p = rmkv_tokenizer_train_default_params();
    p.struct_size = 3;
    assert_int_equal(rmkv_tokenizer_train_from_texts(texts, NULL, 3, &p, &t), RMKV_ERR_INVALID_ARGUMENT);

    /* an older caller's smaller struct keeps the defaults of the fields it lacks */
    p = rmkv_tokenizer_train_default_params();
    p.vocab_size = 280;
    p.struct_size = offsetof(rmkv_tokenizer_train_params, min_frequency);
    t = NULL;
    assert_int_equal(rmkv_tokenizer_train_from_texts(texts, NULL, 3, &p, &t), RMKV_OK);
    assert_int_equal(rmkv_tokenizer_token_id(t, "<think>"), 4);
    rmkv_tokenizer_free(t);
}

static void test_files_equal_texts_by_line(void **state) {
    (void)state;
    /* training on a file equals training on its lines as texts */
    const char *content = "first line  \n  second line\n\nthird 123\nlast";
    char path[512];
    snprintf(path, sizeof path, "%s/tok_unit_lines.txt", tmp_dir());
    assert_int_equal(tok_write_file(path, content, strlen(content)), 0);
    const char *files[] = {path};
    const char *lines[] = {"first line  \n", "  second line\n", "\n", "third 123\n", "last"};
    rmkv_tokenizer_train_params p = rmkv_tokenizer_train_default_params();
    p.vocab_size = 320;
    rmkv_tokenizer *a = NULL, *b = NULL;
    assert_int_equal(rmkv_tokenizer_train(files, 1, &p, &a), RMKV_OK);
    assert_int_equal(rmkv_tokenizer_train_from_texts(lines, NULL, 5, &p, &b), RMKV_OK);
    size_t la, lb;
    char *ja = to_json(a, &la), *jb = to_json(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(ja, jb, la);
    free(ja); free(jb);
    rmkv_tokenizer_free(a);
    rmkv_tokenizer_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_special_ids),
        cmocka_unit_test(test_special_tokens_split_out),
        cmocka_unit_test(test_round_trip_random_unicode),
        cmocka_unit_test(test_round_trip_random_bytes),
        cmocka_unit_test(test_invalid_utf8_and_nul),
        cmocka_unit_test(test_buffers_and_arguments),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_hand_written_json),
        cmocka_unit_test(test_unsupported_refused),
        cmocka_unit_test(test_stream_decoder),
        cmocka_unit_test(test_batch_encode),
        cmocka_unit_test(test_threads_share_tokenizer),
        cmocka_unit_test(test_training_options),
        cmocka_unit_test(test_files_equal_texts_by_line),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
