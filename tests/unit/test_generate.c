/* The sampler's filters on crafted logits (exact kept sets, penalties change
   exactly the intended logits, bias and bans), empirical frequencies of session
   draws against the filtered distribution (chi-square), and
   rmkv_session_generate: streamed pieces concatenate to the decoded text, stop
   tokens, stop strings spanning token boundaries, cancelling, the same seed
   giving the same text, and the chat turn. */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#define NV 16

static rmkv_sampler_params plain(void) {
    rmkv_sampler_params p = rmkv_sampler_default_params();
    p.temperature = 1.0f;
    p.top_p = 1.0f;
    return p;
}

/* Logits with probabilities 1/2, 1/4, 1/8, ... at temperature 1 (token i has 2^-(i+1),
   the rest of the mass spread over the last token), shuffled by a fixed permutation. */
static const int perm[NV] = {7, 2, 11, 0, 14, 5, 9, 3, 12, 1, 15, 6, 10, 4, 13, 8};
static void halving_logits(float *l) {
    for (int i = 0; i < NV; ++i) l[perm[i]] = (float)log(i < NV - 1 ? pow(0.5, i + 1) : pow(0.5, NV - 1));
}

static int kept_set(const float *probs, int *kept) {
    int n = 0;
    for (int i = 0; i < NV; ++i)
        if (probs[i] > 0) kept[n++] = i;
    return n;
}

static void filters_keep_exact_sets(void **state) {
    (void)state;
    float l[NV], probs[NV];
    int kept[NV];
    halving_logits(l);
    rmkv_sampler_params p = plain();
    /* No filter: the softmax itself. */
    RMKV_CHECK(rmkv_sampler_probs(l, NV, NULL, 0, &p, probs));
    for (int i = 0; i < NV - 1; ++i) assert_float_equal(probs[perm[i]], pow(0.5, i + 1), 1e-6);
    /* top_k = 3: exactly the three most likely, renormalised (4/7, 2/7, 1/7). */
    p.top_k = 3;
    RMKV_CHECK(rmkv_sampler_probs(l, NV, NULL, 0, &p, probs));
    assert_int_equal(kept_set(probs, kept), 3);
    assert_float_equal(probs[perm[0]], 4.0 / 7, 1e-6);
    assert_float_equal(probs[perm[1]], 2.0 / 7, 1e-6);
    assert_float_equal(probs[perm[2]], 1.0 / 7, 1e-6);
    /* top_p = 0.8: 1/2 + 1/4 = 0.75 < 0.8, so the smallest set reaching it has three. */
    p.top_k = 0;
    p.top_p = 0.8f;
    RMKV_CHECK(rmkv_sampler_probs(l, NV, NULL, 0, &p, probs));
    assert_int_equal(kept_set(probs, kept), 3);
    assert_true(probs[perm[0]] > 0 && probs[perm[1]] > 0 && probs[perm[2]] > 0);
    /* top_p = 0.7: two. */
    p.top_p = 0.7f;
    RMKV_CHECK(rmkv_sampler_probs(l, NV, NULL, 0, &p, probs));
    assert_int_equal(kept_set(probs, kept), 2);
    assert_true(probs[perm[0]] > 0 && probs[perm[1]] > 0);
    /* min_p = 0.2: keeps p >= 0.1 (1/2, 1/4, 1/8); 1/16 is out. */
    p.top_p = 1.0f;
    p.min_p = 0.2f;
    RMKV_CHECK(rmkv_sampler_probs(l, NV, NULL, 0, &p, probs));
    assert_int_equal(kept_set(probs, kept), 3);
    assert_true(probs[perm[2]] > 0 && probs[perm[3]] == 0);
    /* min_p = 0.3: keeps p >= 0.15: two. */
    p.min_p = 0.3f;
    RMKV_CHECK(rmkv_sampler_probs(l, NV, NULL, 0, &p, probs));
    assert_int_equal(kept_set(probs, kept), 2);
    /* Temperature 2 flattens: p ~ 2^-(i+1)/2, top_k 2 gives 1/(1 + 2^-1/2). */
    p = plain();
    p.temperature = 2.0f;
    p.top_k = 2;
    RMKV_CHECK(rmkv_sampler_probs(l, NV, NULL, 0, &p, probs));
    assert_float_equal(probs[perm[0]], 1.0 / (1.0 + sqrt(0.5)), 1e-6);
    /* Greedy: one-hot on the argmax. */
    p = plain();
    p.temperature = 0;
    RMKV_CHECK(rmkv_sampler_probs(l, NV, NULL, 0, &p, probs));
    assert_int_equal(kept_set(probs, kept), 1);
    assert_int_equal(kept[0], perm[0]);
}

static void bias_and_bans(void **state) {
    (void)state;
    float l[NV], probs[NV];
    int kept[NV];
    halving_logits(l);
    rmkv_sampler_params p = plain();
    p.temperature = 0;
    int32_t banned[2] = {perm[0], perm[1]};
    p.banned_tokens = banned;
    p.n_banned = 2;
    RMKV_CHECK(rmkv_sampler_probs(l, NV, NULL, 0, &p, probs));
    assert_int_equal(kept_set(probs, kept), 1);
    assert_int_equal(kept[0], perm[2]);
    /* Sampling never draws a banned token, and the others keep their ratios. */
    p.temperature = 1;
    RMKV_CHECK(rmkv_sampler_probs(l, NV, NULL, 0, &p, probs));
    assert_true(probs[perm[0]] == 0 && probs[perm[1]] == 0);
    assert_float_equal(probs[perm[2]] / probs[perm[3]], 2.0, 1e-5);
    /* A bias moves exactly one logit: log-ratio to an unbiased token grows by it. */
    int32_t bt[2] = {perm[9], perm[4]};
    float bv[2] = {3.0f, -INFINITY};
    p.n_banned = 0;
    p.bias_tokens = bt;
    p.bias_values = bv;
    p.n_bias = 2;
    RMKV_CHECK(rmkv_sampler_probs(l, NV, NULL, 0, &p, probs));
    assert_float_equal(log(probs[perm[9]] / probs[perm[0]]), l[perm[9]] + 3.0 - l[perm[0]], 1e-4);
    assert_true(probs[perm[4]] == 0);
    assert_float_equal(log(probs[perm[5]] / probs[perm[0]]), l[perm[5]] - l[perm[0]], 1e-4);
    /* Everything banned, a bad id, a +inf bias: refused. */
    int32_t all[NV];
    for (int i = 0; i < NV; ++i) all[i] = i;
    p.n_bias = 0;
    p.banned_tokens = all;
    p.n_banned = NV;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_sampler_probs(l, NV, NULL, 0, &p, probs));
    all[0] = NV;
    p.n_banned = 1;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_sampler_probs(l, NV, NULL, 0, &p, probs));
    p.n_banned = 0;
    bv[0] = INFINITY;
    p.n_bias = 1;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_sampler_probs(l, NV, NULL, 0, &p, probs));
}

static void penalties_change_exactly_the_intended_logits(void **state) {
    (void)state;
    float l[NV], probs[NV];
    for (int i = 0; i < NV; ++i) l[i] = (float)(i % 5) - 2.0f + 0.1f * (float)i; /* signs vary */
    /* The last 6: token 3 three times, 9 twice, 5 once; token 1 is out of the window. */
    const int32_t older[7] = {1, 3, 3, 9, 5, 9, 3};
    rmkv_sampler_params p = plain();
    p.repetition_penalty = 1.5f;
    p.presence_penalty = 0.25f;
    p.frequency_penalty = 0.125f;
    p.penalty_window = 6;
    RMKV_CHECK(rmkv_sampler_probs(l, NV, older, 7, &p, probs));
    double expect[NV];
    for (int i = 0; i < NV; ++i) expect[i] = l[i];
    const int counted[3] = {3, 9, 5}, count[3] = {3, 2, 1};
    for (int k = 0; k < 3; ++k) {
        int t = counted[k];
        expect[t] = l[t] > 0 ? l[t] / 1.5 : l[t] * 1.5;
        expect[t] -= 0.25 + 0.125 * count[k];
    }
    /* log p_i - log p_0 = logit'_i - logit'_0 for every token (token 0 is unpenalised). */
    for (int i = 1; i < NV; ++i) assert_float_equal(log(probs[i] / probs[0]), expect[i] - expect[0], 1e-4);
}

/* Chi-square: many draws from one session (sampling does not step, so every draw
   uses the same logits) against the distribution computed here from the logits. */
static void frequencies_match_filtered_distribution(void **state) {
    (void)state;
    enum { VV = 64, DRAWS = 40000 };
    rmkv_model *m = make_model(
        "{\"vocab_size\":64,\"d_model\":16,\"n_layers\":1,\"n_heads\":2,\"memory_slots\":2,\"segment_len\":8}", 11);
    rmkv_session *s = NULL;
    RMKV_CHECK(rmkv_session_new(m, NULL, &s));
    int32_t tok = 3;
    float logits[VV];
    RMKV_CHECK(rmkv_session_step(s, &tok, 1, logits));
    /* Spread the logits so every filter bites. */
    int32_t bt[VV];
    float bv[VV];
    for (int i = 0; i < VV; ++i) {
        bt[i] = i;
        bv[i] = 0.15f * (float)((i * 37) % VV);
    }
    rmkv_sampler_params p = rmkv_sampler_default_params();
    p.temperature = 1.3f;
    p.top_k = 20;
    p.top_p = 0.9f;
    p.min_p = 0.05f;
    p.bias_tokens = bt;
    p.bias_values = bv;
    p.n_bias = VV;
    p.seed = 2024;
    /* The filtered distribution, computed independently. */
    double z[VV], expect[VV];
    int order[VV];
    for (int i = 0; i < VV; ++i) {
        z[i] = (double)(logits[i] + bv[i]);
        order[i] = i;
    }
    for (int i = 0; i < VV; ++i) /* selection sort by logit, descending */
        for (int j = i + 1; j < VV; ++j)
            if (z[order[j]] > z[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    int n = 20;
    double total = 0;
    for (int i = 0; i < n; ++i) total += exp((z[order[i]] - z[order[0]]) / 1.3);
    double mass = 0;
    int keep = 0;
    while (keep < n) {
        mass += exp((z[order[keep]] - z[order[0]]) / 1.3) / total;
        ++keep;
        if (mass >= 0.9) break;
    }
    n = keep;
    int m2 = 0;
    for (int i = 0; i < n; ++i)
        if (exp((z[order[i]] - z[order[0]]) / 1.3) >= 0.05) order[m2++] = order[i];
    n = m2;
    memset(expect, 0, sizeof expect);
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += exp((z[order[i]] - z[order[0]]) / 1.3);
    for (int i = 0; i < n; ++i) expect[order[i]] = exp((z[order[i]] - z[order[0]]) / 1.3) / sum;
    assert_true(n >= 4 && n < 20); /* the filters did cut */
    float probs[VV];
    RMKV_CHECK(rmkv_sampler_probs(logits, VV, NULL, 0, &p, probs));
    for (int i = 0; i < VV; ++i) assert_float_equal(probs[i], expect[i], 1e-5);

    long counts[VV] = {0};
    for (int d = 0; d < DRAWS; ++d) {
        int32_t t;
        RMKV_CHECK(rmkv_session_sample(s, &p, &t));
        counts[t]++;
    }
    double chi2 = 0;
    for (int i = 0; i < VV; ++i) {
        if (expect[i] == 0) {
            assert_int_equal(counts[i], 0); /* a filtered token is never drawn */
            continue;
        }
        double e = expect[i] * DRAWS;
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
    }
    /* df = n - 1; the threshold is far above the 99.9% point for df <= 20 (45.3) */
    print_message("chi-square %.2f with %d degrees of freedom\n", chi2, n - 1);
    assert_true(chi2 < 50.0);
    rmkv_session_free(s);
    rmkv_model_free(m);
}

/* ---- generation ---- */

typedef struct {
    rmkv_model *model;
    const rmkv_tokenizer *tok;
} fixture;

static const char *corpus[] = {
    "The quick brown fox jumps over the lazy dog. The dog sleeps in the sun.",
    "A stitch in time saves nine; the early bird catches the worm every morning.",
    "Caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9: accents and \xe2\x82\xac signs \xe2\x80\x94 and more words, words, words.",
    "She sells sea shells by the sea shore, and the shells she sells are sea shells for sure.",
};

static int setup(void **state) {
    rmkv_tokenizer_train_params tp = rmkv_tokenizer_train_default_params();
    tp.vocab_size = 360;
    rmkv_tokenizer *tok = NULL;
    RMKV_CHECK(rmkv_tokenizer_train_from_texts(corpus, NULL, 4, &tp, &tok));
    fixture *f = calloc(1, sizeof *f);
    RMKV_CHECK(rmkv_model_create("{\"d_model\":32,\"n_layers\":2,\"n_heads\":2,\"memory_slots\":2,\"segment_len\":8}",
                                 tok, 5, NULL, &f->model));
    rmkv_tokenizer_free(tok);
    f->tok = rmkv_model_tokenizer(f->model);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    rmkv_model_free(f->model);
    free(f);
    return 0;
}

typedef struct {
    char text[8192];
    size_t size;
    int pieces, cancel_after;
    size_t ends[512]; /* byte offset after each piece */
} sink;

static int collect(const char *text, size_t size, void *user) {
    sink *k = user;
    assert_true(k->size + size < sizeof k->text);
    memcpy(k->text + k->size, text, size);
    k->size += size;
    if (k->pieces < 512) k->ends[k->pieces] = k->size;
    k->pieces++;
    return k->cancel_after > 0 && k->pieces >= k->cancel_after;
}

/* The reference: sample and step by hand; ids[] and the decoded text. */
static size_t by_hand(rmkv_session *s, const rmkv_sampler_params *p, int n, int32_t *ids, char *text, size_t cap,
                      const rmkv_tokenizer *tok) {
    for (int i = 0; i < n; ++i) {
        RMKV_CHECK(rmkv_session_sample(s, p, &ids[i]));
        RMKV_CHECK(rmkv_session_step(s, &ids[i], 1, NULL));
    }
    size_t size = 0;
    RMKV_CHECK(rmkv_tokenizer_decode(tok, ids, (size_t)n, text, cap, &size));
    return size;
}

static const int32_t prompt[5] = {40, 41, 42, 43, 44};

static void pieces_concatenate_to_decoded_text(void **state) {
    fixture *f = *state;
    rmkv_sampler_params sp = rmkv_sampler_default_params();
    sp.temperature = 1.0f;
    sp.seed = 77;
    rmkv_session *a, *b;
    RMKV_CHECK(rmkv_session_new(f->model, NULL, &a));
    RMKV_CHECK(rmkv_session_new(f->model, NULL, &b));
    RMKV_CHECK(rmkv_session_step(b, prompt, 5, NULL));
    int32_t ids[60];
    static char ref[8192];
    size_t ref_size = by_hand(b, &sp, 60, ids, ref, sizeof ref, f->tok);

    static sink k;
    memset(&k, 0, sizeof k);
    rmkv_generate_params gp = rmkv_generate_default_params();
    gp.sampler = &sp;
    gp.max_tokens = 60;
    gp.on_piece = collect;
    gp.user_data = &k;
    rmkv_generate_result r;
    RMKV_CHECK(rmkv_session_generate(a, f->tok, prompt, 5, &gp, &r));
    assert_int_equal(r.stop_reason, RMKV_STOP_LIMIT);
    assert_int_equal(r.n_tokens, 60);
    assert_int_equal(r.stop_index, -1);
    assert_int_equal(k.size, ref_size);
    assert_int_equal(r.text_size, ref_size);
    assert_memory_equal(k.text, ref, ref_size);
    assert_true(k.pieces > 10); /* streamed, not in one piece */
    /* Every generated token was stepped: both sessions are in the same state. */
    uint64_t pa, pb;
    size_t fa, fb;
    RMKV_CHECK(rmkv_session_position(a, &pa, &fa));
    RMKV_CHECK(rmkv_session_position(b, &pb, &fb));
    assert_int_equal(pa, 65);
    assert_int_equal(pa, pb);
    /* Same seed, same text; another seed, another. */
    rmkv_session *c;
    RMKV_CHECK(rmkv_session_new(f->model, NULL, &c));
    static sink k2;
    memset(&k2, 0, sizeof k2);
    gp.user_data = &k2;
    /* Nothing stepped and no prompt: nothing to sample from. */
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_generate_text(c, f->tok, "", 0, &gp, NULL));
    RMKV_CHECK(rmkv_session_step(c, prompt, 5, NULL));
    memset(&k2, 0, sizeof k2);
    RMKV_CHECK(rmkv_session_generate(c, f->tok, NULL, 0, &gp, NULL));
    assert_int_equal(k2.size, k.size);
    assert_memory_equal(k2.text, k.text, k.size);
    RMKV_CHECK(rmkv_session_reset(c));
    sp.seed = 78;
    memset(&k2, 0, sizeof k2);
    RMKV_CHECK(rmkv_session_generate(c, f->tok, prompt, 5, &gp, NULL));
    assert_true(k2.size != k.size || memcmp(k2.text, k.text, k.size) != 0);
    rmkv_session_free(a);
    rmkv_session_free(b);
    rmkv_session_free(c);
}

static void stop_tokens_strings_and_cancel(void **state) {
    fixture *f = *state;
    rmkv_sampler_params sp = rmkv_sampler_default_params();
    sp.temperature = 1.0f;
    sp.seed = 5;
    rmkv_session *ref_s;
    RMKV_CHECK(rmkv_session_new(f->model, NULL, &ref_s));
    RMKV_CHECK(rmkv_session_step(ref_s, prompt, 5, NULL));
    int32_t ids[80];
    static char ref[8192];
    by_hand(ref_s, &sp, 80, ids, ref, sizeof ref, f->tok);
    rmkv_session_free(ref_s);

    /* The pieces of the unconstrained run show where token texts meet. */
    static sink whole;
    memset(&whole, 0, sizeof whole);
    rmkv_generate_params gp = rmkv_generate_default_params();
    gp.sampler = &sp;
    gp.max_tokens = 80;
    gp.on_piece = collect;
    gp.user_data = &whole;
    rmkv_session *s;
    RMKV_CHECK(rmkv_session_new(f->model, NULL, &s));
    RMKV_CHECK(rmkv_session_generate(s, f->tok, prompt, 5, &gp, NULL));

    /* A stop string across a piece boundary (2 bytes before it, 2 after, ASCII). */
    int found = -1;
    for (int i = 1; i < whole.pieces - 1 && found < 0; ++i) {
        size_t b = whole.ends[i];
        if (b < 2 || b + 2 > whole.size || whole.ends[i] - whole.ends[i - 1] < 2 || whole.ends[i + 1] - b < 2) continue;
        int ascii = 1;
        for (size_t j = b - 2; j < b + 2; ++j) ascii &= (unsigned char)whole.text[j] < 0x80;
        if (ascii) found = i;
    }
    assert_true(found > 0);
    char stop[5];
    memcpy(stop, whole.text + whole.ends[found] - 2, 4);
    stop[4] = 0;
    size_t at = (size_t)(strstr(whole.text, stop) - whole.text); /* the first occurrence */
    const char *stops[2] = {"\x01never", stop};
    static sink k;
    memset(&k, 0, sizeof k);
    gp.user_data = &k;
    gp.stop_strings = stops;
    gp.n_stop_strings = 2;
    rmkv_generate_result r;
    RMKV_CHECK(rmkv_session_reset(s));
    RMKV_CHECK(rmkv_session_generate(s, f->tok, prompt, 5, &gp, &r));
    assert_int_equal(r.stop_reason, RMKV_STOP_STRING);
    assert_int_equal(r.stop_index, 1);
    assert_int_equal(k.size, at);
    assert_memory_equal(k.text, whole.text, at);
    assert_null(memmem(k.text, k.size, stop, 2)); /* not even its start came out */

    /* A stop token: the first occurrence of the 7th token; its text is not emitted. */
    int32_t st = ids[6];
    int first = 0;
    while (ids[first] != st) ++first;
    gp.n_stop_strings = 0;
    int32_t stop_ids[2] = {-5, st};
    gp.stop_tokens = stop_ids;
    gp.n_stop_tokens = 2;
    memset(&k, 0, sizeof k);
    RMKV_CHECK(rmkv_session_reset(s));
    RMKV_CHECK(rmkv_session_generate(s, f->tok, prompt, 5, &gp, &r));
    assert_int_equal(r.stop_reason, RMKV_STOP_TOKEN);
    assert_int_equal(r.stop_index, 1);
    assert_int_equal(r.n_tokens, first + 1);
    static char before[8192];
    size_t nb = 0;
    if (first > 0) {
        RMKV_CHECK(rmkv_tokenizer_decode(f->tok, ids, (size_t)first, before, sizeof before, &nb));
    }
    assert_int_equal(k.size, nb);
    assert_memory_equal(k.text, before, nb);
    uint64_t pos;
    size_t fill;
    RMKV_CHECK(rmkv_session_position(s, &pos, &fill));
    assert_int_equal(pos, 5 + first + 1); /* the stop token was stepped */

    /* Cancel after the third piece. */
    gp.n_stop_tokens = 0;
    memset(&k, 0, sizeof k);
    k.cancel_after = 3;
    RMKV_CHECK(rmkv_session_reset(s));
    RMKV_CHECK(rmkv_session_generate(s, f->tok, prompt, 5, &gp, &r));
    assert_int_equal(r.stop_reason, RMKV_STOP_CANCELLED);
    assert_int_equal(k.pieces, 3);
    assert_true(r.n_tokens < 80);
    assert_memory_equal(k.text, whole.text, k.size);

    /* Bad params. */
    gp.max_tokens = -1;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_generate(s, f->tok, NULL, 0, &gp, NULL));
    gp.max_tokens = 4;
    const char *empty[1] = {""};
    gp.stop_strings = empty;
    gp.n_stop_strings = 1;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_generate(s, f->tok, NULL, 0, &gp, NULL));
    rmkv_session_free(s);
}

/* A chat turn = user text, <start>, the answer up to <end> (stepped), flush. */
static void chat_turn_form(void **state) {
    fixture *f = *state;
    const int32_t start = rmkv_tokenizer_token_id(f->tok, "<start>"), end = rmkv_tokenizer_token_id(f->tok, "<end>");
    assert_true(start >= 0 && end >= 0);
    rmkv_sampler_params sp = rmkv_sampler_default_params();
    sp.temperature = 0.9f;
    sp.seed = 3;
    /* Bias <end> up so some turns end by it and others by the limit. */
    float bv = 4.0f;
    sp.bias_tokens = &end;
    sp.bias_values = &bv;
    sp.n_bias = 1;
    rmkv_generate_params gp = rmkv_generate_default_params();
    gp.sampler = &sp;
    gp.max_tokens = 12;
    rmkv_session *a, *b;
    RMKV_CHECK(rmkv_session_new(f->model, NULL, &a));
    RMKV_CHECK(rmkv_session_new(f->model, NULL, &b));
    const char *turns[3] = {"Hello there, fox.", "The dog sleeps?", "sea shells"};
    int by_end = 0, by_limit = 0;
    for (int t = 0; t < 3; ++t) {
        rmkv_generate_result r;
        RMKV_CHECK(rmkv_session_chat_turn(a, f->tok, turns[t], strlen(turns[t]), &gp, &r));
        /* By hand on b. */
        int32_t ids[64];
        size_t n = 0;
        RMKV_CHECK(rmkv_tokenizer_encode(f->tok, turns[t], strlen(turns[t]), ids, 63, &n));
        ids[n++] = start;
        RMKV_CHECK(rmkv_session_step(b, ids, n, NULL));
        int i = 0, ended = 0;
        for (; i < 12; ++i) {
            int32_t x;
            RMKV_CHECK(rmkv_session_sample(b, &sp, &x));
            RMKV_CHECK(rmkv_session_step(b, &x, 1, NULL));
            if (x == end) {
                ended = 1;
                ++i;
                break;
            }
        }
        if (!ended) RMKV_CHECK(rmkv_session_step(b, &end, 1, NULL));
        RMKV_CHECK(rmkv_session_flush(b));
        assert_int_equal(r.n_tokens, i);
        assert_int_equal(r.stop_reason, ended ? RMKV_STOP_TOKEN : RMKV_STOP_LIMIT);
        by_end += ended;
        by_limit += !ended;
        uint64_t pa, pb;
        size_t fa, fb;
        RMKV_CHECK(rmkv_session_position(a, &pa, &fa));
        RMKV_CHECK(rmkv_session_position(b, &pb, &fb));
        assert_int_equal(pa, pb);
        assert_int_equal(fa, 0); /* flushed */
        size_t sa, sb;
        RMKV_CHECK(rmkv_session_state_size(a, &sa));
        RMKV_CHECK(rmkv_session_state_size(b, &sb));
        assert_int_equal(sa, sb);
        void *ba = malloc(sa), *bb = malloc(sb);
        RMKV_CHECK(rmkv_session_state_save(a, ba, sa, &sa));
        RMKV_CHECK(rmkv_session_state_save(b, bb, sb, &sb));
        assert_memory_equal(ba, bb, sa);
        free(ba);
        free(bb);
    }
    print_message("chat turns ended by <end>: %d, by the limit: %d\n", by_end, by_limit);
    rmkv_session_free(a);
    rmkv_session_free(b);
}

int main(void) {
    const struct CMUnitTest sampler[] = {
        cmocka_unit_test(filters_keep_exact_sets),
        cmocka_unit_test(bias_and_bans),
        cmocka_unit_test(penalties_change_exactly_the_intended_logits),
        cmocka_unit_test(frequencies_match_filtered_distribution),
    };
    const struct CMUnitTest gen[] = {
        cmocka_unit_test(pieces_concatenate_to_decoded_text),
        cmocka_unit_test(stop_tokens_strings_and_cancel),
        cmocka_unit_test(chat_turn_form),
    };
    int failed = cmocka_run_group_tests(sampler, NULL, NULL);
    return failed + cmocka_run_group_tests(gen, setup, teardown);
}
