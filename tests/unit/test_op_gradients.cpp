// Every backward kernel of the CPU backend against central finite differences of
// its forward, in double precision (the kernels are templates; the backend uses
// their float instantiation). For an op y = f(x) and a random upstream gradient
// dy, the backward must give d<dy, f(x)>/dx for every input element.
// float_kernels: the float instantiations (vectorised exp, rope tables, AdamW)
// against the double ones or a direct formula, over the ranges they meet;
// fused_attention: the fused many-row attention (AVX-512) against the double
// row-at-a-time kernel; decode_rows: the kernel of sessions decoded together. Built twice: as the library compiles the kernels, and for
// x86-64-v3 without target clones (test_op_gradients_avx2), what AVX2 CPUs run.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <omp.h>

#include "backend/cpu/cpu_half.h"
#include "backend/cpu/cpu_kernels.h"
#include "reference_backend.h"

// cmocka last: it defines a macro named fail.
extern "C" {
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
}

using namespace rmkv;
using Vec = std::vector<double>;

namespace {

std::mt19937_64 rng(12345);

Vec randn(size_t n, double scale = 1.0) {
    std::normal_distribution<double> d(0.0, scale);
    Vec v(n);
    for (double &x : v) x = d(rng);
    return v;
}

double dot(const Vec &a, const Vec &b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
}

// Compares `analytic` with central differences of f over every element of x.
void check(const char *what, Vec &x, const std::function<double()> &f, const Vec &analytic, double tol = 1e-6) {
    const double h = 1e-5;
    double worst = 0, scale = 1e-8;
    for (double a : analytic) scale = std::max(scale, std::fabs(a));
    for (size_t i = 0; i < x.size(); ++i) {
        double keep = x[i];
        x[i] = keep + h;
        double fp = f();
        x[i] = keep - h;
        double fm = f();
        x[i] = keep;
        double fd = (fp - fm) / (2 * h);
        const double e = std::fabs(fd - analytic[i]) / scale;
        if (!(e <= worst)) worst = e;  // a NaN sticks
    }
    if (!(worst < tol)) fail_msg("%s: finite differences disagree, relative error %g", what, worst);
    print_message("%-36s max relative error %.2e over %zu elements\n", what, worst, x.size());
}

void norms(void **) {
    const int64_t n = 3, d = 7;
    for (NormKind kind : {NormKind::layernorm, NormKind::rmsnorm}) {
        bool ln = kind == NormKind::layernorm;
        Vec x = randn(n * d), w = randn(d), b = randn(d), dy = randn(n * d), y(n * d);
        auto f = [&] {
            cpu::norm_forward<double>(kind, y.data(), x.data(), w.data(), ln ? b.data() : nullptr, n, d, 1e-5);
            return dot(dy, y);
        };
        Vec dx(n * d, 0.0), dw(d, 0.0), db(d, 0.0);
        cpu::norm_backward<double>(kind, dx.data(), dw.data(), ln ? db.data() : nullptr, dy.data(), x.data(), w.data(), n, d, 1e-5);
        check(ln ? "layernorm dx" : "rmsnorm dx", x, f, dx);
        check(ln ? "layernorm dw" : "rmsnorm dw", w, f, dw);
        if (ln) check("layernorm db", b, f, db);
    }
}

void linear(void **) {
    const int64_t n = 4, in = 5, out = 3;
    Vec x = randn(n * in), W = randn(out * in), b = randn(out), dy = randn(n * out), y(n * out);
    auto f = [&] {
        cpu::linear_ref<double>(y.data(), x.data(), W.data(), b.data(), n, in, out, false);
        return dot(dy, y);
    };
    Vec dx(n * in, 0.0), dW(out * in, 0.0), db(out, 0.0);
    cpu::linear_backward_ref<double>(dx.data(), false, dW.data(), db.data(), dy.data(), x.data(), W.data(), n, in, out);
    check("linear dx", x, f, dx);
    check("linear dW", W, f, dW);
    check("linear db", b, f, db);
}

void rope(void **) {
    const int64_t n = 3, heads = 2, hd = 6, ld = heads * hd + 2;  // a row stride wider than the heads
    Vec x = randn(n * ld), dy = randn(n * ld);
    auto f = [&] {
        Vec y = x;
        cpu::rope<double>(y.data(), n, ld, heads, hd, 4, 500.0, false);
        return dot(dy, y);
    };
    Vec dx = dy;
    cpu::rope<double>(dx.data(), n, ld, heads, hd, 4, 500.0, true);  // the backward is the inverse rotation
    check("rope", x, f, dx);
    // The forward against the rotation written out, at positions past the kernel's
    // table of the call before (it grows), and for another theta (it is rebuilt).
    for (double theta : {500.0, 500.0, 10000.0}) {
        const int64_t t0 = theta == 10000.0 ? 2 : 40;
        Vec y = x;
        cpu::rope<double>(y.data(), n, ld, heads, hd, t0, theta, false);
        double worst = 0;
        for (int64_t r = 0; r < n; ++r)
            for (int64_t h = 0; h < heads; ++h)
                for (int64_t i = 0; i < hd / 2; ++i) {
                    const double a = std::pow(theta, -2.0 * i / hd) * (t0 + r), c = std::cos(a), s = std::sin(a);
                    const double *px = &x[r * ld + h * hd], *py = &y[r * ld + h * hd];
                    for (const double e : {std::fabs(py[i] - (px[i] * c - px[i + hd / 2] * s)),
                                           std::fabs(py[i + hd / 2] - (px[i + hd / 2] * c + px[i] * s))})
                        if (!(e <= worst)) worst = e;
                }
        if (!(worst < 1e-12)) fail_msg("rope at t0 = %d, theta %g: off by %g", (int)t0, theta, worst);
        for (int64_t r = 0; r < n; ++r)  // the columns past the heads are untouched
            for (int64_t j = heads * hd; j < ld; ++j) assert_true(y[r * ld + j] == x[r * ld + j]);
    }
}

void attention(void **) {
    struct Case { int64_t nq, nk, H, Hkv, hd, visible0; const char *name; float dropout; };
    for (Case c : {Case{3, 5, 4, 2, 4, 2, "attention causal (GQA)", 0.0f},
                   Case{2, 6, 2, 1, 4, 6, "attention memory rows (MQA)", 0.0f},
                   Case{4, 4, 2, 2, 2, 0, "attention pure causal", 0.0f},
                   Case{4, 6, 4, 2, 4, 2, "attention with dropout 0.3", 0.3f}}) {
        const Dropout drop{c.dropout, 0x1234abcdull};
        const int64_t D = c.H * c.hd, ldkv = c.Hkv * c.hd;
        Vec q = randn(c.nq * D), k = randn(c.nk * ldkv), v = randn(c.nk * ldkv), dy = randn(c.nq * D), y(c.nq * D);
        auto f = [&] {
            cpu::attention_forward<double>(y.data(), q.data(), k.data(), v.data(), c.nq, c.nk, ldkv, c.H, c.Hkv, c.hd, c.visible0,
                                           drop);
            return dot(dy, y);
        };
        Vec dq(c.nq * D, 0.0), dk(c.nk * ldkv, 0.0), dv(c.nk * ldkv, 0.0);
        cpu::attention_backward<double>(dq.data(), dk.data(), dv.data(), dy.data(), q.data(), k.data(), v.data(), c.nq, c.nk,
                                        ldkv, c.H, c.Hkv, c.hd, c.visible0, drop);
        std::string n = c.name;
        check((n + " dq").c_str(), q, f, dq);
        check((n + " dk").c_str(), k, f, dk);
        check((n + " dv").c_str(), v, f, dv);
    }
}

void activations(void **) {
    const int64_t n = 9;
    Vec g = randn(n, 2.0), u = randn(n, 2.0), dy = randn(n), y(n);
    auto fs = [&] {
        cpu::swiglu_forward<double>(y.data(), g.data(), u.data(), n);
        return dot(dy, y);
    };
    Vec dg(n), du(n);
    cpu::swiglu_backward<double>(dg.data(), du.data(), dy.data(), g.data(), u.data(), n);
    check("swiglu dgate", g, fs, dg);
    check("swiglu dup", u, fs, du);
    auto fg = [&] {
        cpu::gelu_forward<double>(y.data(), u.data(), n);
        return dot(dy, y);
    };
    cpu::gelu_backward<double>(du.data(), dy.data(), u.data(), n);
    check("gelu", u, fg, du);
}

void pool(void **) {
    const int64_t M = 3, T = 5, D = 4;
    Vec P = randn(M * D), x = randn(T * D), dy = randn(M * D), y(M * D);
    auto f = [&] {
        cpu::pool_forward<double>(y.data(), P.data(), x.data(), M, T, D);
        return dot(dy, y);
    };
    Vec dx(T * D, 0.0), dP(M * D, 0.0);
    cpu::pool_backward<double>(dx.data(), dP.data(), dy.data(), P.data(), x.data(), M, T, D);
    check("pool dx", x, f, dx);
    check("pool dquery", P, f, dP);
}

void cells(void **) {
    const int64_t M = 2, D = 3;
    for (CellKind kind : {CellKind::gru, CellKind::lstm, CellKind::minimal}) {
        const int64_t G = kind == CellKind::gru ? 3 : kind == CellKind::lstm ? 4 : 2;
        const bool lstm = kind == CellKind::lstm, minimal = kind == CellKind::minimal;
        Vec gi = randn(M * G * D), gh = randn(M * G * D), h = randn(M * D), c = randn(M * D);
        Vec dm = randn(M * D), dc = randn(M * D), m(M * D), cout(M * D);
        auto f = [&] {
            cpu::cell_forward<double>(kind, m.data(), cout.data(), c.data(), gi.data(), minimal ? nullptr : gh.data(), h.data(), M, D);
            return dot(dm, m) + (lstm ? dot(dc, cout) : 0.0);
        };
        Vec dgi(M * G * D), dgh(M * G * D), dh(M * D, 0.0), dcin(M * D);
        cpu::cell_backward<double>(kind, dgi.data(), minimal ? nullptr : dgh.data(), dh.data(), lstm ? dcin.data() : nullptr,
                                   dm.data(), lstm ? dc.data() : nullptr, c.data(), gi.data(), minimal ? nullptr : gh.data(),
                                   h.data(), M, D);
        const char *name = kind == CellKind::gru ? "gru" : lstm ? "lstm" : "minimal";
        std::string n = name;
        check((n + " cell dgates_i").c_str(), gi, f, dgi);
        if (!minimal) check((n + " cell dgates_h").c_str(), gh, f, dgh);
        check((n + " cell dh").c_str(), h, f, dh);
        if (lstm) check("lstm cell dc", c, f, dcin);
    }
}

void cross_entropy(void **) {
    const int64_t rows = 4, V = 6;
    Vec logits = randn(rows * V, 2.0);
    std::vector<int32_t> targets = {2, -1, 5, 0};
    Vec grad(rows * V);
    auto f = [&] {
        Vec scratch(rows * V);
        return cpu::cross_entropy<double>(scratch.data(), logits.data(), targets.data(), rows, V, 1.0);
    };
    cpu::cross_entropy<double>(grad.data(), logits.data(), targets.data(), rows, V, 1.0);
    check("cross-entropy (masked row)", logits, f, grad);
}

// max |a - b| / (|b| + floor) over the elements; NaN if any is NaN.
template <class A>
double worst_rel(const A &a, const Vec &b, double floor) {
    double worst = 0;
    for (size_t i = 0; i < b.size(); ++i) {
        const double e = std::fabs(static_cast<double>(a[i]) - b[i]) / (std::fabs(b[i]) + floor);
        if (!(e <= worst)) worst = e;
    }
    return worst;
}

using Fvec = std::vector<float>;
Fvec to_float(const Vec &v) { return Fvec(v.begin(), v.end()); }
Vec to_double(const Fvec &v) { return Vec(v.begin(), v.end()); }

// The value of a bf16 (the upper half of a float) and of an IEEE binary16, from
// their definitions.
double bf16_value(uint16_t h) {
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float x;
    std::memcpy(&x, &bits, 4);
    return x;
}
double f16_value(uint16_t h) {
    const int e = h >> 10 & 0x1f, m = h & 0x3ff;
    const double sign = h & 0x8000 ? -1.0 : 1.0;
    if (e == 0x1f) return m ? std::copysign(std::nan(""), sign) : sign * INFINITY;
    if (e == 0) return sign * std::ldexp(m, -24);
    return sign * std::ldexp(1024 + m, e - 25);
}

void expect_close(const char *what, double worst, double tol) {
    print_message("%-36s max relative difference %.2e\n", what, worst);
    if (!(worst < tol)) fail_msg("%s: float differs from double by %g (tolerance %g)", what, worst, tol);
}

// cpu::to_bf16 (the conversion of the inputs of bf16 products) against the nearest
// bf16 found by comparing the two candidates around each value in double, ties to
// the even one: random values over many binades, exact ties, the largest finite
// floats (round to infinity), infinities, and NaNs of every payload, which must stay
// NaNs. More values than one thread converts, and a tail past the vector loop.
void bf16_rounding(void **) {
    std::mt19937_64 rng(11);
    const int64_t n = 70001;
    std::vector<uint32_t> bits(n);
    for (int64_t i = 0; i < n; ++i) {
        const uint64_t r = rng();
        switch (i % 7) {
        case 0: bits[i] = static_cast<uint32_t>(r); break;                                   // anything, NaNs too
        case 1: bits[i] = static_cast<uint32_t>(r & 0x80ffffffu) | (0x3c000000u + (uint32_t(r >> 40) % 8 << 23)); break;
        case 2: bits[i] = (static_cast<uint32_t>(r) & 0xffff0000u) | 0x8000u; break;        // exact ties
        case 3: bits[i] = 0x7f800000u | static_cast<uint32_t>(r >> 9 & 0x807fffffu) | 1u; break;  // NaNs
        case 4: bits[i] = static_cast<uint32_t>(r >> 32 & 0x80000000u) | (0x7f7f0000u + static_cast<uint32_t>(r % 0x10000)); break;
        default: bits[i] = static_cast<uint32_t>(r & 0x807fffffu) | ((0x30u + uint32_t(r >> 50) % 32) << 23); break;
        }
    }
    bits[0] = 0x7fffffffu, bits[1] = 0xffffffffu, bits[2] = 0x7f800000u, bits[3] = 0xff800000u, bits[4] = 0x7f7fffffu;
    std::vector<float> x(n);
    std::memcpy(x.data(), bits.data(), n * 4);
    std::vector<uint16_t> got(n);
    cpu::to_bf16(got.data(), x.data(), n);
    auto value = [](uint32_t b16) {
        const uint32_t u = b16 << 16;
        float f;
        std::memcpy(&f, &u, 4);
        return static_cast<double>(f);
    };
    for (int64_t i = 0; i < n; ++i) {
        const double v = x[i];
        if (std::isnan(v)) {
            if (!std::isnan(value(got[i]))) fail_msg("NaN 0x%08x became 0x%04x", bits[i], got[i]);
            continue;
        }
        const uint32_t lo = bits[i] >> 16, hi = lo + 1;  // truncated, and the next one away from zero
        const double dlo = std::fabs(v - value(lo)), dhi = (lo & 0x7fffu) == 0x7f7fu ? 0 : std::fabs(value(hi) - v);
        uint32_t want = dlo < dhi ? lo : dhi < dlo ? hi : (lo & 1u) ? hi : lo;
        if ((lo & 0x7fffu) == 0x7f7fu) {  // next is infinity: the midpoint to it rounds up (IEEE overflow)
            const double mid = std::fabs(value(lo)) + std::ldexp(1.0, 119);  // half of the last binade's step
            want = std::fabs(v) >= mid ? hi : lo;
        }
        if (std::isinf(v)) want = lo;
        if (got[i] != want) fail_msg("0x%08x (%.9g) rounded to 0x%04x, not 0x%04x", bits[i], v, got[i], want);
    }
}

// cpu::gemv_bf16 (a session's products in bf16 precision, AVX512-BF16 dot
// products) against the double product of the same bf16 values: 1 to 31 rows
// (every tile shape of the kernels and their remainders; 9 to 12 rows in two
// groups or, 12 rows of width 1100, in tiles), widths with a tail of
// every kind (none, within one vector, past several), 37 to 39 rows of W (every
// remainder past blocks of 4, and past blocks of 16), bias or none, accumulation;
// nothing written past y; the same bits on one thread as on two; and every row the
// same bits as that row alone (its sums do not depend on the tile it was in).
void bf16_dot_products(void **) {
    if (!cpu::cpu_has_avx512bf16()) {
        print_message("gemv_bf16: no AVX512-BF16 (this CPU, or a build for AVX2): the kernel is not used here\n");
        skip();
    }
    const int64_t guard = 16;
    double worst = 0;
    for (const int64_t out : {int64_t(37), int64_t(38), int64_t(39)})
    for (const int64_t in : {int64_t(770), int64_t(1100), int64_t(64), int64_t(16), int64_t(31)}) {
        std::vector<uint16_t> w16(out * in);
        cpu::to_bf16(w16.data(), to_float(randn(out * in)).data(), out * in);
        Vec wd(out * in);
        for (int64_t i = 0; i < out * in; ++i) wd[i] = bf16_value(w16[i]);
        const Fvec bf = to_float(randn(out));
        const Vec bd = to_double(bf);
        for (int64_t n = 1; n <= 31; ++n)
            for (const bool bias : {false, true})
                for (const bool acc : {false, true}) {
                    std::vector<uint16_t> x16(n * in);
                    cpu::to_bf16(x16.data(), to_float(randn(n * in)).data(), n * in);
                    Vec xd(n * in);
                    for (int64_t i = 0; i < n * in; ++i) xd[i] = bf16_value(x16[i]);
                    const Fvec y0 = to_float(randn(n * out));
                    Vec yd = to_double(y0);
                    cpu::linear_ref<double>(yd.data(), xd.data(), wd.data(), bias ? bd.data() : nullptr, n, in, out,
                                            acc);
                    Fvec yf = acc ? y0 : Fvec(n * out, NAN);
                    yf.resize(n * out + guard, -7.0f);
                    Fvec y1 = yf;
                    const float *b = bias ? bf.data() : nullptr;
                    cpu::gemv_bf16(yf.data(), x16.data(), w16.data(), b, n, in, out, acc);
                    for (int64_t k = 0; k < guard; ++k)
                        if (yf[n * out + k] != -7.0f)
                            fail_msg("gemv_bf16: %lld rows, %lld by %lld: wrote past y", (long long)n, (long long)out,
                                     (long long)in);
                    yf.resize(n * out);
                    const double e = worst_rel(yf, yd, std::sqrt(static_cast<double>(in)));
                    if (!(e <= worst)) worst = e;
                    const int threads = omp_get_max_threads();
                    omp_set_num_threads(1);
                    cpu::gemv_bf16(y1.data(), x16.data(), w16.data(), b, n, in, out, acc);
                    omp_set_num_threads(threads);
                    if (std::memcmp(y1.data(), yf.data(), yf.size() * sizeof(float)) != 0)
                        fail_msg("gemv_bf16: %lld rows, %lld by %lld: one thread's result differs", (long long)n,
                                 (long long)out, (long long)in);
                    for (int64_t r = 0; r < n; r += 5) {  // a row alone
                        Fvec row = acc ? Fvec(y0.begin() + r * out, y0.begin() + (r + 1) * out) : Fvec(out, NAN);
                        cpu::gemv_bf16(row.data(), x16.data() + r * in, w16.data(), b, 1, in, out, acc);
                        if (std::memcmp(row.data(), yf.data() + r * out, out * sizeof(float)) != 0)
                            fail_msg("gemv_bf16: row %lld of %lld (%lld by %lld) differs from the row alone",
                                     (long long)r, (long long)n, (long long)out, (long long)in);
                    }
                }
    }
    expect_close("gemv_bf16, 1-31 rows, 15 shapes", worst, 1e-6);
}

void float_kernels(void **) {
    // swiglu over the range where exp over- and underflows: silu, sigmoid and their products.
    const int64_t n = 203;
    Vec g(n), u = randn(n);
    for (int64_t i = 0; i < n; ++i) g[i] = -120.0 + 240.0 * static_cast<double>(i) / (n - 1);
    const Fvec gf = to_float(g), uf = to_float(u);
    g = to_double(gf), u = to_double(uf);  // the same inputs on both sides
    Vec h(n), dh = randn(n), dg(n), du(n);
    Fvec hf(n), dhf = to_float(dh), dgf(n), duf(n);
    dh = to_double(dhf);
    cpu::swiglu_forward<double>(h.data(), g.data(), u.data(), n);
    cpu::swiglu_forward<float>(hf.data(), gf.data(), uf.data(), n);
    expect_close("swiglu float", worst_rel(hf, h, 1e-30), 2e-6);
    cpu::swiglu_backward<double>(dg.data(), du.data(), dh.data(), g.data(), u.data(), n);
    cpu::swiglu_backward<float>(dgf.data(), duf.data(), dhf.data(), gf.data(), uf.data(), n);
    expect_close("swiglu backward dg float", worst_rel(dgf, dg, 1e-30), 4e-6);
    expect_close("swiglu backward du float", worst_rel(duf, du, 1e-30), 4e-6);

    // cross-entropy over a vocabulary that is no multiple of the vector width, logits
    // spread wide, one masked row; then in place (dlogits = logits).
    const int64_t rows = 3, V = 1003;
    Fvec lf = to_float(randn(rows * V, 8.0));
    Vec l = to_double(lf), dl(rows * V);
    std::vector<int32_t> targets = {7, -1, 1002};
    Fvec dlf(rows * V);
    const double loss = cpu::cross_entropy<double>(dl.data(), l.data(), targets.data(), rows, V, 0.5);
    const double lossf = cpu::cross_entropy<float>(dlf.data(), lf.data(), targets.data(), rows, V, 0.5f);
    expect_close("cross-entropy loss float", std::fabs(lossf - loss) / loss, 1e-6);
    expect_close("cross-entropy gradient float", worst_rel(dlf, dl, 1e-6), 1e-5);
    const double loss_inplace = cpu::cross_entropy<float>(lf.data(), lf.data(), targets.data(), rows, V, 0.5f);
    assert_true(loss_inplace == lossf);
    assert_memory_equal(lf.data(), dlf.data(), sizeof(float) * lf.size());

    // masked softmax rows against a direct double softmax.
    const int64_t nq = 4, nk = 37, heads = 2, visible0 = 30;
    Fvec sc = to_float(randn(heads * nq * nk, 3.0));
    Vec ref(sc.size());
    for (int64_t r = 0; r < heads * nq; ++r) {
        const int64_t nvis = std::min(nk, visible0 + r % nq + 1);
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < nvis; ++j) mx = std::max(mx, 0.25 * sc[r * nk + j]);
        for (int64_t j = 0; j < nvis; ++j) sum += ref[r * nk + j] = std::exp(0.25 * sc[r * nk + j] - mx);
        for (int64_t j = 0; j < nk; ++j) ref[r * nk + j] = j < nvis ? ref[r * nk + j] / sum : 0.0;
    }
    cpu::masked_softmax_rows(sc.data(), nq, nk, heads * nq, visible0, 0.25f);
    expect_close("masked softmax float", worst_rel(sc, ref, 1e-6), 1e-6);

    // attention (its softmax over a key count that is no multiple of 16).
    const int64_t H = 2, hd = 8, D = H * hd, ak = 37, aq = 5;
    Fvec qf = to_float(randn(aq * D)), kf = to_float(randn(ak * D)), vf = to_float(randn(ak * D)), of(aq * D);
    Vec q = to_double(qf), k = to_double(kf), v = to_double(vf), o(aq * D);
    cpu::attention_forward<double>(o.data(), q.data(), k.data(), v.data(), aq, ak, D, H, H, hd, 32, Dropout{});
    cpu::attention_forward<float>(of.data(), qf.data(), kf.data(), vf.data(), aq, ak, D, H, H, hd, 32, Dropout{});
    // Each output is a weighted mean of rows of v, so its rounding scales with v's
    // largest value, not with the output (which may cancel to near 0).
    double v_largest = 0;
    for (double x : v) v_largest = std::max(v_largest, std::fabs(x));
    expect_close("attention float", worst_rel(of, o, v_largest), 1e-6);

    // The gradient norm's sum of squares, over threads and vector lanes.
    const Fvec big = to_float(randn(70001));
    double squares = 0;
    for (float x : big) squares += static_cast<double>(x) * x;
    expect_close("sum of squares", std::fabs(cpu::sum_squares(big.data(), 70001) - squares) / squares, 1e-12);

    // Products with 16-bit weights (a BF16 or F16 model file): 1 to 43 rows, a
    // width with a tail past the vector loops and one within a single vector, bias
    // and accumulation, against the double product of the widened weights. The f16
    // weights are drawn as bit patterns, subnormals among them.
    std::mt19937_64 bits_rng(7);
    for (const Half half : {Half::bf16, Half::f16})
    for (const int64_t in : {int64_t(770), int64_t(16)}) {
        const int64_t out = 37;
        const Fvec wf = to_float(randn(out * in));
        std::vector<uint16_t> w16(out * in);
        Vec wd(out * in);
        if (half == Half::bf16) {
            cpu::to_bf16(w16.data(), wf.data(), out * in);
            for (int64_t i = 0; i < out * in; ++i) wd[i] = bf16_value(w16[i]);
        } else {
            for (int64_t i = 0; i < out * in; ++i) {
                const uint64_t r = bits_rng();
                const uint16_t exponent = i % 53 == 0 ? 0 : static_cast<uint16_t>(8 + r % 8);  // |w| < 0.5
                w16[i] = static_cast<uint16_t>((r >> 8 & 0x8000) | exponent << 10 | (r >> 20 & 0x3ff));
                wd[i] = f16_value(w16[i]);
            }
        }
        const std::string name = half == Half::bf16 ? "bf16" : "f16";
        const Fvec bf = to_float(randn(out));
        const Vec bd = to_double(bf);
        double worst = 0;  // floor: the size of a sum
        for (const int64_t rows_n : {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 23, 24, 43}) {  // registers; two passes; chunks
            for (const bool acc : {false, true}) {
                const Fvec xf = to_float(randn(rows_n * in)), y0 = to_float(randn(rows_n * out));
                Vec yd = to_double(y0);
                cpu::linear_ref<double>(yd.data(), to_double(xf).data(), wd.data(), bd.data(), rows_n, in, out, acc);
                Fvec yf = acc ? y0 : Fvec(rows_n * out, NAN);
                cpu::gemv_w16(yf.data(), xf.data(), w16.data(), half, bf.data(), rows_n, in, out, acc);
                const double e = worst_rel(yf, yd, std::sqrt(static_cast<double>(in)));
                if (!(e <= worst)) worst = e;
            }
        }
        expect_close(("gemv_w16 " + name + ", in " + std::to_string(in) + ", 1-43 rows").c_str(), worst, 1e-6);
        // The f32 one-row product of decoding, on the same weights.
        worst = 0;
        for (const bool acc : {false, true}) {
            const Fvec wf32(wd.begin(), wd.end()), xf = to_float(randn(in)), y0 = to_float(randn(out));
            Vec yd = to_double(y0);
            cpu::linear_ref<double>(yd.data(), to_double(xf).data(), wd.data(), bd.data(), 1, in, out, acc);
            Fvec yf = acc ? y0 : Fvec(out, NAN);
            cpu::gemv(yf.data(), xf.data(), wf32.data(), bf.data(), in, out, acc);
            const double e = worst_rel(yf, yd, std::sqrt(static_cast<double>(in)));
            if (!(e <= worst)) worst = e;
        }
        expect_close(("gemv, in " + std::to_string(in) + ", " + name + " values").c_str(), worst, 1e-6);
    }
    Fvec widened(770);
    std::vector<uint16_t> some(770);
    for (int64_t i = 0; i < 770; ++i) some[i] = static_cast<uint16_t>(i * 85 + 3);  // every exponent, signs, NaNs
    cpu::from_bf16(widened.data(), some.data(), 770);
    for (int64_t i = 0; i < 770; ++i) {
        uint32_t bits;
        std::memcpy(&bits, &widened[i], 4);
        if (bits != static_cast<uint32_t>(some[i]) << 16) fail_msg("from_bf16 %d: bits %08x", (int)i, bits);
    }
    // from_f16 on every one of the 65536 patterns (threads, vectors and a tail),
    // against the binary16 definition: NaNs stay NaNs of the same sign, every
    // other value exact.
    std::vector<uint16_t> every(65536 + 5);
    for (size_t i = 0; i < every.size(); ++i) every[i] = static_cast<uint16_t>(i);
    // The same for the CPUs without F16C.
    for (const bool portable : {false, true}) {
        Fvec from16(every.size());
        if (portable) cpu::from_f16_portable(from16.data(), every.data(), static_cast<int64_t>(every.size()));
        else cpu::from_f16(from16.data(), every.data(), static_cast<int64_t>(every.size()));
        for (size_t i = 0; i < every.size(); ++i) {
            const double want = f16_value(every[i]);
            const bool ok = std::isnan(want) ? std::isnan(from16[i]) && std::signbit(from16[i]) == std::signbit(want)
                                             : from16[i] == want && std::signbit(from16[i]) == std::signbit(want);
            if (!ok)
                fail_msg("from_f16%s %04x: %.9g, want %.9g", portable ? "_portable" : "", (unsigned)every[i],
                         (double)from16[i], want);
        }
    }

    // AdamW with a bf16 shadow against the formula in double.
    const int64_t np = 37;
    Fvec p = to_float(randn(np)), m = to_float(randn(np, 0.1)), w = to_float(randn(np, 0.1)), gr = to_float(randn(np));
    for (float &x : w) x = x * x;
    Vec pd(np);
    const float scale = 0.5f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, decay = 0.999f, step = 1e-3f, ibc2 = 1.3f;
    for (int64_t i = 0; i < np; ++i) {
        double gi = static_cast<double>(gr[i]) * scale, mi = b1 * static_cast<double>(m[i]) + (1.0 - b1) * gi;
        double vi = b2 * static_cast<double>(w[i]) + (1.0 - b2) * gi * gi;
        pd[i] = p[i] * static_cast<double>(decay) - step * mi / (std::sqrt(vi) * ibc2 + eps);
    }
    std::vector<uint16_t> shadow(np);
    cpu::adamw(p.data(), m.data(), w.data(), gr.data(), np, scale, b1, b2, eps, decay, step, ibc2, shadow.data());
    expect_close("adamw float", worst_rel(p, pd, 1e-3), 1e-6);
    for (int64_t i = 0; i < np; ++i) {
        uint32_t bits = static_cast<uint32_t>(shadow[i]) << 16;
        float back;
        std::memcpy(&back, &bits, 4);
        if (!(std::fabs(back - p[i]) <= std::fabs(p[i]) / 256)) fail_msg("adamw bf16 shadow %d: %g for %g", (int)i, back, p[i]);
    }
}

// The cells and gelu in float (tanh, sigmoid and erf without libm) against
// double, with random numbers of its own: the tests before it keep theirs.
void float_cells(void **) {
    std::mt19937_64 local(777);
    auto local_randn = [&](size_t n, double scale = 1.0) {
        std::normal_distribution<double> d(0.0, scale);
        Vec v(n);
        for (double &x : v) x = d(local);
        return v;
    };
    // First tanh alone: a GRU whose update gate is all but shut (z = sigmoid(-40)),
    // whose old memory is 0 and whose candidate reads a alone (b = 0) gives
    // m = tanh(a) (1 - z), over values from 1e-30 to 100 of both signs, both sides
    // of the series' bound (1/4) and a dense sweep of [-6, 6].
    {
        Vec t = {0.0, 1e-30, 1e-12, 1e-6, 3e-4, 0.01, 0.1, 0.2, 0.2499999, 0.25, 0.2500001, 0.3, 0.5, 1.0, 2.0,
                 4.5, 9.0, 9.1, 15.0, 20.0, 45.0, 100.0};
        for (size_t i = 0, n0 = t.size(); i < n0; ++i) t.push_back(-t[i]);
        for (int i = 0; i <= 2400; ++i) t.push_back(-6.0 + 12.0 * i / 2400);
        const int64_t D = static_cast<int64_t>(t.size());
        Vec gi(3 * D), gh(3 * D, 0.0), h(D, 0.0), m(D);
        for (int64_t i = 0; i < D; ++i) gi[i] = 0.3, gi[D + i] = -40.0, gi[2 * D + i] = t[i];
        const Fvec gif = to_float(gi), ghf = to_float(gh), hf = to_float(h);
        gi = to_double(gif), h = to_double(hf);
        Fvec mf(D);
        cpu::cell_forward<float>(CellKind::gru, mf.data(), nullptr, nullptr, gif.data(), ghf.data(), hf.data(), 1, D);
        for (int64_t i = 0; i < D; ++i) m[i] = std::tanh(gi[2 * D + i]);
        expect_close("tanh float (through the gru cell)", worst_rel(mf, m, 1e-37), 1e-6);
    }
    // gelu over [-12.5, 14]: the float CDF keeps its relative accuracy in the far
    // negative tail (gelu(-12.5) is -1.3e-34), where 1 + erff(x) would be 0.
    {
        const int64_t ng = 2801;
        Vec x(ng), y(ng), dy = local_randn(ng), dx(ng);
        for (int64_t i = 0; i < ng; ++i) x[i] = -12.5 + 26.5 * static_cast<double>(i) / (ng - 1);
        const Fvec xf = to_float(x), dyf = to_float(dy);
        x = to_double(xf), dy = to_double(dyf);
        Fvec yf(ng), dxf(ng);
        cpu::gelu_forward<double>(y.data(), x.data(), ng);
        cpu::gelu_forward<float>(yf.data(), xf.data(), ng);
        // Relative to each value, the tail's exponent (-x^2 / 2, rounded in float)
        // bounds the accuracy: 1.7e-5 at -10 (gelu -7.6e-23); to values of 1e-3 or more, 1e-6.
        expect_close("gelu float (each value)", worst_rel(yf, y, 1e-36), 5e-5);
        expect_close("gelu float", worst_rel(yf, y, 1e-3), 1e-6);
        cpu::gelu_backward<double>(dx.data(), dy.data(), x.data(), ng);
        cpu::gelu_backward<float>(dxf.data(), dyf.data(), xf.data(), ng);
        // The derivative cdf + x pdf cancels near its zero (x = -0.75, both terms
        // 0.23): relative to 0.1 and more.
        expect_close("gelu backward float", worst_rel(dxf, dx, 0.1), 1e-6);
    }

    // Then whole cells, forward and backward, rows past the parallel threshold.
    for (CellKind kind : {CellKind::gru, CellKind::lstm}) {
        const int64_t M = 40, D = 515, G = kind == CellKind::gru ? 3 : 4;
        const char *name = kind == CellKind::gru ? "gru" : "lstm";
        const Fvec gif = to_float(local_randn(M * G * D, 2.0)), ghf = to_float(local_randn(M * G * D, 2.0)),
                   hf = to_float(local_randn(M * D)), cf = to_float(local_randn(M * D)), dmf = to_float(local_randn(M * D)),
                   dcf = to_float(local_randn(M * D));
        const Vec gi = to_double(gif), gh = to_double(ghf), hh = to_double(hf), c = to_double(cf), dm = to_double(dmf),
                  dc = to_double(dcf);
        const bool lstm = kind == CellKind::lstm;
        Vec m(M * D), cout(M * D), dgi(M * G * D), dgh(M * G * D), dh(M * D, 0.0), dcin(M * D);
        Fvec mf(M * D), coutf(M * D), dgif(M * G * D), dghf(M * G * D), dhf(M * D, 0.0f), dcinf(M * D);
        cpu::cell_forward<double>(kind, m.data(), lstm ? cout.data() : nullptr, lstm ? c.data() : nullptr, gi.data(),
                                  gh.data(), hh.data(), M, D);
        cpu::cell_forward<float>(kind, mf.data(), lstm ? coutf.data() : nullptr, lstm ? cf.data() : nullptr, gif.data(),
                                 ghf.data(), hf.data(), M, D);
        expect_close((std::string(name) + " cell float").c_str(), worst_rel(mf, m, 1.0), 1e-6);
        cpu::cell_backward<double>(kind, dgi.data(), dgh.data(), dh.data(), lstm ? dcin.data() : nullptr, dm.data(),
                                   lstm ? dc.data() : nullptr, lstm ? c.data() : nullptr, gi.data(), gh.data(),
                                   hh.data(), M, D);
        cpu::cell_backward<float>(kind, dgif.data(), dghf.data(), dhf.data(), lstm ? dcinf.data() : nullptr, dmf.data(),
                                  lstm ? dcf.data() : nullptr, lstm ? cf.data() : nullptr, gif.data(), ghf.data(),
                                  hf.data(), M, D);
        expect_close((std::string(name) + " cell backward dgi float").c_str(), worst_rel(dgif, dgi, 1.0), 1e-6);
        expect_close((std::string(name) + " cell backward dgh float").c_str(), worst_rel(dghf, dgh, 1.0), 1e-6);
        expect_close((std::string(name) + " cell backward dh float").c_str(), worst_rel(dhf, dh, 1.0), 1e-6);
    }
}

// The fused attention of many query rows (AVX-512) against the row-at-a-time
// kernel in double (itself checked by finite differences in `attention`): blocks
// cut short, keys past the last query, memory rows that see every key, grouped
// heads, kv rows wider than the heads (k and v interleaved), dropout, the kv heads
// split across work items; the backward's += into dk and dv and = into dq; and the
// same bits whatever the thread count.
void fused_attention(void **) {
    if (!cpu::fused_attention_fits(16)) {
        print_message("fused attention: this CPU has no AVX-512, the kernel is not used here\n");
        skip();
    }
    struct Case {
        int64_t nq, nk, visible0, H, Hkv, hd;
        bool interleaved;
        float p;
    };
    const Case cases[] = {
        {70, 75, 5, 4, 4, 64, false, 0.0f},     // 4 kv heads: 2 parts each
        {33, 36, 3, 4, 2, 32, true, 0.3f},      // grouped heads, dropout
        {16, 40, 40, 8, 8, 48, false, 0.0f},    // memory rows: every key visible
        {64, 100, 200, 2, 1, 128, true, 0.0f},  // one kv head, two 4-vector tiles wide
        {100, 110, 10, 3, 3, 16, false, 0.1f},  // 3 kv heads, one vector wide
        {300, 332, 32, 2, 2, 64, true, 0.0f},   // a training segment's shape
    };
    for (const Case &c : cases) {
        const int64_t D = c.H * c.hd, kvw = c.Hkv * c.hd, ldkv = c.interleaved ? 2 * kvw : kvw;
        const Dropout drop{c.p, 0x5eedull + static_cast<uint64_t>(c.nq)};
        Fvec qf = to_float(randn(c.nq * D)), kvf = to_float(randn(c.nk * ldkv)), dof = to_float(randn(c.nq * D));
        Fvec kf = kvf, vf = to_float(randn(c.nk * ldkv));
        if (c.interleaved) vf = kvf;  // k in columns [0, kvw), v in [kvw, 2 kvw) of the same rows
        const float *kp = kf.data(), *vp = vf.data() + (c.interleaved ? kvw : 0);
        Vec q = to_double(qf), kd = to_double(kf), vd = to_double(vf), dout = to_double(dof);
        const double *kdp = kd.data(), *vdp = vd.data() + (c.interleaved ? kvw : 0);
        Vec o(c.nq * D), dq(c.nq * D), dk = randn(c.nk * ldkv, 0.5), dv = randn(c.nk * ldkv, 0.5);
        Fvec of(o.size(), NAN), dqf(dq.size(), NAN), dkf = to_float(dk), dvf = to_float(dv);
        dk = to_double(dkf), dv = to_double(dvf);
        cpu::attention_forward<double>(o.data(), q.data(), kdp, vdp, c.nq, c.nk, ldkv, c.H, c.Hkv, c.hd, c.visible0, drop);
        cpu::fused_attention_forward(of.data(), qf.data(), kp, vp, c.nq, c.nk, ldkv, c.H, c.Hkv, c.hd, c.visible0, drop);
        cpu::attention_backward<double>(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), kdp, vdp, c.nq, c.nk, ldkv,
                                        c.H, c.Hkv, c.hd, c.visible0, drop);
        Fvec dkf1 = dkf, dvf1 = dvf;
        cpu::fused_attention_backward(dqf.data(), dkf.data(), dvf.data(), dof.data(), qf.data(), kp, vp, c.nq, c.nk, ldkv,
                                      c.H, c.Hkv, c.hd, c.visible0, drop);
        auto largest = [](const Vec &x) {
            double m = 1e-30;
            for (double e : x) m = std::max(m, std::fabs(e));
            return m;
        };
        char what[96];
        const char *names[4] = {"out", "dq", "dk", "dv"};
        const Fvec *got[4] = {&of, &dqf, &dkf, &dvf};
        const Vec *want[4] = {&o, &dq, &dk, &dv};
        for (int t = 0; t < 4; ++t) {
            std::snprintf(what, sizeof what, "fused %s nq %lld nk %lld hd %lld", names[t], (long long)c.nq,
                          (long long)c.nk, (long long)c.hd);
            expect_close(what, worst_rel(*got[t], *want[t], largest(*want[t])), 1e-5);
        }
        // On one thread: the same bits.
        const int threads = omp_get_max_threads();
        omp_set_num_threads(1);
        Fvec dqf1(dq.size(), NAN);
        cpu::fused_attention_backward(dqf1.data(), dkf1.data(), dvf1.data(), dof.data(), qf.data(), kp, vp, c.nq, c.nk,
                                      ldkv, c.H, c.Hkv, c.hd, c.visible0, drop);
        omp_set_num_threads(threads);
        assert_memory_equal(dqf1.data(), dqf.data(), sizeof(float) * dqf.size());
        assert_memory_equal(dkf1.data(), dkf.data(), sizeof(float) * dkf.size());
        assert_memory_equal(dvf1.data(), dvf.data(), sizeof(float) * dvf.size());
    }
}

// decode_attention (sessions decoded together): the CPU kernel, in double and in
// float, and the seam's default (copy, rope and attention row after row; what
// backends without a kernel of their own run, here the reference backend's)
// against rope and attention_forward in double, row after row: out, q rotated
// in place, the new cache rows, and every other cache row unchanged.
void decode_rows(void **) {
    struct Case {
        int64_t H, Hkv, hd;
        bool rope;
        std::vector<int64_t> at;
    };
    const Case cases[] = {{4, 2, 16, true, {7, 0, 30}}, {8, 2, 8, false, {3, 19, 5, 11, 60}}, {2, 2, 64, true, {40}}};
    ReferenceBackend reference;
    const std::unique_ptr<Stream> stream = reference.new_stream();
    for (const Case &c : cases) {
        const int64_t n = static_cast<int64_t>(c.at.size()), D = c.H * c.hd, Dkv = c.Hkv * c.hd;
        const Vec q = to_double(to_float(randn(n * D))), k = to_double(to_float(randn(n * Dkv))),
                  v = to_double(to_float(randn(n * Dkv)));
        std::vector<Vec> keys, values;
        std::vector<int64_t> pos;
        for (int64_t i = 0; i < n; ++i) {
            keys.push_back(to_double(to_float(randn((c.at[i] + 2) * Dkv))));
            values.push_back(to_double(to_float(randn((c.at[i] + 2) * Dkv))));
            pos.push_back(13 * i + 5);
        }
        Vec out(n * D), qr = q;
        std::vector<Vec> keys_r = keys, values_r = values;
        for (int64_t i = 0; i < n; ++i) {
            std::copy(k.begin() + i * Dkv, k.begin() + (i + 1) * Dkv, keys_r[i].begin() + c.at[i] * Dkv);
            std::copy(v.begin() + i * Dkv, v.begin() + (i + 1) * Dkv, values_r[i].begin() + c.at[i] * Dkv);
            if (c.rope) {
                cpu::rope<double>(qr.data() + i * D, 1, D, c.H, c.hd, pos[i], 10000.0, false);
                cpu::rope<double>(keys_r[i].data() + c.at[i] * Dkv, 1, Dkv, c.Hkv, c.hd, pos[i], 10000.0, false);
            }
            cpu::attention_forward<double>(out.data() + i * D, qr.data() + i * D, keys_r[i].data(), values_r[i].data(), 1,
                                           c.at[i] + 1, Dkv, c.H, c.Hkv, c.hd, c.at[i], Dropout{});
        }
        for (int way = 0; way < 3; ++way) {  // the double kernel, the float kernel, the default
            const char *name = way == 0 ? "decode_attention double" : way == 1 ? "decode_attention float" : "decode_attention default";
            Vec outd(n * D), qd = q;
            std::vector<Vec> kd = keys, vd = values;
            std::vector<Fvec> kf, vf;
            Fvec outf(n * D), qf = to_float(q);
            if (way == 0) {
                std::vector<CacheRowOf<double>> rows;
                for (int64_t i = 0; i < n; ++i) rows.push_back({kd[i].data(), vd[i].data(), c.at[i], pos[i]});
                cpu::decode_attention<double>(outd.data(), qd.data(), k.data(), v.data(), rows.data(), n, c.H, c.Hkv, c.hd,
                                              c.rope, 10000.0);
            } else {
                std::vector<CacheRowOf<float>> rows;
                for (int64_t i = 0; i < n; ++i) kf.push_back(to_float(keys[i])), vf.push_back(to_float(values[i]));
                for (int64_t i = 0; i < n; ++i) rows.push_back({kf[i].data(), vf[i].data(), c.at[i], pos[i]});
                const Fvec kin = to_float(k), vin = to_float(v);
                if (way == 1)
                    cpu::decode_attention<float>(outf.data(), qf.data(), kin.data(), vin.data(), rows.data(), n, c.H, c.Hkv,
                                                 c.hd, c.rope, 10000.0f);
                else
                    reference.decode_attention(*stream, outf.data(), qf.data(), kin.data(), vin.data(), rows.data(), n, c.H,
                                               c.Hkv, c.hd, c.rope, 10000.0f);
                outd = to_double(outf), qd = to_double(qf);
                for (int64_t i = 0; i < n; ++i) kd[i] = to_double(kf[i]), vd[i] = to_double(vf[i]);
            }
            double worst = std::max(worst_rel(outd, out, 1.0), worst_rel(qd, qr, 1.0));  // values about 1
            for (int64_t i = 0; i < n; ++i) {
                worst = std::max({worst, worst_rel(kd[i], keys_r[i], 1.0), worst_rel(vd[i], values_r[i], 1.0)});
                for (int64_t j = 0; j < (c.at[i] + 2) * Dkv; ++j)
                    if (j / Dkv != c.at[i] && (kd[i][j] != keys[i][j] || vd[i][j] != values[i][j]))
                        fail_msg("%s: row %lld's cache row %lld changed", name, (long long)i, (long long)(j / Dkv));
            }
            expect_close(name, worst, way == 0 ? 1e-13 : 1e-5);
        }
    }
}

void embeddings_and_columns(void **) {
    const int64_t V = 5, D = 3, n = 4, M = 2;
    Vec table = randn(V * D), dy = randn(n * D), y(n * D);
    std::vector<int32_t> tokens = {1, 3, 1, 4};
    auto f = [&] {
        cpu::embed_forward<double>(y.data(), table.data(), tokens.data(), n, D);
        return dot(dy, y);
    };
    Vec dtable(V * D, 0.0);
    cpu::embed_backward<double>(dtable.data(), dy.data(), tokens.data(), n, D);
    check("embedding (repeated token)", table, f, dtable);
    Vec a = randn(M * D), b = randn(M * D), dcat = randn(M * 2 * D), cat(M * 2 * D);
    auto fc = [&] {
        cpu::concat_cols<double>(cat.data(), a.data(), b.data(), M, D);
        return dot(dcat, cat);
    };
    Vec da(M * D, 0.0), dbv(M * D, 0.0);
    cpu::split_cols_add<double>(da.data(), dbv.data(), dcat.data(), M, D);
    check("concat columns da", a, fc, da);
    check("concat columns db", b, fc, dbv);
}

}  // namespace

int main() {
#if defined(RMKV_NO_CLONES) && defined(__x86_64__)
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
        std::printf("test_op_gradients_avx2: this CPU has no AVX2 and FMA, skipped\n");
        return 77;
    }
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(norms),       cmocka_unit_test(linear), cmocka_unit_test(rope),
        cmocka_unit_test(attention),   cmocka_unit_test(activations), cmocka_unit_test(pool),
        cmocka_unit_test(cells),       cmocka_unit_test(cross_entropy), cmocka_unit_test(embeddings_and_columns),
        cmocka_unit_test(float_kernels), cmocka_unit_test(fused_attention), cmocka_unit_test(bf16_rounding),
        cmocka_unit_test(bf16_dot_products), cmocka_unit_test(decode_rows), cmocka_unit_test(float_cells),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
