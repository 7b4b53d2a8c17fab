#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_simd.h"
#include "core/threads.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace rmkv::cpu {

namespace {

// dot and axpy are inlined into each target clone of their callers, so they
// vectorise for the machine without a dispatch per call. The float dot is written
// with explicit vectors: left to itself, -O3 vectorises a caller's outer loop
// instead (gathers across rows), ten times slower for the decoding gemv.
template <class T>
__attribute__((always_inline)) inline T dot(const T *a, const T *b, int64_t n) {
    T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
    T s = 0;
    for (; i < n; ++i) s += a[i] * b[i];
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

template <>
__attribute__((always_inline)) inline float dot<float>(const float *a, const float *b, int64_t n) {
    v8f acc[4] = {};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; ++k) {
            v8f x, y;
            std::memcpy(&x, a + i + 8 * k, 32), std::memcpy(&y, b + i + 8 * k, 32);
            acc[k] += x * y;
        }
    float s = lane_sum((acc[0] + acc[1]) + (acc[2] + acc[3]));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

template <class T>
__attribute__((always_inline)) inline void axpy(T *y, T a, const T *x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

template <class T> __attribute__((always_inline)) inline T vexp(T x) { return std::exp(x); }
template <> __attribute__((always_inline)) inline float vexp<float>(float x) {
    exp_poly<float, uint32_t>(x);
    return x;
}

// Softmax rows: the largest of x[0, n), and p[j] = e^(x[j] - mx) (p may be x) with
// their sum (accumulated in double).
template <class T>
__attribute__((always_inline)) inline T max_of(const T *x, int64_t n) {
    T mx = -INFINITY;
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, x[j]);
    return mx;
}
template <>
__attribute__((always_inline)) inline float max_of<float>(const float *x, int64_t n) {
    v8f acc = v8f{} - INFINITY;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        v8f v;
        std::memcpy(&v, x + j, 32);
        acc = v > acc ? v : acc;
    }
    float mx = -INFINITY;
    for (int k = 0; k < 8; ++k) mx = std::max(mx, acc[k]);
    for (; j < n; ++j) mx = std::max(mx, x[j]);
    return mx;
}
template <class T>
__attribute__((always_inline)) inline double exp_sum(T *p, const T *x, T mx, int64_t n) {
    double sum = 0;
    for (int64_t j = 0; j < n; ++j) sum += p[j] = std::exp(x[j] - mx);
    return sum;
}
template <>
__attribute__((always_inline)) inline double exp_sum<float>(float *p, const float *x, float mx, int64_t n) {
    typedef double v4d __attribute__((vector_size(32)));
    v4d acc0 = {}, acc1 = {};
    for (int64_t j = 0; j < n; j += 8) {
        const int64_t m = std::min<int64_t>(8, n - j);  // a short last block is padded
        v8f v = {};
        std::memcpy(&v, x + j, sizeof(float) * m);
        v -= mx;
        exp_poly<v8f, v8u>(v);
        if (m < 8)
            for (int64_t k = m; k < 8; ++k) v[k] = 0.0f;
        std::memcpy(p + j, &v, sizeof(float) * m);
        acc0 += __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3), v4d);
        acc1 += __builtin_convertvector(__builtin_shufflevector(v, v, 4, 5, 6, 7), v4d);
    }
    acc0 += acc1;
    double sum = 0;
    for (int k = 0; k < 4; ++k) sum += acc0[k];
    return sum;
}

template <class T> inline T sigmoid(T x) { return T(1) / (T(1) + vexp(-x)); }
// tanh; in single precision without libm, so that the cells' loops vectorise:
// (1 - e^-2|x|) / (1 + e^-2|x|) with x's sign, and below |x| = 1/4, where that
// difference loses digits, the odd series to x^11 (the next term is 2e-10 of x).
// test_op_gradients (float_cells) measures it against std::tanh in double.
template <class T> __attribute__((always_inline)) inline T vtanh(T x) { return std::tanh(x); }
template <> __attribute__((always_inline)) inline float vtanh<float>(float x) {
    const float a = std::fabs(x), x2 = x * x;
    float e = -2.0f * a;
    exp_poly<float, uint32_t>(e);
    const float far = std::copysign((1.0f - e) / (1.0f + e), x);
    const float near =
        x + x * x2 * (-1.0f / 3 + x2 * (2.0f / 15 + x2 * (-17.0f / 315 + x2 * (62.0f / 2835 + x2 * (-1382.0f / 155925)))));
    return a < 0.25f ? near : far;
}
template <class T> inline T silu(T x) { return x * sigmoid(x); }

// Softmax of q . k_j * scale over the visible keys, into p[0, nvis).
// p[0, n) = softmax of the scores p[0, n), in place.
template <class T>
__attribute__((always_inline)) inline void softmax_in_place(T *p, int64_t n) {
    const T inv = static_cast<T>(1.0 / exp_sum(p, p, max_of(p, n), n));
    for (int64_t j = 0; j < n; ++j) p[j] *= inv;
}
template <class T>
__attribute__((always_inline)) inline void attention_probs(T *p, const T *qi, const T *k, int64_t nvis, int64_t ldkv,
                                                           int64_t koff, int64_t hd, T scale) {
    for (int64_t j = 0; j < nvis; ++j) p[j] = dot(qi, k + j * ldkv + koff, hd) * scale;
    softmax_in_place(p, nvis);
}

// One query row of one head over keys and values 0 .. nvis - 1 (kv head at koff);
// with dropout, its probabilities are the elements drop_at + j of the site.
template <class T>
__attribute__((always_inline)) inline void attend_query(T *o, const T *qi, const T *k, const T *v, int64_t nvis,
                                                        int64_t ldkv, int64_t koff, int64_t hd, T scale,
                                                        const Dropout &drop, int64_t drop_at) {
    T *p = scratch<T>(nvis, 0);
    attention_probs(p, qi, k, nvis, ldkv, koff, hd, scale);
    if (drop.on())
        for (int64_t j = 0; j < nvis; ++j) p[j] *= drop.factor(static_cast<uint64_t>(drop_at + j));
    std::fill(o, o + hd, T(0));
    for (int64_t j = 0; j < nvis; ++j) axpy(o, p[j], v + j * ldkv + koff, hd);
}

// Every head of one query row (q [H * hd]) over keys and values 0 .. nvis - 1 (rows
// of Dkv, kv head h / group): each key and value row read once, whole and in
// order, where attend_query per head reads a head's slice of every row. The same
// sums in the same order as attend_query per head, so the same results.
template <class T>
__attribute__((always_inline)) inline void attend_heads(T *o, const T *q, const T *k, const T *v, int64_t nvis,
                                                        int64_t Dkv, int64_t H, int64_t group, int64_t hd, T scale) {
    T *p = scratch<T>(H * nvis, 0);  // p[h * nvis + j]
    for (int64_t j = 0; j < nvis; ++j) {
        const T *kj = k + j * Dkv;
        for (int64_t h = 0; h < H; ++h) p[h * nvis + j] = dot(q + h * hd, kj + (h / group) * hd, hd) * scale;
    }
    for (int64_t h = 0; h < H; ++h) softmax_in_place(p + h * nvis, nvis);
    std::fill(o, o + H * hd, T(0));
    for (int64_t j = 0; j < nvis; ++j) {
        const T *vj = v + j * Dkv;
        for (int64_t h = 0; h < H; ++h) axpy(o + h * hd, p[h * nvis + j], vj + (h / group) * hd, hd);
    }
}

}  // namespace

template <class T>
void norm_forward(NormKind kind, T *y, const T *x, const T *w, const T *b, int64_t n, int64_t d, T eps) {
#pragma omp parallel for if (n > 4) schedule(static)
    for (int64_t r = 0; r < n; ++r) {
        const T *xr = x + r * d;
        T *yr = y + r * d;
        double mean = 0;
        if (kind == NormKind::layernorm) {
            for (int64_t i = 0; i < d; ++i) mean += xr[i];
            mean /= static_cast<double>(d);
        }
        double var = 0;
        for (int64_t i = 0; i < d; ++i) {
            double c = xr[i] - mean;
            var += c * c;
        }
        var /= static_cast<double>(d);
        T inv = static_cast<T>(1.0 / std::sqrt(var + eps));
        T mu = static_cast<T>(mean);
        if (b)
            for (int64_t i = 0; i < d; ++i) yr[i] = (xr[i] - mu) * inv * w[i] + b[i];
        else
            for (int64_t i = 0; i < d; ++i) yr[i] = (xr[i] - mu) * inv * w[i];
    }
}

template <class T>
void norm_backward(NormKind kind, T *dx, T *dw, T *db, const T *dy, const T *x, const T *w, int64_t n, int64_t d, T eps) {
    // Parameter gradients are sums over rows: reduce per thread, then add.
    double *gw = scratch<double>(2 * d, 5), *gb = gw + d;
    std::fill(gw, gw + 2 * d, 0.0);
#pragma omp parallel if (n > 4)
    {
        double *lw = scratch<double>(d, 2), *lb = scratch<double>(d, 3);
        std::fill(lw, lw + d, 0.0);
        std::fill(lb, lb + d, 0.0);
        T *xhat = scratch<T>(d, 4);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < n; ++r) {
            const T *xr = x + r * d, *dyr = dy + r * d;
            T *dxr = dx + r * d;
            double mean = 0;
            if (kind == NormKind::layernorm) {
                for (int64_t i = 0; i < d; ++i) mean += xr[i];
                mean /= static_cast<double>(d);
            }
            double var = 0;
            for (int64_t i = 0; i < d; ++i) var += (xr[i] - mean) * (xr[i] - mean);
            var /= static_cast<double>(d);
            double inv = 1.0 / std::sqrt(var + eps);
            double s1 = 0, s2 = 0;  // sum g, sum g * xhat with g = dy * w
            for (int64_t i = 0; i < d; ++i) {
                xhat[i] = static_cast<T>((xr[i] - mean) * inv);
                double g = static_cast<double>(dyr[i]) * w[i];
                s1 += g;
                s2 += g * xhat[i];
                lw[i] += static_cast<double>(dyr[i]) * xhat[i];
                lb[i] += dyr[i];
            }
            if (kind == NormKind::layernorm) {
                for (int64_t i = 0; i < d; ++i)
                    dxr[i] += static_cast<T>(inv * (static_cast<double>(dyr[i]) * w[i] - s1 / d - xhat[i] * s2 / d));
            } else {
                for (int64_t i = 0; i < d; ++i)
                    dxr[i] += static_cast<T>(inv * (static_cast<double>(dyr[i]) * w[i] - xhat[i] * s2 / d));
            }
        }
#pragma omp critical
        for (int64_t i = 0; i < d; ++i) gw[i] += lw[i], gb[i] += lb[i];
    }
    if (dw)
        for (int64_t i = 0; i < d; ++i) dw[i] += static_cast<T>(gw[i]);
    if (db)
        for (int64_t i = 0; i < d; ++i) db[i] += static_cast<T>(gb[i]);
}

template <class T>
void embed_forward(T *X, const T *tok_emb, const int32_t *tokens, int64_t n, int64_t d) {
    for (int64_t r = 0; r < n; ++r) std::memcpy(X + r * d, tok_emb + static_cast<int64_t>(tokens[r]) * d, sizeof(T) * d);
}

template <class T>
void embed_backward(T *dtok_emb, const T *dX, const int32_t *tokens, int64_t n, int64_t d) {
    for (int64_t r = 0; r < n; ++r) axpy(dtok_emb + static_cast<int64_t>(tokens[r]) * d, T(1), dX + r * d, d);
}

template <class T>
void add(T *out, const T *a, const T *b, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

template <class T>
void sincos_add(T *X, int64_t n, int64_t d, int64_t p0) {
    for (int64_t r = 0; r < n; ++r) {
        double p = static_cast<double>(p0 + r);
        for (int64_t i = 0; 2 * i < d; ++i) {
            double angle = p / std::pow(10000.0, static_cast<double>(2 * i) / static_cast<double>(d));
            X[r * d + 2 * i] += static_cast<T>(std::sin(angle));
            if (2 * i + 1 < d) X[r * d + 2 * i + 1] += static_cast<T>(std::cos(angle));
        }
    }
}

namespace {

// cos and sin of t * theta^(-2i / head_dim) for positions t < n_pos and i < head_dim / 2,
// row t = [cos of every i, sin of every i]: computed in double once per thread and
// (theta, head_dim), and extended (doubling) when a later position is asked for.
template <class T>
const T *rope_table(int64_t n_pos, int64_t head_dim, T theta) {
    struct Table {
        T theta = 0;
        int64_t head_dim = 0, n_pos = 0;
        std::vector<T> cs;
    };
    thread_local Table tab;
    if (tab.theta != theta || tab.head_dim != head_dim) tab = Table{theta, head_dim, 0, {}};
    if (n_pos > tab.n_pos) {
        const int64_t half = head_dim / 2, grown = std::max(n_pos, 2 * tab.n_pos);
        tab.cs.resize(static_cast<size_t>(grown * 2 * half));
        for (int64_t t = tab.n_pos; t < grown; ++t)
            for (int64_t i = 0; i < half; ++i) {
                double angle = static_cast<double>(t) *
                               std::pow(static_cast<double>(theta), -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
                tab.cs[t * 2 * half + i] = static_cast<T>(std::cos(angle));
                tab.cs[t * 2 * half + half + i] = static_cast<T>(std::sin(angle));
            }
        tab.n_pos = grown;
    }
    return tab.cs.data();
}

}  // namespace

template <class T>
RMKV_CLONES void rope(T *x, int64_t n, int64_t ld, int64_t n_heads, int64_t head_dim, int64_t t0, T theta, bool inverse) {
    const int64_t half = head_dim / 2;
    const T *table = rope_table(t0 + n, head_dim, theta), sign = inverse ? T(-1) : T(1);
#pragma omp parallel for if (n * n_heads * head_dim > 65536) schedule(static)
    for (int64_t r = 0; r < n; ++r) {
        const T *c = table + (t0 + r) * 2 * half, *s = c + half;
        for (int64_t h = 0; h < n_heads; ++h) {
            T *p = x + r * ld + h * head_dim;
            for (int64_t i = 0; i < half; ++i) {
                const T a = p[i], b = p[i + half], si = sign * s[i];
                p[i] = a * c[i] - b * si;
                p[i + half] = b * c[i] + a * si;
            }
        }
    }
}

template <class T>
RMKV_CLONES void attention_forward(T *out, const T *q, const T *k, const T *v, int64_t nq, int64_t nk, int64_t ldkv,
                                   int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t visible0,
                                   const Dropout &drop) {
    const int64_t group = n_heads / n_kv_heads, D = n_heads * head_dim;
    const T scale = T(1) / std::sqrt(static_cast<T>(head_dim));
#pragma omp parallel for collapse(2) if (nq * n_heads > 1) schedule(dynamic, 1)
    for (int64_t i = 0; i < nq; ++i) {
        for (int64_t h = 0; h < n_heads; ++h) {
            const int64_t off = i * D + h * head_dim;
            attend_query(out + off, q + off, k, v, std::min(nk, visible0 + i + 1), ldkv, (h / group) * head_dim,
                         head_dim, scale, drop, (h * nq + i) * nk);
        }
    }
}

template <class T>
RMKV_CLONES void decode_attention(T *out, T *q, const T *k, const T *v, const CacheRowOf<T> *rows, int64_t n,
                                  int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, bool use_rope, T theta) {
    const int64_t group = n_heads / n_kv_heads, D = n_heads * head_dim, Dkv = n_kv_heads * head_dim;
    const T scale = T(1) / std::sqrt(static_cast<T>(head_dim));
    for (int64_t i = 0; i < n; ++i) {  // a row each: too little to share out
        const CacheRowOf<T> &r = rows[i];
        T *key = r.keys + r.at * Dkv;
        std::copy(k + i * Dkv, k + (i + 1) * Dkv, key);
        std::copy(v + i * Dkv, v + (i + 1) * Dkv, r.values + r.at * Dkv);
        if (use_rope) {
            rope(q + i * D, 1, D, n_heads, head_dim, r.pos, theta, false);
            rope(key, 1, Dkv, n_kv_heads, head_dim, r.pos, theta, false);
        }
    }
    // Rows enough for every thread: a row's heads together (its cache read in
    // order); else the (row, head) pairs shared out. The same results either way.
    if (n >= 2 * cpu_threads()) {
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t i = 0; i < n; ++i)
            attend_heads(out + i * D, q + i * D, rows[i].keys, rows[i].values, rows[i].at + 1, Dkv, n_heads, group,
                         head_dim, scale);
        return;
    }
#pragma omp parallel for collapse(2) if (n * n_heads > 1) schedule(dynamic, 1)
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t h = 0; h < n_heads; ++h) {
            const int64_t off = i * D + h * head_dim;
            attend_query(out + off, q + off, rows[i].keys, rows[i].values, rows[i].at + 1, Dkv, (h / group) * head_dim,
                         head_dim, scale, Dropout{}, 0);
        }
    }
}

template <class T>
RMKV_CLONES void attention_backward(T *dq, T *dk, T *dv, const T *dout, const T *q, const T *k, const T *v, int64_t nq,
                                    int64_t nk, int64_t ldkv, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                                    int64_t visible0, const Dropout &drop) {
    const int64_t group = n_heads / n_kv_heads, D = n_heads * head_dim;
    const T scale = T(1) / std::sqrt(static_cast<T>(head_dim));
    // dk and dv of a kv head collect every query of its group: one kv head per thread.
#pragma omp parallel for if (n_kv_heads > 1) schedule(dynamic, 1)
    for (int64_t kvh = 0; kvh < n_kv_heads; ++kvh) {
        const int64_t koff = kvh * head_dim;
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
            for (int64_t i = 0; i < nq; ++i) {
                const int64_t nvis = std::min(nk, visible0 + i + 1);
                const T *qi = q + i * D + h * head_dim, *doi = dout + i * D + h * head_dim;
                T *p = scratch<T>(nvis, 0), *dp = scratch<T>(nvis, 1);
                attention_probs(p, qi, k, nvis, ldkv, koff, head_dim, scale);
                // With dropout, out = sum_j p_j f_j v_j: dv_j gets p_j f_j dout and the
                // gradient of p_j is f_j (dout . v_j).
                T pdp = 0;
                for (int64_t j = 0; j < nvis; ++j) {
                    const T f = drop.on() ? static_cast<T>(drop.factor(static_cast<uint64_t>((h * nq + i) * nk + j))) : T(1);
                    dp[j] = f * dot(doi, v + j * ldkv + koff, head_dim);
                    pdp += p[j] * dp[j];
                    axpy(dv + j * ldkv + koff, p[j] * f, doi, head_dim);
                }
                T *dqi = dq + i * D + h * head_dim;
                std::fill(dqi, dqi + head_dim, T(0));
                for (int64_t j = 0; j < nvis; ++j) {
                    T ds = p[j] * (dp[j] - pdp) * scale;
                    axpy(dqi, ds, k + j * ldkv + koff, head_dim);
                    axpy(dk + j * ldkv + koff, ds, qi, head_dim);
                }
            }
        }
    }
}

template <class T>
void dropout(T *x, int64_t n, const Dropout &drop) {
#pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; ++i) x[i] *= static_cast<T>(drop.factor(static_cast<uint64_t>(i)));
}

template <class T>
RMKV_CLONES void swiglu_forward(T *h, const T *g, const T *u, int64_t n) {
#pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; ++i) h[i] = silu(g[i]) * u[i];
}

template <class T>
RMKV_CLONES void swiglu_backward(T *dg, T *du, const T *dh, const T *g, const T *u, int64_t n) {
#pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        T s = sigmoid(g[i]);
        T dhi = dh[i];
        du[i] = dhi * g[i] * s;
        dg[i] = dhi * u[i] * s * (T(1) + g[i] * (T(1) - s));
    }
}

// 1 + erf(x / sqrt 2), twice the normal distribution's CDF. In single precision
// without libm, so that GELU's loops vectorise: erfc(z), z = |x| / sqrt 2, as
// t e^(-z^2 + poly(t)), t = 1 / (1 + z / 2), the Chebyshev fit of Numerical
// Recipes (erfcc: fractional error below 1.2e-7 for every z), then erfc(z) for
// negative x and 2 - erfc(z) for positive: relative accuracy in the far negative
// tail too, where 1 + erff(x) is 0. test_op_gradients (float_cells) measures it
// against double.
template <class T> __attribute__((always_inline)) inline T one_plus_erf(T x) {
    return std::erfc(-x * T(0.70710678118654752));  // = 1 + erf, without its cancellation
}
template <> __attribute__((always_inline)) inline float one_plus_erf<float>(float x) {
    const float z = std::fabs(x) * 0.70710678f, t = 1.0f / (1.0f + 0.5f * z);
    float e = -z * z - 1.26551223f +
              t * (1.00002368f +
                   t * (0.37409196f +
                        t * (0.09678418f +
                             t * (-0.18628806f +
                                  t * (0.27886807f +
                                       t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
    exp_poly<float, uint32_t>(e);
    const float erfc = t * e;
    return x < 0.0f ? erfc : 2.0f - erfc;
}

template <class T>
RMKV_CLONES void gelu_forward(T *h, const T *u, int64_t n) {
#pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; ++i) h[i] = T(0.5) * u[i] * one_plus_erf(u[i]);
}

template <class T>
RMKV_CLONES void gelu_backward(T *du, const T *dh, const T *u, int64_t n) {
#pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        T cdf = T(0.5) * one_plus_erf(u[i]);
        T pdf = vexp(T(-0.5) * u[i] * u[i]) * T(0.39894228040143268);
        du[i] = dh[i] * (cdf + u[i] * pdf);
    }
}

template <class T>
RMKV_CLONES void pool_forward(T *out, const T *P, const T *x, int64_t M, int64_t T_, int64_t D) {
    const T scale = T(1) / std::sqrt(static_cast<T>(D));
#pragma omp parallel for if (M > 1) schedule(static)
    for (int64_t m = 0; m < M; ++m) {
        T *p = scratch<T>(T_, 0);
        attention_probs(p, P + m * D, x, T_, D, 0, D, scale);
        T *o = out + m * D;
        std::fill(o, o + D, T(0));
        for (int64_t t = 0; t < T_; ++t) axpy(o, p[t], x + t * D, D);
    }
}

template <class T>
RMKV_CLONES void pool_backward(T *dx, T *dP, const T *dout, const T *P, const T *x, int64_t M, int64_t T_, int64_t D) {
    const T scale = T(1) / std::sqrt(static_cast<T>(D));
    // dx collects every slot: slots run in order on one thread, the rows of x in parallel.
    T *p = scratch<T>(T_, 0), *dp = scratch<T>(T_, 1);
    for (int64_t m = 0; m < M; ++m) {
        const T *Pm = P + m * D, *dom = dout + m * D;
        attention_probs(p, Pm, x, T_, D, 0, D, scale);
        T pdp = 0;
        for (int64_t t = 0; t < T_; ++t) {
            dp[t] = dot(dom, x + t * D, D);
            pdp += p[t] * dp[t];
        }
        T *dPm = dP ? dP + m * D : nullptr;
#pragma omp parallel for if (T_ * D > 16384) schedule(static)
        for (int64_t t = 0; t < T_; ++t) {
            T ds = p[t] * (dp[t] - pdp) * scale;
            axpy(dx + t * D, p[t], dom, D);
            axpy(dx + t * D, ds, Pm, D);
        }
        if (dP)
            for (int64_t t = 0; t < T_; ++t) axpy(dPm, p[t] * (dp[t] - pdp) * scale, x + t * D, D);
    }
}

template <class T>
RMKV_CLONES void cell_forward(CellKind kind, T *m_out, T *c_out, const T *c_in, const T *gi, const T *gh, const T *h,
                              int64_t M, int64_t D) {
#pragma omp parallel for if (M * D > 16384) schedule(static)
    for (int64_t r = 0; r < M; ++r) {
        const T *hr = h + r * D;
        T *mr = m_out + r * D;
        if (kind == CellKind::gru) {
            const T *a = gi + r * 3 * D, *b = gh + r * 3 * D;
            for (int64_t i = 0; i < D; ++i) {
                T rg = sigmoid(a[i] + b[i]);
                T z = sigmoid(a[D + i] + b[D + i]);
                T nn = vtanh(a[2 * D + i] + rg * b[2 * D + i]);
                mr[i] = (T(1) - z) * nn + z * hr[i];
            }
        } else if (kind == CellKind::lstm) {
            const T *a = gi + r * 4 * D, *b = gh + r * 4 * D;
            const T *ci = c_in + r * D;
            T *co = c_out + r * D;
            for (int64_t i = 0; i < D; ++i) {
                T ig = sigmoid(a[i] + b[i]);
                T fg = sigmoid(a[D + i] + b[D + i]);
                T gg = vtanh(a[2 * D + i] + b[2 * D + i]);
                T og = sigmoid(a[3 * D + i] + b[3 * D + i]);
                T cn = fg * ci[i] + ig * gg;
                co[i] = cn;
                mr[i] = og * vtanh(cn);
            }
        } else {
            const T *ab = gi + r * 2 * D;
            for (int64_t i = 0; i < D; ++i) {
                T sa = sigmoid(ab[i]);
                mr[i] = hr[i] * sa + (T(1) - sa) * silu(ab[D + i]);
            }
        }
    }
}

template <class T>
RMKV_CLONES void cell_backward(CellKind kind, T *dgi, T *dgh, T *dh, T *dc_in, const T *dm, const T *dc_out,
                               const T *c_in, const T *gi, const T *gh, const T *h, int64_t M, int64_t D) {
#pragma omp parallel for if (M * D > 16384) schedule(static)
    for (int64_t r = 0; r < M; ++r) {
        const T *hr = h + r * D, *dmr = dm + r * D;
        T *dhr = dh + r * D;
        if (kind == CellKind::gru) {
            const T *a = gi + r * 3 * D, *b = gh + r * 3 * D;
            T *da = dgi + r * 3 * D, *dbb = dgh + r * 3 * D;
            for (int64_t i = 0; i < D; ++i) {
                T rg = sigmoid(a[i] + b[i]);
                T z = sigmoid(a[D + i] + b[D + i]);
                T nn = vtanh(a[2 * D + i] + rg * b[2 * D + i]);
                T d = dmr[i];
                T dn = d * (T(1) - z) * (T(1) - nn * nn);
                T dz = d * (hr[i] - nn) * z * (T(1) - z);
                T dr = dn * b[2 * D + i] * rg * (T(1) - rg);
                dhr[i] += d * z;
                da[i] = dr, dbb[i] = dr;
                da[D + i] = dz, dbb[D + i] = dz;
                da[2 * D + i] = dn, dbb[2 * D + i] = dn * rg;
            }
        } else if (kind == CellKind::lstm) {
            const T *a = gi + r * 4 * D, *b = gh + r * 4 * D, *ci = c_in + r * D;
            T *da = dgi + r * 4 * D, *dbb = dgh + r * 4 * D, *dci = dc_in + r * D;
            for (int64_t i = 0; i < D; ++i) {
                T ig = sigmoid(a[i] + b[i]);
                T fg = sigmoid(a[D + i] + b[D + i]);
                T gg = vtanh(a[2 * D + i] + b[2 * D + i]);
                T og = sigmoid(a[3 * D + i] + b[3 * D + i]);
                T cn = fg * ci[i] + ig * gg, tc = vtanh(cn);
                T dcn = dmr[i] * og * (T(1) - tc * tc) + (dc_out ? dc_out[r * D + i] : T(0));
                T d_i = dcn * gg * ig * (T(1) - ig);
                T d_f = dcn * ci[i] * fg * (T(1) - fg);
                T d_g = dcn * ig * (T(1) - gg * gg);
                T d_o = dmr[i] * tc * og * (T(1) - og);
                da[i] = dbb[i] = d_i;
                da[D + i] = dbb[D + i] = d_f;
                da[2 * D + i] = dbb[2 * D + i] = d_g;
                da[3 * D + i] = dbb[3 * D + i] = d_o;
                dci[i] = dcn * fg;
            }
        } else {
            const T *ab = gi + r * 2 * D;
            T *dab = dgi + r * 2 * D;
            for (int64_t i = 0; i < D; ++i) {
                T sa = sigmoid(ab[i]), sb = sigmoid(ab[D + i]), bb = ab[D + i];
                T d = dmr[i];
                dhr[i] += d * sa;
                dab[i] = d * (hr[i] - silu(bb)) * sa * (T(1) - sa);
                dab[D + i] = d * (T(1) - sa) * sb * (T(1) + bb * (T(1) - sb));
            }
        }
    }
}

template <class T>
void concat_cols(T *dst, const T *a, const T *b, int64_t M, int64_t D) {
    for (int64_t r = 0; r < M; ++r) {
        std::memcpy(dst + r * 2 * D, a + r * D, sizeof(T) * D);
        std::memcpy(dst + r * 2 * D + D, b + r * D, sizeof(T) * D);
    }
}

template <class T>
void split_cols_add(T *da, T *db, const T *src, int64_t M, int64_t D) {
    for (int64_t r = 0; r < M; ++r) {
        axpy(da + r * D, T(1), src + r * 2 * D, D);
        axpy(db + r * D, T(1), src + r * 2 * D + D, D);
    }
}

template <class T>
RMKV_CLONES double cross_entropy(T *dlogits, const T *logits, const int32_t *targets, int64_t rows, int64_t V, T scale) {
    double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
        const T *lr = logits + r * V;
        T *dr = dlogits + r * V;
        if (targets[r] < 0) {
            std::fill(dr, dr + V, T(0));
            continue;
        }
        const T mx = max_of(lr, V), target = lr[targets[r]];
        const double sum = exp_sum(dr, lr, mx, V);  // dr may be lr: the target's logit is read first
        total += std::log(sum) + mx - target;
        const T f = static_cast<T>(scale / sum);
        for (int64_t j = 0; j < V; ++j) dr[j] *= f;
        dr[targets[r]] -= scale;
    }
    return total;
}

RMKV_CLONES void masked_softmax_rows(float *scores, int64_t nq, int64_t nk, int64_t rows, int64_t visible0, float scale) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
        float *sc = scores + r * nk;
        const int64_t nvis = std::min(nk, visible0 + r % nq + 1);
        for (int64_t j = 0; j < nvis; ++j) sc[j] *= scale;
        softmax_in_place(sc, nvis);
        for (int64_t j = nvis; j < nk; ++j) sc[j] = 0.0f;
    }
}

void pack_heads(float *dst, const float *src, int64_t n, int64_t n_heads, int64_t head_dim) {
#pragma omp parallel for if (n * n_heads > 64) schedule(static)
    for (int64_t h = 0; h < n_heads; ++h)
        for (int64_t i = 0; i < n; ++i)
            std::memcpy(dst + (h * n + i) * head_dim, src + i * n_heads * head_dim + h * head_dim, sizeof(float) * head_dim);
}

RMKV_CLONES void softmax_backward_rows(float *dP, const float *P, int64_t rows, int64_t nk, float scale) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
        float *d = dP + r * nk;
        const float *p = P + r * nk;
        float s = dot(p, d, nk);
        for (int64_t j = 0; j < nk; ++j) d[j] = p[j] * (d[j] - s) * scale;
    }
}

RMKV_CLONES void to_bf16(uint16_t *dst, const float *src, int64_t n) {
#pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_bits(src[i]);
}

RMKV_CLONES double sum_squares(const float *x, int64_t n) {
    double total = 0;
#pragma omp parallel for simd reduction(+ : total) schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) total += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    return total;
}

RMKV_CLONES void adamw(float *p, float *m, float *v, const float *g, int64_t n, float grad_scale, float beta1, float beta2,
                       float eps, float decay, float step_size, float inv_sqrt_bc2, uint16_t *shadow) {
    auto update = [=](int64_t i) __attribute__((always_inline)) {
        const float gi = g[i] * grad_scale;
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        return p[i] = p[i] * decay - step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
    };
    if (shadow) {
#pragma omp parallel for if (n > 65536) schedule(static)
        for (int64_t i = 0; i < n; ++i) shadow[i] = bf16_bits(update(i));
    } else {
#pragma omp parallel for if (n > 65536) schedule(static)
        for (int64_t i = 0; i < n; ++i) update(i);
    }
}

RMKV_CLONES void gemv(float *y, const float *x, const float *W, const float *b, int64_t in, int64_t out, bool accumulate) {
#pragma omp parallel for if (out * in > 32768) schedule(static)
    for (int64_t o = 0; o < out; ++o) {
        float v = dot(W + o * in, x, in) + (b ? b[o] : 0.0f);
        y[o] = accumulate ? y[o] + v : v;
    }
}

template <class T>
void linear_ref(T *y, const T *x, const T *W, const T *b, int64_t n, int64_t in, int64_t out, bool accumulate) {
    for (int64_t r = 0; r < n; ++r)
        for (int64_t o = 0; o < out; ++o) {
            T v = dot(x + r * in, W + o * in, in) + (b ? b[o] : T(0));
            y[r * out + o] = accumulate ? y[r * out + o] + v : v;
        }
}

template <class T>
void linear_backward_ref(T *dx, bool dx_accumulate, T *dW, T *db, const T *dy, const T *x, const T *W, int64_t n, int64_t in,
                         int64_t out) {
    for (int64_t r = 0; r < n; ++r) {
        if (dx) {
            if (!dx_accumulate) std::fill(dx + r * in, dx + (r + 1) * in, T(0));
            for (int64_t o = 0; o < out; ++o) axpy(dx + r * in, dy[r * out + o], W + o * in, in);
        }
        for (int64_t o = 0; o < out; ++o) {
            if (dW) axpy(dW + o * in, dy[r * out + o], x + r * in, in);
            if (db) db[o] += dy[r * out + o];
        }
    }
}

#define RMKV_INSTANTIATE(T)                                                                                              \
    template void norm_forward<T>(NormKind, T *, const T *, const T *, const T *, int64_t, int64_t, T);                  \
    template void norm_backward<T>(NormKind, T *, T *, T *, const T *, const T *, const T *, int64_t, int64_t, T);      \
    template void embed_forward<T>(T *, const T *, const int32_t *, int64_t, int64_t);                                  \
    template void embed_backward<T>(T *, const T *, const int32_t *, int64_t, int64_t);                                 \
    template void add<T>(T *, const T *, const T *, int64_t);                                                            \
    template void sincos_add<T>(T *, int64_t, int64_t, int64_t);                                                         \
    template void rope<T>(T *, int64_t, int64_t, int64_t, int64_t, int64_t, T, bool);                                    \
    template void attention_forward<T>(T *, const T *, const T *, const T *, int64_t, int64_t, int64_t, int64_t,        \
                                       int64_t, int64_t, int64_t, const Dropout &);                                      \
    template void decode_attention<T>(T *, T *, const T *, const T *, const CacheRowOf<T> *, int64_t, int64_t, int64_t, \
                                      int64_t, bool, T);                                                                 \
    template void attention_backward<T>(T *, T *, T *, const T *, const T *, const T *, const T *, int64_t, int64_t,    \
                                        int64_t, int64_t, int64_t, int64_t, int64_t, const Dropout &);                   \
    template void dropout<T>(T *, int64_t, const Dropout &);                                                             \
    template void swiglu_forward<T>(T *, const T *, const T *, int64_t);                                                 \
    template void swiglu_backward<T>(T *, T *, const T *, const T *, const T *, int64_t);                               \
    template void gelu_forward<T>(T *, const T *, int64_t);                                                              \
    template void gelu_backward<T>(T *, const T *, const T *, int64_t);                                                  \
    template void pool_forward<T>(T *, const T *, const T *, int64_t, int64_t, int64_t);                                 \
    template void pool_backward<T>(T *, T *, const T *, const T *, const T *, int64_t, int64_t, int64_t);               \
    template void cell_forward<T>(CellKind, T *, T *, const T *, const T *, const T *, const T *, int64_t, int64_t);    \
    template void cell_backward<T>(CellKind, T *, T *, T *, T *, const T *, const T *, const T *, const T *, const T *, \
                                   const T *, int64_t, int64_t);                                                         \
    template void concat_cols<T>(T *, const T *, const T *, int64_t, int64_t);                                           \
    template void split_cols_add<T>(T *, T *, const T *, int64_t, int64_t);                                              \
    template double cross_entropy<T>(T *, const T *, const int32_t *, int64_t, int64_t, T);                              \
    template void linear_ref<T>(T *, const T *, const T *, const T *, int64_t, int64_t, int64_t, bool);                 \
    template void linear_backward_ref<T>(T *, bool, T *, T *, const T *, const T *, const T *, int64_t, int64_t, int64_t);

RMKV_INSTANTIATE(float)
RMKV_INSTANTIATE(double)

}  // namespace rmkv::cpu
