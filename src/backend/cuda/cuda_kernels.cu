#include "backend/cuda/cuda_kernels.cuh"
#include "backend/cuda/fused_attention.cuh"
#include "backend/cuda/half_kernels.cuh"
#include "backend/cuda/replay.h"
#include "backend/cuda/tensor_attention.cuh"

#include <algorithm>
#include <cmath>

// Every launch is RMKV_LAUNCH(kernel, grid, block, shared bytes, stream,
// arguments...), folded into the signature of a step being recorded or checked
// (replay.h; a check makes no launch), and the blocks' static shared arrays are
// RMKV_BLOCK_SHARED: tests/unit/cuda_emulation.h defines both to run this file,
// launchers and kernels, on CPU threads (one per CUDA thread, the blocks one
// after another).
#ifndef RMKV_LAUNCH
#define RMKV_LAUNCH(kernel, grid, block, smem, stream, ...)                                                     \
    do {                                                                                                      \
        if (::rmkv::cuda::queues(reinterpret_cast<const void *>(kernel), dim3(grid), dim3(block), size_t(smem), \
                                 stream, __VA_ARGS__))                                                        \
            kernel<<<grid, block, smem, stream>>>(__VA_ARGS__);                                               \
    } while (0)
#define RMKV_BLOCK_SHARED __shared__
#endif

namespace rmkv::cuda {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n, int threads = kThreads) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    return static_cast<unsigned>(b < 65535 * 16 ? b : 65535 * 16);
}

#define GRID_LOOP(i, n) \
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); i += static_cast<int64_t>(blockDim.x) * gridDim.x)

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float siluf_(float x) { return x * sigmoidf_(x); }

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
template <class T>
__device__ T block_sum(T v) {
    RMKV_BLOCK_SHARED T part[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();  // part may still be read by a previous call
    if (lane == 0) part[warp] = v;
    __syncthreads();
    T t = lane < nw ? part[lane] : T(0);
    return warp_sum(t);
}
__device__ float block_max(float v) {
    RMKV_BLOCK_SHARED float part[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    float t = lane < nw ? part[lane] : -INFINITY;
    return warp_max(t);
}

// Element i of an output and of its bf16 copy (Backend's bf16 copies), each where
// not NULL.
__device__ inline void store(float *y, uint16_t *y16, int64_t i, float v) {
    if (y) y[i] = v;
    if (y16) y16[i] = bf16_bits(v);
}

// ---- norms: one block per row; mean and variance in double as on the CPU ----
// The row's mean (0 for rmsnorm) into *mean, and its variance about it; every
// thread of the block gets both.
__device__ double row_variance(bool layer, const float *xr, int64_t d, double *mean) {
    *mean = 0;
    if (layer) {
        double s = 0;
        for (int64_t i = threadIdx.x; i < d; i += blockDim.x) s += xr[i];
        *mean = block_sum(s) / static_cast<double>(d);
    }
    double var = 0;
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
        double c = xr[i] - *mean;
        var += c * c;
    }
    return block_sum(var) / static_cast<double>(d);
}

__global__ void k_norm_forward(bool layer, float *y, const float *x, const float *w, const float *b, int64_t d,
                               float eps, uint16_t *y16) {
    const float *xr = x + blockIdx.x * d;
    double mean;
    const double var = row_variance(layer, xr, d, &mean);
    const float inv = static_cast<float>(1.0 / sqrt(var + eps)), mu = static_cast<float>(mean);
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
        float v = (xr[i] - mu) * inv * w[i];
        store(y, y16, blockIdx.x * d + i, b ? v + b[i] : v);
    }
}

// dx of one row; its mean and 1/std into stats (for the parameter gradients).
__global__ void k_norm_backward_rows(bool layer, float *dx, const float *dy, const float *x, const float *w, int64_t d,
                                     float eps, double *stats, uint16_t *dx16) {
    const float *xr = x + blockIdx.x * d, *dyr = dy + blockIdx.x * d;
    float *dxr = dx + blockIdx.x * d;
    double mean;
    const double var = row_variance(layer, xr, d, &mean);
    const double inv = 1.0 / sqrt(var + eps);
    double s1 = 0, s2 = 0;
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
        float xhat = static_cast<float>((xr[i] - mean) * inv);
        double g = static_cast<double>(dyr[i]) * w[i];
        s1 += g;
        s2 += g * xhat;
    }
    s1 = block_sum(s1);
    s2 = block_sum(s2);
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
        float xhat = static_cast<float>((xr[i] - mean) * inv);
        double g = static_cast<double>(dyr[i]) * w[i];
        dxr[i] += static_cast<float>(layer ? inv * (g - s1 / d - xhat * s2 / d) : inv * (g - xhat * s2 / d));
        if (dx16) dx16[blockIdx.x * d + i] = bf16_bits(dxr[i]);
    }
    if (threadIdx.x == 0) stats[2 * blockIdx.x] = mean, stats[2 * blockIdx.x + 1] = inv;
}

// Column sums over rows, deterministic, in two launches: blocks of 32 columns x
// 8 row lanes sum chunks of up to 256 rows into partial[chunk][column] (double),
// then one thread per column adds the chunks in order; one chunk (a sequence's
// token rows, or its memory rows) is one launch. kColChunks bounds the chunks.
constexpr int kColChunks = 32;
__host__ __device__ inline int64_t col_chunks(int64_t n) {
    const int64_t c = (n + 255) / 256;
    return c < 1 ? 1 : (c > kColChunks ? kColChunks : c);
}
// A norm's parameter gradients: partial sums of dy * xhat (pw, for dw) and of dy
// (pb, for db), stats being the rows' (mean, inv) and x the norm's input. With one
// chunk the sums are added to dw and db (either may be NULL: frozen) here, as
// k_colsum_finish adds them, and that second launch is not made.
__global__ void k_colsum_partial(double *pw, double *pb, float *dw, float *db, const float *dy, const float *x,
                                 int64_t n, int64_t d, const double *stats) {
    RMKV_BLOCK_SHARED double sw[8][33], sb[8][33];
    const int64_t c = blockIdx.x * 32 + threadIdx.x, chunk = blockIdx.y, chunks = gridDim.y;
    const int64_t per = (n + chunks - 1) / chunks, r0 = chunk * per, r1 = min(n, r0 + per);
    double gw = 0, gb = 0;
    if (c < d)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) {
            const float g = dy[r * d + c];
            gw += static_cast<double>(g) * static_cast<float>((x[r * d + c] - stats[2 * r]) * stats[2 * r + 1]);
            gb += g;
        }
    sw[threadIdx.y][threadIdx.x] = gw, sb[threadIdx.y][threadIdx.x] = gb;
    __syncthreads();
    if (threadIdx.y == 0 && c < d) {
        for (int y = 1; y < 8; ++y) gw += sw[y][threadIdx.x], gb += sb[y][threadIdx.x];
        if (chunks == 1) {
            if (dw) dw[c] += static_cast<float>(gw);
            if (db) db[c] += static_cast<float>(gb);
        } else {
            pw[chunk * d + c] = gw, pb[chunk * d + c] = gb;
        }
    }
}
// The same for the parts of a table (blockIdx.z; plain sums, rows in blocks):
// a part of one chunk adds its sums to its db here.
__global__ void k_colsum_parts(ColumnTable t, double *partial) {
    RMKV_BLOCK_SHARED double sb[8][33];
    const ColumnSums p = t.part[blockIdx.z];
    const int64_t n = p.rows * p.count, d = p.width, chunks = col_chunks(n), chunk = blockIdx.y;
    if (chunk >= chunks || static_cast<int64_t>(blockIdx.x) * 32 >= d) return;  // (the whole block)
    const int64_t c = blockIdx.x * 32 + threadIdx.x;
    const int64_t per = (n + chunks - 1) / chunks, r0 = chunk * per, r1 = min(n, r0 + per);
    double s = 0;
    if (c < d)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) {
            const int64_t b = r / p.rows;
            s += p.dy[b * p.pitch + (r - b * p.rows) * d + c];
        }
    sb[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y != 0 || c >= d) return;
    for (int y = 1; y < 8; ++y) s += sb[y][threadIdx.x];
    if (chunks == 1) p.db[c] += static_cast<float>(s);
    else partial[t.at[blockIdx.z] + chunk * d + c] = s;
}
// The parts of several chunks (blockIdx.y): their chunks added in order.
__global__ void k_colsum_parts_finish(ColumnTable t, const double *partial) {
    const ColumnSums p = t.part[blockIdx.y];
    const int64_t d = p.width, chunks = col_chunks(p.rows * p.count);
    if (chunks == 1) return;
    GRID_LOOP(c, d) {
        double s = 0;
        for (int64_t k = 0; k < chunks; ++k) s += partial[t.at[blockIdx.y] + k * d + c];
        p.db[c] += static_cast<float>(s);
    }
}
// out[c] += sum over chunks of partial[chunk][c], for out and (when not NULL) out2.
__global__ void k_colsum_finish(float *out, const double *partial, float *out2, const double *partial2, int64_t chunks,
                                int64_t d) {
    GRID_LOOP(c, d) {
        double t = 0, t2 = 0;
        for (int64_t k = 0; k < chunks; ++k) t += partial[k * d + c];
        if (out) out[c] += static_cast<float>(t);
        if (!out2) continue;
        for (int64_t k = 0; k < chunks; ++k) t2 += partial2[k * d + c];
        out2[c] += static_cast<float>(t2);
    }
}

__global__ void k_embed_forward(float *X, const float *E, const int32_t *tok, int64_t n, int64_t d) {
    GRID_LOOP(i, n * d) X[i] = E[static_cast<int64_t>(tok[i / d]) * d + i % d];
}
__global__ void k_embed_backward(float *dE, const float *dX, const int32_t *tok, int64_t n, int64_t d) {
    GRID_LOOP(i, n * d) atomicAdd(dE + static_cast<int64_t>(tok[i / d]) * d + i % d, dX[i]);
}
__global__ void k_add(float *out, const float *a, const float *b, int64_t n, uint16_t *out16) {
    GRID_LOOP(i, n) store(out, out16, i, a[i] + b[i]);
}
__global__ void k_add_bias(float *y, const float *b, int64_t n, int64_t out) {
    GRID_LOOP(i, n * out) y[i] += b[i % out];
}
__global__ void k_sincos_add(float *X, int64_t n, int64_t d, int64_t p0, const int64_t *positions) {
    const int64_t half = (d + 1) / 2;
    GRID_LOOP(e, n * half) {
        const int64_t r = e / half, i = e % half;
        double angle = static_cast<double>(positions ? positions[r] : p0 + r) / pow(10000.0, static_cast<double>(2 * i) / static_cast<double>(d));
        X[r * d + 2 * i] += static_cast<float>(sin(angle));
        if (2 * i + 1 < d) X[r * d + 2 * i + 1] += static_cast<float>(cos(angle));
    }
}
__global__ void k_rope(float *x, int64_t n, int64_t ld, int64_t H, int64_t hd, int64_t t0, float theta, bool inverse,
                       int64_t n_seq, int64_t stride) {
    const int64_t half = hd / 2;
    GRID_LOOP(e, n_seq * n * half * H) {
        const int64_t h = e % H, i = (e / H) % half, rz = e / (H * half), r = rz % n, z = rz / n;
        double angle = static_cast<double>(t0 + r) *
                       pow(static_cast<double>(theta), -2.0 * static_cast<double>(i) / static_cast<double>(hd));
        float c = static_cast<float>(cos(angle)), s = static_cast<float>(sin(angle));
        if (inverse) s = -s;
        float *p = x + z * stride + r * ld + h * hd;
        float a = p[i], b = p[i + half];
        p[i] = a * c - b * s;
        p[i + half] = b * c + a * s;
    }
}

// ---- attention ----
// The products (scores, outputs and every gradient) are cuBLAS batched matrix
// products over the heads (cuda_backend.cu); these kernels are the row-wise
// part between them, one warp per score row (h, i) of P [H, nq, nk].

// P = softmax(scale * S + mask) in place: row (h, i) sees keys 0 .. nvis - 1
// (nvis = min(nk, visible0 + i + 1)); the rest of the row is written 0. With
// dropout on and `apply_drop`, P (h, i, j) is multiplied by its factor. The
// dropout (drop_at, device memory, or NULL: none) as the backend stages it.
__global__ void k_attention_softmax(float *P, int64_t rows, int64_t nq, int64_t nk, int64_t visible0, float scale,
                                    const Dropout *drop_at, bool apply_drop) {
    const Dropout drop = drop_at ? *drop_at : Dropout{};
    const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    const int lane = threadIdx.x & 31;
    const int64_t i = row % nq, nvis = min(nk, visible0 + i + 1);
    float *p = P + row * nk;
    float mx = -INFINITY;
    for (int64_t j = lane; j < nvis; j += 32) mx = fmaxf(mx, p[j] * scale);
    mx = warp_max(mx);
    float sum = 0;
    for (int64_t j = lane; j < nvis; j += 32) {
        float e = expf(p[j] * scale - mx);
        p[j] = e;
        sum += e;
    }
    const float inv = 1.0f / warp_sum(sum);
    const bool dropping = apply_drop && drop.on();
    for (int64_t j = lane; j < nk; j += 32) {
        float v = j < nvis ? p[j] * inv : 0.0f;
        if (dropping && j < nvis) v *= drop.factor(static_cast<uint64_t>(row * nk + j));
        p[j] = v;
    }
}

// The softmax's backward, row-wise: dP holds dout v^T (gradient of the dropped
// probabilities), P the probabilities before dropout. Writes dP := dS, the
// gradient of the scaled scores (times scale: the gradient of q k^T), and
// P := the dropped probabilities (the weights of dv).
__global__ void k_attention_softmax_backward(float *P, float *dP, int64_t rows, int64_t nq, int64_t nk,
                                             int64_t visible0, float scale, const Dropout *drop_at) {
    const Dropout drop = drop_at ? *drop_at : Dropout{};
    const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    const int lane = threadIdx.x & 31;
    const int64_t i = row % nq, nvis = min(nk, visible0 + i + 1);
    float *p = P + row * nk, *dp = dP + row * nk;
    float pdp = 0;
    for (int64_t j = lane; j < nvis; j += 32) {
        float g = dp[j];
        if (drop.on()) g *= drop.factor(static_cast<uint64_t>(row * nk + j));
        dp[j] = g;
        pdp += p[j] * g;
    }
    pdp = warp_sum(pdp);
    for (int64_t j = lane; j < nk; j += 32) {
        if (j < nvis) {
            dp[j] = p[j] * (dp[j] - pdp) * scale;
            if (drop.on()) p[j] *= drop.factor(static_cast<uint64_t>(row * nk + j));
        } else {
            dp[j] = 0.0f;
        }
    }
}

__global__ void k_dropout(float *x, int64_t n, const Dropout *drops, int64_t n_seq, uint16_t *x16) {
    GRID_LOOP(e, n * n_seq) {
        const int64_t s = e / n;
        store(x, x16, e, x[e] * drops[s].factor(static_cast<uint64_t>(e - s * n)));  // (p = 0: a factor of 1)
    }
}
// The activations and their backwards: each output and its bf16 copy through store().
__global__ void k_swiglu(float *h, const float *g, const float *u, int64_t n, uint16_t *h16) {
    GRID_LOOP(i, n) store(h, h16, i, siluf_(g[i]) * u[i]);
}
__global__ void k_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n,
                                  uint16_t *dg16, uint16_t *du16) {
    GRID_LOOP(i, n) {
        float s = sigmoidf_(g[i]), dhi = dh[i], gi = g[i];
        store(du, du16, i, dhi * gi * s);
        store(dg, dg16, i, dhi * u[i] * s * (1.0f + gi * (1.0f - s)));
    }
}
__global__ void k_gelu(float *h, const float *u, int64_t n, uint16_t *h16) {
    GRID_LOOP(i, n) store(h, h16, i, 0.5f * u[i] * (1.0f + erff(u[i] * 0.70710678118654752f)));
}
__global__ void k_gelu_backward(float *du, const float *dh, const float *u, int64_t n, uint16_t *du16) {
    GRID_LOOP(i, n) {
        float cdf = 0.5f * (1.0f + erff(u[i] * 0.70710678118654752f));
        float pdf = expf(-0.5f * u[i] * u[i]) * 0.39894228040143268f;
        store(du, du16, i, dh[i] * (cdf + u[i] * pdf));
    }
}

__global__ void k_cell_forward(CellKind kind, float *m_out, float *c_out, const float *c_in, const float *gi,
                               const float *gh, const float *h, int64_t M, int64_t D) {
    GRID_LOOP(e, M * D) {
        const int64_t r = e / D, i = e % D;
        if (kind == CellKind::gru) {
            const float *a = gi + r * 3 * D, *b = gh + r * 3 * D;
            float rg = sigmoidf_(a[i] + b[i]);
            float z = sigmoidf_(a[D + i] + b[D + i]);
            float nn = tanhf(a[2 * D + i] + rg * b[2 * D + i]);
            m_out[e] = (1.0f - z) * nn + z * h[e];
        } else if (kind == CellKind::lstm) {
            const float *a = gi + r * 4 * D, *b = gh + r * 4 * D;
            float ig = sigmoidf_(a[i] + b[i]);
            float fg = sigmoidf_(a[D + i] + b[D + i]);
            float gg = tanhf(a[2 * D + i] + b[2 * D + i]);
            float og = sigmoidf_(a[3 * D + i] + b[3 * D + i]);
            float cn = fg * c_in[e] + ig * gg;
            c_out[e] = cn;
            m_out[e] = og * tanhf(cn);
        } else {
            const float *ab = gi + r * 2 * D;
            float sa = sigmoidf_(ab[i]);
            m_out[e] = h[e] * sa + (1.0f - sa) * siluf_(ab[D + i]);
        }
    }
}

__global__ void k_cell_backward(CellKind kind, float *dgi, float *dgh, float *dh, float *dc_in, const float *dm,
                                const float *dc_out, const float *c_in, const float *gi, const float *gh,
                                const float *h, int64_t M, int64_t D, uint16_t *dgi16, uint16_t *dgh16) {
    GRID_LOOP(e, M * D) {
        const int64_t r = e / D, i = e % D;
        const float d = dm[e];
        if (kind == CellKind::gru) {
            const float *a = gi + r * 3 * D, *b = gh + r * 3 * D;
            const int64_t o = r * 3 * D;
            float rg = sigmoidf_(a[i] + b[i]);
            float z = sigmoidf_(a[D + i] + b[D + i]);
            float nn = tanhf(a[2 * D + i] + rg * b[2 * D + i]);
            float dn = d * (1.0f - z) * (1.0f - nn * nn);
            float dz = d * (h[e] - nn) * z * (1.0f - z);
            float dr = dn * b[2 * D + i] * rg * (1.0f - rg);
            dh[e] += d * z;
            store(dgi, dgi16, o + i, dr), store(dgh, dgh16, o + i, dr);
            store(dgi, dgi16, o + D + i, dz), store(dgh, dgh16, o + D + i, dz);
            store(dgi, dgi16, o + 2 * D + i, dn), store(dgh, dgh16, o + 2 * D + i, dn * rg);
        } else if (kind == CellKind::lstm) {
            const float *a = gi + r * 4 * D, *b = gh + r * 4 * D;
            const int64_t o = r * 4 * D;
            float ig = sigmoidf_(a[i] + b[i]);
            float fg = sigmoidf_(a[D + i] + b[D + i]);
            float gg = tanhf(a[2 * D + i] + b[2 * D + i]);
            float og = sigmoidf_(a[3 * D + i] + b[3 * D + i]);
            float cn = fg * c_in[e] + ig * gg, tc = tanhf(cn);
            float dcn = d * og * (1.0f - tc * tc) + (dc_out ? dc_out[e] : 0.0f);
            float d_i = dcn * gg * ig * (1.0f - ig);
            float d_f = dcn * c_in[e] * fg * (1.0f - fg);
            float d_g = dcn * ig * (1.0f - gg * gg);
            float d_o = d * tc * og * (1.0f - og);
            const float g[4] = {d_i, d_f, d_g, d_o};
            for (int k = 0; k < 4; ++k) store(dgi, dgi16, o + k * D + i, g[k]), store(dgh, dgh16, o + k * D + i, g[k]);
            dc_in[e] = dcn * fg;
        } else {
            const float *ab = gi + r * 2 * D;
            const int64_t o = r * 2 * D;
            float sa = sigmoidf_(ab[i]), sb = sigmoidf_(ab[D + i]), bb = ab[D + i];
            dh[e] += d * sa;
            store(dgi, dgi16, o + i, d * (h[e] - siluf_(bb)) * sa * (1.0f - sa));
            store(dgi, dgi16, o + D + i, d * (1.0f - sa) * sb * (1.0f + bb * (1.0f - sb)));
        }
    }
}

__global__ void k_concat_cols(float *dst, const float *a, const float *b, int64_t M, int64_t D, uint16_t *dst16) {
    GRID_LOOP(e, M * 2 * D) {
        const int64_t r = e / (2 * D), c = e % (2 * D);
        store(dst, dst16, e, c < D ? a[r * D + c] : b[r * D + c - D]);
    }
}
__global__ void k_split_cols_add(float *da, float *db, const float *src, int64_t M, int64_t D) {
    GRID_LOOP(e, M * 2 * D) {
        const int64_t r = e / (2 * D), c = e % (2 * D);
        if (c < D) da[r * D + c] += src[e];
        else db[r * D + c - D] += src[e];
    }
}

// One block per row: the max, the sum of exponentials in double, the loss of the
// row added to *loss; the gradient written in place (dlogits may alias logits),
// and its bf16 copy to d16 where given.
__global__ void k_cross_entropy(float *dlogits, const float *logits, const int32_t *targets, int64_t V,
                                const float *scale_at, double *loss, uint16_t *d16) {
    const int64_t r = blockIdx.x;
    const float scale = *scale_at;
    const float *lr = logits + r * V;
    const int32_t target = targets[r];
    if (target < 0) {
        for (int64_t j = threadIdx.x; j < V; j += blockDim.x) store(dlogits, d16, r * V + j, 0.0f);
        return;
    }
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, lr[j]);
    mx = block_max(mx);
    double sum = 0;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) sum += exp(static_cast<double>(lr[j] - mx));
    sum = block_sum(sum);
    const float lt = lr[target];
    if (threadIdx.x == 0) atomicAdd(loss, log(sum) + mx - lt);
    __syncthreads();  // every thread has read lr[target] before it is overwritten
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
        float g = expf(lr[j] - mx) * inv * scale;
        store(dlogits, d16, r * V + j, j == target ? g - scale : g);
    }
}

__global__ void k_fill(float *x, float value, int64_t n) {
    GRID_LOOP(i, n) x[i] = value;
}
__global__ void k_update_scale(double *acc, float grad_scale, float clip) {
    const double norm = sqrt(acc[1]) * grad_scale;
    acc[1] = 0.0;
    acc[2] = norm;
    *reinterpret_cast<float *>(acc + 3) = update_scale_of(norm, grad_scale, clip);
}
__device__ __forceinline__ void adamw_element(float *p, float *m, float *v, const float *g, uint16_t *shadow, int64_t i,
                                              float grad_scale, float beta1, float beta2, float eps, float decay,
                                              float step_size, float inv_sqrt_bc2) {
    float gi = g[i] * grad_scale;
    float mi = beta1 * m[i] + (1.0f - beta1) * gi;
    float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    float pi = p[i] * decay - step_size * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
    m[i] = mi, v[i] = vi, p[i] = pi;
    if (shadow) shadow[i] = bf16_bits(pi);
}
__global__ void k_adamw(float *p, float *m, float *v, const float *g, int64_t n, float beta1, float beta2, float eps,
                        float decay, float step_size, float inv_sqrt_bc2, const float *scale, uint16_t *shadow) {
    const float grad_scale = *scale;
    if (isnan(grad_scale)) return;
    GRID_LOOP(i, n) adamw_element(p, m, v, g, shadow, i, grad_scale, beta1, beta2, eps, decay, step_size, inv_sqrt_bc2);
}
// MultiTensor tables: each block takes chunks blockIdx.x, + gridDim.x, ...
__global__ void k_sum_squares_many(const MultiTensor *ts, const MultiChunk *chunks, int64_t n_chunks, double *total) {
    double s = 0;
    for (int64_t c = blockIdx.x; c < n_chunks; c += gridDim.x) {
        const MultiChunk ch = chunks[c];
        const float *g = ts[ch.tensor].g;
        for (int64_t i = ch.begin + threadIdx.x; i < ch.end; i += blockDim.x) s += static_cast<double>(g[i]) * g[i];
    }
    s = block_sum(s);
    if (threadIdx.x == 0) atomicAdd(total, s);
}
__global__ void k_adamw_many(const MultiTensor *ts, const MultiChunk *chunks, int64_t n_chunks, float beta1,
                             float beta2, float eps, float step_size, float inv_sqrt_bc2, const float *scale) {
    const float grad_scale = *scale;
    if (isnan(grad_scale)) return;
    for (int64_t c = blockIdx.x; c < n_chunks; c += gridDim.x) {
        const MultiChunk ch = chunks[c];
        const MultiTensor t = ts[ch.tensor];
        for (int64_t i = ch.begin + threadIdx.x; i < ch.end; i += blockDim.x)
            adamw_element(t.p, t.m, t.v, t.g, t.shadow, i, grad_scale, beta1, beta2, eps, t.decay, step_size,
                          inv_sqrt_bc2);
    }
}
__global__ void k_add_many(const MultiTensor *ts, const MultiChunk *chunks, int64_t n_chunks) {
    for (int64_t c = blockIdx.x; c < n_chunks; c += gridDim.x) {
        const MultiChunk ch = chunks[c];
        const MultiTensor t = ts[ch.tensor];
        for (int64_t i = ch.begin + threadIdx.x; i < ch.end; i += blockDim.x) t.p[i] += t.g[i];
    }
}
__global__ void k_widen_half(float *dst, const uint16_t *src, Half h, int64_t n) {
    GRID_LOOP(i, n) dst[i] = half_value(src[i], h);
}
__global__ void k_embed_half(float *X, const uint16_t *E, Half h, const int32_t *tok, int64_t n, int64_t d) {
    GRID_LOOP(i, n * d) X[i] = half_value(E[static_cast<int64_t>(tok[i / d]) * d + i % d], h);
}
__global__ void k_to_bf16(uint16_t *dst, const float *src, int64_t n) {
    GRID_LOOP(i, n) dst[i] = bf16_bits(src[i]);
}
// Part blockIdx.y of the table.
__global__ void k_to_bf16_blocks(Bf16Table table) {
    const Bf16Blocks b = table.part[blockIdx.y];
    GRID_LOOP(e, b.count * b.width) {
        const int64_t i = e / b.width;
        b.dst[e] = bf16_bits(b.src[i * b.pitch + e - i * b.width]);
    }
}

}  // namespace

void norm_forward(NormKind kind, float *y, const float *x, const float *w, const float *b, int64_t n, int64_t d,
                  float eps, uint16_t *y16, cudaStream_t st) {
    if (n <= 0) return;
    RMKV_LAUNCH(k_norm_forward, static_cast<unsigned>(n), kThreads, 0, st, kind == NormKind::layernorm, y, x, w, b, d,
                eps, y16);
}
void norm_backward(NormKind kind, float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                   int64_t n, int64_t d, float eps, double *stats, cudaStream_t st, uint16_t *dx16) {
    if (n <= 0) return;
    RMKV_LAUNCH(k_norm_backward_rows, static_cast<unsigned>(n), kThreads, 0, st, kind == NormKind::layernorm, dx, dy, x,
                w, d, eps, stats, dx16);
    if (!dw && !db) return;
    const int64_t chunks = col_chunks(n);
    double *pw = stats + 2 * n, *pb = pw + chunks * d;
    RMKV_LAUNCH(k_colsum_partial, dim3(static_cast<unsigned>((d + 31) / 32), static_cast<unsigned>(chunks)),
                dim3(32, 8), 0, st, pw, pb, dw, db, dy, x, n, d, stats);
    if (chunks > 1) RMKV_LAUNCH(k_colsum_finish, blocks_for(d), kThreads, 0, st, dw, pw, db, pb, chunks, d);
}
void embed_forward(float *X, const float *E, const int32_t *tok, int64_t n, int64_t d, cudaStream_t st) {
    if (n > 0) RMKV_LAUNCH(k_embed_forward, blocks_for(n * d), kThreads, 0, st, X, E, tok, n, d);
}
void embed_backward(float *dE, const float *dX, const int32_t *tok, int64_t n, int64_t d, cudaStream_t st) {
    if (n > 0 && dE) RMKV_LAUNCH(k_embed_backward, blocks_for(n * d), kThreads, 0, st, dE, dX, tok, n, d);
}
void add(float *out, const float *a, const float *b, int64_t n, cudaStream_t st, uint16_t *out16) {
    if (n > 0) RMKV_LAUNCH(k_add, blocks_for(n), kThreads, 0, st, out, a, b, n, out16);
}
void add_bias(float *y, const float *b, int64_t n, int64_t out, cudaStream_t st) {
    if (n > 0) RMKV_LAUNCH(k_add_bias, blocks_for(n * out), kThreads, 0, st, y, b, n, out);
}
size_t norm_backward_scratch(int64_t n, int64_t d) { return static_cast<size_t>(2 * n + 2 * col_chunks(n) * d); }
size_t column_sums_scratch(const ColumnSums *parts, int64_t n) {
    size_t total = 0;
    for (int64_t k = 0; k < n; ++k) {
        const int64_t chunks = col_chunks(parts[k].rows * parts[k].count);
        if (chunks > 1) total += static_cast<size_t>(chunks * parts[k].width);
    }
    return total;
}
inline void fold_arg(Replay &r, const ColumnTable &t) { fold_arg(r, t.part), fold_arg(r, t.at); }  // (replay.h)
void column_sums_add(const ColumnSums *parts, int64_t n, double *scratch, cudaStream_t st) {
    int64_t k = 0;
    while (k < n) {
        // The next parts, up to kColParts, while their db differ.
        ColumnTable t{};
        int m = 0;
        int64_t at = 0, chunks = 1, width = 0;
        for (; k < n && m < kColParts; ++k) {
            const ColumnSums &p = parts[k];
            if (p.rows * p.count <= 0 || p.width <= 0) continue;
            bool same = false;
            for (int j = 0; j < m; ++j) same = same || t.part[j].db == p.db;
            if (same) break;
            const int64_t c = col_chunks(p.rows * p.count);
            t.part[m] = p, t.at[m] = at;
            if (c > 1) at += c * p.width;
            chunks = std::max(chunks, c), width = std::max(width, p.width);
            ++m;
        }
        if (m == 0) continue;
        const unsigned parts_here = static_cast<unsigned>(m);
        RMKV_LAUNCH(k_colsum_parts, dim3(static_cast<unsigned>((width + 31) / 32), static_cast<unsigned>(chunks), parts_here),
                    dim3(32, 8), 0, st, t, scratch);
        if (chunks > 1)
            RMKV_LAUNCH(k_colsum_parts_finish, dim3(blocks_for(width), parts_here), kThreads, 0, st, t,
                        static_cast<const double *>(scratch));
    }
}
void sincos_add(float *X, int64_t n, int64_t d, int64_t p0, cudaStream_t st, const int64_t *positions) {
    if (n > 0) RMKV_LAUNCH(k_sincos_add, blocks_for(n * ((d + 1) / 2)), kThreads, 0, st, X, n, d, p0, positions);
}
void rope(float *x, int64_t n, int64_t ld, int64_t H, int64_t hd, int64_t t0, float theta, bool inverse,
          int64_t n_seq, int64_t stride, cudaStream_t st) {
    if (n > 0 && n_seq > 0 && hd >= 2)
        RMKV_LAUNCH(k_rope, blocks_for(n_seq * n * H * (hd / 2)), kThreads, 0, st, x, n, ld, H, hd, t0, theta, inverse,
                    n_seq, stride);
}
void attention_softmax(float *P, int64_t H, int64_t nq, int64_t nk, int64_t visible0, float scale, const Dropout *drop,
                       bool apply_drop, cudaStream_t st) {
    const int64_t rows = H * nq;
    if (rows > 0 && nk > 0)
        RMKV_LAUNCH(k_attention_softmax, blocks_for(rows, kThreads / 32), kThreads, 0, st, P, rows, nq, nk, visible0,
                    scale, drop, apply_drop);
}
void attention_softmax_backward(float *P, float *dP, int64_t H, int64_t nq, int64_t nk, int64_t visible0, float scale,
                                const Dropout *drop, cudaStream_t st) {
    const int64_t rows = H * nq;
    if (rows > 0 && nk > 0)
        RMKV_LAUNCH(k_attention_softmax_backward, blocks_for(rows, kThreads / 32), kThreads, 0, st, P, dP, rows, nq, nk,
                    visible0, scale, drop);
}
size_t fused_attention_smem(int64_t hd, int64_t nk, bool backward) {
    return sizeof(float) * static_cast<size_t>(fused_smem_floats(hd, nk, backward));
}
#ifndef RMKV_CUDA_EMULATED
cudaError_t fused_attention_setup(int max_smem) {
    cudaError_t e = cudaFuncSetAttribute(k_fused_attention, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem);
    if (e != cudaSuccess) return e;
    e = cudaFuncSetAttribute(k_fused_attention_backward, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem);
    if (e != cudaSuccess) return e;
    e = cudaFuncSetAttribute(k_tc_attention, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem);
    if (e != cudaSuccess) return e;
    e = cudaFuncSetAttribute(k_tc_attention_backward, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem);
    if (e != cudaSuccess) return e;
    return cudaFuncSetAttribute(k_decode_attention, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem);
}
#endif
static_assert(kDecodeMaxHd <= kDecodeThreads, "k_decode_attention: one thread per column at least");
static_assert(kHalfGemvRows == kGemvRows, "gemv_half: the rows k_gemv_half takes");
size_t decode_attention_smem(int64_t hd, int64_t max_nv) {
    return sizeof(float) * static_cast<size_t>(decode_smem_floats(hd, max_nv));
}
void decode_attention(float *out, float *q, const float *k, const float *v, const CacheRow *rows, int64_t n, int64_t H,
                      int64_t Hkv, int64_t hd, int64_t max_nv, bool rope, float theta, cudaStream_t st) {
    if (n <= 0) return;
    const dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>(H));
    RMKV_LAUNCH(k_decode_attention, grid, kDecodeThreads, decode_attention_smem(hd, max_nv), st, out, q, k, v, rows,
                CacheRow{}, H / Hkv, hd, rope, theta, 1.0f / sqrtf(static_cast<float>(hd)), true);
}
void attention_one_row(float *out, const float *q, const float *k, const float *v, int64_t at, int64_t H, int64_t Hkv,
                       int64_t hd, cudaStream_t st) {
    const CacheRow row{const_cast<float *>(k), const_cast<float *>(v), at, 0};
    const int64_t Dkv = Hkv * hd;
    RMKV_LAUNCH(k_decode_attention, dim3(1, static_cast<unsigned>(H)), kDecodeThreads,
                decode_attention_smem(hd, at + 1), st, out, const_cast<float *>(q), k + at * Dkv, v + at * Dkv, nullptr,
                row, H / Hkv, hd, false, 0.0f, 1.0f / sqrtf(static_cast<float>(hd)), false);
}
__global__ void k_scatter_rows(float *const *dst, const float *src, int64_t n, int64_t width) {
    GRID_LOOP(e, n * width) dst[e / width][e % width] = src[e];
}
void scatter_rows(float *const *dst, const float *src, int64_t n, int64_t width, cudaStream_t st) {
    if (n > 0 && width > 0) RMKV_LAUNCH(k_scatter_rows, blocks_for(n * width), kThreads, 0, st, dst, src, n, width);
}
__global__ void k_gather_rows(float *dst, const float *const *src, int64_t n, int64_t width) {
    GRID_LOOP(e, n * width) dst[e] = src[e / width][e % width];
}
void gather_rows(float *dst, const float *const *src, int64_t n, int64_t width, cudaStream_t st) {
    if (n > 0 && width > 0) RMKV_LAUNCH(k_gather_rows, blocks_for(n * width), kThreads, 0, st, dst, src, n, width);
}
// The launches of n_seq stacked sequences, kFusedStack at a time, blocks of
// `tile` queries.
template <class Launch>
void fused_stacked(int64_t nq, int64_t H, int64_t n_seq, int64_t kv_stride, const Dropout *drops, int64_t tile,
                   const Launch &launch) {
    for (int64_t z0 = 0; z0 < n_seq; z0 += kFusedStack) {
        const int64_t nz = std::min<int64_t>(kFusedStack, n_seq - z0);
        const dim3 grid(static_cast<unsigned>((nq + tile - 1) / tile), static_cast<unsigned>(H),
                        static_cast<unsigned>(nz));
        launch(grid, z0 * nq * H, z0 * kv_stride, drops ? drops + z0 : nullptr);
    }
}
bool tc_attention_fits(int64_t hd) { return tc_head_size(hd); }
size_t tc_attention_smem(int64_t hd, bool backward) {
    return sizeof(float) * static_cast<size_t>(tc_smem(hd, backward).total);
}
// Threads, query tile and shared memory of a launch of the fused fp32 kernels or
// the tensor-core ones.
struct AttentionLaunch {
    unsigned threads;
    int64_t tile;
    size_t smem;
};
static AttentionLaunch attention_launch(bool tensor_cores, int64_t hd, int64_t nk, bool backward) {
    if (tensor_cores) return {kTcThreads, kTcQ, tc_attention_smem(hd, backward)};
    return {kFusedWarps * 32, kFusedQ, fused_attention_smem(hd, nk, backward)};
}
void fused_attention_forward(float *out, uint16_t *out16, const float *q, const float *k, const float *v, int64_t nq, int64_t nk,
                             int64_t ldkv, int64_t H, int64_t Hkv, int64_t hd, int64_t visible0, float scale,
                             int64_t n_seq, int64_t kv_stride, const Dropout *drops, bool tensor_cores, cudaStream_t st) {
    if (nq <= 0 || nk <= 0) return;
    const auto kernel = tensor_cores ? k_tc_attention : k_fused_attention;
    const AttentionLaunch L = attention_launch(tensor_cores, hd, nk, false);
    fused_stacked(nq, H, n_seq, kv_stride, drops, L.tile,
                  [&](dim3 grid, int64_t heads_rows, int64_t kv_at, const Dropout *d) {
                      const int64_t at = heads_rows * hd;
                      RMKV_LAUNCH(kernel, grid, L.threads, L.smem, st, out + at, out16 ? out16 + at : nullptr, q + at,
                                  k + kv_at, v + kv_at, nq, nk, ldkv, H / Hkv, hd, visible0, scale, kv_stride, d);
                  });
}
void fused_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                              const float *v, int64_t nq, int64_t nk, int64_t ldkv, int64_t H, int64_t Hkv, int64_t hd,
                              int64_t visible0, float scale, int64_t n_seq, int64_t kv_stride, const Dropout *drops,
                              bool tensor_cores, cudaStream_t st) {
    if (nq <= 0 || nk <= 0) return;
    const auto kernel = tensor_cores ? k_tc_attention_backward : k_fused_attention_backward;
    const AttentionLaunch L = attention_launch(tensor_cores, hd, nk, true);
    fused_stacked(nq, H, n_seq, kv_stride, drops, L.tile,
                  [&](dim3 grid, int64_t heads_rows, int64_t kv_at, const Dropout *d) {
                      const int64_t at = heads_rows * hd;
                      RMKV_LAUNCH(kernel, grid, L.threads, L.smem, st, dq + at, dk + kv_at, dv + kv_at, dout + at,
                                  q + at, k + kv_at, v + kv_at, nq, nk, ldkv, H / Hkv, hd, visible0, scale, kv_stride,
                                  d);
                  });
}
void dropout(float *x, int64_t n, const Dropout *drops, int64_t n_seq, cudaStream_t st, uint16_t *x16) {
    if (n > 0 && n_seq > 0 && drops)
        RMKV_LAUNCH(k_dropout, blocks_for(n * n_seq), kThreads, 0, st, x, n, drops, n_seq, x16);
}
void swiglu_forward(float *h, const float *g, const float *u, int64_t n, uint16_t *h16, cudaStream_t st) {
    if (n > 0) RMKV_LAUNCH(k_swiglu, blocks_for(n), kThreads, 0, st, h, g, u, n, h16);
}
void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n, uint16_t *dg16,
                     uint16_t *du16, cudaStream_t st) {
    if (n > 0) RMKV_LAUNCH(k_swiglu_backward, blocks_for(n), kThreads, 0, st, dg, du, dh, g, u, n, dg16, du16);
}
void gelu_forward(float *h, const float *u, int64_t n, uint16_t *h16, cudaStream_t st) {
    if (n > 0) RMKV_LAUNCH(k_gelu, blocks_for(n), kThreads, 0, st, h, u, n, h16);
}
void gelu_backward(float *du, const float *dh, const float *u, int64_t n, uint16_t *du16, cudaStream_t st) {
    if (n > 0) RMKV_LAUNCH(k_gelu_backward, blocks_for(n), kThreads, 0, st, du, dh, u, n, du16);
}
void cell_forward(CellKind kind, float *m_out, float *c_out, const float *c_in, const float *gi, const float *gh,
                  const float *h, int64_t M, int64_t D, cudaStream_t st) {
    if (M > 0)
        RMKV_LAUNCH(k_cell_forward, blocks_for(M * D), kThreads, 0, st, kind, m_out, c_out, c_in, gi, gh, h, M, D);
}
void cell_backward(CellKind kind, float *dgi, float *dgh, float *dh, float *dc_in, const float *dm, const float *dc_out,
                   const float *c_in, const float *gi, const float *gh, const float *h, int64_t M, int64_t D,
                   uint16_t *dgi16, uint16_t *dgh16, cudaStream_t st) {
    if (M > 0)
        RMKV_LAUNCH(k_cell_backward, blocks_for(M * D), kThreads, 0, st, kind, dgi, dgh, dh, dc_in, dm, dc_out, c_in,
                    gi, gh, h, M, D, dgi16, dgh16);
}
void concat_cols(float *dst, const float *a, const float *b, int64_t M, int64_t D, uint16_t *dst16, cudaStream_t st) {
    if (M > 0) RMKV_LAUNCH(k_concat_cols, blocks_for(M * 2 * D), kThreads, 0, st, dst, a, b, M, D, dst16);
}
void split_cols_add(float *da, float *db, const float *src, int64_t M, int64_t D, cudaStream_t st) {
    if (M > 0) RMKV_LAUNCH(k_split_cols_add, blocks_for(M * 2 * D), kThreads, 0, st, da, db, src, M, D);
}
void cross_entropy(float *dlogits, const float *logits, const int32_t *targets, int64_t rows, int64_t V,
                   const float *scale, double *loss, uint16_t *d16, cudaStream_t st) {
    if (rows > 0)
        RMKV_LAUNCH(k_cross_entropy, static_cast<unsigned>(rows), kThreads, 0, st, dlogits, logits, targets, V, scale,
                    loss, d16);
}
void fill(float *x, float value, size_t n, cudaStream_t st) {
    if (n > 0)
        RMKV_LAUNCH(k_fill, blocks_for(static_cast<int64_t>(n)), kThreads, 0, st, x, value, static_cast<int64_t>(n));
}
void multi_chunks(const std::vector<MultiTensor> &ts, std::vector<MultiChunk> &chunks) {
    chunks.clear();
    for (size_t t = 0; t < ts.size(); ++t)
        for (int64_t b = 0; b < ts[t].n; b += kMultiChunk)
            chunks.push_back({static_cast<int64_t>(t), b, std::min(ts[t].n, b + kMultiChunk)});
}
static unsigned chunk_blocks(int64_t n_chunks, int64_t most) {
    return static_cast<unsigned>(std::max<int64_t>(1, std::min(n_chunks, most)));
}
void sum_squares_many(const MultiTensor *ts, const MultiChunk *chunks, int64_t n_chunks, double *total, cudaStream_t st) {
    if (n_chunks > 0)
        RMKV_LAUNCH(k_sum_squares_many, chunk_blocks(n_chunks, 1024), kThreads, 0, st, ts, chunks, n_chunks, total);
}
void adamw_many(const MultiTensor *ts, const MultiChunk *chunks, int64_t n_chunks, float beta1, float beta2, float eps,
                float step_size, float inv_sqrt_bc2, const float *grad_scale, cudaStream_t st) {
    if (n_chunks > 0)
        RMKV_LAUNCH(k_adamw_many, chunk_blocks(n_chunks, 65535), kThreads, 0, st, ts, chunks, n_chunks, beta1, beta2,
                    eps, step_size, inv_sqrt_bc2, grad_scale);
}
void add_many(const MultiTensor *ts, const MultiChunk *chunks, int64_t n_chunks, cudaStream_t st) {
    if (n_chunks > 0) RMKV_LAUNCH(k_add_many, chunk_blocks(n_chunks, 65535), kThreads, 0, st, ts, chunks, n_chunks);
}
void update_scale(double *acc, float grad_scale, float clip, cudaStream_t st) {
    RMKV_LAUNCH(k_update_scale, 1, 1, 0, st, acc, grad_scale, clip);
}
void adamw(float *p, float *m, float *v, const float *g, size_t n, float beta1, float beta2, float eps, float decay,
           float step_size, float inv_sqrt_bc2, const float *grad_scale, uint16_t *shadow, cudaStream_t st) {
    if (n > 0)
        RMKV_LAUNCH(k_adamw, blocks_for(static_cast<int64_t>(n)), kThreads, 0, st, p, m, v, g, static_cast<int64_t>(n),
                    beta1, beta2, eps, decay, step_size, inv_sqrt_bc2, grad_scale, shadow);
}
void gemv_half(float *y, const float *x, const uint16_t *W, Half h, const float *b, int64_t n, int64_t in, int64_t out,
               bool accumulate, cudaStream_t st) {
    if (n <= 0 || out <= 0) return;
    const unsigned blocks = static_cast<unsigned>((out + kGemvWarps - 1) / kGemvWarps);
    RMKV_LAUNCH(k_gemv_half, blocks, kGemvWarps * 32, sizeof(float) * gemv_half_smem_floats(), st, y, x, W, h, b,
                static_cast<int>(n), in, out, accumulate);
}
void widen_half(float *dst, const uint16_t *src, Half h, int64_t n, cudaStream_t st) {
    if (n > 0) RMKV_LAUNCH(k_widen_half, blocks_for(n), kThreads, 0, st, dst, src, h, n);
}
void embed_half(float *X, const uint16_t *E, Half h, const int32_t *tokens, int64_t n, int64_t d, cudaStream_t st) {
    if (n > 0 && d > 0) RMKV_LAUNCH(k_embed_half, blocks_for(n * d), kThreads, 0, st, X, E, h, tokens, n, d);
}
void to_bf16(uint16_t *dst, const float *src, size_t n, cudaStream_t st) {
    if (n > 0)
        RMKV_LAUNCH(k_to_bf16, blocks_for(static_cast<int64_t>(n)), kThreads, 0, st, dst, src, static_cast<int64_t>(n));
}
inline void fold_arg(Replay &r, const Bf16Table &t) { fold_arg(r, t.part); }  // (replay.h)
void to_bf16_blocks(const Bf16Blocks *parts, int64_t n, cudaStream_t st) {
    for (int64_t k0 = 0; k0 < n; k0 += kBf16Parts) {
        const int m = static_cast<int>(std::min<int64_t>(kBf16Parts, n - k0));
        Bf16Table table{};
        int64_t most = 0;
        for (int k = 0; k < m; ++k) {
            table.part[k] = parts[k0 + k];
            most = std::max(most, table.part[k].count * table.part[k].width);
        }
        if (most > 0) RMKV_LAUNCH(k_to_bf16_blocks, dim3(blocks_for(most), static_cast<unsigned>(m)), kThreads, 0, st, table);
    }
}

}  // namespace rmkv::cuda
