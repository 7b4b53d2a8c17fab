#include "backend/cpu/cpu_half.h"
#include "backend/cpu/cpu_simd.h"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace rmkv::cpu {

namespace {

// d[r * C + c] = x row r . W row c for R rows of x and C rows of W (row strides
// in): each weight vector feeds R rows, each x vector C outputs. W in f32, or in
// bf16 with x split as split_pairs does.
template <int R, int C>
__attribute__((always_inline)) inline void dots_w(float *d, const float *x, const float *w, int64_t in) {
    v8f acc[R][C] = {};
    int64_t i = 0;
    for (; i + 8 <= in; i += 8) {
        v8f wv[C];
        for (int c = 0; c < C; ++c) load8(wv[c], w + c * in + i);
        for (int r = 0; r < R; ++r) {
            v8f xv;
            load8(xv, x + r * in + i);
            for (int c = 0; c < C; ++c) acc[r][c] += xv * wv[c];
        }
    }
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) {
            float s = lane_sum(acc[r][c]);
            for (int64_t j = i; j < in; ++j) s += w[c * in + j] * x[r * in + j];
            d[r * C + c] = s;
        }
}
template <int R, int C>
__attribute__((always_inline)) inline void dots_w(float *d, const float *xs, const uint16_t *w, int64_t in) {
    v8f acc[R][C] = {};
    int64_t i = 0;
    for (; i + 16 <= in; i += 16) {
        v8f we[C], wo[C];
        for (int c = 0; c < C; ++c) widen_pairs(we[c], wo[c], w + c * in + i);
        for (int r = 0; r < R; ++r) {
            v8f xe, xo;
            std::memcpy(&xe, xs + r * in + i, 32), std::memcpy(&xo, xs + r * in + i + 8, 32);
            for (int c = 0; c < C; ++c) acc[r][c] += xe * we[c] + xo * wo[c];
        }
    }
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) {
            float s = lane_sum(acc[r][c]);
            for (int64_t j = i; j < in; ++j) s += widen_bf16(w[c * in + j]) * xs[r * in + j];
            d[r * C + c] = s;
        }
}

// Rows of x [n, in] for dots_w with bf16 weights: in each block of 16 elements the
// 8 even ones, then the 8 odd ones (as widen_pairs reads weights); the tail in order.
void split_pairs(float *xs, const float *x, int64_t n, int64_t in) {
    for (int64_t r = 0; r < n; ++r) {
        const float *xr = x + r * in;
        float *out = xs + r * in;
        int64_t i = 0;
        for (; i + 16 <= in; i += 16)
            for (int k = 0; k < 8; ++k) out[i + k] = xr[i + 2 * k], out[i + 8 + k] = xr[i + 2 * k + 1];
        for (; i < in; ++i) out[i] = xr[i];
    }
}

// One tile: up to 4 rows of x and up to 4 rows of W, stored with bias and accumulation.
template <int R, int C, class Wt>
__attribute__((always_inline)) inline void tile_w(float *y, int64_t ldy, const float *x, const Wt *w, const float *b,
                                                  int64_t in, bool accumulate) {
    float d[R * C];
    dots_w<R, C>(d, x, w, in);
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) {
            const float v = d[r * C + c] + (b ? b[c] : 0.0f);
            y[r * ldy + c] = accumulate ? y[r * ldy + c] + v : v;
        }
}

template <int R, class Wt>
__attribute__((always_inline)) inline void tile_w_cols(int64_t nc, float *y, int64_t ldy, const float *x, const Wt *w,
                                                       const float *b, int64_t in, bool accumulate) {
    switch (nc) {
    case 1: tile_w<R, 1>(y, ldy, x, w, b, in, accumulate); break;
    case 2: tile_w<R, 2>(y, ldy, x, w, b, in, accumulate); break;
    case 3: tile_w<R, 3>(y, ldy, x, w, b, in, accumulate); break;
    default: tile_w<R, 4>(y, ldy, x, w, b, in, accumulate); break;
    }
}

// Rows [r, r_end) of y against nc rows of W.
template <class Wt>
__attribute__((always_inline)) inline void rows_w(int64_t r, int64_t r_end, int64_t nc, float *y, int64_t ldy,
                                                  const float *x, const Wt *w, const float *b, int64_t in,
                                                  bool accumulate) {
    for (; r + 4 <= r_end; r += 4) tile_w_cols<4>(nc, y + r * ldy, ldy, x + r * in, w, b, in, accumulate);
    switch (r_end - r) {
    case 3: tile_w_cols<3>(nc, y + r * ldy, ldy, x + r * in, w, b, in, accumulate); break;
    case 2: tile_w_cols<2>(nc, y + r * ldy, ldy, x + r * in, w, b, in, accumulate); break;
    case 1: tile_w_cols<1>(nc, y + r * ldy, ldy, x + r * in, w, b, in, accumulate); break;
    default: break;
    }
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx,f16c"))) void from_f16_f16c(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(src + i))));
    for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}
// F16C (CPUID leaf 1, ECX bit 29: not a feature name every compiler's
// __builtin_cpu_supports knows), with AVX2 and FMA for the kernels below.
bool cpu_has_f16c() {
    static const bool yes = [] {
        unsigned a = 0, b = 0, c = 0, d = 0;
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __get_cpuid(1, &a, &b, &c, &d) &&
               (c & (1u << 29)) != 0;
    }();
    return yes;
}

#define RMKV_F16_TARGET "avx2,fma,f16c"
#define RMKV_F16_NS f16_avx2
#include "backend/cpu/cpu_f16_tiles.inc"
#undef RMKV_F16_TARGET
#undef RMKV_F16_NS
#define RMKV_F16_TARGET "avx512f,avx512vl,avx2,fma,f16c"
#define RMKV_F16_NS f16_avx512
#include "backend/cpu/cpu_f16_tiles.inc"
#undef RMKV_F16_TARGET
#undef RMKV_F16_NS

// The larger f16 tiles where the CPU has AVX-512VL (not in a build of the kernels
// for one instruction set without it, RMKV_NO_CLONES: the tests and benches that
// build them for AVX2 run the AVX2 tiles).
bool cpu_has_avx512vl() {
#if defined(RMKV_NO_CLONES) && !defined(__AVX512VL__)
    return false;
#else
    static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
    return yes;
#endif
}

// Rows of x each f16 tile takes against 4 rows of W.
int64_t f16_tile_rows() { return cpu_has_avx512vl() ? 8 : 2; }

// d[r * nc + c] = x row r . W row c for nr rows of x and nc rows of W (nr up to
// f16_tile_rows(), or up to 4 with nc 1).
void f16_tile(int64_t nr, int64_t nc, float *d, const float *x, const uint16_t *w, int64_t in) {
    if (nc == 1 && nr <= 4) {  // decode rows: memory-bound, the AVX2 tiles on every CPU
        switch (nr) {
        case 1: f16_avx2::dots<1, 1>(d, x, w, in); break;
        case 2: f16_avx2::dots<2, 1>(d, x, w, in); break;
        case 3: f16_avx2::dots<3, 1>(d, x, w, in); break;
        default: f16_avx2::dots<4, 1>(d, x, w, in); break;
        }
        return;
    }
    if (!cpu_has_avx512vl()) {
        if (nr == 1) f16_avx2::dots_cols<1>(nc, d, x, w, in);
        else f16_avx2::dots_cols<2>(nc, d, x, w, in);
        return;
    }
    switch (nr) {
    case 1: f16_avx512::dots_cols<1>(nc, d, x, w, in); break;
    case 2: f16_avx512::dots_cols<2>(nc, d, x, w, in); break;
    case 3: f16_avx512::dots_cols<3>(nc, d, x, w, in); break;
    case 4: f16_avx512::dots_cols<4>(nc, d, x, w, in); break;
    case 5: f16_avx512::dots_cols<5>(nc, d, x, w, in); break;
    case 6: f16_avx512::dots_cols<6>(nc, d, x, w, in); break;
    case 7: f16_avx512::dots_cols<7>(nc, d, x, w, in); break;
    default: f16_avx512::dots_cols<8>(nc, d, x, w, in); break;
    }
}

// AVX512-BF16 dot products (gemv_bf16): R rows of bf16 x against C rows of W,
// each 32 elements 16 pairs whose two products are summed into one f32 lane. With
// prefetch, the 4 rows of W after these are fetched line by line as these are read.
#define RMKV_DP_TARGET "avx512f,avx512bw,avx512vl,avx512bf16"
// GCC 12's AVX-512 shuffle intrinsics start from a deliberately undefined vector,
// which -Wmaybe-uninitialized reports wherever they are inlined.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
template <int R, int C>
__attribute__((target(RMKV_DP_TARGET), always_inline)) inline void dp_tile(float *y, int64_t ldy, const uint16_t *x,
                                                                          const uint16_t *w, const float *b, int64_t in,
                                                                          bool accumulate, bool prefetch) {
    __m512 acc[R][C];
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= in; i += 32) {
        __m512bh wv[C];
        for (int c = 0; c < C; ++c) wv[c] = (__m512bh)_mm512_loadu_si512(w + c * in + i);
        if (C == 4 && prefetch)
            for (int c = 0; c < 4; ++c) _mm_prefetch(reinterpret_cast<const char *>(w + (4 + c) * in + i), _MM_HINT_T0);
        for (int r = 0; r < R; ++r) {
            const __m512bh xv = (__m512bh)_mm512_loadu_si512(x + r * in + i);
            for (int c = 0; c < C; ++c) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], xv, wv[c]);
        }
    }
    if (i < in) {  // the tail, zeros past it
        const __mmask32 m = static_cast<__mmask32>((uint64_t(1) << (in - i)) - 1);
        __m512bh wv[C];
        for (int c = 0; c < C; ++c) wv[c] = (__m512bh)_mm512_maskz_loadu_epi16(m, w + c * in + i);
        for (int r = 0; r < R; ++r) {
            const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(m, x + r * in + i);
            for (int c = 0; c < C; ++c) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], xv, wv[c]);
        }
    }
    // The lane sums, four accumulators at a time: lanes paired, then the 128-bit
    // quarters added.
    constexpr int N = R * C, N4 = (N + 3) / 4 * 4;
    __m512 a[N4];
    for (int k = 0; k < N4; ++k) a[k] = k < N ? acc[k / C][k % C] : _mm512_setzero_ps();
    float d[N4];
    for (int k = 0; k < N4; k += 4) {
        const __m512 s01 = _mm512_add_ps(_mm512_unpacklo_ps(a[k], a[k + 1]), _mm512_unpackhi_ps(a[k], a[k + 1]));
        const __m512 s23 = _mm512_add_ps(_mm512_unpacklo_ps(a[k + 2], a[k + 3]), _mm512_unpackhi_ps(a[k + 2], a[k + 3]));
        const __m512d lo = _mm512_unpacklo_pd(_mm512_castps_pd(s01), _mm512_castps_pd(s23));
        const __m512d hi = _mm512_unpackhi_pd(_mm512_castps_pd(s01), _mm512_castps_pd(s23));
        const __m512 q = _mm512_add_ps(_mm512_castpd_ps(lo), _mm512_castpd_ps(hi));
        const __m256 h =
            _mm256_add_ps(_mm512_castps512_ps256(q), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(q), 1)));
        _mm_storeu_ps(d + k, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
    }
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) {
            const float v = d[r * C + c] + (b ? b[c] : 0.0f);
            y[r * ldy + c] = accumulate ? y[r * ldy + c] + v : v;
        }
}

// Up to 8 rows: every row of x against one row of W at a time (the weights read
// as one stream, which the memory serves fastest; the rows' x stays in L1).
template <int R>
__attribute__((target(RMKV_DP_TARGET))) void dp_one_w(float *y, int64_t ldy, const uint16_t *x, const uint16_t *w,
                                                      const float *b, int64_t in, int64_t o_end, bool accumulate) {
    for (int64_t o = 0; o < o_end; ++o)
        dp_tile<R, 1>(y + o, ldy, x, w + o * in, b ? b + o : nullptr, in, accumulate, false);
}
// 9 to 12 rows whose x takes at most kTwoGroupsBytes (in L1 with the rows of W):
// the same, in two groups (8 rows, then the other R2), each row of W read from L1
// for the second.
template <int R2>
__attribute__((target(RMKV_DP_TARGET))) void dp_one_w2(float *y, int64_t ldy, const uint16_t *x, const uint16_t *w,
                                                       const float *b, int64_t in, int64_t o_end, bool accumulate) {
    for (int64_t o = 0; o < o_end; ++o) {
        const uint16_t *wo = w + o * in;
        const float *bo = b ? b + o : nullptr;
        dp_tile<8, 1>(y + o, ldy, x, wo, bo, in, accumulate, false);
        dp_tile<R2, 1>(y + 8 * ldy + o, ldy, x + 8 * in, wo, bo, in, accumulate, false);
    }
}
// Rows of W [0, o_end) against n rows of x: one group up to 8 rows, two to 12.
__attribute__((target(RMKV_DP_TARGET))) void dp_one_stream(int64_t n, float *y, int64_t ldy, const uint16_t *x,
                                                           const uint16_t *w, const float *b, int64_t in,
                                                           int64_t o_end, bool accumulate) {
    switch (n) {
    case 1: dp_one_w<1>(y, ldy, x, w, b, in, o_end, accumulate); break;
    case 2: dp_one_w<2>(y, ldy, x, w, b, in, o_end, accumulate); break;
    case 3: dp_one_w<3>(y, ldy, x, w, b, in, o_end, accumulate); break;
    case 4: dp_one_w<4>(y, ldy, x, w, b, in, o_end, accumulate); break;
    case 5: dp_one_w<5>(y, ldy, x, w, b, in, o_end, accumulate); break;
    case 6: dp_one_w<6>(y, ldy, x, w, b, in, o_end, accumulate); break;
    case 7: dp_one_w<7>(y, ldy, x, w, b, in, o_end, accumulate); break;
    case 8: dp_one_w<8>(y, ldy, x, w, b, in, o_end, accumulate); break;
    case 9: dp_one_w2<1>(y, ldy, x, w, b, in, o_end, accumulate); break;
    case 10: dp_one_w2<2>(y, ldy, x, w, b, in, o_end, accumulate); break;
    case 11: dp_one_w2<3>(y, ldy, x, w, b, in, o_end, accumulate); break;
    default: dp_one_w2<4>(y, ldy, x, w, b, in, o_end, accumulate); break;
    }
}
// More rows: tiles of 6 rows of x against 4 rows of W (arithmetic-bound: each
// weight loaded serves 6 rows, each x vector 4), the rows' x in L1 or L2.
template <int R>
__attribute__((target(RMKV_DP_TARGET), always_inline)) inline void dp_four_w(int64_t nc, float *y, int64_t ldy,
                                                                            const uint16_t *x, const uint16_t *w,
                                                                            const float *b, int64_t in, bool accumulate,
                                                                            bool prefetch) {
    switch (nc) {
    case 1: dp_tile<R, 1>(y, ldy, x, w, b, in, accumulate, false); break;
    case 2: dp_tile<R, 2>(y, ldy, x, w, b, in, accumulate, false); break;
    case 3: dp_tile<R, 3>(y, ldy, x, w, b, in, accumulate, false); break;
    default: dp_tile<R, 4>(y, ldy, x, w, b, in, accumulate, prefetch); break;
    }
}
__attribute__((target(RMKV_DP_TARGET))) void dp_rows(float *y, int64_t ldy, const uint16_t *x, const uint16_t *w,
                                                     const float *b, int64_t n, int64_t in, int64_t nc, bool accumulate,
                                                     bool prefetch) {
    int64_t r = 0;  // the first tile prefetches
    for (; r + 6 <= n; r += 6, prefetch = false)
        dp_four_w<6>(nc, y + r * ldy, ldy, x + r * in, w, b, in, accumulate, prefetch);
    float *yr = y + r * ldy;
    const uint16_t *xr = x + r * in;
    switch (n - r) {
    case 1: dp_four_w<1>(nc, yr, ldy, xr, w, b, in, accumulate, prefetch); break;
    case 2: dp_four_w<2>(nc, yr, ldy, xr, w, b, in, accumulate, prefetch); break;
    case 3: dp_four_w<3>(nc, yr, ldy, xr, w, b, in, accumulate, prefetch); break;
    case 4: dp_four_w<4>(nc, yr, ldy, xr, w, b, in, accumulate, prefetch); break;
    case 5: dp_four_w<5>(nc, yr, ldy, xr, w, b, in, accumulate, prefetch); break;
    default: break;
    }
}

void gemv_bf16_avx512(float *y, const uint16_t *x, const uint16_t *W, const float *b, int64_t n, int64_t in,
                      int64_t out, bool accumulate) {
    if (n <= 0) return;
    const bool threads = n * out * in > 32768;
    constexpr int64_t kTwoGroupsBytes = 24576;
    if (n <= 8 || (n <= 12 && n * in * 2 <= kTwoGroupsBytes)) {  // blocks of 16 rows of W per thread step
        constexpr int64_t kBlock = 16;
        const int64_t n_blocks = (out + kBlock - 1) / kBlock;
#pragma omp parallel for if (threads) schedule(static)
        for (int64_t k = 0; k < n_blocks; ++k) {
            const int64_t o = k * kBlock;
            dp_one_stream(n, y + o, out, x, W + o * in, b ? b + o : nullptr, in, std::min(kBlock, out - o), accumulate);
        }
        return;
    }
    const int64_t n_col = (out + 3) / 4;
#pragma omp parallel for if (threads) schedule(static)
    for (int64_t cb = 0; cb < n_col; ++cb) {
        const int64_t o = cb * 4;
        dp_rows(y + o, out, x, W + o * in, b ? b + o : nullptr, n, in, std::min<int64_t>(4, out - o), accumulate,
                o + 8 <= out);
    }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#undef RMKV_DP_TARGET
#else
bool cpu_has_f16c() { return false; }
int64_t f16_tile_rows() { return 1; }
void f16_tile(int64_t, int64_t, float *, const float *, const uint16_t *, int64_t) {}
#endif

// One thread's widening of n f16 values.
void widen_f16_rows(float *dst, const uint16_t *src, int64_t n) {
#if defined(__x86_64__) || defined(__i386__)
    if (cpu_has_f16c()) {
        from_f16_f16c(dst, src, n);
        return;
    }
#endif
    from_f16_portable(dst, src, n);
}

}  // namespace

void from_f16_portable(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = half_value(src[i], Half::f16);
}

RMKV_CLONES void gemv_w16(float *y, const float *x, const uint16_t *W, Half h, const float *b, int64_t n, int64_t in,
                          int64_t out, bool accumulate) {
    // Up to 15 rows (decoding, sessions stepped together): every weight read once,
    // widened in registers: bf16 against x split into pairs, f16 by F16C (a kernel
    // of its own, as that instruction cannot be written for every clone). Tiles of
    // one row of W for up to 4 rows of x (bound by the memory: one stream of
    // weights per thread reads fastest), else of 4 rows of W and 8 rows of x for
    // bf16, 8 or 2 for f16 (with or without AVX-512VL; bound by the arithmetic).
    // 16 to 23 rows: two such passes.
    // More rows, or f16 on a CPU without F16C: chunks of rows whose x stays in the
    // cache while every 4 rows of W pass, widened once per chunk into the thread's
    // scratch.
    if (n >= 16 && n < 24) {  // two passes in registers: W read twice, yet faster than widened into scratch
        const int64_t first = n / 2;
        gemv_w16(y, x, W, h, b, first, in, out, accumulate);
        gemv_w16(y + first * out, x + first * in, W, h, b, n - first, in, out, accumulate);
        return;
    }
    const bool f16_regs = n < 16 && h == Half::f16 && cpu_has_f16c();
    const bool pairs = n < 16 && h == Half::bf16, few = pairs || f16_regs;
    const float *xs = x;
    if (pairs) {
        float *split = scratch<float>(n * in, 12);
        split_pairs(split, x, n, in);
        xs = split;
    }
    const int64_t chunk =
        few ? n : std::min(n, std::max<int64_t>(4, (int64_t(1) << 17) / std::max<int64_t>(in, 1) / 4 * 4));
    const int64_t cols = few && n <= 4 ? 1 : 4;
    const int64_t n_chunks = (n + chunk - 1) / chunk, n_col = (out + cols - 1) / cols;
#pragma omp parallel for collapse(2) if (n * out * in > 32768) schedule(static)
    for (int64_t rc = 0; rc < n_chunks; ++rc)
        for (int64_t cb = 0; cb < n_col; ++cb) {
            const int64_t o = cb * cols, nc = std::min<int64_t>(cols, out - o);
            const uint16_t *w = W + o * in;
            const float *bo = b ? b + o : nullptr;
            const int64_t r0 = rc * chunk, r_end = std::min(n, r0 + chunk);
            if (pairs) {
                int64_t r = r0;
                if (nc == 4)
                    for (; r + 8 <= r_end; r += 8) tile_w<8, 4>(y + o + r * out, out, xs + r * in, w, bo, in, accumulate);
                rows_w(r, r_end, nc, y + o, out, xs, w, bo, in, accumulate);
                continue;
            }
            if (f16_regs) {
                const int64_t rstep = cols == 1 ? 4 : f16_tile_rows();
                for (int64_t r = r0; r < r_end; r += rstep) {
                    const int64_t nr = std::min(rstep, r_end - r);
                    float d[32];
                    f16_tile(nr, nc, d, x + r * in, w, in);
                    for (int64_t rr = 0; rr < nr; ++rr)
                        for (int64_t c = 0; c < nc; ++c) {
                            const float v = d[rr * nc + c] + (bo ? bo[c] : 0.0f);
                            float &dst = y[(r + rr) * out + o + c];
                            dst = accumulate ? dst + v : v;
                        }
                }
                continue;
            }
            float *wf = scratch<float>(4 * in, 11);
            if (h == Half::f16) {
                widen_f16_rows(wf, w, nc * in);
            } else {
                int64_t i = 0;
                for (; i + 8 <= nc * in; i += 8) {
                    v8f v;
                    widen_bf16(v, w + i);
                    std::memcpy(wf + i, &v, 32);
                }
                for (; i < nc * in; ++i) wf[i] = widen_bf16(w[i]);
            }
            rows_w(r0, r_end, nc, y + o, out, x, static_cast<const float *>(wf), bo, in, accumulate);
        }
}

// Not in a build of the kernels for one instruction set without AVX-512
// (RMKV_NO_CLONES, as cpu_has_avx512vl): the AVX2 tests and benches show what
// CPUs without it run.
bool cpu_has_avx512bf16() {
#if defined(RMKV_NO_CLONES) && !defined(__AVX512F__)
    return false;
#elif defined(__x86_64__) || defined(__i386__)
    static const bool yes = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
                            __builtin_cpu_supports("avx512vl");
    return yes;
#else
    return false;
#endif
}

void gemv_bf16(float *y, const uint16_t *x_bf16, const uint16_t *W, const float *b, int64_t n, int64_t in,
               int64_t out, bool accumulate) {
#if defined(__x86_64__) || defined(__i386__)
    gemv_bf16_avx512(y, x_bf16, W, b, n, in, out, accumulate);
#else
    (void)y, (void)x_bf16, (void)W, (void)b, (void)n, (void)in, (void)out, (void)accumulate;
#endif
}

RMKV_CLONES void from_bf16(float *dst, const uint16_t *src, int64_t n) {
#pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[i] = widen_bf16(src[i]);
}

void from_f16(float *dst, const uint16_t *src, int64_t n) {
    constexpr int64_t kBlock = 16384;
    const int64_t n_blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t k = 0; k < n_blocks; ++k)
        widen_f16_rows(dst + k * kBlock, src + k * kBlock, std::min(kBlock, n - k * kBlock));
}

}  // namespace rmkv::cpu
