#include "backend/cpu/cpu_backend.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>
#include <algorithm>
#include <array>
#include <cmath>
#include <utility>
#include <unordered_map>

#include <oneapi/dnnl/dnnl.hpp>

#include "backend/cpu/cpu_half.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_simd.h"
#include "core/error.h"
#include "core/threads.h"

namespace rmkv {

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// dst[m, n] (+)= src[m, k] wei[k, n] (+ bias[n]); src and wei each stored plain or
// transposed (row-major [k, m] / [n, k]).
struct MatmulKey {
    int64_t m, k, n;
    bool src_t, wei_t, bias, accumulate;
    bool bf16 = false;  // src and wei in bf16 (dst and bias f32)
    // The calling thread's OpenMP thread count (cpu_threads): oneDNN splits
    // a primitive's work for the threads it is created for.
    int threads = 0;
    bool operator==(const MatmulKey &o) const {
        return m == o.m && k == o.k && n == o.n && src_t == o.src_t && wei_t == o.wei_t && bias == o.bias &&
               accumulate == o.accumulate && bf16 == o.bf16 && threads == o.threads;
    }
};
struct MatmulKeyHash {
    size_t operator()(const MatmulKey &k) const {
        size_t h = std::hash<int64_t>()(k.m) ^ (static_cast<size_t>(k.threads) << 40);
        h = h * 1000003u ^ std::hash<int64_t>()(k.k);
        h = h * 1000003u ^ std::hash<int64_t>()(k.n);
        return h * 32u + (k.bf16 ? 16u : 0u) + (k.src_t ? 8u : 0u) + (k.wei_t ? 4u : 0u) + (k.bias ? 2u : 0u) +
               (k.accumulate ? 1u : 0u);
    }
};

// A matmul primitive and its descriptors; created once per shape for the process.
struct Matmul {
    dnnl::matmul prim;
    dnnl::memory::desc src, wei, bias, dst, scratch;
};

// Per-stream bindings of a primitive: memory objects whose data handles are
// swapped per call, so a call allocates nothing.
struct Bound {
    const Matmul *mm;
    dnnl::memory src, wei, bias, dst;
    std::unordered_map<int, dnnl::memory> args;  // built once; the scratchpad entry follows the stream's
};

class CpuStream : public Stream {
public:
    explicit CpuStream(const dnnl::engine &eng)
        : stream(eng), scratch(dnnl::memory::desc({4096}, dt::u8, tag::a), eng), scratch_size(4096) {}
    dnnl::stream stream;
    std::unordered_map<MatmulKey, Bound, MatmulKeyHash> bound;
    dnnl::memory scratch;
    size_t scratch_size;
    // Attention of many rows: probabilities, their gradient, packed queries and
    // output gradients. Grow once to the largest chunk.
    std::vector<float> scores, dscores, packed_q, packed_dout;
    std::vector<float> pool_scores;  // pool's [M, T] (grows once to a segment's)
    // Mixed precision (training): matrix products of weights that have a bf16
    // shadow take bf16 inputs and accumulate in f32.
    bool bf16 = false;
    std::unordered_map<const float *, const uint16_t *> shadows;
    std::vector<uint16_t> cvt_a, cvt_b;  // activations converted for one product
    std::vector<float> spill;            // outputs of which only the bf16 copy is kept (with_copy)
};

class CpuBackend final : public Backend {
public:
    CpuBackend() : engine_(dnnl::engine::kind::cpu, 0) {}

    std::string name() const override { return "cpu"; }
    std::unique_ptr<Stream> new_stream() override { return std::make_unique<CpuStream>(engine_); }

    float *alloc(size_t n) override {
        size_t bytes = ((n * sizeof(float)) + 63) & ~size_t(63);
        if (bytes == 0) bytes = 64;
        void *p = std::aligned_alloc(64, bytes);
        if (!p) fail(RMKV_ERR_OUT_OF_MEMORY, "cannot allocate ", n * sizeof(float), " bytes");
        std::memset(p, 0, bytes);
        return static_cast<float *>(p);
    }
    void free(float *p) override { std::free(p); }
    float *import_weights(const float *host, size_t n, bool host_stable) override {
        if (host_stable && reinterpret_cast<uintptr_t>(host) % alignof(float) == 0) return const_cast<float *>(host);
        float *p = alloc(n);
        std::memcpy(p, host, n * sizeof(float));
        return p;
    }
    void release_weights(float *p, const float *host) override {
        if (p != host) free(p);
    }
    void to_host(Stream &, float *host, const float *src, size_t n) override { std::memcpy(host, src, n * sizeof(float)); }
    void from_host(Stream &, float *dst, const float *host, size_t n) override { std::memcpy(dst, host, n * sizeof(float)); }
    void copy(Stream &, float *dst, const float *src, size_t n) override {
        if (dst != src) std::memmove(dst, src, n * sizeof(float));
    }
    void sync(Stream &) override {}

    void linear(Stream &s, float *y, const float *x, const float *W, const float *b, int64_t n, int64_t in, int64_t out,
                bool accumulate, const uint16_t *x16) override {
        auto &st = static_cast<CpuStream &>(s);
        if (const uint16_t *w16 = shadow(st, W)) {  // training in bf16, whatever the rows
            run_matmul(s, MatmulKey{n, in, out, false, true, b != nullptr, accumulate, true},
                       x16 ? x16 : to_bf16(st.cvt_a, x, n * in), w16, b, y);
            return;
        }
        if (!x) fail(RMKV_ERR_INTERNAL, "linear: no fp32 input for a product without bf16 inputs");
        if (n == 1) {  // decoding: a bandwidth-bound matrix-vector product
            cpu::gemv(y, x, W, b, in, out, accumulate);
            return;
        }
        run_matmul(s, MatmulKey{n, in, out, false, true, b != nullptr, accumulate}, x, W, b, y);
    }

    bool has_half_weights() const override { return true; }
    const uint16_t *import_half_weights(const uint16_t *host, size_t) override { return host; }
    void release_half_weights(const uint16_t *, const uint16_t *) override {}
    void linear_w16(Stream &s, float *y, const float *x, const uint16_t *W, Half h, const float *b, int64_t n,
                    int64_t in, int64_t out, bool accumulate) override {
        auto &st = static_cast<CpuStream &>(s);
        if (h == Half::bf16 && st.bf16) {
            // bf16 products straight from the stored weights: x rounded to bf16, then
            // oneDNN's product, or for fewer rows the dot-product kernel
            const uint16_t *xb = to_bf16(st.cvt_a, x, n * in);
            if (n >= kBf16Rows)
                run_matmul(s, MatmulKey{n, in, out, false, true, b != nullptr, accumulate, true}, xb, W, b, y);
            else
                cpu::gemv_bf16(y, xb, W, b, n, in, out, accumulate);
            return;
        }
        if (n < kWidenRows || out * in > kWidenFloats) {  // decoding: each weight widened in registers
            cpu::gemv_w16(y, x, W, h, b, n, in, out, accumulate);
            return;
        }
        // Prefill: W widened whole into this thread's scratch, then the f32 product
        // (the same primitive, so the same values, as with an F32 file).
        float *wf = cpu::scratch<float>(out * in, 13);
        cpu::from_half(h, wf, W, out * in);
        run_matmul(s, MatmulKey{n, in, out, false, true, b != nullptr, accumulate}, x, wf, b, y);
    }
    void embed_w16(Stream &, float *X, const uint16_t *tok_emb, Half h, const int32_t *tokens, int64_t n,
                   int64_t d) override {
        for (int64_t r = 0; r < n; ++r) cpu::from_half(h, X + r * d, tok_emb + static_cast<int64_t>(tokens[r]) * d, d);
    }

    // oneDNN's bf16 products (which ONEDNN_MAX_CPU_ISA may turn off) and the CPU's
    // AVX512-BF16 for cpu::gemv_bf16: a bf16 stream runs both.
    bool supports_bf16() const override {
        return dnnl::get_effective_cpu_isa() >= dnnl::cpu_isa::avx512_core_bf16 && cpu::cpu_has_avx512bf16();
    }
    void set_bf16(Stream &s, bool on) override { static_cast<CpuStream &>(s).bf16 = on; }
    void set_shadow(Stream &s, const float *W, const uint16_t *W_bf16) override {
        static_cast<CpuStream &>(s).shadows[W] = W_bf16;
    }
    uint16_t *alloc_bf16(size_t n) override { return reinterpret_cast<uint16_t *>(alloc((n + 1) / 2)); }
    void free_bf16(uint16_t *p) override { free(reinterpret_cast<float *>(p)); }
    void to_bf16(Stream &, uint16_t *dst, const float *src, size_t n) override { cpu::to_bf16(dst, src, static_cast<int64_t>(n)); }

    // An operation's N outputs (rows of width values each) and their bf16 copies
    // (Backend's bf16 copies): f(to, r0, r1) computes rows [r0, r1) of output k
    // into to[k]. With every output given, all rows at once into the outputs, then
    // the copies; with some NULL (only their copies kept), a block of rows at a
    // time, the NULL ones through the stream's spill buffer, each block rounded
    // into the copies while it is in cache.
    struct Out {
        float *y;
        uint16_t *y16;
    };
    static constexpr int64_t kSpillFloats = 1 << 18;
    template <size_t N, class F>
    static void with_copies(Stream &s, const std::array<Out, N> &outs, int64_t rows, int64_t width, F &&f) {
        std::array<float *, N> to{};
        bool all = true;
        for (size_t k = 0; k < N; ++k) to[k] = outs[k].y, all = all && outs[k].y;
        if (all) {
            f(to, 0, rows);
            for (const Out &o : outs)
                if (o.y16) cpu::to_bf16(o.y16, o.y, rows * width);
            return;
        }
        if (rows <= 0) return;
        auto &st = static_cast<CpuStream &>(s);
        const int64_t block = std::max<int64_t>(1, std::min(rows, kSpillFloats / static_cast<int64_t>(N * width)));
        if (st.spill.size() < static_cast<size_t>(N * block * width)) st.spill.resize(N * block * width);
        for (int64_t r0 = 0; r0 < rows; r0 += block) {
            const int64_t r1 = std::min(rows, r0 + block);
            for (size_t k = 0; k < N; ++k)
                to[k] = outs[k].y ? outs[k].y + r0 * width : st.spill.data() + static_cast<int64_t>(k) * block * width;
            f(to, r0, r1);
            for (size_t k = 0; k < N; ++k)
                if (outs[k].y16) cpu::to_bf16(outs[k].y16 + r0 * width, to[k], (r1 - r0) * width);
        }
    }
    // One output.
    template <class F>
    static void with_copy(Stream &s, float *y, uint16_t *y16, int64_t rows, int64_t width, F &&f) {
        with_copies<1>(s, {{{y, y16}}}, rows, width,
                       [&](const std::array<float *, 1> &to, int64_t r0, int64_t r1) { f(to[0], r0, r1); });
    }

    const uint16_t *shadow(CpuStream &st, const float *W) const {
        if (!st.bf16) return nullptr;
        auto it = st.shadows.find(W);
        return it == st.shadows.end() ? nullptr : it->second;
    }
    // x rounded to bf16 into buf, at a 64-byte boundary (whole cache lines for the
    // kernels' vector loads); buf grows, never shrinks.
    static const uint16_t *to_bf16(std::vector<uint16_t> &buf, const float *x, int64_t n) {
        if (static_cast<int64_t>(buf.size()) < n + 32) buf.resize(static_cast<size_t>(n + 32));
        uint16_t *dst = buf.data() + (64 - reinterpret_cast<uintptr_t>(buf.data()) % 64) % 64 / 2;
        cpu::to_bf16(dst, x, n);
        return dst;
    }

    // Runs a cached primitive with this stream's memory objects: no allocation.
    void run_matmul(Stream &s, MatmulKey key, const void *src, const void *wei, const float *b, float *y) {
        auto &st = static_cast<CpuStream &>(s);
        key.threads = cpu_threads();
        auto it = st.bound.find(key);
        if (it == st.bound.end()) {
            const Matmul *mm = matmul(key);
            Bound bd{mm, dnnl::memory(mm->src, engine_, nullptr), dnnl::memory(mm->wei, engine_, nullptr),
                     dnnl::memory(mm->bias, engine_, nullptr), dnnl::memory(mm->dst, engine_, nullptr), {}};
            bd.args = {{DNNL_ARG_SRC, bd.src}, {DNNL_ARG_WEIGHTS, bd.wei}, {DNNL_ARG_DST, bd.dst}, {DNNL_ARG_SCRATCHPAD, {}}};
            if (key.bias) bd.args[DNNL_ARG_BIAS] = bd.bias;
            ensure_scratch(st, mm->scratch.get_size());
            it = st.bound.emplace(key, std::move(bd)).first;
        }
        Bound &bd = it->second;
        bd.src.set_data_handle(const_cast<void *>(src));
        bd.wei.set_data_handle(const_cast<void *>(wei));
        bd.dst.set_data_handle(y);
        if (b) bd.bias.set_data_handle(const_cast<float *>(b));
        bd.args[DNNL_ARG_SCRATCHPAD] = st.scratch;
        bd.mm->prim.execute(st.stream, bd.args);
    }

    void norm(Stream &s, NormKind kind, float *y, const float *x, const float *w, const float *b, int64_t n, int64_t d,
              float eps, uint16_t *y16) override {
        with_copy(s, y, y16, n, d, [&](float *to, int64_t r0, int64_t r1) {
            cpu::norm_forward(kind, to, x + r0 * d, w, b, r1 - r0, d, eps);
        });
    }
    void embed(Stream &, float *X, const float *tok_emb, const int32_t *tokens, int64_t n, int64_t d) override {
        cpu::embed_forward(X, tok_emb, tokens, n, d);
    }
    void add(Stream &, float *out, const float *a, const float *b, int64_t n, uint16_t *out16) override {
        cpu::add(out, a, b, n);
        if (out16) cpu::to_bf16(out16, out, n);
    }
    void add_rows(Stream &, float *dst, const float *src, int64_t n, int64_t width) override {
        for (int64_t r = 0; r < n; ++r)
            for (int64_t o = 0; o < width; ++o) dst[o] += src[r * width + o];
    }
    void add_sincos(Stream &, float *X, int64_t n, int64_t d, int64_t p0) override { cpu::sincos_add(X, n, d, p0); }
    void rope(Stream &, float *x, int64_t n, int64_t ld, int64_t h, int64_t hd, int64_t t0, float theta,
              bool inverse) override {
        cpu::rope(x, n, ld, h, hd, t0, theta, inverse);
    }
    void decode_attention(Stream &, float *out, float *q, const float *k, const float *v, const CacheRow *rows,
                          int64_t n, int64_t h, int64_t hkv, int64_t hd, bool rope, float theta) override {
        cpu::decode_attention(out, q, k, v, rows, n, h, hkv, hd, rope, theta);
    }
    void attention(Stream &s, float *out, const float *q, const float *k, const float *v, int64_t nq, int64_t nk,
                   int64_t ldkv, int64_t h, int64_t hkv, int64_t hd, int64_t visible0, const Dropout &drop) override {
        if (nq < kGemmAttentionRows) {
            cpu::attention_forward(out, q, k, v, nq, nk, ldkv, h, hkv, hd, visible0, drop);
            return;
        }
        if (cpu::fused_attention_fits(hd)) {
            cpu::fused_attention_forward(out, q, k, v, nq, nk, ldkv, h, hkv, hd, visible0, drop);
            return;
        }
        // Many query rows (prefill, memory rows) without AVX-512 or with a head size
        // that is no multiple of 16: two batched matrix products per kv head group
        // with the masked softmax between them.
        auto &st = static_cast<CpuStream &>(s);
        AttentionShapes a(h, hkv, hd, ldkv, nq, nk);
        const AttentionMatmuls &am = attention_probabilities(st, a, q, k, visible0);
        if (drop.on()) cpu::dropout(st.scores.data(), h * nq * nk, drop);  // scores: [H, nq, nk]
        run(st, am.pv, am.pv_scratch, a.scores(st.scores.data(), engine_), a.kv(v, engine_), a.rows(out, engine_));
    }
    void dropout(Stream &, float *x, int64_t n, const Dropout &drop) override { cpu::dropout(x, n, drop); }
    void swiglu(Stream &s, float *h, const float *g, const float *u, int64_t n, uint16_t *h16) override {
        with_copy(s, h, h16, n, 1, [&](float *to, int64_t i0, int64_t i1) {
            cpu::swiglu_forward(to, g + i0, u + i0, i1 - i0);
        });
    }
    void gelu(Stream &s, float *h, const float *u, int64_t n, uint16_t *h16) override {
        with_copy(s, h, h16, n, 1, [&](float *to, int64_t i0, int64_t i1) { cpu::gelu_forward(to, u + i0, i1 - i0); });
    }
    // Pooling of a whole segment (T a multiple of kPoolGemmKeys: a few shapes per
    // model, so a few primitives) as two products around the softmax rows: the
    // scores S = P x^T [M, T], then out = S x. Other lengths (a flush mid-segment)
    // take the row kernel.
    void pool(Stream &s, float *out, const float *P, const float *x, int64_t M, int64_t T, int64_t D) override {
        if (T < kPoolGemmKeys || T % kPoolGemmKeys != 0) {
            cpu::pool_forward(out, P, x, M, T, D);
            return;
        }
        auto &st = static_cast<CpuStream &>(s);
        const size_t n = static_cast<size_t>(M * T);
        if (st.pool_scores.size() < n) st.pool_scores.resize(n);
        float *S = st.pool_scores.data();
        run_matmul(s, MatmulKey{M, D, T, false, true, false, false}, P, x, nullptr, S);
        cpu::masked_softmax_rows(S, M, T, M, T, 1.0f / std::sqrt(static_cast<float>(D)));
        run_matmul(s, MatmulKey{M, T, D, false, false, false, false}, S, x, nullptr, out);
    }
    void cell(Stream &, CellKind kind, float *m_out, float *c_out, const float *c_in, const float *gi, const float *gh,
              const float *h, int64_t M, int64_t D) override {
        cpu::cell_forward(kind, m_out, c_out, c_in, gi, gh, h, M, D);
    }
    void concat_cols(Stream &, float *dst, const float *a, const float *b, int64_t M, int64_t D,
                     uint16_t *dst16) override {
        cpu::concat_cols(dst, a, b, M, D);
        if (dst16) cpu::to_bf16(dst16, dst, M * 2 * D);
    }

    void linear_backward(Stream &s, float *dx, bool dx_accumulate, float *dW, float *db, const float *dy, const float *x,
                         const float *W, int64_t n, int64_t in, int64_t out, const uint16_t *x16,
                         const uint16_t *dy16) override {
        auto &st = static_cast<CpuStream &>(s);
        if (const uint16_t *w16 = shadow(st, W)) {
            if (!dy16) dy16 = to_bf16(st.cvt_a, dy, n * out);
            if (db && !dy) fail(RMKV_ERR_INTERNAL, "linear_backward: a bias gradient without the fp32 dy");
            if (dx) run_matmul(s, MatmulKey{n, out, in, false, false, false, dx_accumulate, true}, dy16, w16, nullptr, dx);
            if (dW)
                run_matmul(s, MatmulKey{out, n, in, true, false, false, true, true}, dy16,
                           x16 ? x16 : to_bf16(st.cvt_b, x, n * in), nullptr, dW);
        } else {
            if (!x || !dy) fail(RMKV_ERR_INTERNAL, "linear_backward: no fp32 inputs for a product without bf16 inputs");
            if (dx) run_matmul(s, MatmulKey{n, out, in, false, false, false, dx_accumulate}, dy, W, nullptr, dx);
            if (dW) run_matmul(s, MatmulKey{out, n, in, true, false, false, true}, dy, x, nullptr, dW);
        }
        if (db) add_rows(s, db, dy, n, out);
    }
    void norm_backward(Stream &, NormKind kind, float *dx, float *dw, float *db, const float *dy, const float *x,
                       const float *w, int64_t n, int64_t d, float eps, uint16_t *dx16) override {
        cpu::norm_backward(kind, dx, dw, db, dy, x, w, n, d, eps);
        if (dx16) cpu::to_bf16(dx16, dx, n * d);
    }
    void embed_backward(Stream &, float *dtok_emb, const float *dX, const int32_t *tokens, int64_t n, int64_t d) override {
        cpu::embed_backward(dtok_emb, dX, tokens, n, d);
    }
    void attention_backward(Stream &s, float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                            const float *v, int64_t nq, int64_t nk, int64_t ldkv, int64_t h, int64_t hkv, int64_t hd,
                            int64_t visible0, const Dropout &drop) override {
        if (nq < kGemmAttentionRows) {
            cpu::attention_backward(dq, dk, dv, dout, q, k, v, nq, nk, ldkv, h, hkv, hd, visible0, drop);
            return;
        }
        if (cpu::fused_attention_fits(hd)) {
            cpu::fused_attention_backward(dq, dk, dv, dout, q, k, v, nq, nk, ldkv, h, hkv, hd, visible0, drop);
            return;
        }
        // P again, then dP = (dO V^T) F, dS = P (dP - rowsum(P dP)) / sqrt(hd),
        // dV += (P F)^T dO, dQ = dS K, dK += dS^T Q (F: the dropout factors, else 1):
        // every product a batched matmul per kv head group.
        auto &st = static_cast<CpuStream &>(s);
        AttentionShapes a(h, hkv, hd, ldkv, nq, nk);
        const AttentionMatmuls &am = attention_probabilities(st, a, q, k, visible0);
        const size_t n_scores = static_cast<size_t>(h * nq * nk), n_rows = static_cast<size_t>(h * nq * hd);
        if (st.dscores.size() < n_scores) st.dscores.resize(n_scores);
        if (st.packed_q.size() < n_rows) st.packed_q.resize(n_rows), st.packed_dout.resize(n_rows);
        cpu::pack_heads(st.packed_q.data(), q, nq, h, hd);
        cpu::pack_heads(st.packed_dout.data(), dout, nq, h, hd);
        dnnl::memory P = a.scores(st.scores.data(), engine_), dP = a.scores(st.dscores.data(), engine_);
        run(st, am.qk, am.qk_scratch, a.rows(dout, engine_), a.kv_t(v, engine_), dP);
        if (drop.on()) cpu::dropout(st.dscores.data(), h * nq * nk, drop);
        cpu::softmax_backward_rows(st.dscores.data(), st.scores.data(), static_cast<int64_t>(h * nq), nk,
                                   1.0f / std::sqrt(static_cast<float>(hd)));
        if (drop.on()) cpu::dropout(st.scores.data(), h * nq * nk, drop);
        run(st, am.pv_t, am.pv_t_scratch, a.scores_t(st.scores.data(), engine_), a.packed(st.packed_dout.data(), engine_),
            a.acc(dv, engine_));
        run(st, am.pv, am.pv_scratch, dP, a.kv(k, engine_), a.rows(dq, engine_));
        run(st, am.pv_t, am.pv_t_scratch, a.scores_t(st.dscores.data(), engine_), a.packed(st.packed_q.data(), engine_),
            a.acc(dk, engine_));
    }
    void swiglu_backward(Stream &s, float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n,
                         uint16_t *dg16, uint16_t *du16) override {
        with_copies<2>(s, {{{dg, dg16}, {du, du16}}}, n, 1,
                       [&](const std::array<float *, 2> &to, int64_t i0, int64_t i1) {
                           cpu::swiglu_backward(to[0], to[1], dh + i0, g + i0, u + i0, i1 - i0);
                       });
    }
    void gelu_backward(Stream &s, float *du, const float *dh, const float *u, int64_t n, uint16_t *du16) override {
        with_copy(s, du, du16, n, 1, [&](float *to, int64_t i0, int64_t i1) {
            cpu::gelu_backward(to, dh + i0, u + i0, i1 - i0);
        });
    }
    void pool_backward(Stream &, float *dx, float *dP, const float *dout, const float *P, const float *x, int64_t M,
                       int64_t T, int64_t D) override {
        cpu::pool_backward(dx, dP, dout, P, x, M, T, D);
    }
    void cell_backward(Stream &, CellKind kind, float *dgi, float *dgh, float *dh, float *dc_in, const float *dm,
                       const float *dc_out, const float *c_in, const float *gi, const float *gh, const float *h, int64_t M,
                       int64_t D, uint16_t *dgi16, uint16_t *dgh16) override {
        cpu::cell_backward(kind, dgi, dgh, dh, dc_in, dm, dc_out, c_in, gi, gh, h, M, D);
        const int64_t G = gate_width(kind);
        if (dgi16) cpu::to_bf16(dgi16, dgi, M * G * D);
        if (dgh16 && dgh) cpu::to_bf16(dgh16, dgh, M * G * D);
    }
    void split_cols_add(Stream &, float *da, float *db, const float *src, int64_t M, int64_t D) override {
        cpu::split_cols_add(da, db, src, M, D);
    }
    void cross_entropy(Stream &s, float *dlogits, const float *logits, const int32_t *targets, int64_t rows, int64_t V,
                       float scale, uint16_t *dlogits16) override {
        s.host_loss_sum += cpu::cross_entropy(dlogits, logits, targets, rows, V, scale);
        if (dlogits16) cpu::to_bf16(dlogits16, dlogits, rows * V);
    }
    double take_loss(Stream &s) override { return std::exchange(s.host_loss_sum, 0.0); }
    void fill(Stream &, float *x, float value, size_t n) override { std::fill(x, x + n, value); }
    void update_scale(Stream &s, const float *const *xs, const size_t *ns, size_t count, float grad_scale,
                      float clip) override {
        double all = 0;
        for (size_t t = 0; t < count; ++t) {
            if (xs[t]) all += cpu::sum_squares(xs[t], static_cast<int64_t>(ns[t]));
        }
        s.host_grad_norm = std::sqrt(all) * grad_scale;
        s.host_update_scale = update_scale_of(s.host_grad_norm, grad_scale, clip);
    }
    double take_grad_norm(Stream &s) override { return s.host_grad_norm; }
    void adamw(Stream &s, float *p, float *m, float *v, const float *g, size_t n, float lr, float beta1, float beta2,
               float eps, float weight_decay, int64_t step, uint16_t *shadow) override {
        const float grad_scale = s.host_update_scale;
        if (std::isnan(grad_scale)) return;
        const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
        const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
        const float step_size = static_cast<float>(lr / bc1), inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
        const float decay = 1.0f - lr * weight_decay;
        cpu::adamw(p, m, v, g, static_cast<int64_t>(n), grad_scale, beta1, beta2, eps, decay, step_size, inv_sqrt_bc2,
                   shadow);
    }

private:
    static constexpr int64_t kGemmAttentionRows = 16;
    static constexpr int64_t kPoolGemmKeys = 64;
    // Products with 16-bit weights of this many rows or more widen W whole when it
    // has at most kWidenFloats weights (16 MB as f32; larger ones: the head of
    // big vocabularies, widened in chunks by gemv_w16). Fewer rows: gemv_w16, in
    // registers (two passes over W from 16 rows: still faster than widening).
    // With bf16 on for the stream, products of BF16 weights take x rounded to bf16
    // and the weights as stored, nothing widened: kBf16Rows rows or more in oneDNN's
    // bf16 product (a prefill), fewer in cpu::gemv_bf16's dot products (1.3-1.7x
    // oneDNN's speed for 8 sessions stepped together; from 12 to 64 the two are
    // within this machine's noise, a little behind at 12 for the small shape and
    // ahead for base: BENCHMARKS.md, "Dot products for fewer rows").
    static constexpr int64_t kWidenRows = 24, kWidenFloats = int64_t(1) << 22, kBf16Rows = 32;

    // qk: S[g, i, j] = Q[g, i] . K[j]; pv: O[g, i] = sum_j S[g, i, j] V[j];
    // pv_t: acc[j] += sum_{g, i} S[g, i, j] X[g, i] (X packed [G, nq, hd]).
    struct AttentionMatmuls {
        dnnl::matmul qk, pv, pv_t;
        size_t qk_scratch, pv_scratch, pv_t_scratch;
    };

    // Memory descriptors of one call (the query and key counts known now).
    struct AttentionShapes {
        int64_t H, Hkv, G, hd, ldkv, D, nq, nk;
        using md = dnnl::memory::desc;
        AttentionShapes(int64_t h, int64_t hkv, int64_t hd_, int64_t ldkv_, int64_t nq_, int64_t nk_)
            : H(h), Hkv(hkv), G(h / hkv), hd(hd_), ldkv(ldkv_), D(h * hd_), nq(nq_), nk(nk_) {}
        dnnl::memory rows(const float *p, const dnnl::engine &e) const {  // [Hkv, G, nq, hd] in a [nq, D] matrix
            return {md({Hkv, G, nq, hd}, dt::f32, {G * hd, hd, D, 1}), e, const_cast<float *>(p)};
        }
        dnnl::memory packed(const float *p, const dnnl::engine &e) const {  // [Hkv, G*nq, hd] dense
            return {md({Hkv, G * nq, hd}, dt::f32, {G * nq * hd, hd, 1}), e, const_cast<float *>(p)};
        }
        dnnl::memory kv_t(const float *p, const dnnl::engine &e) const {  // [Hkv, 1, hd, nk] view of [nk, ldkv]
            return {md({Hkv, 1, hd, nk}, dt::f32, {hd, hd, 1, ldkv}), e, const_cast<float *>(p)};
        }
        dnnl::memory kv(const float *p, const dnnl::engine &e) const {  // [Hkv, 1, nk, hd] view of [nk, ldkv]
            return {md({Hkv, 1, nk, hd}, dt::f32, {hd, hd, ldkv, 1}), e, const_cast<float *>(p)};
        }
        dnnl::memory acc(const float *p, const dnnl::engine &e) const {  // [Hkv, nk, hd] view of [nk, ldkv]
            return {md({Hkv, nk, hd}, dt::f32, {hd, ldkv, 1}), e, const_cast<float *>(p)};
        }
        dnnl::memory scores(const float *p, const dnnl::engine &e) const {  // [Hkv, G, nq, nk] dense
            return {md({Hkv, G, nq, nk}, dt::f32, {G * nq * nk, nq * nk, nk, 1}), e, const_cast<float *>(p)};
        }
        dnnl::memory scores_t(const float *p, const dnnl::engine &e) const {  // [Hkv, nk, G*nq] transposed view
            return {md({Hkv, nk, G * nq}, dt::f32, {G * nq * nk, 1, nk}), e, const_cast<float *>(p)};
        }
    };

    void run(CpuStream &st, const dnnl::matmul &mm, size_t scratch, const dnnl::memory &src, const dnnl::memory &wei,
             const dnnl::memory &dst) {
        ensure_scratch(st, scratch);
        mm.execute(st.stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, st.scratch}});
    }

    // Fills st.scores with the masked softmax probabilities of q against k.
    const AttentionMatmuls &attention_probabilities(CpuStream &st, const AttentionShapes &a, const float *q, const float *k,
                                                    int64_t visible0) {
        const AttentionMatmuls &am = attention_matmuls(a.H, a.Hkv, a.hd, a.ldkv);
        const size_t n_scores = static_cast<size_t>(a.H * a.nq * a.nk);
        if (st.scores.size() < n_scores) st.scores.resize(n_scores);
        run(st, am.qk, am.qk_scratch, a.rows(q, engine_), a.kv_t(k, engine_), a.scores(st.scores.data(), engine_));
        cpu::masked_softmax_rows(st.scores.data(), a.nq, a.nk, a.H * a.nq, visible0, 1.0f / std::sqrt(static_cast<float>(a.hd)));
        return am;
    }

    void ensure_scratch(CpuStream &st, size_t need) {
        if (need > st.scratch_size) {
            st.scratch = dnnl::memory(dnnl::memory::desc({static_cast<int64_t>(need)}, dt::u8, tag::a), engine_);
            st.scratch_size = need;
        }
    }

    // Batched products with the query and key counts given at run time, so one
    // primitive pair serves every chunk length of a model.
    const AttentionMatmuls &attention_matmuls(int64_t h, int64_t hkv, int64_t hd, int64_t ldkv) {
        std::lock_guard<std::mutex> lock(mutex_);
        const std::pair<uint64_t, int> key{(static_cast<uint64_t>(h) << 48) ^ (static_cast<uint64_t>(hkv) << 32) ^
                                               (static_cast<uint64_t>(hd) << 16) ^ static_cast<uint64_t>(ldkv),
                                           cpu_threads()};
        auto it = attention_cache_.find(key);
        if (it != attention_cache_.end()) return *it->second;
        const int64_t G = h / hkv, D = h * hd, R = DNNL_RUNTIME_DIM_VAL;
        using md = dnnl::memory::desc;
        md qd({hkv, G, R, hd}, dt::f32, {G * hd, hd, D, 1});
        md kd({hkv, 1, hd, R}, dt::f32, {hd, hd, 1, ldkv});
        md sd({hkv, G, R, R}, dt::f32, {R, R, R, 1});
        md vd({hkv, 1, R, hd}, dt::f32, {hd, hd, ldkv, 1});
        md od({hkv, G, R, hd}, dt::f32, {G * hd, hd, D, 1});
        md st_d({hkv, R, R}, dt::f32, {R, 1, R});           // S^T: [Hkv, nk, G*nq]
        md xp({hkv, R, hd}, dt::f32, {R, hd, 1});            // packed [Hkv, G*nq, hd]
        md acc({hkv, R, hd}, dt::f32, {hd, ldkv, 1});        // [Hkv, nk, hd] view of [nk, ldkv]
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        dnnl::primitive_attr attr_acc;  // a new object: attributes are shared handles
        attr_acc.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        dnnl::post_ops sum;
        sum.append_sum(1.0f);
        attr_acc.set_post_ops(sum);
        dnnl::matmul::primitive_desc qk(dnnl::matmul::desc(qd, kd, sd), attr, engine_);
        dnnl::matmul::primitive_desc pv(dnnl::matmul::desc(sd, vd, od), attr, engine_);
        dnnl::matmul::primitive_desc pv_t(dnnl::matmul::desc(st_d, xp, acc), attr_acc, engine_);
        auto am = std::make_unique<AttentionMatmuls>(AttentionMatmuls{
            dnnl::matmul(qk), dnnl::matmul(pv), dnnl::matmul(pv_t), qk.scratchpad_desc().get_size(),
            pv.scratchpad_desc().get_size(), pv_t.scratchpad_desc().get_size()});
        return *attention_cache_.emplace(key, std::move(am)).first->second;
    }

    const Matmul *matmul(const MatmulKey &k) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = cache_.find(k);
        if (it != cache_.end()) return it->second.get();
        const dt in_type = k.bf16 ? dt::bf16 : dt::f32;
        dnnl::memory::desc src({k.m, k.k}, in_type, k.src_t ? tag::ba : tag::ab);
        dnnl::memory::desc wei({k.k, k.n}, in_type, k.wei_t ? tag::ba : tag::ab);
        dnnl::memory::desc bias({1, k.n}, dt::f32, tag::ab);
        dnnl::memory::desc dst({k.m, k.n}, dt::f32, tag::ab);
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        if (k.accumulate) {
            dnnl::post_ops po;
            po.append_sum(1.0f);
            attr.set_post_ops(po);
        }
        auto desc = k.bias ? dnnl::matmul::desc(src, wei, bias, dst) : dnnl::matmul::desc(src, wei, dst);
        dnnl::matmul::primitive_desc pd(desc, attr, engine_);
        auto mm = std::make_unique<Matmul>(Matmul{dnnl::matmul(pd), src, wei, bias, dst, pd.scratchpad_desc()});
        return cache_.emplace(k, std::move(mm)).first->second.get();
    }

    dnnl::engine engine_;
    std::mutex mutex_;
    std::unordered_map<MatmulKey, std::unique_ptr<Matmul>, MatmulKeyHash> cache_;
    std::map<std::pair<uint64_t, int>, std::unique_ptr<AttentionMatmuls>> attention_cache_;  // (shape, threads)
};

}  // namespace

std::shared_ptr<Backend> make_cpu_backend() { return std::make_shared<CpuBackend>(); }

}  // namespace rmkv
