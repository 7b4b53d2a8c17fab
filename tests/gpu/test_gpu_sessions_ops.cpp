// test_gpu_ops, continued: the operations of sessions decoded together (rows
// over caches of their own, the memory rewrite of several sessions at once) and
// recorded steps (CUDA graphs), the CUDA backend against the CPU backend.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "gpu_common.h"

extern "C" {
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
}

#include "gpu_pair.h"  // after cmocka.h: its checks use cmocka

using namespace rmkv;

namespace gpu_test {

// Sessions decoded together: rows over caches of their own (one kernel on CUDA
// unless RMKV_CUDA_ATTENTION=products), then o scattered into each row's place.
static void decode_case(int64_t H, int64_t Hkv, int64_t hd, bool rope, const std::vector<int64_t> &at) {
    Pair P;
    const int64_t n = static_cast<int64_t>(at.size()), D = H * hd, Dkv = Hkv * hd;
    Buf &q = P.random(n * D), &k = P.random(n * Dkv), &v = P.random(n * Dkv), &o = P.zeros(n * D);
    std::vector<Buf *> keys, values, places;
    for (int64_t i = 0; i < n; ++i) {
        keys.push_back(&P.random((at[i] + 2) * Dkv));
        values.push_back(&P.random((at[i] + 2) * Dkv));
        places.push_back(&P.zeros(3 * D));
    }
    P.both([&](Backend &be, Stream &s, bool g) {
        std::vector<CacheRow> rows;
        std::vector<float *> dst;
        for (int64_t i = 0; i < n; ++i) {
            rows.push_back({keys[i]->on(g), values[i]->on(g), at[i], 17 * i + 3});
            dst.push_back(places[i]->on(g) + (i % 3) * D);
        }
        be.decode_attention(s, o.on(g), q.on(g), k.on(g), v.on(g), rows.data(), n, H, Hkv, hd, rope, 10000.0f);
        be.scatter_rows(s, dst.data(), o.on(g), n, D);
    });
    print_message("decode_attention rows=%ld H=%ld Hkv=%ld hd=%ld rope=%d\n", (long)n, (long)H, (long)Hkv, (long)hd,
                  rope ? 1 : 0);
    P.expect("decode_attention out", o);
    P.expect("decode_attention q (rotated)", q);
    for (int64_t i = 0; i < n; ++i) {
        P.expect("decode_attention keys", *keys[i]);
        P.expect("decode_attention values", *values[i], 1e-30);
        P.expect("scatter_rows", *places[i]);
    }
}

void decode_ops(void **) {
    decode_case(4, 2, 16, true, {7, 0, 30});
    decode_case(8, 2, 8, false, {3, 19, 5, 11, 60});
    decode_case(2, 1, 128, true, {300, 1});
    decode_case(12, 12, 64, true, std::vector<int64_t>(64, 270));  // 64 sessions at the end of a 256-token segment
    decode_case(2, 2, 64, true, {5000});                            // a long cache (a 4096-token segment)
}

// n streams of text with buffers of their own (the memory rewrite of sessions
// decoded together): attention_rows, pool_rows and gather_rows.
static void rows_case(int64_t n, int64_t nq, int64_t nk, int64_t H, int64_t Hkv, int64_t hd, int64_t visible0, int64_t T) {
    Pair P;
    const int64_t D = H * hd, Dkv = Hkv * hd;
    std::vector<Buf *> q, k, v, x;
    for (int64_t i = 0; i < n; ++i) {
        q.push_back(&P.random(nq * D)), k.push_back(&P.random(nk * Dkv)), v.push_back(&P.random(nk * Dkv));
        x.push_back(&P.random(T * D));
    }
    Buf &Pq = P.random(nq * D), &out = P.zeros(n * nq * D), &pooled = P.zeros(n * nq * D), &g = P.zeros(n * nk * Dkv);
    P.both([&](Backend &be, Stream &s, bool gpu) {
        std::vector<const float *> qs, ks, vs, xs;
        for (int64_t i = 0; i < n; ++i)
            qs.push_back(q[i]->on(gpu)), ks.push_back(k[i]->on(gpu)), vs.push_back(v[i]->on(gpu)), xs.push_back(x[i]->on(gpu));
        be.attention_rows(s, out.on(gpu), qs.data(), ks.data(), vs.data(), n, nq, nk, H, Hkv, hd, visible0);
        be.pool_rows(s, pooled.on(gpu), Pq.on(gpu), xs.data(), n, nq, T, D);
        be.gather_rows(s, g.on(gpu), vs.data(), n, nk * Dkv);
        std::fill(qs.begin(), qs.end(), nullptr);  // the host arrays may change once the calls return
    });
    print_message("rows: n=%ld nq=%ld nk=%ld H=%ld Hkv=%ld hd=%ld visible0=%ld T=%ld\n", (long)n, (long)nq, (long)nk,
                  (long)H, (long)Hkv, (long)hd, (long)visible0, (long)T);
    P.expect("attention_rows", out);
    P.expect("pool_rows", pooled);
    P.expect("gather_rows", g, 1e-30);
}

void rows_ops(void **) {
    rows_case(3, 4, 9, 4, 2, 16, 5, 7);
    rows_case(16, 32, 288, 12, 12, 64, 288, 256);  // base: 16 sessions ending a segment together
    rows_case(2, 8, 3000, 2, 1, 32, 3000, 40);     // keys beyond the fused kernel: the products per stream
}

// Recorded steps (RMKV_CUDA_GRAPHS=1, which main sets): the kinds of operation
// of a decoding step (a token staged from a host array, a norm, products,
// decode_attention with its cache row staged, an add) recorded and launched as
// one graph, as run_recorded does it (a step that matches the last graph
// replays it: its token and cache row staged where the graph reads them; one
// that does not is recorded): three steps in a row (the first instantiates the
// graph, the next replay it with new tokens and rows); two recorded steps
// queued back to back before one wait (the second's staging must not disturb
// the first's); a step whose staged tokens outgrow their buffers while
// recording; a recording spoiled by a call the capture cannot hold (a wait),
// which then runs nothing and is queued again unrecorded; a cancelled
// recording, which runs nothing.
void recorded_ops(void **) {
    const bool records = g_gpu->name().rfind("cuda", 0) == 0;
    Pair P;
    const int64_t V = 40, H = 4, Hkv = 2, hd = 16, D = H * hd, Dkv = Hkv * hd, cache = 16, many = 5000;
    Buf &E = P.random(V * D), &w = P.random(D, 0.1f, 1.0f), &Wq = P.random(D * D, 0.1f);
    Buf &Wk = P.random(Dkv * D, 0.1f), &Wv = P.random(Dkv * D, 0.1f);
    Buf &keys = P.random(cache * Dkv), &values = P.random(cache * Dkv);
    Buf &x = P.zeros(D), &xn = P.zeros(D), &q = P.zeros(D), &k = P.zeros(Dkv), &v = P.zeros(Dkv);
    Buf &o = P.zeros(D), &o2 = P.zeros(D), &X = P.zeros(many * D);
    // The step's operations: token `token` at cache row `at`, into out (and n_many
    // more tokens embedded into X).
    auto queue = [&](Backend &be, Stream &s, bool g, int32_t token, int64_t at, const Buf &out, int64_t n_many) {
        std::vector<int32_t> t(static_cast<size_t>(n_many), token);
        be.embed(s, x.on(g), E.on(g), &token, 1, D);
        if (n_many) be.embed(s, X.on(g), E.on(g), t.data(), n_many, D);
        std::fill(t.begin(), t.end(), 0);  // the host array may change once the call returns
        be.norm(s, NormKind::rmsnorm, xn.on(g), x.on(g), w.on(g), nullptr, 1, D, 1e-5f);
        be.linear(s, q.on(g), xn.on(g), Wq.on(g), nullptr, 1, D, D, false);
        be.linear(s, k.on(g), xn.on(g), Wk.on(g), nullptr, 1, D, Dkv, false);
        be.linear(s, v.on(g), xn.on(g), Wv.on(g), nullptr, 1, D, Dkv, false);
        const CacheRow row{keys.on(g), values.on(g), at, at + 100};
        be.decode_attention(s, out.on(g), q.on(g), k.on(g), v.on(g), &row, 1, H, Hkv, hd, true, 10000.0f);
        be.add(s, out.on(g), out.on(g), x.on(g), D);
    };
    // The step, recorded on the GPU (spoil: with a wait inside, then queued again).
    auto step = [&](Backend &be, Stream &s, bool g, int32_t token, int64_t at, const Buf &out, int64_t n_many,
                    bool spoil = false) {
        if (!g) return queue(be, s, g, token, at, out, n_many);
        bool ran = false;
        for (bool again : {false, true}) {
            const bool r = be.begin_record(s, again);
            if (!again && r != records) fail_msg("begin_record says %d on %s", r ? 1 : 0, be.name().c_str());
            if (!r) break;
            queue(be, s, g, token, at, out, n_many);
            if (spoil) be.sync(s);
            if ((ran = be.end_record(s))) break;
        }
        if (records && ran == spoil)
            fail_msg("%s", spoil ? "a recording with a wait inside ran" : "a recorded step failed to record");
        if (!ran) queue(be, s, g, token, at, out, n_many);
    };
    for (int i = 0; i < 4; ++i) {
        const int64_t n_many = i == 3 ? many : 0;
        P.both([&](Backend &be, Stream &s, bool g) { step(be, s, g, static_cast<int32_t>((7 * i + 3) % V), 5 + i, o, n_many); });
        print_message("recorded step %d%s\n", i, n_many ? " (staging grows while recording)" : "");
        P.expect("  out", o);
        P.expect("  the cache's keys", keys);
        P.expect("  the cache's values", values, 1e-30);
        if (n_many) P.expect("  5000 tokens embedded", X);
    }
    P.both([&](Backend &be, Stream &s, bool g) {
        step(be, s, g, 11, 10, o, 0);
        step(be, s, g, 12, 11, o2, 0);
    });
    P.expect("two recorded steps before one wait: the first", o);
    P.expect("  the second", o2);
    P.expect("  the cache's keys", keys);
    // (one more token embedded: a step unlike the last, so that it is recorded, not checked)
    P.both([&](Backend &be, Stream &s, bool g) { step(be, s, g, 13, 12, o, 1, true); });
    P.expect("a spoiled recording, queued again", o);
    P.expect("  the cache's keys", keys);
    P.both([&](Backend &be, Stream &s, bool g) { step(be, s, g, 14, 13, o, 0); });
    P.expect("a recorded step after it", o);
    if (records) {
        g_gpu->begin_record(P.gs(), false);
        g_gpu->add(P.gs(), o.g, o.g, o.g, D);
        g_gpu->cancel_record(P.gs());
    }
    P.expect("a cancelled recording ran nothing", o);
    P.both([&](Backend &be, Stream &s, bool g) { be.add(s, o.on(g), o.on(g), x.on(g), D); });
    P.expect("the stream after it", o);
}

}  // namespace gpu_test

