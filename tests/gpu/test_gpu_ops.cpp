// Every operation of the backend seam on the CUDA backend against the CPU backend,
// forward and backward, on random inputs: fp32 within kTolF32 (gpu_common.h);
// bf16 matrix products exactly against fp32 products of bf16-rounded inputs
// (within kTolF32) and within kTolBf16Linear of the unrounded ones. Attention's
// shapes cover the CPU's paths (fewer than 16 query rows; more, with head sizes
// that are multiples of 16 (fused kernel on AVX-512) and not (oneDNN products)),
// the CUDA backend's three (the fused kernels while a block's score column fits
// the shared memory, cuBLAS products beyond, the tensor-core kernels of bf16
// training: bf16_attention_ops), GQA, key strides wider than the keys, decoding
// (one row), masked targets and aliasing; in test_gpu_sessions_ops.cpp, the
// operations of sessions decoded together and recorded steps (CUDA graphs).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "gpu_common.h"

extern "C" {
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
}

#include "gpu_pair.h"  // after cmocka.h: its checks use cmocka

using namespace rmkv;

namespace {

using gpu_test::rel;

using gpu_test::Buf;
using gpu_test::Pair;
using gpu_test::bf16_round;
using gpu_test::g_cpu;
using gpu_test::g_gpu;

void linear_ops(void **) {
    for (int64_t n : {1, 3, 37}) {
        Pair P;
        const int64_t in = 48, out = 40;
        Buf &x = P.random(n * in), &W = P.random(out * in, 0.2f), &b = P.random(out);
        Buf &y = P.random(n * out), &y2 = P.random(n * out);
        // Bias and accumulation with every pointer 4 bytes past an allocation's
        // start (cuBLASLt's epilogue plans each alignment of its own).
        Buf &xo = P.random(n * in + 1), &bo = P.random(out + 1), &y3 = P.random(n * out + 1);
        P.both([&](Backend &be, Stream &s, bool g) {
            be.linear(s, y.on(g), x.on(g), W.on(g), b.on(g), n, in, out, false);
            be.linear(s, y2.on(g), x.on(g), W.on(g), nullptr, n, in, out, true);
            be.linear(s, y3.on(g) + 1, xo.on(g) + 1, W.on(g), bo.on(g) + 1, n, in, out, true);
        });
        print_message("linear n=%ld\n", (long)n);
        P.expect("linear (bias)", y);
        P.expect("linear (accumulate)", y2);
        P.expect("linear (bias, accumulate, pointers 4 bytes off)", y3);
        Buf &dy = P.random(n * out), &dx = P.random(n * in), &dx2 = P.random(n * in);
        Buf &dW = P.random(out * in), &db = P.random(out);
        P.both([&](Backend &be, Stream &s, bool g) {
            be.linear_backward(s, dx.on(g), false, dW.on(g), db.on(g), dy.on(g), x.on(g), W.on(g), n, in, out);
            be.linear_backward(s, dx2.on(g), true, nullptr, nullptr, dy.on(g), x.on(g), W.on(g), n, in, out);
        });
        P.expect("linear_backward dx", dx);
        P.expect("linear_backward dx (accumulate)", dx2);
        P.expect("linear_backward dW", dW);
        P.expect("linear_backward db", db);
    }
}

// bf16 products: the GPU with shadows on, the CPU in fp32 on inputs rounded to
// bf16 (the same products exactly, summed in another order).
void linear_bf16(void **) {
    if (!g_gpu->supports_bf16()) {
        print_message("this device has no bf16 matrix products: nothing to check\n");
        return;
    }
    Pair P;
    const int64_t n = 33, in = 64, out = 72;
    std::vector<float> xh(n * in), wh(out * in), dyh(n * out);
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (float &v : xh) v = d(P.rng_);
    for (float &v : wh) v = 0.2f * d(P.rng_);
    for (float &v : dyh) v = d(P.rng_);
    auto rounded = [](std::vector<float> v) {
        for (float &f : v) f = bf16_round(f);
        return v;
    };
    Buf &x = P.make(xh), &W = P.make(wh), &dy = P.make(dyh);
    Buf &xr = P.make(rounded(xh)), &Wr = P.make(rounded(wh)), &dyr = P.make(rounded(dyh));
    auto sh = P.bf16(out * in);
    g_gpu->to_bf16(P.gs(), sh.second, W.g, out * in);
    g_gpu->set_shadow(P.gs(), W.g, sh.second);
    g_gpu->set_bf16(P.gs(), true);
    Buf &y = P.zeros(n * out), &dx = P.zeros(n * in), &dW = P.zeros(out * in), &db = P.zeros(out);
    Buf &b = P.random(out);
    // GPU: bf16 path on the unrounded tensors. CPU: fp32 on the rounded ones.
    g_gpu->linear(P.gs(), y.g, x.g, W.g, b.g, n, in, out, false);
    g_gpu->linear_backward(P.gs(), dx.g, false, dW.g, db.g, dy.g, x.g, W.g, n, in, out);
    g_gpu->sync(P.gs());
    g_cpu->linear(P.cs(), y.c, xr.c, Wr.c, b.c, n, in, out, false);
    g_cpu->linear_backward(P.cs(), dx.c, false, dW.c, db.c, dyr.c, xr.c, Wr.c, n, in, out);
    P.expect("bf16 linear vs fp32 of rounded inputs", y, gpu_test::kTolBf16Exact);
    P.expect("bf16 linear_backward dx (rounded)", dx, gpu_test::kTolBf16Exact);
    P.expect("bf16 linear_backward dW (rounded)", dW, gpu_test::kTolBf16Exact);
    // db sums dy itself (fp32), not its bf16 rounding.
    std::vector<float> dbg = P.host(db, true), dbc(out, 0.0f);
    for (int64_t r = 0; r < n; ++r)
        for (int64_t o = 0; o < out; ++o) dbc[o] += dyh[r * out + o];
    assert_true(rel(dbg, dbc) < gpu_test::kTolF32);
    // Against unrounded fp32: the documented bf16 tolerance.
    g_cpu->linear(P.cs(), y.c, x.c, W.c, b.c, n, in, out, false);
    P.expect("bf16 linear vs fp32", y, gpu_test::kTolBf16Linear);
    // Shadows are per stream: with bf16 off the same weight is fp32 again.
    g_gpu->set_bf16(P.gs(), false);
    P.both([&](Backend &be, Stream &s, bool g) { be.linear(s, y.on(g), x.on(g), W.on(g), b.on(g), n, in, out, false); });
    P.expect("linear with bf16 off", y);
}

// 16-bit weights (inference from BF16 and F16 files): the same stored bits on
// both backends (CUDA: its own copy, import_half_weights). Exact widening on a
// stream without bf16: the rows each kernel takes (1, 8 on CUDA's dot products;
// 9, 40 widened into scratch; then a matrix past CUDA's widened block, 16 Mi
// floats), bias and accumulation, both formats (f16 of both signs, subnormals
// too); embed_w16. A bf16 stream with bf16 weights rounds x to bf16 on both:
// the same products.
void half_weights(void **) {
    Pair P;
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (Half h : {Half::bf16, Half::f16}) {
        const char *name = h == Half::bf16 ? "bf16" : "f16";
        for (const auto &[n, in, out] : {std::array<int64_t, 3>{9, 2048, 2100}, std::array<int64_t, 3>{3, 2048, 2100}}) {
            std::vector<uint16_t> w16(out * in);
            for (uint16_t &u : w16)
                u = h == Half::bf16 ? bf16_bits(0.05f * d(P.rng_)) : static_cast<uint16_t>(P.rng_() % 0x2c00 | (P.rng_() & 0x8000));
            const uint16_t *wg = g_gpu->import_half_weights(w16.data(), w16.size());
            Buf &x = P.random(n * in), &y = P.random(n * out);
            P.both([&](Backend &be, Stream &s, bool g) {
                be.linear_w16(s, y.on(g), x.on(g), g ? wg : w16.data(), h, nullptr, n, in, out, true);
            });
            print_message("linear_w16 %s, %lld rows, [%lld, %lld] (several widened blocks on CUDA)\n", name, (long long)n,
                          (long long)out, (long long)in);
            P.expect("linear_w16 (large, accumulate)", y);
            g_gpu->release_half_weights(wg, w16.data());
        }
    }
    const int64_t in = 72, out = 40, V = 30;
    for (Half h : {Half::bf16, Half::f16}) {
        std::vector<uint16_t> w16(out * in), e16(V * in);
        for (uint16_t &u : w16)
            u = h == Half::bf16 ? bf16_bits(0.2f * d(P.rng_)) : static_cast<uint16_t>(P.rng_() % 0x3800 | (P.rng_() & 0x8000));
        for (uint16_t &u : e16) u = h == Half::bf16 ? bf16_bits(d(P.rng_)) : static_cast<uint16_t>(P.rng_() % 0x7c00 | (P.rng_() & 0x8000));
        const uint16_t *wg = g_gpu->import_half_weights(w16.data(), w16.size());
        const uint16_t *eg = g_gpu->import_half_weights(e16.data(), e16.size());
        const char *name = h == Half::bf16 ? "bf16" : "f16";
        for (int64_t n : {1, 8, 9, 40}) {
            Buf &x = P.random(n * in), &b = P.random(out), &y = P.random(n * out), &y2 = P.random(n * out);
            P.both([&](Backend &be, Stream &s, bool g) {
                const uint16_t *W = g ? wg : w16.data();
                be.linear_w16(s, y.on(g), x.on(g), W, h, b.on(g), n, in, out, false);
                be.linear_w16(s, y2.on(g), x.on(g), W, h, nullptr, n, in, out, true);
            });
            print_message("linear_w16 %s, %lld rows\n", name, (long long)n);
            P.expect("linear_w16 (bias)", y);
            P.expect("linear_w16 (accumulate)", y2);
        }
        std::vector<int32_t> tokens = {3, 0, 29, 3, 17};
        Buf &X = P.zeros(tokens.size() * in);
        P.both([&](Backend &be, Stream &s, bool g) {
            be.embed_w16(s, X.on(g), g ? eg : e16.data(), h, tokens.data(), static_cast<int64_t>(tokens.size()), in);
        });
        P.expect("embed_w16 (exact)", X, 1e-30);
        if (h == Half::bf16 && g_gpu->supports_bf16() && g_cpu->supports_bf16()) {
            for (int64_t n : {1, 40}) {
                Buf &x = P.random(n * in), &b = P.random(out), &y = P.zeros(n * out);
                g_gpu->set_bf16(P.gs(), true);
                g_cpu->set_bf16(P.cs(), true);
                P.both([&](Backend &be, Stream &s, bool g) {
                    be.linear_w16(s, y.on(g), x.on(g), g ? wg : w16.data(), h, b.on(g), n, in, out, false);
                });
                g_gpu->set_bf16(P.gs(), false);
                g_cpu->set_bf16(P.cs(), false);
                print_message("linear_w16 bf16 with x rounded to bf16, %lld rows\n", (long long)n);
                P.expect("linear_w16 (bf16 stream)", y, gpu_test::kTolBf16Exact);
            }
        }
        g_gpu->release_half_weights(wg, w16.data());
        g_gpu->release_half_weights(eg, e16.data());
    }
}

void norm_ops(void **) {
    for (NormKind kind : {NormKind::layernorm, NormKind::rmsnorm}) {
        for (int64_t d : {8, 96, 1000}) {
            Pair P;
            const int64_t n = 13;
            const bool ln = kind == NormKind::layernorm;
            Buf &x = P.random(n * d, 2.0f, 0.5f), &w = P.random(d, 0.2f, 1.0f), &b = P.random(d, 0.1f);
            Buf &y = P.zeros(n * d), &ya = P.make(P.host(x, false));
            P.both([&](Backend &be, Stream &s, bool g) {
                be.norm(s, kind, y.on(g), x.on(g), w.on(g), ln ? b.on(g) : nullptr, n, d, 1e-5f);
                be.norm(s, kind, ya.on(g), ya.on(g), w.on(g), ln ? b.on(g) : nullptr, n, d, 1e-5f);  // in place
            });
            print_message("%s d=%ld\n", ln ? "layernorm" : "rmsnorm", (long)d);
            P.expect("norm", y);
            P.expect("norm (in place)", ya);
            Buf &dy = P.random(n * d), &dx = P.random(n * d), &dw = P.random(d), &db = P.random(d);
            P.both([&](Backend &be, Stream &s, bool g) {
                be.norm_backward(s, kind, dx.on(g), dw.on(g), ln ? db.on(g) : nullptr, dy.on(g), x.on(g), w.on(g), n, d,
                                 1e-5f);
            });
            // Frozen parameters (NULL gradients): dx alone.
            Buf &dxf = P.random(n * d);
            P.both([&](Backend &be, Stream &s, bool g) {
                be.norm_backward(s, kind, dxf.on(g), nullptr, nullptr, dy.on(g), x.on(g), w.on(g), n, d, 1e-5f);
            });
            P.expect("norm_backward dx (+=)", dx);
            P.expect("norm_backward dx, frozen w and b", dxf);
            P.expect("norm_backward dw (+=)", dw);
            if (ln) P.expect("norm_backward db (+=)", db);
        }
    }
}

void embed_add_positions(void **) {
    Pair P;
    const int64_t V = 50, d = 24, n = 40;
    std::vector<int32_t> tok(n);
    for (int64_t i = 0; i < n; ++i) tok[i] = static_cast<int32_t>((i * 7) % 13);  // repeats: atomics
    Buf &E = P.random(V * d), &X = P.zeros(n * d), &dX = P.random(n * d), &dE = P.random(V * d);
    P.both([&](Backend &be, Stream &s, bool g) {
        be.embed(s, X.on(g), E.on(g), tok.data(), n, d);
        be.embed_backward(s, dE.on(g), dX.on(g), tok.data(), n, d);
    });
    P.expect("embed", X);
    P.expect("embed_backward (+=, repeated tokens)", dE);
    // Token arrays past the pinned staging's first 4096 entries, twice between
    // synchronisations (the staging is replaced while copies from it are queued),
    // and each host array overwritten as soon as the call returns.
    {
        const int64_t nb = 5000;
        Buf &Eb = P.random(V * d), &Xb = P.zeros(nb * d), &dXb = P.random(nb * d), &dEb = P.random(V * d);
        P.both([&](Backend &be, Stream &s, bool g) {
            std::vector<int32_t> t1(nb), t2(nb);
            for (int64_t i = 0; i < nb; ++i) t1[i] = static_cast<int32_t>((i * 11) % V), t2[i] = static_cast<int32_t>((i * 3) % V);
            be.embed(s, Xb.on(g), Eb.on(g), t1.data(), nb, d);
            std::fill(t1.begin(), t1.end(), 0);
            be.embed_backward(s, dEb.on(g), dXb.on(g), t2.data(), nb, d);
            std::fill(t2.begin(), t2.end(), 1);
        });
        P.expect("embed, 5000 tokens staged", Xb);
        P.expect("embed_backward, 5000 more staged", dEb);
    }
    Buf &a = P.random(1001), &b = P.random(1001), &o = P.zeros(1001);
    P.both([&](Backend &be, Stream &s, bool g) {
        be.add(s, o.on(g), a.on(g), b.on(g), 1001);
        be.add(s, a.on(g), a.on(g), b.on(g), 1001);  // aliasing
    });
    P.expect("add", o);
    P.expect("add (in place)", a);
    for (int64_t dd : {24, 25}) {
        Buf &S = P.random(n * dd);
        P.both([&](Backend &be, Stream &s, bool g) { be.add_sincos(s, S.on(g), n, dd, 1000); });
        P.expect(dd % 2 ? "add_sincos (odd width)" : "add_sincos", S);
    }
    // RoPE on rows with a stride wider than the heads, forward then inverse.
    const int64_t H = 3, hd = 16, ld = 64;
    Buf &R = P.random(n * ld), &R2 = P.make(P.host(R, false));
    P.both([&](Backend &be, Stream &s, bool g) {
        be.rope(s, R.on(g), n, ld, H, hd, 5000, 10000.0f, false);
        be.rope(s, R2.on(g), n, ld, H, hd, 17, 500.0f, true);
    });
    P.expect("rope", R);
    P.expect("rope (inverse)", R2);
}

void attention_case(int64_t nq, int64_t nk, int64_t H, int64_t Hkv, int64_t hd, int64_t ldkv, int64_t visible0, float p) {
    Pair P;
    const int64_t D = H * hd;
    Dropout drop{p, 0x1234567ull};
    Buf &q = P.random(nq * D), &k = P.random(nk * ldkv), &v = P.random(nk * ldkv), &o = P.zeros(nq * D);
    P.both([&](Backend &be, Stream &s, bool g) {
        be.attention(s, o.on(g), q.on(g), k.on(g), v.on(g), nq, nk, ldkv, H, Hkv, hd, visible0, drop);
    });
    print_message("attention nq=%ld nk=%ld H=%ld Hkv=%ld hd=%ld ldkv=%ld visible0=%ld dropout=%.2f\n", (long)nq, (long)nk,
                  (long)H, (long)Hkv, (long)hd, (long)ldkv, (long)visible0, p);
    P.expect("attention", o);
    Buf &dout = P.random(nq * D), &dq = P.random(nq * D), &dk = P.random(nk * ldkv), &dv = P.random(nk * ldkv);
    P.both([&](Backend &be, Stream &s, bool g) {
        be.attention_backward(s, dq.on(g), dk.on(g), dv.on(g), dout.on(g), q.on(g), k.on(g), v.on(g), nq, nk, ldkv, H, Hkv,
                              hd, visible0, drop);
    });
    P.expect("attention_backward dq", dq);
    P.expect("attention_backward dk (+=)", dk);
    P.expect("attention_backward dv (+=)", dv);
}

void attention_ops(void **) {
    attention_case(5, 12, 4, 2, 16, 2 * 16 * 3, 7, 0.0f);    // few rows (CPU scalar path), GQA, wide stride
    attention_case(40, 56, 4, 1, 32, 4 * 32 * 2, 16, 0.0f);  // many rows (CPU batched path), multi-query
    attention_case(1, 30, 2, 2, 64, 2 * 64, 29, 0.0f);       // decoding: one row sees every key (CUDA: decode kernel)
    attention_case(1, 1500, 4, 1, 64, 64, 1499, 0.0f);       // one row, a long cache, groups of 4 query heads
    attention_case(1, 40, 4, 2, 32, 2 * 32, 20, 0.0f);       // one row that sees keys 0 .. 20 of 40
    attention_case(1, 40, 4, 2, 32, 2 * 32 * 2, 39, 0.0f);   // one row, wide key rows (CUDA: fused kernel)
    attention_case(24, 24, 2, 2, 8, 16, 0, 0.0f);            // pure causal
    attention_case(5, 12, 4, 2, 16, 2 * 16 * 3, 7, 0.2f);    // dropout, both CPU paths
    attention_case(40, 56, 4, 1, 32, 4 * 32 * 2, 16, 0.3f);
    attention_case(33, 40, 8, 2, 8, 2 * 8 * 2, 7, 0.1f);       // groups of 4 query heads, dropout
    attention_case(300, 1100, 2, 2, 16, 2 * 16, 800, 0.1f);    // long rows of keys (a 1024-token segment):
                                                               // CUDA fused forward, cuBLAS backward
    attention_case(40, 1900, 2, 1, 16, 16, 1880, 0.0f);        // CUDA cuBLAS both ways
    attention_case(70, 90, 2, 1, 128, 2 * 128, 20, 0.1f);      // head size 128: four 32-lane columns
    attention_case(33, 45, 3, 3, 48, 3 * 48, 12, 0.0f);        // head size 48: columns cut short
    attention_case(32, 288, 4, 2, 64, 2 * 2 * 64, 288, 0.1f);  // memory rows of a 256-token segment: every key
}

// Stacked sequences (training): n_seq sequences in one call, each with its key
// rows in a block longer than the keys it sees and a dropout of its own; RoPE
// over the same blocks.
void stacked_case(int64_t n_seq, int64_t nq, int64_t nk, int64_t H, int64_t Hkv, int64_t hd, int64_t visible0, float p) {
    Pair P;
    const int64_t D = H * hd, ldkv = Hkv * hd, kv_stride = (nk + 5) * ldkv;
    std::vector<Dropout> drops;
    for (int64_t i = 0; i < n_seq; ++i) drops.push_back({p, 0x5eedull + 31 * static_cast<uint64_t>(i)});
    const Dropout *dp = p > 0.0f ? drops.data() : nullptr;
    Buf &q = P.random(n_seq * nq * D), &k = P.random(n_seq * kv_stride), &v = P.random(n_seq * kv_stride);
    Buf &o = P.zeros(n_seq * nq * D);
    P.both([&](Backend &be, Stream &s, bool g) {
        be.rope_stacked(s, q.on(g), nq, D, H, hd, 3, 10000.0f, false, n_seq, nq * D);
        be.rope_stacked(s, k.on(g) + 2 * ldkv, nq, ldkv, Hkv, hd, 3, 10000.0f, false, n_seq, kv_stride);
        be.attention_stacked(s, o.on(g), q.on(g), k.on(g), v.on(g), nq, nk, ldkv, H, Hkv, hd, visible0, n_seq, kv_stride,
                             dp);
    });
    print_message("stacked attention n_seq=%ld nq=%ld nk=%ld H=%ld Hkv=%ld hd=%ld visible0=%ld dropout=%.2f\n",
                  (long)n_seq, (long)nq, (long)nk, (long)H, (long)Hkv, (long)hd, (long)visible0, p);
    P.expect("rope_stacked (q)", q);
    P.expect("rope_stacked (key blocks)", k);
    P.expect("attention_stacked", o);
    Buf &dout = P.random(n_seq * nq * D), &dq = P.random(n_seq * nq * D), &dk = P.random(n_seq * kv_stride);
    Buf &dv = P.random(n_seq * kv_stride);
    P.both([&](Backend &be, Stream &s, bool g) {
        be.attention_stacked_backward(s, dq.on(g), dk.on(g), dv.on(g), dout.on(g), q.on(g), k.on(g), v.on(g), nq, nk, ldkv,
                                      H, Hkv, hd, visible0, n_seq, kv_stride, dp);
        be.rope_stacked(s, dq.on(g), nq, D, H, hd, 3, 10000.0f, true, n_seq, nq * D);
    });
    P.expect("attention_stacked_backward dq (rope inverse)", dq);
    P.expect("attention_stacked_backward dk (+=)", dk);
    P.expect("attention_stacked_backward dv (+=)", dv);
}

// Pooling of stacked sequences with shared queries: out per sequence, dx per
// sequence (+=), dP summed over them (+=).
void pool_stacked_case(int64_t n_seq, int64_t M, int64_t T, int64_t D) {
    Pair P;
    Buf &Pq = P.random(M * D, 0.5f), &x = P.random(n_seq * T * D), &o = P.zeros(n_seq * M * D);
    P.both([&](Backend &be, Stream &s, bool g) { be.pool_stacked(s, o.on(g), Pq.on(g), x.on(g), M, T, D, n_seq); });
    print_message("pool_stacked n_seq=%ld M=%ld T=%ld D=%ld\n", (long)n_seq, (long)M, (long)T, (long)D);
    P.expect("pool_stacked", o);
    Buf &dout = P.random(n_seq * M * D), &dx = P.random(n_seq * T * D), &dP = P.random(M * D);
    P.both([&](Backend &be, Stream &s, bool g) {
        be.pool_stacked_backward(s, dx.on(g), dP.on(g), dout.on(g), Pq.on(g), x.on(g), M, T, D, n_seq);
    });
    P.expect("pool_stacked_backward dx (+=)", dx);
    P.expect("pool_stacked_backward dP (+=, summed)", dP);
    Buf &dxf = P.random(n_seq * T * D);
    P.both([&](Backend &be, Stream &s, bool g) {
        be.pool_stacked_backward(s, dxf.on(g), nullptr, dout.on(g), Pq.on(g), x.on(g), M, T, D, n_seq);
    });
    P.expect("pool_stacked_backward dx, frozen query", dxf);
}

void stacked_ops(void **) {
    stacked_case(3, 40, 56, 4, 2, 16, 16, 0.2f);    // token rows, GQA, a dropout per sequence
    stacked_case(4, 32, 288, 4, 4, 64, 288, 0.0f);  // memory rows of a 256-token segment
    stacked_case(17, 9, 20, 2, 1, 32, 11, 0.1f);    // more sequences than one CUDA launch takes (16)
    stacked_case(1, 1, 40, 4, 2, 32, 39, 0.0f);     // a session's decoding step (CUDA: the decode kernel)
    stacked_case(3, 1, 40, 4, 2, 32, 20, 0.2f);     // one query row with dropout (CUDA: the fused kernel)
    stacked_case(2, 30, 1100, 2, 2, 16, 1070, 0.1f);  // long keys: CUDA fused forward, products per sequence backward
}

// Attention on a stream with bf16 attention (set_bf16_attention, as bf16
// training sets it; CUDA: the tensor-core kernels) against the CPU's fp32 kernels
// on the same inputs rounded to bf16: only the kernels' own rounding of the
// probabilities and score gradients to bf16 is left (kTolBf16Attention). Where
// the backend says it takes the head size in bf16 (bf16_attention), the result
// also differs from the fp32 stream's by more than fp32 rounding, which shows
// the bf16 kernels ran; where it says not, the two are the same kernels.
void bf16_attention_case(int64_t n_seq, int64_t nq, int64_t nk, int64_t H, int64_t Hkv, int64_t hd, int64_t ldkv,
                         int64_t visible0, float p) {
    Pair P;
    const int64_t D = H * hd, kv_stride = (nk + 5) * ldkv;
    std::vector<Dropout> drops;
    for (int64_t i = 0; i < n_seq; ++i) drops.push_back({p, 0xb16ull + 7 * static_cast<uint64_t>(i)});
    const Dropout *dp = p > 0.0f ? drops.data() : nullptr;
    auto rounded = [&](int64_t n) {
        std::normal_distribution<float> d(0.0f, 1.0f);
        std::vector<float> h(static_cast<size_t>(n));
        for (float &x : h) x = bf16_round(d(P.rng_));
        return &P.make(h);
    };
    Buf &q = *rounded(n_seq * nq * D), &k = *rounded(n_seq * kv_stride), &v = *rounded(n_seq * kv_stride);
    Buf &dout = *rounded(n_seq * nq * D);
    Buf &o = P.zeros(n_seq * nq * D), &dq = P.zeros(n_seq * nq * D), &dk = P.random(n_seq * kv_stride);
    Buf &dv = P.random(n_seq * kv_stride);
    Buf &o32 = P.zeros(n_seq * nq * D), &dq32 = P.zeros(n_seq * nq * D);
    const bool bf16 = g_gpu->supports_bf16();
    P.both([&](Backend &be, Stream &s, bool g) {
        if (g) {  // the fp32 stream's results first, for the last check
            be.attention_stacked(s, o32.on(g), q.on(g), k.on(g), v.on(g), nq, nk, ldkv, H, Hkv, hd, visible0, n_seq,
                                 kv_stride, dp);
            be.attention_stacked_backward(s, dq32.on(g), dk.on(g), dv.on(g), dout.on(g), q.on(g), k.on(g), v.on(g), nq,
                                          nk, ldkv, H, Hkv, hd, visible0, n_seq, kv_stride, dp);
        }
        be.set_bf16(s, g && bf16);
        be.set_bf16_attention(s, g && bf16);
        be.attention_stacked(s, o.on(g), q.on(g), k.on(g), v.on(g), nq, nk, ldkv, H, Hkv, hd, visible0, n_seq, kv_stride,
                             dp);
        be.attention_stacked_backward(s, dq.on(g), dk.on(g), dv.on(g), dout.on(g), q.on(g), k.on(g), v.on(g), nq, nk,
                                      ldkv, H, Hkv, hd, visible0, n_seq, kv_stride, dp);
        if (!g) be.attention_stacked_backward(s, dq.on(g), dk.on(g), dv.on(g), dout.on(g), q.on(g), k.on(g), v.on(g), nq,
                                              nk, ldkv, H, Hkv, hd, visible0, n_seq, kv_stride, dp);
        be.set_bf16(s, false);
        be.set_bf16_attention(s, false);
    });
    print_message("bf16 attention n_seq=%ld nq=%ld nk=%ld H=%ld Hkv=%ld hd=%ld ldkv=%ld visible0=%ld dropout=%.2f\n",
                  (long)n_seq, (long)nq, (long)nk, (long)H, (long)Hkv, (long)hd, (long)ldkv, (long)visible0, p);
    const bool in_bf16 = bf16 && g_gpu->bf16_attention(hd);
    const double tol = in_bf16 ? gpu_test::kTolBf16Attention : gpu_test::kTolF32;
    P.expect("attention (bf16 stream)", o, tol);
    P.expect("attention_backward dq (bf16 stream)", dq, tol);
    P.expect("attention_backward dk (+= twice)", dk, tol);
    P.expect("attention_backward dv (+= twice)", dv, tol);
    const double e = rel(P.host(o, true), P.host(o32, true)), e_dq = rel(P.host(dq, true), P.host(dq32, true));
    print_message("  bf16 attention %s for head size %ld; against the fp32 stream: out %.2e, dq %.2e\n",
                  in_bf16 ? "taken" : "not taken", (long)hd, e, e_dq);
    if (in_bf16 && !(e > 1e-5 && e_dq > 1e-5)) fail_msg("the bf16 attention is the fp32 one (%.2e, %.2e)", e, e_dq);
    if (!in_bf16 && !(e < gpu_test::kTolF32 && e_dq < gpu_test::kTolF32))
        fail_msg("head size %ld is not taken in bf16, yet the result moved (%.2e, %.2e)", (long)hd, e, e_dq);
}

void bf16_attention_ops(void **) {
    bf16_attention_case(1, 5, 12, 4, 2, 16, 2 * 16 * 3, 7, 0.0f);        // few rows, GQA, k and v in one wide row
    bf16_attention_case(2, 256, 288, 12, 12, 64, 12 * 64, 32, 0.1f);     // base's token rows (64-head), dropout
    bf16_attention_case(3, 32, 288, 12, 12, 64, 12 * 64, 288, 0.0f);     // base's memory rows: every key
    bf16_attention_case(1, 300, 1100, 2, 1, 32, 32, 800, 0.1f);          // long keys: many tiles, GQA
    bf16_attention_case(17, 9, 20, 2, 1, 48, 48, 11, 0.1f);              // head size 48, two launches of sequences
    bf16_attention_case(1, 70, 90, 2, 1, 128, 2 * 128, 20, 0.0f);        // head size 128
    bf16_attention_case(1, 24, 24, 2, 2, 8, 16, 0, 0.0f);                // head size 8: the fp32 kernel on CUDA
}

void elementwise_ops(void **) {
    Pair P;
    const int64_t n = 3000;
    Buf &g = P.random(n, 2.0f), &u = P.random(n, 2.0f), &h = P.zeros(n), &hg = P.zeros(n), &dh = P.random(n);
    Buf &dg = P.zeros(n), &du = P.zeros(n), &du2 = P.zeros(n);
    P.both([&](Backend &be, Stream &s, bool gg) {
        be.swiglu(s, h.on(gg), g.on(gg), u.on(gg), n);
        be.gelu(s, hg.on(gg), u.on(gg), n);
        be.swiglu_backward(s, dg.on(gg), du.on(gg), dh.on(gg), g.on(gg), u.on(gg), n);
        be.gelu_backward(s, du2.on(gg), dh.on(gg), u.on(gg), n);
    });
    P.expect("swiglu", h);
    P.expect("gelu", hg);
    P.expect("swiglu_backward dg", dg);
    P.expect("swiglu_backward du", du);
    P.expect("gelu_backward", du2);
    Buf &x = P.random(n);
    Dropout drop{0.25f, 987654321ull};
    P.both([&](Backend &be, Stream &s, bool gg) { be.dropout(s, x.on(gg), n, drop); });
    P.expect("dropout (same masks)", x, 1e-7);
    Buf &f = P.random(n);
    P.both([&](Backend &be, Stream &s, bool gg) { be.fill(s, f.on(gg), 0.375f, n - 5); });
    P.expect("fill", f, 1e-30);
    Buf &big = P.random(1 << 20);
    Pair &PP = P;
    // One tensor; then a list with a NULL entry (skipped) and the tensor twice in halves.
    const float *bc = big.c, *bg = big.g;
    const size_t bn = big.n, halves[3] = {big.n / 2, 7, big.n - big.n / 2};
    // The norm (grad_scale 0.5) and the update scale with and without a clip.
    auto norm_of = [&](Backend &be, Stream &s, const float *const *xs, const size_t *ns, size_t count, float clip) {
        be.update_scale(s, xs, ns, count, 0.5f, clip);
        return be.take_grad_norm(s);
    };
    const double sc = norm_of(*g_cpu, PP.cs(), &bc, &bn, 1, 0.0f), sg = norm_of(*g_gpu, PP.gs(), &bg, &bn, 1, 0.0f);
    print_message("  gradient norm cpu %.12g gpu %.12g\n", sc, sg);
    assert_true(std::fabs(sc - sg) / sc < 1e-9);
    // The norm stays that of the last update_scale when read again.
    assert_true(g_cpu->take_grad_norm(PP.cs()) == sc && g_gpu->take_grad_norm(PP.gs()) == sg);
    const float *lc[3] = {big.c, nullptr, big.c + big.n / 2}, *lg[3] = {big.g, nullptr, big.g + big.n / 2};
    const double sc3 = norm_of(*g_cpu, PP.cs(), lc, halves, 3, 1.0f), sg3 = norm_of(*g_gpu, PP.gs(), lg, halves, 3, 1.0f);
    assert_true(std::fabs(sc3 - sc) / sc < 1e-9);
    assert_true(std::fabs(sg3 - sg) / sg < 1e-9);
    const size_t zero = 0;
    assert_true(norm_of(*g_gpu, PP.gs(), &bg, &zero, 1, 0.0f) == 0.0);
    // The accumulator starts from zero again after each update_scale.
    assert_true(std::fabs(norm_of(*g_gpu, PP.gs(), &bg, &bn, 1, 0.0f) - sg) / sg < 1e-9);
}

void pool_ops(void **) {
    for (int64_t T : {5, 70}) {
        Pair P;
        const int64_t M = 4, D = 48;
        Buf &Pq = P.random(M * D), &x = P.random(T * D), &o = P.zeros(M * D);
        P.both([&](Backend &be, Stream &s, bool g) { be.pool(s, o.on(g), Pq.on(g), x.on(g), M, T, D); });
        print_message("pool T=%ld\n", (long)T);
        P.expect("pool", o);
        Buf &dout = P.random(M * D), &dx = P.random(T * D), &dP = P.random(M * D);
        P.both([&](Backend &be, Stream &s, bool g) {
            be.pool_backward(s, dx.on(g), dP.on(g), dout.on(g), Pq.on(g), x.on(g), M, T, D);
        });
        P.expect("pool_backward dx (+=)", dx);
        P.expect("pool_backward dP (+=)", dP);
        Buf &dxf = P.random(T * D);
        P.both([&](Backend &be, Stream &s, bool g) {
            be.pool_backward(s, dxf.on(g), nullptr, dout.on(g), Pq.on(g), x.on(g), M, T, D);
        });
        P.expect("pool_backward dx, frozen query", dxf);
    }
    pool_stacked_case(3, 6, 11, 8);
    pool_stacked_case(4, 32, 256, 96);  // memory slots over a 256-token segment
}

void cell_ops(void **) {
    const int64_t M = 5, D = 40;
    for (CellKind kind : {CellKind::gru, CellKind::lstm, CellKind::minimal}) {
        Pair P;
        const int64_t G = kind == CellKind::gru ? 3 : kind == CellKind::lstm ? 4 : 2;
        const bool lstm = kind == CellKind::lstm, has_gh = kind != CellKind::minimal;
        Buf &gi = P.random(M * G * D, 1.5f), &gh = P.random(M * G * D, 1.5f), &h = P.random(M * D);
        Buf &c_in = P.random(M * D), &m = P.zeros(M * D), &c_out = P.zeros(M * D);
        P.both([&](Backend &be, Stream &s, bool g) {
            be.cell(s, kind, m.on(g), lstm ? c_out.on(g) : nullptr, lstm ? c_in.on(g) : nullptr, gi.on(g),
                    has_gh ? gh.on(g) : nullptr, h.on(g), M, D);
        });
        const char *name = kind == CellKind::gru ? "gru" : lstm ? "lstm" : "minimal";
        print_message("cell %s\n", name);
        P.expect("cell m", m);
        if (lstm) P.expect("cell c", c_out);
        for (bool with_dc : {false, true}) {
            if (with_dc && !lstm) continue;
            Buf &dm = P.random(M * D), &dc_out = P.random(M * D), &dgi = P.zeros(M * G * D), &dgh = P.zeros(M * G * D);
            Buf &dh = P.random(M * D), &dc_in = P.zeros(M * D);
            P.both([&](Backend &be, Stream &s, bool g) {
                be.cell_backward(s, kind, dgi.on(g), has_gh ? dgh.on(g) : nullptr, dh.on(g), lstm ? dc_in.on(g) : nullptr,
                                 dm.on(g), with_dc ? dc_out.on(g) : nullptr, lstm ? c_in.on(g) : nullptr, gi.on(g),
                                 has_gh ? gh.on(g) : nullptr, h.on(g), M, D);
            });
            P.expect("cell_backward dgi", dgi);
            if (has_gh) P.expect("cell_backward dgh", dgh);
            P.expect("cell_backward dh (+=)", dh);
            if (lstm) P.expect(with_dc ? "cell_backward dc_in (with dc_out)" : "cell_backward dc_in", dc_in);
        }
    }
    Pair P;
    Buf &a = P.random(M * D), &b = P.random(M * D), &cat = P.zeros(M * 2 * D), &src = P.random(M * 2 * D);
    P.both([&](Backend &be, Stream &s, bool g) {
        be.concat_cols(s, cat.on(g), a.on(g), b.on(g), M, D);
        be.split_cols_add(s, a.on(g), b.on(g), src.on(g), M, D);
    });
    P.expect("concat_cols", cat);
    P.expect("split_cols_add a", a);
    P.expect("split_cols_add b", b);
}

void cross_entropy_ops(void **) {
    for (int64_t V : {7, 5000}) {
        Pair P;
        const int64_t rows = 9;
        std::vector<int32_t> tg(rows);
        for (int64_t r = 0; r < rows; ++r) tg[r] = r == 2 || r == 6 ? -1 : static_cast<int32_t>((r * 31) % V);
        Buf &logits = P.random(rows * V, 3.0f), &dl = P.zeros(rows * V), &inplace = P.make(P.host(logits, false));
        g_cpu->cross_entropy(P.cs(), dl.c, logits.c, tg.data(), rows, V, 0.125f);
        g_gpu->cross_entropy(P.gs(), dl.g, logits.g, tg.data(), rows, V, 0.125f);
        const double lc = g_cpu->take_loss(P.cs()), lg = g_gpu->take_loss(P.gs());
        // Two calls add up until taken; a take resets the sum.
        g_cpu->cross_entropy(P.cs(), dl.c, logits.c, tg.data(), rows, V, 0.125f);
        g_gpu->cross_entropy(P.gs(), dl.g, logits.g, tg.data(), rows, V, 0.125f);
        g_cpu->cross_entropy(P.cs(), inplace.c, inplace.c, tg.data(), rows, V, 1.0f);
        g_gpu->cross_entropy(P.gs(), inplace.g, inplace.g, tg.data(), rows, V, 1.0f);
        const double lc2 = g_cpu->take_loss(P.cs()) - lc + 0.5, lg2 = g_gpu->take_loss(P.gs()) - lg + 0.5;
        assert_true(g_gpu->take_loss(P.gs()) == 0.0 && g_cpu->take_loss(P.cs()) == 0.0);
        print_message("cross_entropy V=%ld: loss cpu %.10f gpu %.10f\n", (long)V, lc, lg);
        assert_true(std::fabs(lc - lg) / std::fabs(lc) < 1e-6);
        assert_true(std::fabs(lc2 - lg2) / std::fabs(lc2) < 1e-6);
        assert_true(std::fabs(lc2 - 0.5 - lc) / lc < 1e-6);  // the two calls added up
        P.expect("cross_entropy dlogits", dl);
        P.expect("cross_entropy dlogits (in place)", inplace);
    }
}

// The device's bf16 shadow of p is p rounded to bf16: bit-exact with the device's
// p rounded on the host (the first n - 1 of p's n values, whole 32-bit words).
void expect_shadow(const char *what, Pair &P, const uint16_t *shadow, const Buf &p) {
    const size_t n = p.n;
    std::vector<float> pg = P.host(p, true);
    std::vector<uint16_t> shg(n + 1);
    float *tmp = g_gpu->alloc((n + 1) / 2);
    g_gpu->copy(P.gs(), tmp, reinterpret_cast<const float *>(shadow), (n + 1) / 2);
    g_gpu->to_host(P.gs(), reinterpret_cast<float *>(shg.data()), tmp, n / 2);
    g_gpu->sync(P.gs());
    g_gpu->free(tmp);
    size_t bad = 0;
    for (size_t i = 0; i + 1 < n; ++i) {
        float r = bf16_round(pg[i]);
        uint32_t u;
        std::memcpy(&u, &r, 4);
        bad += shg[i] != static_cast<uint16_t>(u >> 16);
    }
    print_message("  %s shadow: %zu of %zu differ from p rounded to bf16\n", what, bad, n - 1);
    assert_int_equal(bad, 0);
}

// Backend's bf16 copies on the device: the copies the norm, activation and
// cross-entropy kernels write are their fp32 outputs rounded to bf16, bit for
// bit, and products given copies of x and dy compute exactly what they compute
// when they round x and dy themselves.
void bf16_copies(void **) {
    if (!g_gpu->supports_bf16()) {
        print_message("this device has no bf16 matrix products: nothing to check\n");
        return;
    }
    Pair P;
    const int64_t n = 33, d = 64, F = 96, V = 300;
    Buf &x = P.random(n * d, 2.0f, 0.5f), &w = P.random(d), &b = P.random(d), &y = P.zeros(n * d);
    Buf &g = P.random(n * F), &u = P.random(n * F), &h = P.zeros(n * F), &hg = P.zeros(n * F);
    Buf &dh = P.random(n * F), &dg = P.zeros(n * F), &du = P.zeros(n * F), &dug = P.zeros(n * F);
    Buf &logits = P.random(n * V, 3.0f);
    auto y16 = P.bf16(n * d), h16 = P.bf16(n * F), hg16 = P.bf16(n * F), dg16 = P.bf16(n * F), du16 = P.bf16(n * F),
         dug16 = P.bf16(n * F), dl16 = P.bf16(n * V);
    std::vector<int32_t> targets(n);
    for (int64_t i = 0; i < n; ++i) targets[i] = i % 5 == 2 ? -1 : static_cast<int32_t>((i * 37) % V);
    Stream &s = P.gs();
    g_gpu->norm(s, NormKind::layernorm, y.g, x.g, w.g, b.g, n, d, 1e-5f, y16.second);
    g_gpu->swiglu(s, h.g, g.g, u.g, n * F, h16.second);
    g_gpu->gelu(s, hg.g, u.g, n * F, hg16.second);
    g_gpu->swiglu_backward(s, dg.g, du.g, dh.g, g.g, u.g, n * F, dg16.second, du16.second);
    g_gpu->gelu_backward(s, dug.g, dh.g, u.g, n * F, dug16.second);
    g_gpu->cross_entropy(s, logits.g, logits.g, targets.data(), n, V, 0.5f, dl16.second);
    g_gpu->take_loss(s);
    expect_shadow("norm's copy", P, y16.second, y);
    expect_shadow("swiglu's copy", P, h16.second, h);
    expect_shadow("gelu's copy", P, hg16.second, hg);
    expect_shadow("swiglu_backward's dg copy", P, dg16.second, dg);
    expect_shadow("swiglu_backward's du copy", P, du16.second, du);
    expect_shadow("gelu_backward's copy", P, dug16.second, dug);
    expect_shadow("cross_entropy's copy", P, dl16.second, logits);

    // Products of W [F, d] (shadowed) with x = y and dy = h, with and without copies.
    Buf &W = P.random(F * d, 0.2f), &bias = P.random(F);
    auto sh = P.bf16(F * d);
    g_gpu->to_bf16(s, sh.second, W.g, F * d);
    g_gpu->set_shadow(s, W.g, sh.second);
    g_gpu->set_bf16(s, true);
    Buf &o1 = P.zeros(n * F), &o2 = P.zeros(n * F), &dx1 = P.zeros(n * d), &dx2 = P.zeros(n * d);
    Buf &dW1 = P.zeros(F * d), &dW2 = P.zeros(F * d);
    g_gpu->linear(s, o1.g, y.g, W.g, bias.g, n, d, F, false);
    g_gpu->linear(s, o2.g, y.g, W.g, bias.g, n, d, F, false, y16.second);
    g_gpu->linear_backward(s, dx1.g, false, dW1.g, nullptr, h.g, y.g, W.g, n, d, F);
    g_gpu->linear_backward(s, dx2.g, false, dW2.g, nullptr, h.g, y.g, W.g, n, d, F, y16.second, h16.second);
    g_gpu->set_bf16(s, false);
    for (auto [what, a, c] : {std::tuple{"linear", &o1, &o2}, {"linear_backward dx", &dx1, &dx2},
                              {"linear_backward dW", &dW1, &dW2}}) {
        const std::vector<float> one = P.host(*a, true), two = P.host(*c, true);
        print_message("  %s with copies: %s\n", what, one == two ? "the same bits" : "DIFFERENT");
        assert_true(one == two);
    }
}

// A step's update over many tensors at once (CUDA: one launch each for the norm,
// AdamW and a lane's gradients; the CPU runs the seam's per-tensor defaults):
// sizes around and past the CUDA chunk (65536), a NULL gradient the norm skips, a
// NULL destination add_many skips, decays and shadows on some tensors only.
void optimiser_many(void **) {
    Pair P;
    const std::vector<size_t> sizes = {1, 17, 65536, 65537, 150001, 300};
    std::vector<Buf *> p, m, v, g, g2;
    for (size_t n : sizes) {
        p.push_back(&P.random(n)), m.push_back(&P.random(n, 0.1f)), g.push_back(&P.random(n)), g2.push_back(&P.random(n));
        std::vector<float> h(n);
        for (float &x : h) x = 0.01f + std::fabs(0.05f * std::normal_distribution<float>(0.0f, 1.0f)(P.rng_));
        v.push_back(&P.make(h));
    }
    auto sh = P.bf16(sizes[4]);
    for (int64_t step : {1, 7}) {
        P.both([&](Backend &be, Stream &s, bool gg) {
            std::vector<float *> dst;
            std::vector<const float *> src, norm;
            for (size_t i = 0; i < sizes.size(); ++i) {
                dst.push_back(i == 1 ? nullptr : g[i]->on(gg));
                src.push_back(g2[i]->on(gg));
                norm.push_back(i == 3 ? nullptr : g[i]->on(gg));
            }
            be.add_many(s, dst.data(), src.data(), sizes.data(), sizes.size());
            be.update_scale(s, norm.data(), sizes.data(), sizes.size(), 0.5f, step == 7 ? 2.0f : 0.0f);
            std::vector<Backend::AdamwTensor> ts;
            for (size_t i = 0; i < sizes.size(); ++i)
                ts.push_back({p[i]->on(gg), m[i]->on(gg), v[i]->on(gg), g[i]->on(gg), sizes[i], i % 2 ? 0.1f : 0.0f,
                              i == 4 ? (gg ? sh.second : sh.first) : nullptr});
            be.adamw_many(s, ts.data(), ts.size(), 1e-3f, 0.9f, 0.95f, 1e-8f, step);
        });
        double norms[2] = {0, 0};
        P.both([&](Backend &be, Stream &s, bool gg) { norms[gg] = be.take_grad_norm(s); });
        print_message("optimiser_many step %lld: gradient norm cpu %.9g %s %.9g\n", (long long)step, norms[0], gpu_test::kDevice,
                      norms[1]);
        if (!(std::fabs(norms[1] - norms[0]) <= 1e-6 * norms[0])) fail_msg("gradient norms differ");
    }
    for (size_t i = 0; i < sizes.size(); ++i) {
        print_message("tensor of %zu\n", sizes[i]);
        P.expect("add_many (g += g2)", *g[i]);
        P.expect("adamw_many p", *p[i]);
        P.expect("adamw_many m", *m[i]);
        P.expect("adamw_many v", *v[i]);
    }
    expect_shadow("adamw_many", P, sh.second, *p[4]);
}

void optimiser_ops(void **) {
    Pair P;
    const size_t n = 70001;
    Buf &p = P.random(n), &m = P.random(n, 0.1f), &v = P.random(n, 0.01f, 0.05f), &g = P.random(n);
    Buf &p2 = P.make(P.host(p, false)), &m2 = P.make(P.host(m, false)), &v2 = P.make(P.host(v, false));
    // v must be >= 0 as it is in training
    for (Buf *b : {&v, &v2}) {
        std::vector<float> h = P.host(*b, false);
        for (float &x : h) x = std::fabs(x);
        std::memcpy(b->c, h.data(), n * 4);
        g_gpu->from_host(P.gs(), b->g, h.data(), n);
    }
    auto sh = P.bf16(n);
    // A new stream's update scale is 1 until its first update_scale.
    {
        Buf &p3 = P.make(P.host(p, false)), &m3 = P.make(P.host(m, false)), &v3 = P.make(P.host(v, false));
        P.both([&](Backend &be, Stream &s, bool gg) {
            be.adamw(s, p3.on(gg), m3.on(gg), v3.on(gg), g.on(gg), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1, nullptr);
        });
        P.expect("adamw before any update_scale, p", p3);
        P.expect("adamw before any update_scale, m", m3);
        P.expect("adamw before any update_scale, v", v3);
    }
    // Update scales: 0.5 unclipped, then g's norm clipped to 3 (a scale the device computes).
    for (int64_t step : {1, 2, 50}) {
        P.both([&](Backend &be, Stream &s, bool gg) {
            const float *gs = g.on(gg);
            be.update_scale(s, &gs, &n, 1, 0.5f, step == 2 ? 3.0f : 0.0f);
            be.adamw(s, p.on(gg), m.on(gg), v.on(gg), g.on(gg), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, step,
                     gg ? sh.second : sh.first);
            be.update_scale(s, nullptr, nullptr, 0, 1.0f, 0.0f);
            be.adamw(s, p2.on(gg), m2.on(gg), v2.on(gg), g.on(gg), n, 3e-2f, 0.8f, 0.99f, 1e-6f, 0.0f, step, nullptr);
        });
    }
    P.expect("adamw p", p);
    P.expect("adamw m", m);
    P.expect("adamw v", v);
    P.expect("adamw p (no shadow)", p2);
    expect_shadow("adamw", P, sh.second, p);
    // A gradient that is not finite (here a NaN): the norm says so and adamw
    // changes nothing, on either backend.
    std::vector<float> gh = P.host(g, false);
    gh[n / 3] = std::nanf("");
    Buf &gn = P.make(gh);
    const std::vector<float> p_before = P.host(p2, true), m_before = P.host(m2, true), v_before = P.host(v2, true);
    const std::vector<float> pc_before = P.host(p2, false);
    double norms[2] = {0, 0};
    P.both([&](Backend &be, Stream &s, bool gg) {
        const float *gs = gn.on(gg);
        be.update_scale(s, &gs, &n, 1, 1.0f, 1.0f);
        be.adamw(s, p2.on(gg), m2.on(gg), v2.on(gg), gn.on(gg), n, 3e-2f, 0.8f, 0.99f, 1e-6f, 0.1f, 51, nullptr);
        norms[gg] = be.take_grad_norm(s);
    });
    assert_true(std::isnan(norms[0]) && std::isnan(norms[1]));
    assert_true(P.host(p2, true) == p_before && P.host(m2, true) == m_before && P.host(v2, true) == v_before);
    assert_true(P.host(p2, false) == pc_before);
    // to_bf16 against the CPU's conversion.
    Buf &src = P.random(4097, 3.0f);
    auto b = P.bf16(4097);
    g_cpu->to_bf16(P.cs(), b.first, src.c, 4097);
    g_gpu->to_bf16(P.gs(), b.second, src.g, 4097);
    float *tmp2 = g_gpu->alloc(4098 / 2);
    g_gpu->copy(P.gs(), tmp2, reinterpret_cast<float *>(b.second), 4098 / 2);
    std::vector<uint16_t> gb(4098);
    g_gpu->to_host(P.gs(), reinterpret_cast<float *>(gb.data()), tmp2, 4098 / 2);
    g_gpu->sync(P.gs());
    g_gpu->free(tmp2);
    assert_memory_equal(gb.data(), b.first, 4097 * sizeof(uint16_t));
}

void memory_ops(void **) {
    Pair P;
    // copy between overlapping ranges behaves as memmove, as on the CPU.
    Buf &a = P.random(1000);
    P.both([&](Backend &be, Stream &s, bool g) {
        be.copy(s, a.on(g) + 10, a.on(g), 500);
        be.copy(s, a.on(g) + 600, a.on(g) + 650, 300);
    });
    P.expect("copy (overlapping)", a, 1e-30);
    // copy_blocks: 5 blocks of 37 from a pitch of 40 to a pitch of 101, both ways.
    Buf &src = P.random(5 * 40), &dst = P.zeros(5 * 101), &back = P.zeros(5 * 37);
    P.both([&](Backend &be, Stream &s, bool g) {
        be.copy_blocks(s, dst.on(g) + 3, 101, src.on(g), 40, 37, 5);
        be.copy_blocks(s, back.on(g), 37, dst.on(g) + 3, 101, 37, 5);
    });
    P.expect("copy_blocks (to wider pitch)", dst, 1e-30);
    P.expect("copy_blocks (back, dense)", back, 1e-30);
    const std::vector<float> hs = P.host(src, true), hb = P.host(back, true);
    for (size_t i = 0; i < 5; ++i)
        for (size_t j = 0; j < 37; ++j) assert_true(hb[i * 37 + j] == hs[i * 40 + j]);
    // alloc zero-fills.
    float *z = g_gpu->alloc(12345);
    std::vector<float> h(12345, 1.0f);
    g_gpu->to_host(P.gs(), h.data(), z, h.size());
    g_gpu->sync(P.gs());
    g_gpu->free(z);
    for (float x : h) assert_true(x == 0.0f);
    // A bad device pointer is an error with a message, not a crash of the caller
    // (CUDA only: on the CPU it is a crash).
    if (g_gpu == g_cpu) return;
    if (const char *e = std::getenv("RMKV_GPU_TEST_UNDER_SANITIZER"); e && *e == '1') return;
    bool threw = false;
    try {
        std::vector<float> junk(4);
        g_gpu->from_host(P.gs(), reinterpret_cast<float *>(16), junk.data(), 4);
        g_gpu->sync(P.gs());
    } catch (const Error &e) {
        threw = true;
        print_message("  bad pointer: %s\n", e.what());
        assert_int_equal(e.status(), RMKV_ERR_BACKEND);
    }
    assert_true(threw);
}

}  // namespace

namespace gpu_test {
void decode_ops(void **);  // test_gpu_sessions_ops.cpp
void rows_ops(void **);
void recorded_ops(void **);
}  // namespace gpu_test
using gpu_test::decode_ops;
using gpu_test::recorded_ops;
using gpu_test::rows_ops;

int main() {
    setenv("RMKV_CUDA_GRAPHS", "1", 1);  // recorded_ops: the CUDA backend records (read when it is made)
    g_cpu = get_backend("cpu");
    try {
        g_gpu = get_backend(gpu_test::kDevice);
    } catch (const Error &e) {
        if (e.status() == RMKV_ERR_BACKEND && gpu_test::is_no_device(e.what())) {
            std::printf("SKIPPED: no CUDA device on this machine (%s)\n", e.what());
            return gpu_test::skip_code();
        }
        std::printf("FAILED: the CUDA backend cannot be used: %s\n", e.what());
        return 1;
    }
    std::printf("CUDA backend: %s\n", g_gpu->name().c_str());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(linear_ops),    cmocka_unit_test(linear_bf16), cmocka_unit_test(half_weights),       cmocka_unit_test(norm_ops),
        cmocka_unit_test(embed_add_positions), cmocka_unit_test(attention_ops), cmocka_unit_test(stacked_ops),
        cmocka_unit_test(bf16_attention_ops), cmocka_unit_test(decode_ops), cmocka_unit_test(rows_ops),
        cmocka_unit_test(recorded_ops),
        cmocka_unit_test(elementwise_ops),
        cmocka_unit_test(pool_ops),      cmocka_unit_test(cell_ops),          cmocka_unit_test(cross_entropy_ops),
        cmocka_unit_test(optimiser_ops), cmocka_unit_test(optimiser_many), cmocka_unit_test(bf16_copies), cmocka_unit_test(memory_ops),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
