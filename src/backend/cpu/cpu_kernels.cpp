#include "backend/cpu/cpu_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#define RMKV_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RMKV_CLONES
#endif

namespace rmkv::cpu {

namespace {

// dot and axpy are inlined into each target clone of their callers, so they
// vectorise for the machine without a dispatch per call.
__attribute__((always_inline)) inline float dot(const float *a, const float *b, int64_t n) {
    // Eight partial sums: vectorises, and keeps the order fixed for every caller.
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
    float s = 0;
    for (; i < n; ++i) s += a[i] * b[i];
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

__attribute__((always_inline)) inline void axpy(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
inline float silu(float x) { return x * sigmoid(x); }

// Per-thread scratch for attention scores; grows once to the largest row seen.
float *scores_buffer(int64_t n) {
    thread_local std::vector<float> buf;
    if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
    return buf.data();
}

}  // namespace

void norm_forward(NormKind kind, float *y, const float *x, const float *w, const float *b, int64_t n, int64_t d, float eps) {
#pragma omp parallel for if (n > 4) schedule(static)
    for (int64_t r = 0; r < n; ++r) {
        const float *xr = x + r * d;
        float *yr = y + r * d;
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
        float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
        float mu = static_cast<float>(mean);
        if (b)
            for (int64_t i = 0; i < d; ++i) yr[i] = (xr[i] - mu) * inv * w[i] + b[i];
        else
            for (int64_t i = 0; i < d; ++i) yr[i] = (xr[i] - mu) * inv * w[i];
    }
}

void embed_forward(float *X, const float *tok_emb, const int32_t *tokens, int64_t n, int64_t d) {
    for (int64_t r = 0; r < n; ++r) std::memcpy(X + r * d, tok_emb + static_cast<int64_t>(tokens[r]) * d, sizeof(float) * d);
}

void add(float *out, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void sincos_add(float *X, int64_t n, int64_t d, int64_t p0) {
    for (int64_t r = 0; r < n; ++r) {
        double p = static_cast<double>(p0 + r);
        for (int64_t i = 0; 2 * i < d; ++i) {
            double angle = p / std::pow(10000.0, static_cast<double>(2 * i) / static_cast<double>(d));
            X[r * d + 2 * i] += static_cast<float>(std::sin(angle));
            if (2 * i + 1 < d) X[r * d + 2 * i + 1] += static_cast<float>(std::cos(angle));
        }
    }
}

void rope(float *x, int64_t n, int64_t ld, int64_t n_heads, int64_t head_dim, int64_t t0, float theta, bool inverse) {
    const int64_t half = head_dim / 2;
    for (int64_t r = 0; r < n; ++r) {
        double t = static_cast<double>(t0 + r);
        for (int64_t i = 0; i < half; ++i) {
            double angle = t * std::pow(static_cast<double>(theta), -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
            float c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
            if (inverse) s = -s;
            for (int64_t h = 0; h < n_heads; ++h) {
                float *p = x + r * ld + h * head_dim;
                float a = p[i], b = p[i + half];
                p[i] = a * c - b * s;
                p[i + half] = b * c + a * s;
            }
        }
    }
}

RMKV_CLONES void attention_forward(float *out, const float *q, const float *k, const float *v, int64_t nq, int64_t nk, int64_t ldkv,
                       int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t visible0) {
    const int64_t group = n_heads / n_kv_heads, D = n_heads * head_dim;
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
#pragma omp parallel for collapse(2) if (nq * n_heads > 1) schedule(dynamic, 1)
    for (int64_t i = 0; i < nq; ++i) {
        for (int64_t h = 0; h < n_heads; ++h) {
            const int64_t nvis = std::min(nk, visible0 + i + 1);
            const int64_t kvh = h / group;
            const float *qi = q + i * D + h * head_dim;
            float *sc = scores_buffer(nvis);
            float mx = -INFINITY;
            for (int64_t j = 0; j < nvis; ++j) {
                sc[j] = dot(qi, k + j * ldkv + kvh * head_dim, head_dim) * scale;
                mx = std::max(mx, sc[j]);
            }
            float sum = 0;
            for (int64_t j = 0; j < nvis; ++j) {
                sc[j] = std::exp(sc[j] - mx);
                sum += sc[j];
            }
            float inv = 1.0f / sum;
            float *o = out + i * D + h * head_dim;
            std::fill(o, o + head_dim, 0.0f);
            for (int64_t j = 0; j < nvis; ++j) axpy(o, sc[j] * inv, v + j * ldkv + kvh * head_dim, head_dim);
        }
    }
}

RMKV_CLONES void masked_softmax_rows(float *scores, int64_t nq, int64_t nk, int64_t rows, int64_t visible0, float scale) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
        float *sc = scores + r * nk;
        const int64_t nvis = std::min(nk, visible0 + r % nq + 1);
        float mx = -INFINITY;
        for (int64_t j = 0; j < nvis; ++j) {
            sc[j] *= scale;
            mx = std::max(mx, sc[j]);
        }
        float sum = 0;
        for (int64_t j = 0; j < nvis; ++j) {
            sc[j] = std::exp(sc[j] - mx);
            sum += sc[j];
        }
        float inv = 1.0f / sum;
        for (int64_t j = 0; j < nvis; ++j) sc[j] *= inv;
        for (int64_t j = nvis; j < nk; ++j) sc[j] = 0.0f;
    }
}

void swiglu_forward(float *h, const float *g, const float *u, int64_t n) {
#pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; ++i) h[i] = silu(g[i]) * u[i];
}

void gelu_forward(float *h, const float *u, int64_t n) {
#pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; ++i) h[i] = 0.5f * u[i] * (1.0f + std::erf(u[i] * 0.70710678118654752f));
}

RMKV_CLONES void pool_forward(float *out, const float *P, const float *x, int64_t M, int64_t T, int64_t D) {
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
#pragma omp parallel for if (M > 1) schedule(static)
    for (int64_t m = 0; m < M; ++m) {
        float *sc = scores_buffer(T);
        float mx = -INFINITY;
        for (int64_t t = 0; t < T; ++t) {
            sc[t] = dot(P + m * D, x + t * D, D) * scale;
            mx = std::max(mx, sc[t]);
        }
        float sum = 0;
        for (int64_t t = 0; t < T; ++t) {
            sc[t] = std::exp(sc[t] - mx);
            sum += sc[t];
        }
        float inv = 1.0f / sum;
        float *o = out + m * D;
        std::fill(o, o + D, 0.0f);
        for (int64_t t = 0; t < T; ++t) axpy(o, sc[t] * inv, x + t * D, D);
    }
}

void cell_forward(CellKind kind, float *m_out, float *c_out, const float *c_in, const float *gi, const float *gh,
                  const float *h, int64_t M, int64_t D) {
    for (int64_t r = 0; r < M; ++r) {
        const float *hr = h + r * D;
        float *mr = m_out + r * D;
        if (kind == CellKind::gru) {
            const float *a = gi + r * 3 * D, *b = gh + r * 3 * D;
            for (int64_t i = 0; i < D; ++i) {
                float rg = sigmoid(a[i] + b[i]);
                float z = sigmoid(a[D + i] + b[D + i]);
                float nn = std::tanh(a[2 * D + i] + rg * b[2 * D + i]);
                mr[i] = (1.0f - z) * nn + z * hr[i];
            }
        } else if (kind == CellKind::lstm) {
            const float *a = gi + r * 4 * D, *b = gh + r * 4 * D;
            const float *ci = c_in + r * D;
            float *co = c_out + r * D;
            for (int64_t i = 0; i < D; ++i) {
                float ig = sigmoid(a[i] + b[i]);
                float fg = sigmoid(a[D + i] + b[D + i]);
                float gg = std::tanh(a[2 * D + i] + b[2 * D + i]);
                float og = sigmoid(a[3 * D + i] + b[3 * D + i]);
                float cn = fg * ci[i] + ig * gg;
                co[i] = cn;
                mr[i] = og * std::tanh(cn);
            }
        } else {
            const float *ab = gi + r * 2 * D;
            for (int64_t i = 0; i < D; ++i) {
                float sa = sigmoid(ab[i]);
                mr[i] = hr[i] * sa + (1.0f - sa) * silu(ab[D + i]);
            }
        }
    }
}

void concat_cols(float *dst, const float *a, const float *b, int64_t M, int64_t D) {
    for (int64_t r = 0; r < M; ++r) {
        std::memcpy(dst + r * 2 * D, a + r * D, sizeof(float) * D);
        std::memcpy(dst + r * 2 * D + D, b + r * D, sizeof(float) * D);
    }
}

RMKV_CLONES void gemv(float *y, const float *x, const float *W, const float *b, int64_t in, int64_t out, bool accumulate) {
#pragma omp parallel for if (out * in > 32768) schedule(static)
    for (int64_t o = 0; o < out; ++o) {
        float v = dot(W + o * in, x, in) + (b ? b[o] : 0.0f);
        y[o] = accumulate ? y[o] + v : v;
    }
}

}  // namespace rmkv::cpu
