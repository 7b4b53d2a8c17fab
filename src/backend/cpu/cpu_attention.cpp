// Attention of many query rows (prefill, the segments of training) on CPUs with
// AVX-512, fused: for each head and block of 32 query rows, the transposed scores
// S^T[j, i] = K_j . Q_i over the keys the block sees, their softmax, and the
// products with V (backward: with dO, K and Q) run on a buffer that stays in the
// thread's cache, and the masked keys past the block's last query are never
// computed. The 32 queries of a block lie along two 16-lane vectors, so the
// softmax of a query is element-wise work down a column; every product is the one
// register-tiled kernel `product`. Attention in RMKV is inside a segment, so a
// block's whole score column (memory slots + segment) fits the buffer: no online
// softmax is needed, and the backward recomputes the probabilities exactly as the
// forward made them.
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_simd.h"

#include <algorithm>
#include <cmath>

#if defined(__x86_64__)
#include <immintrin.h>
#define RMKV_AVX512 __attribute__((target("arch=x86-64-v4")))
#endif

namespace rmkv::cpu {

bool fused_attention_fits(int64_t head_dim) {
#if defined(__x86_64__)
    static const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    return avx512 && head_dim > 0 && head_dim % 16 == 0;
#else
    return false;
#endif
}

#if defined(__x86_64__)
namespace {

constexpr int64_t kBlock = 32;  // query rows of a block: two vectors

// Their scratch slots (cpu_simd.h): a block's queries (and dout rows) packed
// along the lanes, its score column (and the scores' gradient), the backward's
// per-part dk and dv.
constexpr int kQueries = 6, kScores = 7, kDout = 8, kDscores = 9, kParts = 10;

// C[r, 0:16W] (+)= sum_{t < n} a[r*ars + t*ats] B[t*ldb + 0:16W] for r < R, the
// R x W accumulators in registers (R*W <= 24 of the 32).
template <int R, int W>
RMKV_AVX512 __attribute__((always_inline)) inline void tile(float *c, int64_t ldc, const float *a, int64_t ars,
                                                            int64_t ats, const float *b, int64_t ldb, int64_t n,
                                                            bool accumulate) {
    __m512 acc[R][W];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int w = 0; w < W; ++w) acc[r][w] = accumulate ? _mm512_loadu_ps(c + r * ldc + 16 * w) : _mm512_setzero_ps();
    for (int64_t t = 0; t < n; ++t) {
        __m512 bv[W];
#pragma GCC unroll 4
        for (int w = 0; w < W; ++w) bv[w] = _mm512_loadu_ps(b + t * ldb + 16 * w);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
            const __m512 av = _mm512_set1_ps(a[r * ars + t * ats]);
#pragma GCC unroll 4
            for (int w = 0; w < W; ++w) acc[r][w] = _mm512_fmadd_ps(av, bv[w], acc[r][w]);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int w = 0; w < W; ++w) _mm512_storeu_ps(c + r * ldc + 16 * w, acc[r][w]);
}

// The last m < R rows of `rows`, in one tile of m rows.
template <int R, int W>
RMKV_AVX512 __attribute__((always_inline)) inline void tail(int64_t m, float *c, int64_t ldc, const float *a,
                                                            int64_t ars, int64_t ats, const float *b, int64_t ldb,
                                                            int64_t n, bool accumulate) {
    if (m == R)
        tile<R, W>(c, ldc, a, ars, ats, b, ldb, n, accumulate);
    else if constexpr (R > 1)
        tail<R - 1, W>(m, c, ldc, a, ars, ats, b, ldb, n, accumulate);
}

template <int R, int W>
RMKV_AVX512 __attribute__((always_inline)) inline void rows(int64_t m, float *c, int64_t ldc, const float *a,
                                                            int64_t ars, int64_t ats, const float *b, int64_t ldb,
                                                            int64_t n, bool accumulate) {
    int64_t r = 0;
    for (; r + R <= m; r += R) tile<R, W>(c + r * ldc, ldc, a + r * ars, ars, ats, b, ldb, n, accumulate);
    if (r < m) tail<R - 1, W>(m - r, c + r * ldc, ldc, a + r * ars, ars, ats, b, ldb, n, accumulate);
}

// C[m, 0:16 nw] (+)= A[m, n] B[n, 0:16 nw] with A(r, t) = a[r*ars + t*ats]: every
// product of this file (a strided A covers its transposes).
RMKV_AVX512 void product(float *c, int64_t ldc, const float *a, int64_t ars, int64_t ats, const float *b, int64_t ldb,
                         int64_t m, int64_t nw, int64_t n, bool accumulate) {
    for (int64_t w = 0; w < nw; w += 4) {
        float *cw = c + 16 * w;
        const float *bw = b + 16 * w;
        switch (std::min<int64_t>(4, nw - w)) {
        case 4: rows<6, 4>(m, cw, ldc, a, ars, ats, bw, ldb, n, accumulate); break;
        case 3: rows<8, 3>(m, cw, ldc, a, ars, ats, bw, ldb, n, accumulate); break;
        case 2: rows<12, 2>(m, cw, ldc, a, ars, ats, bw, ldb, n, accumulate); break;
        default: rows<12, 1>(m, cw, ldc, a, ars, ats, bw, ldb, n, accumulate); break;
        }
    }
}

// dst[d, i] = src[i*ld + d] for i < nb, 0 for nb <= i < kBlock: a block of rows
// transposed, queries along the lanes.
void pack_columns(float *dst, const float *src, int64_t ld, int64_t nb, int64_t hd) {
    for (int64_t d = 0; d < hd; ++d) {
        float *row = dst + d * kBlock;
        for (int64_t i = 0; i < nb; ++i) row[i] = src[i * ld + d];
        for (int64_t i = nb; i < kBlock; ++i) row[i] = 0.0f;
    }
}

// Row j of a block whose first query sees keys [0, first + 1) hides the lanes
// i < j - first: -inf (or 0) there.
RMKV_AVX512 __attribute__((always_inline)) inline void hide(v16f &x0, v16f &x1, int64_t j, int64_t first, float value) {
    if (j <= first) return;
    const v16f lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    const v16f lim = v16f{} + static_cast<float>(j - first), fill = v16f{} + value;
    x0 = lane < lim ? fill : x0;
    x1 = lane + 16.0f < lim ? fill : x1;
}

// Scores S^T [nv, kBlock] (unscaled) become probabilities, each column (query)
// softmaxed over its visible rows (keys), the hidden ones 0.
RMKV_AVX512 void softmax_columns(float *st, int64_t nv, int64_t first, float scale) {
    v16f m0 = v16f{} - INFINITY, m1 = m0;
    for (int64_t j = 0; j < nv; ++j) {
        v16f x0, x1;
        std::memcpy(&x0, st + j * kBlock, 64), std::memcpy(&x1, st + j * kBlock + 16, 64);
        x0 *= scale, x1 *= scale;
        hide(x0, x1, j, first, -INFINITY);
        std::memcpy(st + j * kBlock, &x0, 64), std::memcpy(st + j * kBlock + 16, &x1, 64);
        m0 = x0 > m0 ? x0 : m0;
        m1 = x1 > m1 ? x1 : m1;
    }
    v16f l0 = {}, l1 = {};
    for (int64_t j = 0; j < nv; ++j) {
        v16f x0, x1;
        std::memcpy(&x0, st + j * kBlock, 64), std::memcpy(&x1, st + j * kBlock + 16, 64);
        x0 -= m0, x1 -= m1;
        exp_poly<v16f, v16u>(x0);
        exp_poly<v16f, v16u>(x1);
        hide(x0, x1, j, first, 0.0f);
        std::memcpy(st + j * kBlock, &x0, 64), std::memcpy(st + j * kBlock + 16, &x1, 64);
        l0 += x0, l1 += x1;
    }
    const v16f i0 = 1.0f / l0, i1 = 1.0f / l1;
    for (int64_t j = 0; j < nv; ++j) {
        v16f x0, x1;
        std::memcpy(&x0, st + j * kBlock, 64), std::memcpy(&x1, st + j * kBlock + 16, 64);
        x0 *= i0, x1 *= i1;
        std::memcpy(st + j * kBlock, &x0, 64), std::memcpy(st + j * kBlock + 16, &x1, 64);
    }
}

// x[j, i] *= the dropout factor of query row0 + i and key j (element
// (row0 + i) * nk + j of the probabilities [heads x nq, nk]), for i < nb.
void drop_columns(float *x, int64_t nv, int64_t nb, int64_t row0, int64_t nk, const Dropout &drop) {
    for (int64_t j = 0; j < nv; ++j)
        for (int64_t i = 0; i < nb; ++i)
            x[j * kBlock + i] *= drop.factor(static_cast<uint64_t>((row0 + i) * nk + j));
}

// Block b: queries [i0, i0 + nb) against keys [0, nv); its first query sees keys
// [0, first + 1).
struct Block {
    int64_t i0, nb, nv, first;
};
Block block_of(int64_t b, int64_t nq, int64_t nk, int64_t visible0) {
    const int64_t i0 = b * kBlock, nb = std::min(kBlock, nq - i0);
    return {i0, nb, std::min(nk, visible0 + i0 + nb), visible0 + i0};
}

}  // namespace

RMKV_AVX512 void fused_attention_forward(float *out, const float *q, const float *k, const float *v, int64_t nq,
                                         int64_t nk, int64_t ldkv, int64_t n_heads, int64_t n_kv_heads,
                                         int64_t head_dim, int64_t visible0, const Dropout &drop) {
    const int64_t group = n_heads / n_kv_heads, D = n_heads * head_dim, blocks = (nq + kBlock - 1) / kBlock;
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    // The last blocks see the most keys: they go first.
#pragma omp parallel for schedule(dynamic, 1) if (n_heads * blocks > 1)
    for (int64_t item = 0; item < n_heads * blocks; ++item) {
        const int64_t h = item % n_heads, koff = (h / group) * head_dim;
        const Block bl = block_of(blocks - 1 - item / n_heads, nq, nk, visible0);
        float *qt = scratch<float>(head_dim * kBlock, kQueries), *st = scratch<float>(bl.nv * kBlock, kScores);
        pack_columns(qt, q + bl.i0 * D + h * head_dim, D, bl.nb, head_dim);
        product(st, kBlock, k + koff, ldkv, 1, qt, kBlock, bl.nv, 2, head_dim, false);
        softmax_columns(st, bl.nv, bl.first, scale);
        if (drop.on()) drop_columns(st, bl.nv, bl.nb, h * nq + bl.i0, nk, drop);
        product(out + bl.i0 * D + h * head_dim, D, st, 1, kBlock, v + koff, ldkv, bl.nb, head_dim / 16, bl.nv, false);
    }
}

RMKV_AVX512 void fused_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                          const float *k, const float *v, int64_t nq, int64_t nk, int64_t ldkv,
                                          int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t visible0,
                                          const Dropout &drop) {
    const int64_t group = n_heads / n_kv_heads, D = n_heads * head_dim, blocks = (nq + kBlock - 1) / kBlock;
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    // dk and dv of a kv head collect every query block of its group. With fewer
    // than 8 kv heads the blocks are dealt to `splits` parts per kv head, each
    // summing into a private buffer that is added after: work for 8 threads,
    // and sums in an order that does not depend on the thread count.
    const int64_t splits = n_kv_heads >= 8 ? 1 : std::min<int64_t>(blocks, (8 + n_kv_heads - 1) / n_kv_heads);
    const int64_t part_size = 2 * nk * head_dim;
    float *parts = splits > 1 ? scratch<float>(n_kv_heads * splits * part_size, kParts) : nullptr;
#pragma omp parallel for schedule(dynamic, 1) if (n_kv_heads * splits > 1)
    for (int64_t item = 0; item < n_kv_heads * splits; ++item) {
        const int64_t kvh = item / splits, s = item % splits, koff = kvh * head_dim;
        float *dkp = dk + koff, *dvp = dv + koff;
        int64_t ldp = ldkv;
        if (splits > 1) {
            dkp = parts + item * part_size, dvp = dkp + nk * head_dim, ldp = head_dim;
            std::fill(dkp, dkp + part_size, 0.0f);
        }
        float *qt = scratch<float>(head_dim * kBlock, kQueries), *dot = scratch<float>(head_dim * kBlock, kDout);
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
            for (int64_t b = s; b < blocks; b += splits) {
                const Block bl = block_of(b, nq, nk, visible0);
                const int64_t at = bl.i0 * D + h * head_dim;
                float *st = scratch<float>(bl.nv * kBlock, kScores), *dpt = scratch<float>(bl.nv * kBlock, kDscores);
                pack_columns(qt, q + at, D, bl.nb, head_dim);
                pack_columns(dot, dout + at, D, bl.nb, head_dim);
                product(st, kBlock, k + koff, ldkv, 1, qt, kBlock, bl.nv, 2, head_dim, false);
                softmax_columns(st, bl.nv, bl.first, scale);
                product(dpt, kBlock, v + koff, ldkv, 1, dot, kBlock, bl.nv, 2, head_dim, false);
                // With dropout, out = sum_j p_j f_j v_j: the gradient of p_j is
                // f_j (dout . v_j), and dv_j gets p_j f_j dout.
                if (drop.on()) drop_columns(dpt, bl.nv, bl.nb, h * nq + bl.i0, nk, drop);
                v16f r0 = {}, r1 = {};  // per query: sum_j p_j dp_j
                for (int64_t j = 0; j < bl.nv; ++j) {
                    v16f p0, p1, d0, d1;
                    std::memcpy(&p0, st + j * kBlock, 64), std::memcpy(&p1, st + j * kBlock + 16, 64);
                    std::memcpy(&d0, dpt + j * kBlock, 64), std::memcpy(&d1, dpt + j * kBlock + 16, 64);
                    r0 += p0 * d0, r1 += p1 * d1;
                }
                for (int64_t j = 0; j < bl.nv; ++j) {  // dS = P (dP - r) / sqrt(hd), in place of dP
                    v16f p0, p1, d0, d1;
                    std::memcpy(&p0, st + j * kBlock, 64), std::memcpy(&p1, st + j * kBlock + 16, 64);
                    std::memcpy(&d0, dpt + j * kBlock, 64), std::memcpy(&d1, dpt + j * kBlock + 16, 64);
                    d0 = p0 * (d0 - r0) * scale, d1 = p1 * (d1 - r1) * scale;
                    std::memcpy(dpt + j * kBlock, &d0, 64), std::memcpy(dpt + j * kBlock + 16, &d1, 64);
                }
                if (drop.on()) drop_columns(st, bl.nv, bl.nb, h * nq + bl.i0, nk, drop);
                product(dq + at, D, dpt, 1, kBlock, k + koff, ldkv, bl.nb, head_dim / 16, bl.nv, false);
                product(dkp, ldp, dpt, kBlock, 1, q + at, D, bl.nv, head_dim / 16, bl.nb, true);
                product(dvp, ldp, st, kBlock, 1, dout + at, D, bl.nv, head_dim / 16, bl.nb, true);
            }
        }
    }
    if (splits == 1) return;
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < n_kv_heads * nk; ++row) {
        const int64_t kvh = row / nk, j = row % nk;
        float *dkr = dk + j * ldkv + kvh * head_dim, *dvr = dv + j * ldkv + kvh * head_dim;
        for (int64_t s = 0; s < splits; ++s) {
            const float *pk = parts + (kvh * splits + s) * part_size + j * head_dim, *pv = pk + nk * head_dim;
            for (int64_t d = 0; d < head_dim; ++d) dkr[d] += pk[d], dvr[d] += pv[d];
        }
    }
}
#else
// Elsewhere fused_attention_fits is false; should these be called anyway, they
// compute the same thing one query row at a time.
void fused_attention_forward(float *out, const float *q, const float *k, const float *v, int64_t nq, int64_t nk,
                             int64_t ldkv, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t visible0,
                             const Dropout &drop) {
    attention_forward<float>(out, q, k, v, nq, nk, ldkv, n_heads, n_kv_heads, head_dim, visible0, drop);
}
void fused_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                              const float *v, int64_t nq, int64_t nk, int64_t ldkv, int64_t n_heads, int64_t n_kv_heads,
                              int64_t head_dim, int64_t visible0, const Dropout &drop) {
    attention_backward<float>(dq, dk, dv, dout, q, k, v, nq, nk, ldkv, n_heads, n_kv_heads, head_dim, visible0, drop);
}
#endif

}  // namespace rmkv::cpu
