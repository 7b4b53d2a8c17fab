/* Training through the ABI: the loss falls, gradient accumulation equals one big
   batch, a run resumed from a checkpoint reaches bitwise the same weights, bad
   batches are refused, the memory carries a key across segments, activation
   recomputation gives bitwise the gradients of a full tape, sequences computed
   at once agree with one after another, and bf16 follows fp32. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static const char *cfg =
    "{\"vocab_size\":32,\"d_model\":24,\"n_layers\":2,\"n_heads\":2,\"memory_slots\":3,\"segment_len\":6,\"cell\":\"lstm\"}";

#define B 2
#define N 14

static void make_batch(int32_t *tok, int32_t *tg, uint64_t seed) {
    random_tokens(tok, B * N, 32, seed);
    for (int i = 0; i < B * N; ++i) tg[i] = (i % N == N - 1) ? -1 : tok[i + 1];
    tg[3] = -1; /* a masked prompt token */
}

static rmkv_batch batch_with(int32_t *tok, int32_t *tg, size_t bs, size_t n_tokens, size_t n_segments,
                             const int32_t *lens) {
    rmkv_batch b;
    memset(&b, 0, sizeof b);
    b.struct_size = sizeof b;
    b.batch_size = bs;
    b.n_tokens = n_tokens;
    b.tokens = tok;
    b.targets = tg;
    b.n_segments = n_segments;
    b.segment_lens = lens;
    return b;
}

/* bs sequences of N tokens in segments of 6, 5 and 3. */
static rmkv_batch batch_of(int32_t *tok, int32_t *tg, size_t bs) {
    static const int32_t lens[3] = {6, 5, 3};
    return batch_with(tok, tg, bs, N, 3, lens);
}

static rmkv_train_params params(void) {
    rmkv_train_params p = rmkv_train_default_params();
    p.learning_rate = 1e-2f;
    p.warmup_steps = 2;
    p.total_steps = 20;
    return p;
}

static void loss_falls(void **state) {
    (void)state;
    rmkv_model *m = make_model(cfg, 1);
    rmkv_trainer *t = NULL;
    rmkv_train_params p = params();
    int32_t tok[B * N], tg[B * N];
    make_batch(tok, tg, 5);
    rmkv_batch b = batch_of(tok, tg, B);
    RMKV_CHECK(rmkv_trainer_new(m, &p, &t));
    rmkv_train_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    float first = 0;
    for (int i = 0; i < 20; ++i) {
        RMKV_CHECK(rmkv_train_step(t, &b, &st));
        if (i == 0) first = st.loss;
        assert_int_equal(st.step, i + 1);
        assert_int_equal(st.n_targets, B * (N - 1) - 1);
    }
    print_message("loss %.3f -> %.3f\n", first, st.loss);
    assert_true(st.loss < 0.5f * first);
    assert_int_equal(rmkv_trainer_step_count(t), 20);
    /* Sessions of the model see the trained weights, and the model_id changed. */
    rmkv_trainer_free(t);
    rmkv_model_free(m);
}

static void accumulation_equals_one_batch(void **state) {
    (void)state;
    int32_t tok[B * N], tg[B * N];
    make_batch(tok, tg, 9);
    tg[3] = 7; /* equal target counts in both halves: then the means agree */
    rmkv_model *m1 = make_model(cfg, 2), *m2 = make_model(cfg, 2);
    rmkv_trainer *t1 = NULL, *t2 = NULL;
    rmkv_train_params p = params();
    RMKV_CHECK(rmkv_trainer_new(m1, &p, &t1));
    p.grad_accum_steps = 2;
    RMKV_CHECK(rmkv_trainer_new(m2, &p, &t2));
    rmkv_batch both = batch_of(tok, tg, 2), first = batch_of(tok, tg, 1), second = batch_of(tok + N, tg + N, 1);
    for (int i = 0; i < 3; ++i) {
        RMKV_CHECK(rmkv_train_step(t1, &both, NULL));
        RMKV_CHECK(rmkv_train_step(t2, &first, NULL));
        assert_int_equal(rmkv_trainer_step_count(t2), i);
        RMKV_CHECK(rmkv_train_step(t2, &second, NULL));
        assert_int_equal(rmkv_trainer_step_count(t2), i + 1);
    }
    float g1[32], g2[32];
    rmkv_session *s1 = NULL, *s2 = NULL;
    RMKV_CHECK(rmkv_session_new(m1, NULL, &s1));
    RMKV_CHECK(rmkv_session_new(m2, NULL, &s2));
    RMKV_CHECK(rmkv_session_step(s1, tok, N, g1));
    RMKV_CHECK(rmkv_session_step(s2, tok, N, g2));
    double e = rel_err(g2, g1, 32);
    print_message("accumulated vs one batch: relative error %g\n", e);
    assert_true(e < 1e-4);
    rmkv_session_free(s1);
    rmkv_session_free(s2);
    rmkv_trainer_free(t1);
    rmkv_trainer_free(t2);
    rmkv_model_free(m1);
    rmkv_model_free(m2);
}

static void resume_is_bitwise(void **state) {
    (void)state;
    int32_t tok[B * N], tg[B * N];
    rmkv_train_params p = params();
    const char *ckpt = tmp_path("resume.ckpt"), *model_path = tmp_path("resume-start.safetensors");
    /* Uninterrupted: 6 steps. */
    rmkv_model *a = make_model(cfg, 3);
    RMKV_CHECK(rmkv_model_save(a, model_path));
    rmkv_trainer *ta = NULL;
    RMKV_CHECK(rmkv_trainer_new(a, &p, &ta));
    for (int i = 0; i < 6; ++i) {
        make_batch(tok, tg, 100 + i);
        rmkv_batch b = batch_of(tok, tg, B);
        RMKV_CHECK(rmkv_train_step(ta, &b, NULL));
        if (i == 2) RMKV_CHECK(rmkv_trainer_save_checkpoint(ta, ckpt, "{\"next_batch\":3}"));
    }
    /* Interrupted after 3: a new process would load the checkpoint as the model,
       then resume the trainer from it. */
    rmkv_model *b_model = NULL;
    RMKV_CHECK(rmkv_model_load(ckpt, NULL, &b_model));
    rmkv_trainer *tb = NULL;
    RMKV_CHECK(rmkv_trainer_new(b_model, &p, &tb));
    RMKV_CHECK(rmkv_trainer_load_checkpoint(tb, ckpt));
    assert_int_equal(rmkv_trainer_step_count(tb), 3);
    char user[64];
    size_t need;
    RMKV_CHECK(rmkv_checkpoint_user_json(ckpt, user, sizeof user, &need));
    assert_string_equal(user, "{\"next_batch\":3}");
    for (int i = 3; i < 6; ++i) {
        make_batch(tok, tg, 100 + i);
        rmkv_batch b = batch_of(tok, tg, B);
        RMKV_CHECK(rmkv_train_step(tb, &b, NULL));
    }
    assert_string_equal(rmkv_model_id(a), rmkv_model_id(b_model));
    /* A checkpoint of another model shape is refused, and nothing changes. */
    rmkv_model *other = make_model("{\"vocab_size\":32,\"d_model\":16,\"n_layers\":1,\"n_heads\":2}", 1);
    rmkv_trainer *to = NULL;
    RMKV_CHECK(rmkv_trainer_new(other, &p, &to));
    char before[65];
    strcpy(before, rmkv_model_id(other));
    RMKV_EXPECT(RMKV_ERR_MISMATCH, rmkv_trainer_load_checkpoint(to, ckpt));
    assert_string_equal(before, rmkv_model_id(other));
    RMKV_EXPECT(RMKV_ERR_FORMAT, rmkv_trainer_load_checkpoint(to, model_path));
    rmkv_trainer_free(to);
    rmkv_model_free(other);
    remove(ckpt);
    remove(model_path);
    rmkv_trainer_free(ta);
    rmkv_trainer_free(tb);
    rmkv_model_free(a);
    rmkv_model_free(b_model);
}

static void bad_batches(void **state) {
    (void)state;
    rmkv_model *m = make_model(cfg, 1);
    rmkv_trainer *t = NULL;
    RMKV_CHECK(rmkv_trainer_new(m, NULL, &t));
    int32_t tok[B * N], tg[B * N];
    make_batch(tok, tg, 1);
    rmkv_batch b = batch_of(tok, tg, B);
    int32_t bad_lens[3] = {6, 6, 3};
    b.segment_lens = bad_lens;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_train_step(t, &b, NULL));
    int32_t long_lens[2] = {7, 7};
    b.segment_lens = long_lens;
    b.n_segments = 2;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_train_step(t, &b, NULL));
    b = batch_of(tok, tg, B);
    tok[5] = 99;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_train_step(t, &b, NULL));
    assert_non_null(strstr(rmkv_last_error(), "tokens[5]"));
    tok[5] = 1;
    tg[7] = -2;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_train_step(t, &b, NULL));
    assert_int_equal(rmkv_trainer_step_count(t), 0);
    rmkv_train_params p = rmkv_train_default_params();
    p.grad_accum_steps = 0;
    rmkv_trainer *t2 = NULL;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_trainer_new(m, &p, &t2));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_train_step(NULL, &b, NULL));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_train_step(t, NULL, NULL));
    rmkv_trainer_free(t);
    rmkv_model_free(m);
}

/* A key token in segment 1 must be reproduced at the end of segment 3. Only the
   memory can carry it there. */
#define KEYS 8
#define S 6
#define MB 32
static void make_key_batch(int32_t *tok, int32_t *tg, uint64_t seed) {
    random_tokens(tok, MB * 3 * S, 6, seed); /* filler tokens 10..15 */
    int32_t keys[MB];
    random_tokens(keys, MB, KEYS, seed + 1);
    for (int b = 0; b < MB; ++b) {
        int32_t *row = tok + b * 3 * S, *t = tg + b * 3 * S;
        for (int i = 0; i < 3 * S; ++i) {
            row[i] += 10;
            t[i] = -1;
        }
        row[0] = 2 + keys[b];     /* the key, first token of segment 1 */
        row[3 * S - 1] = 1;       /* the question, last token of segment 3 */
        t[3 * S - 1] = 2 + keys[b];
    }
}

static void memory_carries_a_key(void **state) {
    (void)state;
    rmkv_model *m = make_model("{\"vocab_size\":16,\"d_model\":32,\"n_layers\":1,\"n_heads\":2,\"memory_slots\":4,"
                               "\"segment_len\":6,\"cell\":\"gru\",\"ffn\":\"gelu\",\"ffn_hidden\":64}", 7);
    rmkv_train_params p = rmkv_train_default_params();
    p.learning_rate = 3e-3f;
    p.min_learning_rate = 3e-4f;
    p.warmup_steps = 20;
    p.total_steps = 600;
    p.weight_decay = 0.0f;
    rmkv_trainer *t = NULL;
    RMKV_CHECK(rmkv_trainer_new(m, &p, &t));
    static int32_t tok[MB * 3 * S], tg[MB * 3 * S];
    rmkv_batch b;
    memset(&b, 0, sizeof b);
    b.struct_size = sizeof b;
    b.batch_size = MB;
    b.n_tokens = 3 * S;
    b.tokens = tok;
    b.targets = tg;
    rmkv_eval_stats ev;
    memset(&ev, 0, sizeof ev);
    ev.struct_size = sizeof ev;
    int step;
    for (step = 0; step < 600; ++step) {
        make_key_batch(tok, tg, 1000 + step);
        RMKV_CHECK(rmkv_train_step(t, &b, NULL));
        if (step % 50 == 49) {
            make_key_batch(tok, tg, 7);  /* held-out batch */
            RMKV_CHECK(rmkv_trainer_evaluate(t, &b, &ev));
            if (ev.accuracy_later > 0.95f) break;
        }
    }
    make_key_batch(tok, tg, 7);
    RMKV_CHECK(rmkv_trainer_evaluate(t, &b, &ev));
    print_message("after %d steps: accuracy with memory %.2f, with memory reset %.2f (chance %.3f); "
                  "loss %.3f vs %.3f\n", step + 1, ev.accuracy_later, ev.accuracy_later_reset, 1.0 / KEYS,
                  ev.loss_later, ev.loss_later_reset);
    assert_true(ev.accuracy_later > 0.9f);
    assert_true(ev.accuracy_later_reset < 0.35f);
    rmkv_trainer_free(t);
    rmkv_model_free(m);
}

/* Every tensor name of SPEC section 3 a model may have (absent ones are skipped). */
static const char *const kTensorSuffixes[] = {
    "norm1.weight", "norm1.bias", "attn.q.weight", "attn.q.bias", "attn.k.weight", "attn.k.bias",
    "attn.v.weight", "attn.v.bias", "attn.o.weight", "attn.o.bias", "pool.query", "cell.weight_ih",
    "cell.weight_hh", "cell.bias_ih", "cell.bias_hh", "cell.weight", "cell.bias", "norm2.weight",
    "norm2.bias", "ffn.gate.weight", "ffn.up.weight", "ffn.down.weight", "init_memory"};
static const char *const kModelTensors[] = {"tok_emb.weight", "pos_emb.weight", "norm_f.weight", "norm_f.bias",
                                            "head.weight"};

/* Compares the gradients of trainers a and b, tensor by tensor: bitwise when tol
   is 0, else max |a - b| <= tol x the largest |gradient| of the whole model (a
   tensor whose exact gradient is 0, such as the key bias, holds only rounding);
   returns how many tensors there were. */
/* Compares every gradient of a and b: bitwise when tol is 0; else within tol of the
   largest gradient of the model, or, when per_tensor, within tol of each tensor's
   own largest (at least 1e-3 of the model's: the key biases' gradients are rounding
   only). Returns the number of tensors compared. */
static int compare_gradients_of(rmkv_trainer *a, rmkv_trainer *b, int n_layers, double tol, int per_tensor) {
    static float ga[1 << 16], gb[1 << 16];
    double largest = 0;
    int found = 0;
    char name[96];
    for (int pass = per_tensor ? 0 : 1; pass < 2; ++pass) {
        double worst = 0, worst_of = 0;
        char worst_name[96] = "";
        found = 0;
        for (int i = -1; i < n_layers; ++i) {
            int count = i < 0 ? (int)(sizeof kModelTensors / sizeof *kModelTensors)
                              : (int)(sizeof kTensorSuffixes / sizeof *kTensorSuffixes);
            for (int j = 0; j < count; ++j) {
                if (i < 0) snprintf(name, sizeof name, "%s", kModelTensors[j]);
                else snprintf(name, sizeof name, "layers.%d.%s", i, kTensorSuffixes[j]);
                size_t na = 0, nb = 0;
                rmkv_status sa = rmkv_trainer_gradient(a, name, ga, 1 << 16, &na);
                rmkv_status sb = rmkv_trainer_gradient(b, name, gb, 1 << 16, &nb);
                assert_int_equal(sa, sb);
                if (sa != RMKV_OK) continue;
                assert_int_equal(na, nb);
                found++;
                double own = 0, diff = 0;
                for (size_t k = 0; k < na; ++k) {
                    const double d = fabs((double)ga[k] - (double)gb[k]);
                    if (!(d <= diff)) diff = d;
                    if (fabs((double)ga[k]) > own) own = fabs((double)ga[k]);
                }
                if (pass == 0) {
                    if (own > largest) largest = own;
                    continue;
                }
                if (!per_tensor && own > largest) largest = own;
                if (tol == 0 && memcmp(ga, gb, na * sizeof(float)) != 0) {
                    print_message("%s: gradients differ (relative error %g)\n", name, rel_err(gb, ga, na));
                    fail();
                }
                const double of = per_tensor ? (own > 1e-3 * largest ? own : 1e-3 * largest) : 1.0;
                if (!(diff / of <= worst / worst_of) || worst_of == 0)
                    worst = diff, worst_of = of, snprintf(worst_name, sizeof worst_name, "%s", name);
            }
        }
        if (pass == 0) continue;
        if (!per_tensor) worst_of = largest;
        if (tol > 0 && !(worst <= tol * worst_of)) {
            print_message("%s: gradients differ by %g, against %g (tolerance %g of it)\n", worst_name, worst, worst_of, tol);
            fail();
        }
        if (per_tensor) print_message("worst gradient: %s, %.2e of its scale\n", worst_name, worst / worst_of);
    }
    return found;
}

static int compare_gradients(rmkv_trainer *a, rmkv_trainer *b, int n_layers, double tol) {
    return compare_gradients_of(a, b, n_layers, tol, 0);
}

/* Configs covering every cell, ffn, position, norm and GQA, with their layer counts. */
static const char *const cfgs[] = {
    "{\"vocab_size\":32,\"d_model\":24,\"n_layers\":2,\"n_heads\":2,\"memory_slots\":3,\"segment_len\":6,"
    "\"cell\":\"lstm\",\"ffn\":\"swiglu\",\"ffn_hidden\":40}",
    "{\"vocab_size\":32,\"d_model\":16,\"n_layers\":3,\"n_heads\":4,\"n_kv_heads\":2,\"memory_slots\":2,"
    "\"segment_len\":6,\"cell\":\"gru\",\"ffn\":\"gelu\",\"ffn_hidden\":24,\"pos\":\"learned\",\"norm\":\"layernorm\"}",
    "{\"vocab_size\":32,\"d_model\":16,\"n_layers\":2,\"n_heads\":1,\"memory_slots\":4,\"segment_len\":6,"
    "\"cell\":\"minimal\",\"ffn\":\"none\",\"tie_embeddings\":true}",
};
static const int layers[] = {2, 3, 2};

/* Recomputation keeps only each layer's output and the memory it read per segment,
   and recomputes the rest (same dropout masks) before the layer's backward: the
   gradients are bitwise those of the full tape, for every cell, ffn, position,
   norm and GQA, with dropout, in fp32 and in the default precision, over K=3
   unequal segments. A second batch checks that nothing of the first is reused. */
static void recompute_gives_the_same_gradients(void **state) {
    (void)state;
    int32_t tok[B * N], tg[B * N];
    for (size_t c = 0; c < sizeof cfgs / sizeof *cfgs; ++c)
        for (int precision = RMKV_PRECISION_AUTO; precision <= RMKV_PRECISION_FP32; ++precision) {
            rmkv_model *m = make_model(cfgs[c], 40 + c);
            rmkv_trainer *full = NULL, *re = NULL;
            rmkv_train_params p = params();
            p.dropout = 0.2f;
            p.seed = 7;
            p.precision = precision;
            RMKV_CHECK(rmkv_trainer_new(m, &p, &full));
            p.recompute = 1;
            RMKV_CHECK(rmkv_trainer_new(m, &p, &re));
            for (int round = 0; round < 2; ++round) {
                make_batch(tok, tg, 60 + round);
                rmkv_batch b = batch_of(tok, tg, B);
                float la = 0, lb = 0;
                RMKV_CHECK(rmkv_trainer_compute_gradients(full, &b, &la));
                RMKV_CHECK(rmkv_trainer_compute_gradients(re, &b, &lb));
                assert_memory_equal(&la, &lb, sizeof la);
                int n = compare_gradients(full, re, layers[c], 0);
                assert_true(n >= 12);
                if (round == 1) print_message("config %zu precision %d: loss %.5f, %d tensors bitwise equal\n", c,
                                              precision, la, n);
            }
            rmkv_trainer_free(full);
            rmkv_trainer_free(re);
            rmkv_model_free(m);
        }
    rmkv_train_params p = rmkv_train_default_params();
    p.recompute = 2;
    rmkv_model *m = make_model(cfg, 1);
    rmkv_trainer *t = NULL;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_trainer_new(m, &p, &t));
    assert_null(t);
    rmkv_model_free(m);
}

/* Sequences computed at once (parallel_sequences: own stream, thread, activations
   and gradient buffer each, summed after the batch) and sequences stacked into
   one pass's rows (stacked_sequences: every product over all their rows; attention,
   pooling, caches and dropout masks per sequence) give the gradients of one
   sequence after another up to rounding: 5 sequences on 2 and 3 lanes (uneven
   shares), stacked 2 and 5 at a time, and both at once, with dropout, GQA and both
   cells; then 3 optimiser steps follow the same losses and gradient norms.
   Out-of-range values are refused. */
static void lanes_and_stacks_agree(void **state) {
    (void)state;
    enum { NS = 5, STEPS = 3 };
    static const int64_t variants[][2] = {{2, 1}, {3, 1}, {1, 2}, {1, 5}, {2, 2}};  /* lanes, stack */
    int32_t tok[NS * N], tg[NS * N];
    random_tokens(tok, NS * N, 32, 77);
    for (int i = 0; i < NS * N; ++i) tg[i] = (i % N == N - 1) ? -1 : tok[i + 1];
    tg[N + 2] = -1;
    rmkv_batch b = batch_of(tok, tg, NS);
    rmkv_train_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    for (size_t c = 0; c < 2; ++c) { /* the lstm and the gru/GQA configs */
        rmkv_train_params p = params();
        p.dropout = 0.2f;
        p.seed = 11;
        p.precision = RMKV_PRECISION_FP32;
        p.parallel_sequences = 1;
        p.stacked_sequences = 1;
        /* The reference: its gradients, and the losses and norms of 3 steps (a second copy). */
        rmkv_model *m1 = make_model(cfgs[c], 50 + c), *m2 = make_model(cfgs[c], 50 + c);
        rmkv_trainer *one = NULL, *one_steps = NULL;
        RMKV_CHECK(rmkv_trainer_new(m1, &p, &one));
        RMKV_CHECK(rmkv_trainer_new(m2, &p, &one_steps));
        float la = 0;
        RMKV_CHECK(rmkv_trainer_compute_gradients(one, &b, &la));
        float loss[STEPS], norm[STEPS];
        for (int step = 0; step < STEPS; ++step) {
            RMKV_CHECK(rmkv_train_step(one_steps, &b, &st));
            loss[step] = st.loss, norm[step] = st.grad_norm;
        }
        for (size_t v = 0; v < sizeof variants / sizeof variants[0]; ++v) {
            rmkv_model *m = make_model(cfgs[c], 50 + c);
            rmkv_trainer *t = NULL;
            p.parallel_sequences = variants[v][0];
            p.stacked_sequences = variants[v][1];
            RMKV_CHECK(rmkv_trainer_new(m, &p, &t));
            float lb = 0;
            RMKV_CHECK(rmkv_trainer_compute_gradients(t, &b, &lb));
            assert_true(fabsf(la - lb) <= 1e-6f * fabsf(la));
            int n = compare_gradients(one, t, layers[c], 1e-5);
            assert_true(n >= 12);
            for (int step = 0; step < STEPS; ++step) {
                RMKV_CHECK(rmkv_train_step(t, &b, &st));
                assert_true(fabsf(st.loss - loss[step]) <= 1e-5f * fabsf(loss[step]));
                assert_true(fabsf(st.grad_norm - norm[step]) <= 1e-5f * fabsf(norm[step]));
            }
            print_message("config %zu, %d lanes, stacks of %d: loss %.6f vs %.6f after 3 steps, %d gradients agree\n",
                          c, (int)variants[v][0], (int)variants[v][1], st.loss, loss[STEPS - 1], n);
            rmkv_trainer_free(t);
            rmkv_model_free(m);
        }
        rmkv_trainer_free(one);
        rmkv_trainer_free(one_steps);
        rmkv_model_free(m1);
        rmkv_model_free(m2);
    }
    rmkv_model *m = make_model(cfg, 1);
    rmkv_trainer *t = NULL;
    rmkv_train_params p = rmkv_train_default_params();
    p.parallel_sequences = 65;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_trainer_new(m, &p, &t));
    p.parallel_sequences = -1;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_trainer_new(m, &p, &t));
    p.parallel_sequences = 0;
    p.stacked_sequences = 257;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_trainer_new(m, &p, &t));
    p.stacked_sequences = -1;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_trainer_new(m, &p, &t));
    assert_null(t);
    rmkv_model_free(m);
}

/* rmkv_train_params.n_threads: a trainer limited to one thread (on 2 lanes, whose
   worker threads are limited too) computes what the default does, and leaves the
   calling thread's OpenMP setting as it found it after every call. Out-of-range
   counts are refused. */
static void thread_count(void **state) {
    (void)state;
    int32_t tok[B * N], tg[B * N];
    make_batch(tok, tg, 21);
    rmkv_batch b = batch_of(tok, tg, B);
    rmkv_model *m1 = make_model(cfg, 4), *m2 = make_model(cfg, 4);
    rmkv_trainer *t1 = NULL, *t2 = NULL;
    rmkv_train_params p = params();
    p.precision = RMKV_PRECISION_FP32;
    RMKV_CHECK(rmkv_trainer_new(m1, &p, &t1));
    p.n_threads = 1;
    p.parallel_sequences = 2;
    RMKV_CHECK(rmkv_trainer_new(m2, &p, &t2));
    const int before = omp_get_max_threads();
    float l1 = 0, l2 = 0;
    RMKV_CHECK(rmkv_trainer_compute_gradients(t1, &b, &l1));
    RMKV_CHECK(rmkv_trainer_compute_gradients(t2, &b, &l2));
    assert_int_equal(omp_get_max_threads(), before);
    assert_true(fabsf(l1 - l2) <= 1e-6f * fabsf(l1));
    assert_true(compare_gradients(t1, t2, 2, 1e-5) >= 12);
    rmkv_train_stats s1, s2;
    memset(&s1, 0, sizeof s1);
    s1.struct_size = sizeof s1;
    s2 = s1;
    RMKV_CHECK(rmkv_train_step(t1, &b, &s1));
    RMKV_CHECK(rmkv_train_step(t2, &b, &s2));
    assert_int_equal(omp_get_max_threads(), before);
    assert_true(fabsf(s1.grad_norm - s2.grad_norm) <= 1e-5f * fabsf(s1.grad_norm));
    rmkv_eval_stats e1, e2;
    memset(&e1, 0, sizeof e1);
    e1.struct_size = sizeof e1;
    e2 = e1;
    RMKV_CHECK(rmkv_trainer_evaluate(t1, &b, &e1));
    RMKV_CHECK(rmkv_trainer_evaluate(t2, &b, &e2));
    assert_int_equal(omp_get_max_threads(), before);
    assert_true(fabsf(e1.loss - e2.loss) <= 1e-5f * fabsf(e1.loss));
    rmkv_trainer_free(t1);
    rmkv_trainer_free(t2);
    rmkv_trainer *bad = NULL;
    p.n_threads = -1;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_trainer_new(m1, &p, &bad));
    assert_non_null(strstr(rmkv_last_error(), "n_threads"));
    p.n_threads = 1025;
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_trainer_new(m1, &p, &bad));
    assert_null(bad);
    rmkv_model_free(m1);
    rmkv_model_free(m2);
}

/* The bytes of a file (the test stops if it cannot be read). */
static unsigned char *file_bytes(const char *path, long *size) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)*size);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)*size, f), (size_t)*size);
    fclose(f);
    return buf;
}

/* Mixed precision (bf16 inputs to the matrix products, fp32 accumulation and
   master weights) follows fp32 on segments and memories of >= 16 rows, where
   attention runs as batched products, with GQA and dropout (the same masks): the
   loss within 1e-2, each tensor's gradient within 5e-2 of its largest, and not
   bitwise fp32's. Skipped where the CPU has no bf16. */
static void bf16_follows_fp32(void **state) {
    (void)state;
    enum { BB = 2, BN = 40 };
    const char *big = "{\"vocab_size\":64,\"d_model\":64,\"n_layers\":2,\"n_heads\":4,\"n_kv_heads\":2,"
                      "\"memory_slots\":16,\"segment_len\":20,\"cell\":\"gru\",\"ffn\":\"swiglu\",\"ffn_hidden\":96}";
    int32_t tok[BB * BN], tg[BB * BN];
    random_tokens(tok, BB * BN, 64, 91);
    for (int i = 0; i < BB * BN; ++i) tg[i] = (i % BN == BN - 1) ? -1 : tok[i + 1];
    static const int32_t lens[2] = {20, 20};
    rmkv_batch b = batch_with(tok, tg, BB, BN, 2, lens);
    rmkv_model *m = make_model(big, 17);
    rmkv_train_params p = params();
    p.dropout = 0.1f;
    p.seed = 5;
    p.precision = RMKV_PRECISION_BF16;
    rmkv_trainer *f32 = NULL, *b16 = NULL;
    if (rmkv_trainer_new(m, &p, &b16) == RMKV_ERR_BACKEND) {
        print_message("no bf16 on this CPU: %s\n", rmkv_last_error());
        rmkv_model_free(m);
        skip();
    }
    p.precision = RMKV_PRECISION_FP32;
    RMKV_CHECK(rmkv_trainer_new(m, &p, &f32));
    float l32 = 0, l16 = 0;
    RMKV_CHECK(rmkv_trainer_compute_gradients(f32, &b, &l32));
    RMKV_CHECK(rmkv_trainer_compute_gradients(b16, &b, &l16));
    print_message("loss fp32 %.6f bf16 %.6f\n", l32, l16);
    assert_true(fabs(l16 - l32) <= 1e-2 * fabs(l32));
    assert_true(l16 != l32);
    assert_true(compare_gradients_of(f32, b16, 2, 5e-2, 1) >= 12);
    rmkv_trainer_free(f32);
    rmkv_trainer_free(b16);
    rmkv_model_free(m);
}

/* A step whose gradient norm is not finite changes nothing: once a learning rate
   of 1e30 has blown the weights up, a step reports a norm that is NaN or inf; the
   step count stays, and the model file saved after it is the one saved before. */
static void diverged_step_is_skipped(void **state) {
    (void)state;
    rmkv_model *m = make_model(cfg, 3);
    rmkv_trainer *t = NULL;
    rmkv_train_params p = params();
    p.learning_rate = 1e30f;
    p.warmup_steps = 0;
    p.precision = RMKV_PRECISION_FP32;
    RMKV_CHECK(rmkv_trainer_new(m, &p, &t));
    int32_t tok[B * N], tg[B * N];
    make_batch(tok, tg, 9);
    rmkv_batch b = batch_of(tok, tg, B);
    rmkv_train_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    int skipped = 0;
    char before_path[512], after_path[512];
    strcpy(before_path, tmp_path("diverged_before.safetensors"));
    strcpy(after_path, tmp_path("diverged_after.safetensors"));
    for (int i = 0; i < 6 && !skipped; ++i) {
        RMKV_CHECK(rmkv_model_save(m, before_path));
        const int64_t count = rmkv_trainer_step_count(t);
        RMKV_CHECK(rmkv_train_step(t, &b, &st));
        if (isfinite(st.grad_norm)) {
            assert_int_equal(rmkv_trainer_step_count(t), count + 1);
            continue;
        }
        skipped = 1;
        print_message("step %d: gradient norm %g, skipped\n", i + 1, (double)st.grad_norm);
        assert_int_equal(rmkv_trainer_step_count(t), count);
        assert_int_equal(st.step, count);
        RMKV_CHECK(rmkv_model_save(m, after_path));
        long na = 0, nb = 0;
        unsigned char *a = file_bytes(before_path, &na), *c = file_bytes(after_path, &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(a, c, (size_t)na);
        free(a);
        free(c);
    }
    remove(before_path);
    remove(after_path);
    assert_true(skipped);
    rmkv_trainer_free(t);
    rmkv_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loss_falls),
        cmocka_unit_test(accumulation_equals_one_batch),
        cmocka_unit_test(resume_is_bitwise),
        cmocka_unit_test(bad_batches),
        cmocka_unit_test(memory_carries_a_key),
        cmocka_unit_test(recompute_gives_the_same_gradients),
        cmocka_unit_test(lanes_and_stacks_agree), cmocka_unit_test(thread_count),
        cmocka_unit_test(bf16_follows_fp32),
        cmocka_unit_test(diverged_step_is_skipped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
