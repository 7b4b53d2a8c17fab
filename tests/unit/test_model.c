/* Models: create, save and load (F32, BF16, F16; mapped, read, from memory,
   zero-copy), config validation messages, fingerprints. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static const char *cfg =
    "{\"vocab_size\":50,\"d_model\":16,\"n_layers\":2,\"n_heads\":2,\"memory_slots\":3,\"segment_len\":6,\"cell\":\"lstm\"}";

/* The logits after 9 tokens, in fp32 products (a 16-bit file's weights widened
   exactly). */
static void logits_of(rmkv_model *m, float *out) {
    rmkv_session *s = NULL;
    int32_t toks[9] = {1, 5, 7, 9, 11, 2, 3, 4, 49};
    rmkv_session_params p = rmkv_session_default_params();
    p.precision = RMKV_PRECISION_FP32;
    RMKV_CHECK(rmkv_session_new(m, &p, &s));
    RMKV_CHECK(rmkv_session_step(s, toks, 9, out));
    rmkv_session_free(s);
}

static void create_is_deterministic(void **state) {
    (void)state;
    rmkv_model *a = make_model(cfg, 42), *b = make_model(cfg, 42), *c = make_model(cfg, 43);
    assert_string_equal(rmkv_model_id(a), rmkv_model_id(b));
    assert_string_not_equal(rmkv_model_id(a), rmkv_model_id(c));
    assert_int_equal(strlen(rmkv_model_id(a)), 64);
    float la[50], lb[50];
    logits_of(a, la);
    logits_of(b, lb);
    assert_memory_equal(la, lb, sizeof la);
    assert_true(rmkv_model_n_params(a) > 0);
    rmkv_model_free(a);
    rmkv_model_free(b);
    rmkv_model_free(c);
}

static void config_defaults_and_json(void **state) {
    (void)state;
    rmkv_model *m = make_model("{\"vocab_size\":10}", 1);
    size_t need = 0;
    RMKV_EXPECT(RMKV_ERR_BUFFER_TOO_SMALL, rmkv_model_config_json(m, NULL, 0, &need));
    char *buf = malloc(need);
    RMKV_CHECK(rmkv_model_config_json(m, buf, need, &need));
    assert_non_null(strstr(buf, "\"d_model\":256"));
    assert_non_null(strstr(buf, "\"cell\":\"gru\""));
    assert_non_null(strstr(buf, "\"pos\":\"rope\""));
    assert_non_null(strstr(buf, "\"ffn\":\"swiglu\""));
    assert_non_null(strstr(buf, "\"ffn_hidden\":704"));
    assert_non_null(strstr(buf, "\"n_kv_heads\":4"));
    free(buf);
    rmkv_model_free(m);
}

static void config_errors_name_key_and_value(void **state) {
    (void)state;
    struct { const char *json, *needle; } cases[] = {
        {"{\"vocab_size\":10,\"cell\":\"rnn\"}", "\"cell\": \"rnn\""},
        {"{\"vocab_size\":10,\"d_model\":30,\"n_heads\":4}", "d_model"},
        {"{\"vocab_size\":10,\"d_model\":12,\"n_heads\":4}", "head_dim"},
        {"{\"vocab_size\":10,\"n_kv_heads\":3}", "n_kv_heads"},
        {"{\"vocab_size\":10,\"segment_len\":0}", "segment_len"},
        {"{\"vocab_size\":10,\"memory_slot\":4}", "unknown key \"memory_slot\""},
        {"{\"vocab_size\":-3}", "vocab_size"},
        {"{\"vocab_size\":10,\"tie_embeddings\":1}", "tie_embeddings"},
        {"{\"vocab_size\":10,\"norm_eps\":\"x\"}", "norm_eps"},
        {"{}", "vocab_size"},
        {"[1,2]", "JSON object"},
        {"{\"vocab_size\":", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        rmkv_model *m = NULL;
        RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_model_create(cases[i].json, NULL, 1, NULL, &m));
        assert_null(m);
        if (!strstr(rmkv_last_error(), cases[i].needle))
            fail_msg("config %s: message '%s' does not name '%s'", cases[i].json, rmkv_last_error(), cases[i].needle);
    }
}

static void save_load_round_trip(void **state) {
    (void)state;
    rmkv_model *m = make_model(cfg, 7);
    float want[50], got[50];
    logits_of(m, want);
    const char *path = tmp_path("model.safetensors");
    RMKV_CHECK(rmkv_model_save(m, path));
    for (int mmap_on = 0; mmap_on < 2; ++mmap_on) {
        rmkv_model_params p = rmkv_model_default_params();
        p.use_mmap = mmap_on;
        rmkv_model *l = NULL;
        RMKV_CHECK(rmkv_model_load(path, &p, &l));
        assert_string_equal(rmkv_model_id(l), rmkv_model_id(m));
        logits_of(l, got);
        assert_memory_equal(want, got, sizeof want);
        rmkv_model_free(l);
    }
    size_t size;
    void *bytes = read_whole(path, &size);
    assert_non_null(bytes);
    for (int zero_copy = 1; zero_copy >= 0; --zero_copy) {
        rmkv_model_params p = rmkv_model_default_params();
        p.flags = zero_copy ? RMKV_MODEL_ZERO_COPY : 0;
        rmkv_model *l = NULL;
        RMKV_CHECK(rmkv_model_load_from_memory(bytes, size, &p, &l));
        if (!zero_copy) memset(bytes, 0, 64); /* the copy does not depend on the buffer */
        logits_of(l, got);
        assert_memory_equal(want, got, sizeof want);
        rmkv_model_free(l);
    }
    free(bytes);
    remove(path);
    rmkv_model_free(m);
}

static void half_precision_files(void **state) {
    (void)state;
    rmkv_model *m = make_model(cfg, 9);
    float want[50], got[50];
    logits_of(m, want);
    rmkv_dtype dts[2] = {RMKV_DTYPE_BF16, RMKV_DTYPE_F16};
    for (int i = 0; i < 2; ++i) {
        const char *path = tmp_path("half.safetensors");
        RMKV_CHECK(rmkv_model_save_as(m, path, dts[i]));
        size_t size, f32_size;
        free(read_whole(path, &size));
        rmkv_model *l = NULL;
        RMKV_CHECK(rmkv_model_load(path, NULL, &l));
        logits_of(l, got);
        double e = rel_err(got, want, 50);
        if (!(e < 0.05)) fail_msg("dtype %d: relative error %g", (int)dts[i], e);
        /* reloading a half-precision model and saving it again is lossless */
        const char *path2 = tmp_path("half2.safetensors");
        RMKV_CHECK(rmkv_model_save(l, path2));
        free(read_whole(path2, &f32_size));
        assert_true(size < f32_size);
        rmkv_model *l2 = NULL;
        RMKV_CHECK(rmkv_model_load(path2, NULL, &l2));
        assert_string_equal(rmkv_model_id(l2), rmkv_model_id(l));
        /* the file's matrices stay 16-bit and are widened exactly in the products:
           the same values up to the order of the sums (half_weights_compute_in_f32) */
        float again[50];
        logits_of(l2, again);
        double e2 = rel_err(again, got, 50);
        if (!(e2 < 1e-5)) fail_msg("dtype %d: reloaded F32 copy differs by %g", (int)dts[i], e2);
        remove(path);
        remove(path2);
        rmkv_model_free(l);
        rmkv_model_free(l2);
    }
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_model_save_as(m, tmp_path("x"), (rmkv_dtype)7));
    rmkv_model_free(m);
}

/* Logits of `n` tokens stepped into s (prefill when n > 1), and of `decode` more,
   one at a time, all compared with those of the same tokens in r. */
static double worst_step(rmkv_session *s, rmkv_session *r, const int32_t *toks, size_t n, size_t decode, size_t V,
                         float *a, float *b) {
    RMKV_CHECK(rmkv_session_step(s, toks, n, a));
    RMKV_CHECK(rmkv_session_step(r, toks, n, b));
    double worst = rel_err(a, b, V);
    for (size_t i = 0; i < decode; ++i) {
        RMKV_CHECK(rmkv_session_step(s, toks + n + i, 1, a));
        RMKV_CHECK(rmkv_session_step(r, toks + n + i, 1, b));
        double e = rel_err(a, b, V);
        if (!(e <= worst)) worst = e;
    }
    return worst;
}

/* A model loaded from a BF16 or F16 file keeps its matrices in that format (CPU)
   and, with sessions of precision FP32, computes in fp32 with each weight widened
   exactly: prefill (the head in
   several widened panels), decoding, sessions stepped together, state tuning and
   training must give what the same weights loaded from an F32 file give, up to the
   order of the sums; training widens the weights and then matches bit for bit. */
static void half_weights_compute_in_f32(void **state) {
    (void)state;
    const char *cfgs[2] = {
        "{\"vocab_size\":5000,\"d_model\":64,\"n_layers\":2,\"n_heads\":4,\"memory_slots\":4,"
        "\"segment_len\":40,\"cell\":\"gru\"}",
        "{\"vocab_size\":300,\"d_model\":48,\"n_layers\":1,\"n_heads\":2,\"n_kv_heads\":1,\"memory_slots\":3,"
        "\"segment_len\":20,\"cell\":\"minimal\",\"ffn\":\"gelu\",\"tie_embeddings\":true,\"pos\":\"learned\"}"};
    const size_t Vs[2] = {5000, 300};
    const rmkv_dtype halves[2] = {RMKV_DTYPE_BF16, RMKV_DTYPE_F16};
    for (int h = 0; h < 2; ++h)
    for (int c = 0; c < 2; ++c) {
        const size_t V = Vs[c];
        const char *dt = h ? "f16" : "bf16";
        rmkv_model *m = make_model(cfgs[c], 21 + c);
        const char *p16 = tmp_path("w16.safetensors"), *p32 = tmp_path("w32.safetensors");
        RMKV_CHECK(rmkv_model_save_as(m, p16, halves[h]));
        rmkv_model *a = NULL, *b = NULL;
        RMKV_CHECK(rmkv_model_load(p16, NULL, &a));
        RMKV_CHECK(rmkv_model_save(a, p32));
        RMKV_CHECK(rmkv_model_load(p32, NULL, &b));
        assert_string_equal(rmkv_model_id(a), rmkv_model_id(b));
        /* saved in its format again: the same bytes as the file it came from */
        const char *p16b = tmp_path("w16b.safetensors");
        RMKV_CHECK(rmkv_model_save_as(a, p16b, halves[h]));
        size_t n1, n2;
        void *f1 = read_whole(p16, &n1), *f2 = read_whole(p16b, &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(f1, f2, n1);
        free(f1), free(f2);

        int32_t toks[160];
        random_tokens(toks, 160, (int32_t)V, 5 + c);
        float *la = malloc(sizeof(float) * 3 * V), *lb = malloc(sizeof(float) * 3 * V);
        rmkv_session *sa[3], *sb[3];
        rmkv_session_params fp32 = rmkv_session_default_params();
        fp32.precision = RMKV_PRECISION_FP32;
        for (int i = 0; i < 3; ++i) {
            RMKV_CHECK(rmkv_session_new(a, &fp32, &sa[i]));
            RMKV_CHECK(rmkv_session_new(b, &fp32, &sb[i]));
        }
        /* prefill of 50 (a whole segment, a memory rewrite, 10 more), 60 decoded over
           the next segment boundaries */
        double worst = worst_step(sa[0], sb[0], toks, 50, 60, V, la, lb);
        /* three sessions at different positions stepped together */
        double e = worst_step(sa[1], sb[1], toks + 3, 17, 0, V, la, lb);
        if (!(e <= worst)) worst = e;
        for (int k = 0; k < 25; ++k) {
            int32_t t3[3] = {toks[110 + k], toks[135 + k], toks[k]};
            RMKV_CHECK(rmkv_sessions_step(sa, 3, t3, la));
            RMKV_CHECK(rmkv_sessions_step(sb, 3, t3, lb));
            e = rel_err(la, lb, 3 * V);
            if (!(e <= worst)) worst = e;
        }
        print_message("config %d: %s-weight logits against f32, max relative error %.2e\n", c, dt, worst);
        if (!(worst < 1e-5)) fail_msg("config %d: %s-weight logits differ from f32 by %g", c, dt, worst);

        /* state tuning reads the 16-bit matrices through an f32 copy; training widens
           them in the model: both then match the F32 model bit for bit */
        const size_t N = 45;
        int32_t tg[2 * N];
        for (size_t i = 0; i < 2 * N; ++i) tg[i] = i % N == N - 1 ? -1 : toks[i + 1];
        rmkv_batch batch;
        memset(&batch, 0, sizeof batch);
        batch.struct_size = sizeof batch;
        batch.batch_size = 2, batch.n_tokens = N, batch.tokens = toks, batch.targets = tg;
        rmkv_train_params tp = rmkv_train_default_params();
        tp.precision = RMKV_PRECISION_FP32;
        for (int tune = 1; tune >= 0; --tune) {
            rmkv_trainer *ta = NULL, *tb = NULL;
            if (tune) {
                RMKV_CHECK(rmkv_state_tuner_new(a, &tp, &ta));
                RMKV_CHECK(rmkv_state_tuner_new(b, &tp, &tb));
            } else {
                RMKV_CHECK(rmkv_trainer_new(a, &tp, &ta));
                RMKV_CHECK(rmkv_trainer_new(b, &tp, &tb));
            }
            for (int step = 0; step < 2; ++step) {
                rmkv_train_stats x, y;
                x.struct_size = y.struct_size = sizeof x;
                RMKV_CHECK(rmkv_train_step(ta, &batch, &x));
                RMKV_CHECK(rmkv_train_step(tb, &batch, &y));
                if (x.loss != y.loss)
                    fail_msg("%s, %s step %d: loss %.9g against %.9g", dt, tune ? "state tuning" : "training", step,
                             x.loss, y.loss);
            }
            rmkv_trainer_free(ta);
            rmkv_trainer_free(tb);
        }
        assert_string_equal(rmkv_model_id(a), rmkv_model_id(b));
        for (int i = 0; i < 3; ++i) rmkv_session_free(sa[i]), rmkv_session_free(sb[i]);
        free(la), free(lb);
        remove(p16), remove(p32), remove(p16b);
        rmkv_model_free(a), rmkv_model_free(b), rmkv_model_free(m);
    }
}

/* Sessions of a BF16 model with precision BF16 (AUTO: the same where the CPU has
   AVX512-BF16) round the inputs of all their products with the weights to bf16.
   Their logits must differ from FP32's (the bf16 products ran) by no more than the
   rounding of the weights to bf16 moves FP32's logits: both round the products'
   inputs to bf16's 8 significant bits (a wrong product would move them as much as
   the layers do, hundreds of times more; fp32 products, which differ in the order
   of their sums only, a hundred times less). Sessions of the two precisions are not
   stepped together; a clone keeps its precision. Without AVX512-BF16 (a second run
   of this program under ONEDNN_MAX_CPU_ISA below it): BF16 is a BACKEND error and
   AUTO is FP32, bit for bit. */
static void bf16_precision_sessions(void **state) {
    (void)state;
    const char *c = "{\"vocab_size\":2000,\"d_model\":64,\"n_layers\":2,\"n_heads\":4,\"memory_slots\":24,"
                    "\"segment_len\":40,\"cell\":\"gru\"}";
    const size_t V = 2000, P = 50, D = 60;
    rmkv_model *m = make_model(c, 31), *w = NULL;
    const char *path = tmp_path("bf16.safetensors");
    RMKV_CHECK(rmkv_model_save_as(m, path, RMKV_DTYPE_BF16));
    RMKV_CHECK(rmkv_model_load(path, NULL, &w));
    rmkv_session_params fp32 = rmkv_session_default_params(), bf16 = fp32, bad = fp32;
    fp32.precision = RMKV_PRECISION_FP32;
    bf16.precision = RMKV_PRECISION_BF16;
    rmkv_session *f = NULL, *a = NULL, *x = NULL, *r = NULL;
    bad.precision = 3;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_new(w, &bad, &x));
    assert_non_null(strstr(rmkv_last_error(), "precision"));
    const rmkv_status got = rmkv_session_new(w, &bf16, &x);
    const int has_bf16 = got == RMKV_OK;
    if (!has_bf16) {
        assert_int_equal(got, RMKV_ERR_BACKEND);
        assert_non_null(strstr(rmkv_last_error(), "bf16"));
    }
    print_message("bf16 products: %s\n", has_bf16 ? "yes" : "no (BF16 refused, AUTO is FP32)");
    RMKV_CHECK(rmkv_session_new(w, &fp32, &f));
    RMKV_CHECK(rmkv_session_new(w, NULL, &a));
    RMKV_CHECK(rmkv_session_new(m, &fp32, &r));

    int32_t toks[P + D];
    random_tokens(toks, P + D, (int32_t)V, 8);
    float *lf = malloc(sizeof(float) * 2 * V), *la = malloc(sizeof(float) * 2 * V), *lr = malloc(sizeof(float) * V);
    double worst = 0, weights = 0;
    for (size_t i = 0; i <= D; ++i) {  /* a prefill of P (a segment, its memory rewrite, 10 more), then D decoded */
        const int32_t *t = i ? toks + P + i - 1 : toks;
        const size_t n = i ? 1 : P;
        RMKV_CHECK(rmkv_session_step(f, t, n, lf));
        RMKV_CHECK(rmkv_session_step(a, t, n, la));
        RMKV_CHECK(rmkv_session_step(r, t, n, lr));
        if (x) {
            float *lx = la + V;
            RMKV_CHECK(rmkv_session_step(x, t, n, lx));
            assert_memory_equal(la, lx, sizeof(float) * V);  /* AUTO is BF16 here */
        }
        const double e = rel_err(la, lf, V), e_w = rel_err(lf, lr, V);
        if (e > worst) worst = e;
        if (e_w > weights) weights = e_w;
    }
    print_message("largest relative difference from FP32: bf16 products %.2e, bf16 weights %.2e\n", worst, weights);
    if (has_bf16) {
        /* fp32 products differ only in the order of their sums (about 1e-7) */
        if (!(worst > 1e-2 * weights)) fail_msg("precision BF16 moved the logits by %g only: no bf16 product ran", worst);
        if (!(worst <= 2 * weights))
            fail_msg("bf16 products move the logits by %g, more than twice what bf16 weights do (%g)", worst, weights);
        rmkv_session *two[2] = {a, f};
        int32_t t2[2] = {1, 2};
        RMKV_EXPECT(RMKV_ERR_MISMATCH, rmkv_sessions_step(two, 2, t2, NULL));
        assert_non_null(strstr(rmkv_last_error(), "precision"));
    } else if (worst != 0) {
        fail_msg("AUTO without bf16 products differs from FP32 by %g", worst);
    }
    /* The bf16 products of one row and of 12 rows (AVX512-BF16 dot products, one row
       of W at a time: in one group of rows, then in two) and of 32 rows (oneDNN's
       bf16 product), each against FP32. N FP32 sessions after one token each,
       their states loaded into sessions of the default precision, then one more
       token three ways: the FP32 sessions one by one, the others stepped together
       (N rows), and clones of those one by one. */
    for (int round = 0; round < 2; ++round) {
        enum { MAX_N = 32 };
        const int N = round ? 32 : 12;
        rmkv_session *s32[MAX_N], *sa[MAX_N], *sc[MAX_N];
        int32_t tn[MAX_N];
        float *r32 = malloc(sizeof(float) * N * V), *ra = malloc(sizeof(float) * N * V),
              *rc = malloc(sizeof(float) * N * V);
        void *buf = NULL;
        for (int i = 0; i < N; ++i) {
            RMKV_CHECK(rmkv_session_new(w, &fp32, &s32[i]));
            RMKV_CHECK(rmkv_session_step(s32[i], toks + i, 1, NULL));
            size_t size = 0;
            RMKV_CHECK(rmkv_session_state_size(s32[i], &size));
            buf = realloc(buf, size);
            RMKV_CHECK(rmkv_session_state_save(s32[i], buf, size, &size));
            RMKV_CHECK(rmkv_session_new(w, NULL, &sa[i]));
            RMKV_CHECK(rmkv_session_state_load(sa[i], buf, size));
            RMKV_CHECK(rmkv_session_clone(sa[i], &sc[i]));
            tn[i] = toks[40 + i];
        }
        RMKV_CHECK(rmkv_sessions_step(sa, (size_t)N, tn, ra));
        double e_rows = 0, e_one = 0;
        for (int i = 0; i < N; ++i) {
            RMKV_CHECK(rmkv_session_step(s32[i], tn + i, 1, r32 + i * V));
            RMKV_CHECK(rmkv_session_step(sc[i], tn + i, 1, rc + i * V));
            const double er = rel_err(ra + i * V, r32 + i * V, V), eo = rel_err(rc + i * V, r32 + i * V, V);
            if (er > e_rows) e_rows = er;
            if (eo > e_one) e_one = eo;
        }
        print_message("one token from the same states, against FP32: %d sessions stepped together %.2e, "
                      "one by one %.2e\n", N, e_rows, e_one);
        if (has_bf16) {
            if (!(e_rows > 1e-2 * weights && e_rows <= 2 * weights))
                fail_msg("%d sessions stepped together differ from FP32 by %g (bf16 weights: %g)", N, e_rows, weights);
            if (!(e_one > 1e-2 * weights && e_one <= 2 * weights))
                fail_msg("a session stepped alone differs from FP32 by %g (bf16 weights: %g)", e_one, weights);
        } else if (!(e_rows < 1e-5 && e_one == 0)) {
            fail_msg("without bf16 products: %g stepped together, %g alone, against FP32", e_rows, e_one);
        }
        for (int i = 0; i < N; ++i) rmkv_session_free(s32[i]), rmkv_session_free(sa[i]), rmkv_session_free(sc[i]);
        free(r32), free(ra), free(rc), free(buf);
    }
    /* A caller built before `precision` existed passes a smaller struct_size, with
       anything after n_threads: its sessions take the default, AUTO. */
    {
        rmkv_session_params old;
        memset(&old, 0xff, sizeof old);
        old.struct_size = offsetof(rmkv_session_params, precision);
        old.n_threads = 0;
        rmkv_session *o = NULL, *d = NULL;
        RMKV_CHECK(rmkv_session_new(w, &old, &o));
        RMKV_CHECK(rmkv_session_new(w, NULL, &d));
        RMKV_CHECK(rmkv_session_step(o, toks, P, lf));
        RMKV_CHECK(rmkv_session_step(d, toks, P, la));
        assert_memory_equal(lf, la, sizeof(float) * V);
        rmkv_session_free(o), rmkv_session_free(d);
    }
    /* Without bf16-stored weights precision changes nothing: sessions of the F32
       model of either precision step together */
    {
        rmkv_session *mixed[2] = {NULL, NULL};
        RMKV_CHECK(rmkv_session_new(m, &fp32, &mixed[0]));
        RMKV_CHECK(rmkv_session_new(m, NULL, &mixed[1]));
        int32_t t2[2] = {3, 4};
        RMKV_CHECK(rmkv_sessions_step(mixed, 2, t2, NULL));
        rmkv_session_free(mixed[0]), rmkv_session_free(mixed[1]);
    }
    /* a clone computes as its original: the same prefill after it, bit for bit */
    rmkv_session *k = NULL;
    RMKV_CHECK(rmkv_session_clone(a, &k));
    RMKV_CHECK(rmkv_session_step(a, toks, 30, la));
    RMKV_CHECK(rmkv_session_step(k, toks, 30, la + V));
    assert_memory_equal(la, la + V, sizeof(float) * V);
    rmkv_session *pair[2] = {a, k};
    RMKV_CHECK(rmkv_sessions_step(pair, 2, toks, la));

    rmkv_session_free(k), rmkv_session_free(f), rmkv_session_free(a), rmkv_session_free(x), rmkv_session_free(r);
    free(lf), free(la), free(lr);
    remove(path);
    rmkv_model_free(w), rmkv_model_free(m);
}

static void save_failures_keep_old_file(void **state) {
    (void)state;
    rmkv_model *m = make_model(cfg, 1);
    RMKV_EXPECT(RMKV_ERR_IO, rmkv_model_save(m, "/nonexistent-dir/model.safetensors"));
    assert_non_null(strstr(rmkv_last_error(), "/nonexistent-dir/model.safetensors"));
    rmkv_model *l = NULL;
    RMKV_EXPECT(RMKV_ERR_IO, rmkv_model_load("/nonexistent-dir/model.safetensors", NULL, &l));
    rmkv_model_free(m);
}

static void every_option_builds(void **state) {
    (void)state;
    const char *cells[] = {"gru", "lstm", "minimal"}, *pos[] = {"rope", "learned", "sincos"};
    const char *norms[] = {"layernorm", "rmsnorm"}, *ffns[] = {"swiglu", "gelu", "none"};
    char json[512];
    for (int c = 0; c < 3; ++c)
        for (int p = 0; p < 3; ++p)
            for (int n = 0; n < 2; ++n)
                for (int f = 0; f < 3; ++f) {
                    snprintf(json, sizeof json,
                             "{\"vocab_size\":50,\"d_model\":16,\"n_layers\":1,\"n_heads\":4,\"n_kv_heads\":2,"
                             "\"memory_slots\":2,\"segment_len\":4,\"cell\":\"%s\",\"pos\":\"%s\",\"norm\":\"%s\","
                             "\"ffn\":\"%s\",\"tie_embeddings\":%s}",
                             cells[c], pos[p], norms[n], ffns[f], (c + p + f) % 2 ? "true" : "false");
                    rmkv_model *m = make_model(json, 3);
                    float l[50];
                    logits_of(m, l);
                    for (int i = 0; i < 50; ++i) assert_true(isfinite(l[i]));
                    rmkv_model_free(m);
                }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_is_deterministic),
        cmocka_unit_test(config_defaults_and_json),
        cmocka_unit_test(config_errors_name_key_and_value),
        cmocka_unit_test(save_load_round_trip),
        cmocka_unit_test(half_precision_files),
        cmocka_unit_test(half_weights_compute_in_f32),
        cmocka_unit_test(bf16_precision_sessions),
        cmocka_unit_test(save_failures_keep_old_file),
        cmocka_unit_test(every_option_builds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
