/* The training data pipeline (rmkv_data_*), through the public ABI only: text
   windows, JSONL formatting and masking, walks, mixing, the validation split,
   exact resume from a saved state, streaming of large documents, and errors.
   Fixtures are written to the test temp dir; the tokenizer is a small byte-level
   BPE tokenizer.json built below. Expected ids always come from
   rmkv_tokenizer_encode, so the checks do not depend on the merges. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test_util.h"

/* ---- fixtures ---------------------------------------------------------- */

static rmkv_tokenizer *g_tok;
static int32_t g_pad, g_start, g_end;

static size_t put_utf8(char *out, unsigned cp) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* The GPT-2 byte-to-character table: byte b is the vocabulary entry of id b. */
static unsigned byte_char(unsigned b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return b;
    unsigned n = 0;
    for (unsigned x = 0; x < b; ++x)
        if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) ++n;
    return 256 + n;
}

static rmkv_tokenizer *make_tokenizer(void) {
    static char json[16384];
    size_t n = 0;
    n += (size_t)sprintf(json + n, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[");
    const char *added[4] = {"<pad>", "<unk>", "<start>", "<end>"};
    for (int i = 0; i < 4; ++i)
        n += (size_t)sprintf(json + n,
                             "%s{\"id\":%d,\"content\":\"%s\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
                             "\"normalized\":false,\"special\":true}",
                             i ? "," : "", 260 + i, added[i]);
    n += (size_t)sprintf(json + n, "],\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                                   "\"trim_offsets\":true,\"use_regex\":true},\"post_processor\":null,"
                                   "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,"
                                   "\"use_regex\":true},\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,"
                                   "\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,\"fuse_unk\":false,"
                                   "\"byte_fallback\":false,\"vocab\":{");
    for (unsigned b = 0; b < 256; ++b) {
        json[n++] = b ? ',' : ' ';
        json[n++] = '"';
        unsigned c = byte_char(b);
        if (c == '"' || c == '\\') json[n++] = '\\';
        n += put_utf8(json + n, c);
        n += (size_t)sprintf(json + n, "\":%u", b);
    }
    /* "Ġ" is U+0120 (the space byte). */
    n += (size_t)sprintf(json + n, ",\"he\":256,\"ll\":257,\"\xC4\xA0t\":258,\"hell\":259},"
                                   "\"merges\":[\"h e\",\"l l\",\"\xC4\xA0 t\",\"he ll\"]}}");
    rmkv_tokenizer *tok = NULL;
    RMKV_CHECK(rmkv_tokenizer_from_json(json, n, &tok));
    return tok;
}

static int setup(void **state) {
    (void)state;
    g_tok = make_tokenizer();
    g_pad = rmkv_tokenizer_token_id(g_tok, "<pad>");
    g_start = rmkv_tokenizer_token_id(g_tok, "<start>");
    g_end = rmkv_tokenizer_token_id(g_tok, "<end>");
    if (g_pad < 0 || g_start < 0 || g_end < 0) return -1;
    mkdir(tmp_path(""), 0755);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    rmkv_tokenizer_free(g_tok);
    return 0;
}

static const char *write_file(const char *name, const char *text) {
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    return path;
}

/* A growable list of ids. */
typedef struct { int32_t *ids; size_t n, cap; } ids_t;

static void ids_push(ids_t *v, int32_t id) {
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 256;
        v->ids = realloc(v->ids, v->cap * sizeof(int32_t));
    }
    v->ids[v->n++] = id;
}

static void ids_encode(ids_t *v, const char *text) {
    size_t need = 0, len = strlen(text);
    rmkv_status st = rmkv_tokenizer_encode(g_tok, text, len, NULL, 0, &need);
    assert_true(st == RMKV_OK || st == RMKV_ERR_BUFFER_TOO_SMALL);
    int32_t *tmp = malloc((need ? need : 1) * sizeof(int32_t));
    RMKV_CHECK(rmkv_tokenizer_encode(g_tok, text, len, tmp, need, &need));
    for (size_t i = 0; i < need; ++i) ids_push(v, tmp[i]);
    free(tmp);
}

static rmkv_data *make_data(const char *config) {
    rmkv_data *d = NULL;
    RMKV_CHECK(rmkv_data_new(config, g_tok, &d));
    return d;
}

typedef struct {
    size_t B, T;
    int32_t *tokens, *targets;
    rmkv_data_info info;
} batch_t;

static batch_t batch_alloc(rmkv_data *d) {
    batch_t b;
    RMKV_CHECK(rmkv_data_batch_shape(d, &b.B, &b.T));
    b.tokens = calloc(b.B * b.T, sizeof(int32_t));
    b.targets = calloc(b.B * b.T, sizeof(int32_t));
    memset(&b.info, 0, sizeof b.info);
    b.info.struct_size = sizeof b.info;
    return b;
}

static void batch_next(rmkv_data *d, batch_t *b) {
    RMKV_CHECK(rmkv_data_next(d, b->tokens, b->targets, b->B * b->T, &b->info));
}

static void batch_free(batch_t *b) {
    free(b->tokens);
    free(b->targets);
}

/* n training batches, concatenated (tokens then targets per batch). */
static int32_t *collect(rmkv_data *d, int n) {
    batch_t b = batch_alloc(d);
    size_t per = b.B * b.T;
    int32_t *out = malloc((size_t)n * 2 * per * sizeof(int32_t));
    for (int i = 0; i < n; ++i) {
        batch_next(d, &b);
        assert_int_equal(b.info.n_sequences, b.B);
        assert_int_equal(b.info.batch_index, i);
        memcpy(out + (size_t)i * 2 * per, b.tokens, per * sizeof(int32_t));
        memcpy(out + (size_t)i * 2 * per + per, b.targets, per * sizeof(int32_t));
    }
    batch_free(&b);
    return out;
}

/* ---- text ---------------------------------------------------------------- */

static const char *docs3[3] = {"hello world, the first document.", "the second one is here", "third: tell all"};

/* Windows of n+1 tokens over docs joined by <end>, in file order, epoch after epoch. */
static void check_text_windows(int queue_size) {
    char text[512];
    snprintf(text, sizeof text, "%s\n\n%s\n\n%s", docs3[0], docs3[1], docs3[2]);
    const char *path = write_file("three.txt", text);
    ids_t stream = {0};
    for (int i = 0; i < 3; ++i) {
        ids_encode(&stream, docs3[i]);
        ids_push(&stream, g_end);
    }
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"sources\":[{\"path\":\"%s\",\"separator\":\"\\n\\n\"}],\"batch_size\":2,\"n_tokens\":8,"
             "\"walk\":\"sequential\",\"eod_token\":\"<end>\",\"queue_size\":%d}",
             path, queue_size);
    rmkv_data *d = make_data(cfg);
    batch_t b = batch_alloc(d);
    size_t L = stream.n, window = 0;
    int64_t epoch = 0;
    for (int k = 0; k < 12; ++k) {
        batch_next(d, &b);
        assert_int_equal(b.info.n_targets, (int64_t)(b.B * b.T));
        for (size_t r = 0; r < b.B; ++r, ++window)
            for (size_t i = 0; i < b.T; ++i) {
                size_t p = window * b.T + i;
                assert_int_equal(b.tokens[r * b.T + i], stream.ids[p % L]);
                assert_int_equal(b.targets[r * b.T + i], stream.ids[(p + 1) % L]);
            }
        assert_true(b.info.epoch >= epoch && b.info.epoch_progress >= b.info.epoch);
        epoch = b.info.epoch;
    }
    assert_true(epoch >= 2); /* 12 batches of 16 tokens pass a stream of ~70 tokens twice */
    batch_free(&b);
    rmkv_data_free(d);
    free(stream.ids);
}

static void text_windows_sync(void **state) { (void)state; check_text_windows(0); }
static void text_windows_thread(void **state) { (void)state; check_text_windows(3); }

/* A folder: one document per file, sorted by path; no eod: documents concatenated. */
static void text_folder(void **state) {
    (void)state;
    const char *dir = tmp_path("corpus");
    mkdir(dir, 0755);
    char p[600];
    snprintf(p, sizeof p, "%s/b.txt", dir);
    FILE *f = fopen(p, "wb"); fputs("bbb bbb", f); fclose(f);
    snprintf(p, sizeof p, "%s/a.txt", dir);
    f = fopen(p, "wb"); fputs("aaa aaa", f); fclose(f);
    snprintf(p, sizeof p, "%s/.hidden", dir);
    f = fopen(p, "wb"); fputs("zzz", f); fclose(f);
    ids_t stream = {0};
    ids_encode(&stream, "aaa aaa");
    ids_encode(&stream, "bbb bbb");
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"sources\":[{\"path\":\"%s\"}],\"batch_size\":1,\"n_tokens\":3,\"walk\":\"sequential\"}", dir);
    rmkv_data *d = make_data(cfg);
    batch_t b = batch_alloc(d);
    for (size_t w = 0; w < 6; ++w) {
        batch_next(d, &b);
        for (size_t i = 0; i < 3; ++i) {
            assert_int_equal(b.tokens[i], stream.ids[(w * 3 + i) % stream.n]);
            assert_int_equal(b.targets[i], stream.ids[(w * 3 + i + 1) % stream.n]);
        }
    }
    char summary[2048];
    size_t need = 0;
    RMKV_CHECK(rmkv_data_summary_json(d, summary, sizeof summary, &need));
    assert_non_null(strstr(summary, "\"documents\":2"));
    batch_free(&b);
    rmkv_data_free(d);
    free(stream.ids);
}

/* A document far larger than chunk_bytes streams in pieces that encode to the
   same ids as the whole document. */
static void text_large_document(void **state) {
    (void)state;
    size_t cap = 20000, n = 0;
    char *text = malloc(cap + 64);
    const char *words[6] = {"hello", "tell", "the", "world", "small", "llama"};
    unsigned x = 1;
    while (n < cap) {
        x = x * 1103515245u + 12345u;
        n += (size_t)sprintf(text + n, "%s%s", (x >> 16) % 9 == 0 ? "\n" : n ? " " : "", words[(x >> 8) % 6]);
    }
    const char *path = write_file("large.txt", text);
    ids_t stream = {0};
    ids_encode(&stream, text);
    ids_push(&stream, g_end);
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"sources\":[{\"path\":\"%s\"}],\"batch_size\":4,\"n_tokens\":64,\"walk\":\"sequential\","
             "\"eod_token\":\"<end>\",\"chunk_bytes\":256}", path);
    rmkv_data *d = make_data(cfg);
    batch_t b = batch_alloc(d);
    size_t window = 0, total = stream.n + 200;
    while (window * 64 < total) {
        batch_next(d, &b);
        for (size_t r = 0; r < 4; ++r, ++window)
            for (size_t i = 0; i < 64; ++i) {
                size_t p = window * 64 + i;
                assert_int_equal(b.tokens[r * 64 + i], stream.ids[p % stream.n]);
                assert_int_equal(b.targets[r * 64 + i], stream.ids[(p + 1) % stream.n]);
            }
    }
    assert_true(b.info.epoch >= 1);
    batch_free(&b);
    rmkv_data_free(d);
    free(stream.ids);
    free(text);
}

/* ---- JSONL ----------------------------------------------------------------- */

static void check_row(const int32_t *tokens, const int32_t *targets, size_t T, const ids_t *prompt,
                      const ids_t *response, int masked) {
    size_t L = prompt->n + response->n;
    for (size_t i = 0; i < T; ++i) {
        int32_t tok = i < L - 1 ? (i < prompt->n ? prompt->ids[i] : response->ids[i - prompt->n]) : g_pad;
        int32_t tgt = -1;
        if (i + 1 < L && !(masked && i + 1 < prompt->n))
            tgt = i + 1 < prompt->n ? prompt->ids[i + 1] : response->ids[i + 1 - prompt->n];
        if (tokens[i] != tok || targets[i] != tgt)
            fail_msg("position %zu: token %d target %d, expected %d %d", i, tokens[i], targets[i], tok, tgt);
    }
}

static void jsonl_default_format(void **state) {
    (void)state;
    const char *path = write_file("qa.jsonl", "{\"input\":\"What is 2+2?\",\"output\":\"Four.\"}\n");
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"sources\":[{\"path\":\"%s\"}],\"batch_size\":2,\"n_tokens\":48}", path);
    rmkv_data *d = make_data(cfg);
    batch_t b = batch_alloc(d);
    batch_next(d, &b);
    ids_t prompt = {0}, response = {0};
    ids_encode(&prompt, "user: What is 2+2?\n\nassistant:");
    ids_encode(&response, " Four.");
    for (int r = 0; r < 2; ++r) check_row(b.tokens + r * 48, b.targets + r * 48, 48, &prompt, &response, 1);
    assert_int_equal(b.info.n_targets, 2 * (int64_t)response.n);
    batch_free(&b);
    rmkv_data_free(d);
    free(prompt.ids);
    free(response.ids);
}

static void jsonl_chat_format(void **state) {
    (void)state;
    const char *path = write_file("chat.jsonl",
                                  "\n{\"prompt\":\"hi <end> there\",\"response\":\"hello\",\"extra\":1}\n  \n");
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"sources\":[{\"path\":\"%s\",\"format\":\"chat\",\"input_field\":\"prompt\",\"output_field\":\"response\","
             "\"mask_prompt\":false}],\"batch_size\":1,\"n_tokens\":40,\"pad_token\":0}", path);
    g_pad = 0;
    rmkv_data *d = make_data(cfg);
    batch_t b = batch_alloc(d);
    batch_next(d, &b);
    ids_t prompt = {0}, response = {0};
    ids_encode(&prompt, "hi <end> there"); /* a field value is text, whatever the tokenizer does with it */
    ids_push(&prompt, g_start);
    ids_encode(&response, "hello");
    ids_push(&response, g_end);
    check_row(b.tokens, b.targets, 40, &prompt, &response, 0);
    g_pad = rmkv_tokenizer_token_id(g_tok, "<pad>");
    batch_free(&b);
    rmkv_data_free(d);
    free(prompt.ids);
    free(response.ids);
}

static void jsonl_truncation(void **state) {
    (void)state;
    const char *path = write_file("long.jsonl",
                                  "{\"input\":\"abcdefghijklmnop\",\"output\":\"qrstuvwxyz\"}\n");
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"sources\":[{\"path\":\"%s\",\"prompt_template\":\"{input}\",\"response_template\":\"{output}\"}],"
             "\"batch_size\":1,\"n_tokens\":10,\"max_prompt_tokens\":4,\"max_completion_tokens\":3,"
             "\"eod_token\":\"<end>\"}", path);
    rmkv_data *d = make_data(cfg);
    batch_t b = batch_alloc(d);
    batch_next(d, &b);
    ids_t prompt = {0}, response = {0};
    ids_encode(&prompt, "mnop");     /* the last 4 (the test tokenizer has no merges among these letters) */
    ids_encode(&response, "qrs");    /* the first 3; <end> appended before the cut is cut off */
    check_row(b.tokens, b.targets, 10, &prompt, &response, 1);
    batch_free(&b);
    rmkv_data_free(d);
    /* cut at n_tokens + 1 */
    snprintf(cfg, sizeof cfg,
             "{\"sources\":[{\"path\":\"%s\",\"prompt_template\":\"{input}\",\"response_template\":\"{output}\"}],"
             "\"batch_size\":1,\"n_tokens\":20}", path);
    d = make_data(cfg);
    b = batch_alloc(d);
    batch_next(d, &b);
    ids_t all = {0};
    ids_encode(&all, "abcdefghijklmnopqrstuvwxyz");
    for (size_t i = 0; i < 20; ++i) {
        assert_int_equal(b.tokens[i], all.ids[i]);
        assert_int_equal(b.targets[i], i + 1 < 16 ? -1 : all.ids[i + 1]);
    }
    batch_free(&b);
    rmkv_data_free(d);
    free(prompt.ids);
    free(response.ids);
    free(all.ids);
}

/* Shuffled: every epoch visits every example exactly once, in a new order. */
static const char *numbered_jsonl(const char *name, int n) {
    char *text = malloc((size_t)n * 64 + 1), *p = text;
    for (int i = 0; i < n; ++i) p += sprintf(p, "{\"input\":\"%c\",\"output\":\"%c%c\"}\n", 'a' + i, 'a' + i, 'A' + i);
    const char *path = write_file(name, text);
    free(text);
    return path;
}

static int example_of(const int32_t *row, size_t T) {
    /* prompt template {input}: row[0] is the single byte id of the letter */
    (void)T;
    return row[0] >= 'a' && row[0] < 'a' + 26 ? row[0] - 'a' : -1;
}

static void jsonl_shuffled_epochs(void **state) {
    (void)state;
    const char *path = numbered_jsonl("numbered.jsonl", 10);
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"sources\":[{\"path\":\"%s\",\"prompt_template\":\"{input}\",\"response_template\":\"{output}\"}],"
             "\"batch_size\":10,\"n_tokens\":4,\"walk\":\"shuffled\",\"seed\":7}", path);
    rmkv_data *d = make_data(cfg);
    batch_t b = batch_alloc(d);
    int orders[3][10];
    for (int e = 0; e < 3; ++e) {
        batch_next(d, &b);
        int seen[10] = {0};
        for (int r = 0; r < 10; ++r) {
            int k = example_of(b.tokens + r * 4, 4);
            assert_true(k >= 0 && k < 10);
            seen[k]++;
            orders[e][r] = k;
        }
        for (int k = 0; k < 10; ++k) assert_int_equal(seen[k], 1);
        assert_int_equal(b.info.epoch, e + 1);
    }
    assert_true(memcmp(orders[0], orders[1], sizeof orders[0]) != 0 || memcmp(orders[1], orders[2], sizeof orders[0]) != 0);
    batch_free(&b);
    rmkv_data_free(d);
}

/* ---- mixing, determinism, resume ------------------------------------------- */

static void mixing_ratios(void **state) {
    (void)state;
    const char *a = write_file("mix_a.txt", "a a a a a a a a a a a a");
    const char *bpath = write_file("mix_b.txt", "b b b b b b b b b b b b");
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"sources\":[{\"path\":\"%s\",\"weight\":3},{\"path\":\"%s\",\"weight\":1}],\"batch_size\":16,"
             "\"n_tokens\":4,\"seed\":3}", a, bpath);
    rmkv_data *d = make_data(cfg);
    batch_t b = batch_alloc(d);
    int na = 0, nb = 0;
    for (int k = 0; k < 100; ++k) {
        batch_next(d, &b);
        for (size_t r = 0; r < 16; ++r) {
            int has_a = 0, has_b = 0;
            for (size_t i = 0; i < 4; ++i) has_a |= b.tokens[r * 4 + i] == 'a', has_b |= b.tokens[r * 4 + i] == 'b';
            assert_true(has_a != has_b);
            na += has_a, nb += has_b;
        }
    }
    double frac = (double)na / (na + nb);
    if (frac < 0.72 || frac > 0.78) fail_msg("source a got %.3f of the rows, expected 0.75", frac);
    batch_free(&b);
    rmkv_data_free(d);
}

static const char *copy_string(const char *s) {
    char *c = malloc(strlen(s) + 1);
    strcpy(c, s);
    return c;
}

static const char *resume_config(char *cfg, size_t cap, const char *walk, int queue, uint64_t seed) {
    static const char *text_path, *jsonl_path;
    if (!text_path) {
        size_t n = 0;
        char *text = malloc(8192);
        for (int i = 0; i < 40; ++i)
            n += (size_t)sprintf(text + n, "%sdocument %d tells the tale of hell and the small llama %d%s", i ? "\n\n" : "", i,
                                 i * 7, i % 5 == 0 ? " and a longer tail that goes on, and on, and on, and on." : "");
        text_path = copy_string(write_file("resume.txt", text));
        free(text);
        jsonl_path = copy_string(numbered_jsonl("resume.jsonl", 12));
    }
    snprintf(cfg, cap,
             "{\"sources\":[{\"path\":\"%s\",\"separator\":\"\\n\\n\",\"weight\":5},"
             "{\"path\":\"%s\",\"weight\":1,\"walk\":\"random\"}],\"batch_size\":3,\"n_tokens\":16,\"walk\":\"%s\","
             "\"seed\":%llu,\"eod_token\":\"<end>\",\"queue_size\":%d,\"chunk_bytes\":256,\"validation_count\":2}",
             text_path, jsonl_path, walk, (unsigned long long)seed, queue);
    return cfg;
}

static void determinism(void **state) {
    (void)state;
    char cfg[2048];
    int n = 30;
    size_t per = 2 * 3 * 16;
    rmkv_data *d1 = make_data(resume_config(cfg, sizeof cfg, "shuffled", 0, 11));
    rmkv_data *d2 = make_data(resume_config(cfg, sizeof cfg, "shuffled", 4, 11));
    rmkv_data *d3 = make_data(resume_config(cfg, sizeof cfg, "shuffled", 4, 12));
    int32_t *a = collect(d1, n), *b = collect(d2, n), *c = collect(d3, n);
    assert_memory_equal(a, b, (size_t)n * per * sizeof(int32_t));
    assert_true(memcmp(a, c, (size_t)n * per * sizeof(int32_t)) != 0);
    free(a), free(b), free(c);
    rmkv_data_free(d1), rmkv_data_free(d2), rmkv_data_free(d3);
}

static void check_resume(const char *walk, int queue) {
    char cfg[2048];
    resume_config(cfg, sizeof cfg, walk, queue, 5);
    int n = 60;
    size_t per = 2 * 3 * 16;
    rmkv_data *ref = make_data(cfg);
    int32_t *all = collect(ref, n);
    rmkv_data_free(ref);
    for (int cut = 1; cut < n; cut += 7) {
        rmkv_data *d = make_data(cfg);
        int32_t *head = collect(d, cut);
        assert_memory_equal(head, all, (size_t)cut * per * sizeof(int32_t));
        size_t size = 0;
        assert_int_equal(rmkv_data_state_save(d, NULL, 0, &size), RMKV_ERR_BUFFER_TOO_SMALL);
        char *blob = malloc(size);
        size_t written = 0;
        RMKV_CHECK(rmkv_data_state_save(d, blob, size, &written));
        assert_int_equal(written, size);
        rmkv_data_free(d);

        rmkv_data *e = make_data(cfg);
        int32_t *skip = collect(e, 2); /* a position to be replaced */
        RMKV_CHECK(rmkv_data_state_load(e, blob, size));
        batch_t b = batch_alloc(e);
        for (int k = cut; k < n; ++k) {
            RMKV_CHECK(rmkv_data_next(e, b.tokens, b.targets, b.B * b.T, &b.info));
            assert_int_equal(b.info.batch_index, k);
            assert_memory_equal(b.tokens, all + (size_t)k * per, per / 2 * sizeof(int32_t));
            assert_memory_equal(b.targets, all + (size_t)k * per + per / 2, per / 2 * sizeof(int32_t));
        }
        batch_free(&b);
        rmkv_data_free(e);
        free(head), free(skip), free(blob);
    }
    free(all);
}

static void resume_shuffled_thread(void **state) { (void)state; check_resume("shuffled", 4); }
static void resume_random_sync(void **state) { (void)state; check_resume("random", 0); }
static void resume_sequential_thread(void **state) { (void)state; check_resume("sequential", 2); }

static void state_refused(void **state) {
    (void)state;
    char cfg[2048];
    rmkv_data *d = make_data(resume_config(cfg, sizeof cfg, "shuffled", 2, 5));
    int32_t *first = collect(d, 3);
    size_t size = 0;
    rmkv_data_state_save(d, NULL, 0, &size);
    char *blob = malloc(size);
    RMKV_CHECK(rmkv_data_state_save(d, blob, size, &size));

    rmkv_data *other = make_data(resume_config(cfg, sizeof cfg, "shuffled", 2, 6));
    RMKV_EXPECT(RMKV_ERR_MISMATCH, rmkv_data_state_load(other, blob, size));
    char *bad = malloc(size);
    memcpy(bad, blob, size);
    char *digit = strstr(bad, "\"batches\":3");
    assert_non_null(digit);
    digit[10] = '4';
    RMKV_EXPECT(RMKV_ERR_FORMAT, rmkv_data_state_load(d, bad, size));
    RMKV_EXPECT(RMKV_ERR_FORMAT, rmkv_data_state_load(d, blob, size / 2));
    RMKV_EXPECT(RMKV_ERR_FORMAT, rmkv_data_state_load(d, "{}", 2));
    /* the failed loads changed nothing: d continues where it was */
    rmkv_data *ref = make_data(resume_config(cfg, sizeof cfg, "shuffled", 0, 5));
    int32_t *all = collect(ref, 5);
    batch_t b = batch_alloc(d);
    batch_next(d, &b);
    assert_int_equal(b.info.batch_index, 3);
    assert_memory_equal(b.tokens, all + 3 * 2 * b.B * b.T, b.B * b.T * sizeof(int32_t));
    batch_free(&b);
    free(first), free(all), free(blob), free(bad);
    rmkv_data_free(d), rmkv_data_free(other), rmkv_data_free(ref);
}

/* ---- validation split ------------------------------------------------------ */

static void validation_split(void **state) {
    (void)state;
    const char *path = numbered_jsonl("split.jsonl", 20);
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"sources\":[{\"path\":\"%s\",\"prompt_template\":\"{input}\",\"response_template\":\"{output}\"}],"
             "\"batch_size\":4,\"n_tokens\":4,\"walk\":\"sequential\",\"validation_fraction\":0.25,\"seed\":9}", path);
    rmkv_data *d = make_data(cfg);
    batch_t b = batch_alloc(d);
    int held[20] = {0}, n_val = 0, pass[2][20];
    for (int round = 0; round < 2; ++round) {
        int k = 0;
        for (;;) {
            RMKV_CHECK(rmkv_data_next_validation(d, b.tokens, b.targets, b.B * b.T, &b.info));
            if (b.info.n_sequences == 0) break;
            for (size_t r = 0; r < b.info.n_sequences; ++r) {
                int e = example_of(b.tokens + r * 4, 4);
                assert_true(e >= 0 && e < 20);
                held[e] = 1;
                pass[round][k++] = e;
            }
            for (size_t r = b.info.n_sequences; r < b.B; ++r)
                for (size_t i = 0; i < 4; ++i) assert_int_equal(b.targets[r * 4 + i], -1);
        }
        assert_int_equal(k, 5);
        n_val = k;
        RMKV_CHECK(rmkv_data_next_validation(d, b.tokens, b.targets, b.B * b.T, &b.info));
        assert_int_equal(b.info.n_sequences, 0);
        RMKV_CHECK(rmkv_data_validation_rewind(d));
    }
    assert_memory_equal(pass[0], pass[1], (size_t)n_val * sizeof(int));
    /* training: 15 examples in file order, none of them held out */
    int trained[20] = {0};
    for (int k = 0; k < 15; ++k) {
        if (k % 4 == 0) batch_next(d, &b);
        int e = example_of(b.tokens + (k % 4) * 4, 4);
        assert_false(held[e]);
        trained[e]++;
    }
    for (int e = 0; e < 20; ++e) assert_int_equal(trained[e] + held[e], 1);
    batch_free(&b);
    rmkv_data_free(d);
}

/* A text source's validation pass: held-out documents, last window padded. */
static void validation_text(void **state) {
    (void)state;
    char text[512];
    snprintf(text, sizeof text, "%s\n\n%s\n\n%s", docs3[0], docs3[1], docs3[2]);
    const char *path = write_file("three_val.txt", text);
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"sources\":[{\"path\":\"%s\",\"separator\":\"\\n\\n\"}],\"batch_size\":64,\"n_tokens\":5,"
             "\"validation_count\":1,\"eod_token\":\"<end>\"}", path);
    rmkv_data *d = make_data(cfg);
    batch_t b = batch_alloc(d);
    RMKV_CHECK(rmkv_data_next_validation(d, b.tokens, b.targets, b.B * b.T, &b.info));
    /* exactly one of the documents, + <end>, every token but the first a target once */
    int found = 0;
    for (int i = 0; i < 3; ++i) {
        ids_t doc = {0};
        ids_encode(&doc, docs3[i]);
        ids_push(&doc, g_end);
        if ((size_t)b.info.n_targets == doc.n - 1 && b.tokens[0] == doc.ids[0] && b.targets[0] == doc.ids[1]) {
            found = 1;
            size_t rows = (doc.n - 1 + 4) / 5;
            assert_int_equal(b.info.n_sequences, rows);
            for (size_t p = 0; p + 1 < doc.n; ++p) {
                assert_int_equal(b.tokens[p], doc.ids[p]);
                assert_int_equal(b.targets[p], doc.ids[p + 1]);
            }
            for (size_t p = doc.n - 1; p < rows * 5; ++p) assert_int_equal(b.targets[p], -1);
        }
        free(doc.ids);
    }
    assert_true(found);
    batch_free(&b);
    rmkv_data_free(d);
}

/* ---- errors ---------------------------------------------------------------- */

static int g_warnings;
static void count_warnings(rmkv_log_level level, const char *line, void *user) {
    (void)user;
    if (level == RMKV_LOG_WARN && strstr(line, "bad.jsonl:2")) ++g_warnings;
}

static void errors(void **state) {
    (void)state;
    rmkv_data *d = NULL;
    char cfg[1024];
    RMKV_EXPECT(RMKV_ERR_IO, rmkv_data_new("{\"sources\":[{\"path\":\"/nonexistent/x.txt\"}]}", g_tok, &d));
    assert_non_null(strstr(rmkv_last_error(), "/nonexistent/x.txt"));
    assert_null(d);
    const char *path = write_file("ok.txt", "some text here");
    snprintf(cfg, sizeof cfg, "{\"sources\":[{\"path\":\"%s\"}],\"batchsize\":2}", path);
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_data_new(cfg, g_tok, &d));
    assert_non_null(strstr(rmkv_last_error(), "batchsize"));
    snprintf(cfg, sizeof cfg, "{\"sources\":[{\"path\":\"%s\",\"mask_prompt\":true}]}", path);
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_data_new(cfg, g_tok, &d));
    snprintf(cfg, sizeof cfg, "{\"sources\":[{\"path\":\"%s\"}],\"walk\":\"sideways\"}", path);
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_data_new(cfg, g_tok, &d));
    snprintf(cfg, sizeof cfg, "{\"sources\":[{\"path\":\"%s\"}],\"eod_token\":\"<nope>\"}", path);
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_data_new(cfg, g_tok, &d));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_data_new("not json", g_tok, &d));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_data_new("{}", g_tok, &d));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_data_new(cfg, NULL, &d));
    snprintf(cfg, sizeof cfg, "{\"sources\":[{\"path\":\"%s\",\"kind\":\"jsonl\",\"prompt_template\":\"{question}\"}]}", path);
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_data_new(cfg, g_tok, &d));

    /* a bad JSONL line names file and line; a failed next consumes nothing */
    const char *bad = write_file("bad.jsonl", "{\"input\":\"a\",\"output\":\"b\"}\n{\"input\": oops\n{\"output\":\"c\"}\n");
    for (int queue = 0; queue <= 2; queue += 2) {
        snprintf(cfg, sizeof cfg, "{\"sources\":[{\"path\":\"%s\"}],\"batch_size\":1,\"n_tokens\":8,\"walk\":\"sequential\","
                                  "\"queue_size\":%d}", bad, queue);
        d = make_data(cfg);
        batch_t b = batch_alloc(d);
        batch_next(d, &b);
        RMKV_EXPECT(RMKV_ERR_FORMAT, rmkv_data_next(d, b.tokens, b.targets, b.B * b.T, &b.info));
        assert_non_null(strstr(rmkv_last_error(), "bad.jsonl:2"));
        RMKV_EXPECT(RMKV_ERR_FORMAT, rmkv_data_next(d, b.tokens, b.targets, b.B * b.T, &b.info));
        assert_non_null(strstr(rmkv_last_error(), "bad.jsonl:2"));
        RMKV_EXPECT(RMKV_ERR_BUFFER_TOO_SMALL, rmkv_data_next(d, b.tokens, b.targets, 3, &b.info));
        RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_data_next(NULL, b.tokens, b.targets, 8, &b.info));
        batch_free(&b);
        rmkv_data_free(d);
    }
    /* the missing field, named with its line */
    snprintf(cfg, sizeof cfg, "{\"sources\":[{\"path\":\"%s\"}],\"batch_size\":3,\"n_tokens\":8,\"walk\":\"sequential\","
                              "\"on_error\":\"fail\",\"queue_size\":0}", write_file("nofield.jsonl", "{\"output\":\"c\"}\n"));
    d = make_data(cfg);
    {
        batch_t b = batch_alloc(d);
        RMKV_EXPECT(RMKV_ERR_FORMAT, rmkv_data_next(d, b.tokens, b.targets, b.B * b.T, &b.info));
        assert_non_null(strstr(rmkv_last_error(), "nofield.jsonl:1"));
        assert_non_null(strstr(rmkv_last_error(), "\"input\""));
        batch_free(&b);
    }
    rmkv_data_free(d);
    /* on_error skip: bad lines skipped with a warning */
    rmkv_set_log_callback(count_warnings, NULL, RMKV_LOG_WARN);
    snprintf(cfg, sizeof cfg, "{\"sources\":[{\"path\":\"%s\"}],\"batch_size\":4,\"n_tokens\":8,\"walk\":\"sequential\","
                              "\"on_error\":\"skip\"}", bad);
    d = make_data(cfg);
    {
        batch_t b = batch_alloc(d);
        batch_next(d, &b);
        batch_free(&b);
    }
    rmkv_data_free(d);
    rmkv_set_log_callback(NULL, NULL, RMKV_LOG_WARN);
    assert_true(g_warnings >= 1);
    rmkv_data_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_windows_sync),
        cmocka_unit_test(text_windows_thread),
        cmocka_unit_test(text_folder),
        cmocka_unit_test(text_large_document),
        cmocka_unit_test(jsonl_default_format),
        cmocka_unit_test(jsonl_chat_format),
        cmocka_unit_test(jsonl_truncation),
        cmocka_unit_test(jsonl_shuffled_epochs),
        cmocka_unit_test(mixing_ratios),
        cmocka_unit_test(determinism),
        cmocka_unit_test(resume_shuffled_thread),
        cmocka_unit_test(resume_random_sync),
        cmocka_unit_test(resume_sequential_thread),
        cmocka_unit_test(state_refused),
        cmocka_unit_test(validation_split),
        cmocka_unit_test(validation_text),
        cmocka_unit_test(errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
