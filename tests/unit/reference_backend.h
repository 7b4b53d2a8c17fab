// A backend made of the CPU kernels alone (cpu_kernels.h) with plain loops for the
// matrix products: no oneDNN, no bf16 products, one thread of control. Compiled in
// the scalar type `real` of its translation unit, it lets the model code run in
// double precision for the whole-model finite-difference test.
//
// It writes the bf16 copies of Backend's operations (y16, h16, ...) and checks
// each copy a product is given against its source, bit for bit, when it is used:
// a copy that does not hold its source's values (stale, or another buffer's)
// throws RMKV_ERR_INTERNAL. So the model code's copies are checked wherever it
// runs here.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/error.h"

namespace rmkv {

class ReferenceBackend : public Backend {
public:
    std::string name() const override { return "reference"; }
    std::unique_ptr<Stream> new_stream() override { return std::make_unique<Stream>(); }

    real *alloc(size_t n) override {
        void *p = std::calloc(std::max<size_t>(n, 1), sizeof(real));
        if (!p) fail(RMKV_ERR_OUT_OF_MEMORY, "cannot allocate ", n * sizeof(real), " bytes");
        return static_cast<real *>(p);
    }
    void free(real *p) override { std::free(p); }
    real *import_weights(const real *host, size_t, bool) override { return const_cast<real *>(host); }
    void release_weights(real *, const real *) override {}
    void to_host(Stream &, real *host, const real *src, size_t n) override { std::memcpy(host, src, n * sizeof(real)); }
    void from_host(Stream &, real *dst, const real *host, size_t n) override { std::memcpy(dst, host, n * sizeof(real)); }
    void copy(Stream &, real *dst, const real *src, size_t n) override {
        if (dst != src) std::memmove(dst, src, n * sizeof(real));
    }
    void sync(Stream &) override {}

    void linear(Stream &, real *y, const real *x, const real *W, const real *b, int64_t n, int64_t in, int64_t out,
                bool accumulate, const uint16_t *x16) override {
        check_copy("linear's x", x16, x, n * in);
        cpu::linear_ref(y, x, W, b, n, in, out, accumulate);
    }
    void norm(Stream &, NormKind kind, real *y, const real *x, const real *w, const real *b, int64_t n, int64_t d,
              float eps, uint16_t *y16) override {
        cpu::norm_forward(kind, y, x, w, b, n, d, static_cast<real>(eps));
        round_bf16(y16, y, n * d);
    }
    void embed(Stream &, real *X, const real *tok_emb, const int32_t *tokens, int64_t n, int64_t d) override {
        cpu::embed_forward(X, tok_emb, tokens, n, d);
    }
    void add(Stream &, real *out, const real *a, const real *b, int64_t n, uint16_t *out16) override {
        cpu::add(out, a, b, n);
        round_bf16(out16, out, n);
    }
    void add_sincos(Stream &, real *X, int64_t n, int64_t d, int64_t p0) override { cpu::sincos_add(X, n, d, p0); }
    void rope(Stream &, real *x, int64_t n, int64_t ld, int64_t h, int64_t hd, int64_t t0, float theta,
              bool inverse) override {
        cpu::rope(x, n, ld, h, hd, t0, static_cast<real>(theta), inverse);
    }
    void attention(Stream &, real *out, const real *q, const real *k, const real *v, int64_t nq, int64_t nk, int64_t ldkv,
                   int64_t h, int64_t hkv, int64_t hd, int64_t visible0, const Dropout &drop) override {
        cpu::attention_forward(out, q, k, v, nq, nk, ldkv, h, hkv, hd, visible0, drop);
    }
    void dropout(Stream &, real *x, int64_t n, const Dropout &drop) override { cpu::dropout(x, n, drop); }
    void swiglu(Stream &, real *h, const real *g, const real *u, int64_t n, uint16_t *h16) override {
        cpu::swiglu_forward(h, g, u, n);
        round_bf16(h16, h, n);
    }
    void gelu(Stream &, real *h, const real *u, int64_t n, uint16_t *h16) override {
        cpu::gelu_forward(h, u, n);
        round_bf16(h16, h, n);
    }
    void pool(Stream &, real *out, const real *P, const real *x, int64_t M, int64_t T, int64_t D) override {
        cpu::pool_forward(out, P, x, M, T, D);
    }
    void cell(Stream &, CellKind kind, real *m_out, real *c_out, const real *c_in, const real *gi, const real *gh,
              const real *h, int64_t M, int64_t D) override {
        cpu::cell_forward(kind, m_out, c_out, c_in, gi, gh, h, M, D);
    }
    void concat_cols(Stream &, real *dst, const real *a, const real *b, int64_t M, int64_t D, uint16_t *dst16) override {
        cpu::concat_cols(dst, a, b, M, D);
        round_bf16(dst16, dst, M * 2 * D);
    }

    void linear_backward(Stream &, real *dx, bool dx_accumulate, real *dW, real *db, const real *dy, const real *x,
                         const real *W, int64_t n, int64_t in, int64_t out, const uint16_t *x16,
                         const uint16_t *dy16) override {
        check_copy("linear_backward's x", x16, x, n * in);
        check_copy("linear_backward's dy", dy16, dy, n * out);
        cpu::linear_backward_ref(dx, dx_accumulate, dW, db, dy, x, W, n, in, out);
    }
    void norm_backward(Stream &, NormKind kind, real *dx, real *dw, real *db, const real *dy, const real *x, const real *w,
                       int64_t n, int64_t d, float eps, uint16_t *dx16) override {
        cpu::norm_backward(kind, dx, dw, db, dy, x, w, n, d, static_cast<real>(eps));
        round_bf16(dx16, dx, n * d);
    }
    void embed_backward(Stream &, real *dtok_emb, const real *dX, const int32_t *tokens, int64_t n, int64_t d) override {
        cpu::embed_backward(dtok_emb, dX, tokens, n, d);
    }
    void attention_backward(Stream &, real *dq, real *dk, real *dv, const real *dout, const real *q, const real *k,
                            const real *v, int64_t nq, int64_t nk, int64_t ldkv, int64_t h, int64_t hkv, int64_t hd,
                            int64_t visible0, const Dropout &drop) override {
        cpu::attention_backward(dq, dk, dv, dout, q, k, v, nq, nk, ldkv, h, hkv, hd, visible0, drop);
    }
    void swiglu_backward(Stream &, real *dg, real *du, const real *dh, const real *g, const real *u, int64_t n,
                         uint16_t *dg16, uint16_t *du16) override {
        cpu::swiglu_backward(dg, du, dh, g, u, n);
        round_bf16(dg16, dg, n);
        round_bf16(du16, du, n);
    }
    void gelu_backward(Stream &, real *du, const real *dh, const real *u, int64_t n, uint16_t *du16) override {
        cpu::gelu_backward(du, dh, u, n);
        round_bf16(du16, du, n);
    }
    void pool_backward(Stream &, real *dx, real *dP, const real *dout, const real *P, const real *x, int64_t M, int64_t T,
                       int64_t D) override {
        cpu::pool_backward(dx, dP, dout, P, x, M, T, D);
    }
    void cell_backward(Stream &, CellKind kind, real *dgi, real *dgh, real *dh, real *dc_in, const real *dm,
                       const real *dc_out, const real *c_in, const real *gi, const real *gh, const real *h, int64_t M,
                       int64_t D, uint16_t *dgi16, uint16_t *dgh16) override {
        cpu::cell_backward(kind, dgi, dgh, dh, dc_in, dm, dc_out, c_in, gi, gh, h, M, D);
        const int64_t G = gate_width(kind);
        round_bf16(dgi16, dgi, M * G * D);
        if (dgh) round_bf16(dgh16, dgh, M * G * D);
    }
    void split_cols_add(Stream &, real *da, real *db, const real *src, int64_t M, int64_t D) override {
        cpu::split_cols_add(da, db, src, M, D);
    }
    void cross_entropy(Stream &s, real *dlogits, const real *logits, const int32_t *targets, int64_t rows, int64_t V,
                       float scale, uint16_t *dlogits16) override {
        s.host_loss_sum += cpu::cross_entropy(dlogits, logits, targets, rows, V, static_cast<real>(scale));
        round_bf16(dlogits16, dlogits, rows * V);
    }
    double take_loss(Stream &s) override { return std::exchange(s.host_loss_sum, 0.0); }
    void fill(Stream &, real *x, float value, size_t n) override { std::fill(x, x + n, static_cast<real>(value)); }
    void update_scale(Stream &s, const real *const *xs, const size_t *ns, size_t count, float grad_scale,
                      float clip) override {
        double total = 0;
        for (size_t t = 0; t < count; ++t)
            for (size_t i = 0; xs[t] && i < ns[t]; ++i) total += static_cast<double>(xs[t][i]) * xs[t][i];
        s.host_grad_norm = std::sqrt(total) * grad_scale;
        s.host_update_scale = update_scale_of(s.host_grad_norm, grad_scale, clip);
    }
    double take_grad_norm(Stream &s) override { return s.host_grad_norm; }
    void adamw(Stream &, real *, real *, real *, const real *, size_t, float, float, float, float, float, int64_t,
               uint16_t *) override {
        fail(RMKV_ERR_BACKEND, "the reference backend has no optimiser");
    }
    bool supports_bf16() const override { return false; }
    void set_bf16(Stream &, bool) override {}
    void set_shadow(Stream &, const real *, const uint16_t *) override {}
    uint16_t *alloc_bf16(size_t n) override {
        void *p = std::calloc(std::max<size_t>(n, 1), sizeof(uint16_t));
        if (!p) fail(RMKV_ERR_OUT_OF_MEMORY, "cannot allocate ", n * sizeof(uint16_t), " bytes");
        return static_cast<uint16_t *>(p);
    }
    void free_bf16(uint16_t *p) override { std::free(p); }
    void to_bf16(Stream &, uint16_t *dst, const real *src, size_t n) override { round_bf16(dst, src, static_cast<int64_t>(n)); }
    // How many bf16 copies the products have been given, each checked.
    int64_t copies_checked = 0;
    bool has_half_weights() const override { return false; }
    const uint16_t *import_half_weights(const uint16_t *, size_t) override {
        fail(RMKV_ERR_BACKEND, "the reference backend has no 16-bit weights");
    }
    void release_half_weights(const uint16_t *, const uint16_t *) override {}
    void linear_w16(Stream &, real *, const real *, const uint16_t *, Half, const real *, int64_t, int64_t, int64_t,
                    bool) override {
        fail(RMKV_ERR_BACKEND, "the reference backend has no 16-bit weights");
    }
    void embed_w16(Stream &, real *, const uint16_t *, Half, const int32_t *, int64_t, int64_t) override {
        fail(RMKV_ERR_BACKEND, "the reference backend has no 16-bit weights");
    }

private:
    static void round_bf16(uint16_t *dst, const real *src, int64_t n) {
        for (int64_t i = 0; dst && i < n; ++i) dst[i] = bf16_bits(static_cast<float>(src[i]));
    }
    void check_copy(const char *what, const uint16_t *copy, const real *src, int64_t n) {
        if (!copy) return;
        ++copies_checked;
        for (int64_t i = 0; i < n; ++i)
            if (copy[i] != bf16_bits(static_cast<float>(src[i])))
                fail(RMKV_ERR_INTERNAL, what, ": its bf16 copy differs from it at element ", i, " of ", n);
    }
};

}  // namespace rmkv
