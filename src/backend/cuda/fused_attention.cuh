// The fused attention kernels of the CUDA backend, and its kernel of sessions
// decoded together (launched from cuda_kernels.cu).
// Plain CUDA without warp-level operations (no shuffles, votes or warp-synchronous
// shared memory): every exchange between threads goes through shared memory
// behind __syncthreads, or through atomicAdd. That is what lets
// tests/unit/test_cuda_emulated.cpp run these same lines on CPU threads, one per
// CUDA thread with a barrier for __syncthreads, against the CPU backend's
// kernels on machines without a GPU. Keep it so.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace rmkv::cuda {

// ---- fused attention: one CUDA block per head, block of 32 queries and sequence ----
// The queries lie along the lanes (lane i: query i0 + i); the block's score
// column of every key it sees (memory slots + segment: attention never crosses
// a segment) stays in shared memory as P^T [nv, 32], so the softmax needs no
// second pass over the keys, and keys past the block's last query are never
// touched. The layout follows the CPU's fused kernel (cpu_attention.cpp).
constexpr int kFusedQ = 32;
constexpr int kFusedWarps = 8;

// Stacked sequences (Backend::attention_stacked): blockIdx.z is the sequence, its
// rows of q, out, dq and dout follow the previous sequence's (nq rows of D), its
// rows of k, v, dk and dv start z * kv_stride later, and its dropout is drops[z]
// (device memory, as the backend stages it: a recorded step's launches keep their
// arguments when the masks change; NULL: none). A launch takes up to kFusedStack
// sequences.
constexpr int kFusedStack = 16;

// A block's place (blockIdx: x the tile of `tile` queries, y the head, z the
// stacked sequence), for these kernels and those of tensor_attention.cuh.
struct FusedBlock {
    int64_t h, i0, nv, first;  // first: the block's first query sees keys 0 .. first
    int nb;                    // queries in the block (the last one may be short)
    int64_t D, at;             // row width of q / out; the block's first element of them
    int64_t kv;                // its kv head's first element in k, v, dk and dv
    Dropout drop;              // its sequence's
};
inline __device__ FusedBlock fused_block(int64_t nq, int64_t nk, int64_t visible0, int64_t group, int64_t hd,
                                         int64_t kv_stride, const Dropout *drops, int64_t tile) {
    FusedBlock b;
    const int64_t z = blockIdx.z;
    b.h = blockIdx.y;
    b.i0 = static_cast<int64_t>(blockIdx.x) * tile;
    b.nb = static_cast<int>(min(tile, nq - b.i0));
    b.nv = min(nk, visible0 + b.i0 + b.nb);
    b.first = visible0 + b.i0;
    b.D = gridDim.y * hd;
    b.at = (z * nq + b.i0) * b.D + b.h * hd;
    b.kv = z * kv_stride + (b.h / group) * hd;
    b.drop = drops ? drops[z] : Dropout{};
    return b;
}

// rows[i * (hd + 1) + d] = src[i * ld + d] for i < nb, 0 for the other rows. The
// odd row stride keeps both lane-per-row and lane-per-column reads free of bank
// conflicts.
inline __device__ void fused_load_rows(float *rows, const float *src, int64_t ld, int nb, int64_t hd) {
    for (int64_t x = threadIdx.x; x < kFusedQ * hd; x += blockDim.x) {
        const int64_t i = x / hd, d = x % hd;
        rows[i * (hd + 1) + d] = i < nb ? src[i * ld + d] : 0.0f;
    }
}

// col[j * 32 + lane] = rows[lane] . kv[j] for j < nv; warp w takes the keys j = w (mod 8).
inline __device__ void fused_dots(float *col, const float *rows, const float *kv, int64_t ldkv, int64_t nv, int64_t hd) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const float *r = rows + lane * (hd + 1);
    for (int64_t j = warp; j < nv; j += kFusedWarps) {
        const float *kj = kv + j * ldkv;
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;  // four chains of FMAs, not one
        int64_t d = 0;
        for (; d + 4 <= hd; d += 4) {
            s0 = fmaf(r[d], __ldg(kj + d), s0);
            s1 = fmaf(r[d + 1], __ldg(kj + d + 1), s1);
            s2 = fmaf(r[d + 2], __ldg(kj + d + 2), s2);
            s3 = fmaf(r[d + 3], __ldg(kj + d + 3), s3);
        }
        for (; d < hd; ++d) s0 = fmaf(r[d], __ldg(kj + d), s0);
        col[j * kFusedQ + lane] = (s0 + s1) + (s2 + s3);
    }
}

// Scores to probabilities: each column (query) softmaxed over its visible rows
// (lane i sees the keys j <= first + i), scaled; hidden entries 0. red: 8 x 32
// floats. Ends with the block synchronised.
inline __device__ void fused_softmax(float *col, float *red, int64_t nv, int64_t first, float scale) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float m = -INFINITY;
    for (int64_t j = warp; j < nv; j += kFusedWarps) {
        const float x = j <= first + lane ? col[j * kFusedQ + lane] * scale : -INFINITY;
        col[j * kFusedQ + lane] = x;
        m = fmaxf(m, x);
    }
    red[warp * 32 + lane] = m;
    __syncthreads();
    m = red[lane];
    for (int w = 1; w < kFusedWarps; ++w) m = fmaxf(m, red[w * 32 + lane]);
    __syncthreads();  // every thread has read red before it is written again
    float l = 0.0f;
    for (int64_t j = warp; j < nv; j += kFusedWarps) {
        const float e = expf(col[j * kFusedQ + lane] - m);  // hidden: expf(-inf) = 0
        col[j * kFusedQ + lane] = e;
        l += e;
    }
    red[warp * 32 + lane] = l;
    __syncthreads();
    l = 0.0f;
    for (int w = 0; w < kFusedWarps; ++w) l += red[w * 32 + lane];
    const float inv = 1.0f / l;
    for (int64_t j = warp; j < nv; j += kFusedWarps) col[j * kFusedQ + lane] *= inv;
    __syncthreads();
}

// out[i * ldo + d] = sum_{j < nv} col[j * 32 + i] kv[j * ldkv + d] for i < nb and
// d < hd <= 128 (and its bf16 bits at the same place of out16, when given): warp
// w takes the queries w, w + 8, w + 16, w + 24, lane the columns lane, lane + 32, ...
inline __device__ void fused_cols_times_rows(float *out, int64_t ldo, const float *col, const float *kv, int64_t ldkv,
                                      int64_t nv, int nb, int64_t hd, uint16_t *out16 = nullptr) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float acc[4][4] = {};
    for (int64_t j = 0; j < nv; ++j) {
        float x[4];
#pragma unroll
        for (int c = 0; c < 4; ++c) x[c] = c * 32 + lane < hd ? __ldg(kv + j * ldkv + c * 32 + lane) : 0.0f;
#pragma unroll
        for (int t = 0; t < 4; ++t) {
            const float p = col[j * kFusedQ + warp + kFusedWarps * t];
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[t][c] = fmaf(p, x[c], acc[t][c]);
        }
    }
#pragma unroll
    for (int t = 0; t < 4; ++t) {
        const int i = warp + kFusedWarps * t;
        if (i >= nb) continue;
#pragma unroll
        for (int c = 0; c < 4; ++c)
            if (c * 32 + lane < hd) {
                out[i * ldo + c * 32 + lane] = acc[t][c];
                if (out16) out16[i * ldo + c * 32 + lane] = bf16_bits(acc[t][c]);
            }
    }
}

// dst[j * ldkv + d] += sum_{i < nb} col[j * 32 + i] rows[i][d] for j < nv, d < hd
// (atomically: the blocks of the other queries and heads of the group add to the
// same rows, in an order that varies from run to run).
inline __device__ void fused_add_cols_rows(float *dst, int64_t ldkv, const float *col, const float *rows, int64_t nv, int nb,
                                    int64_t hd) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int64_t j = warp; j < nv; j += kFusedWarps) {
        float acc[4] = {};
        for (int i = 0; i < nb; ++i) {
            const float p = col[j * kFusedQ + i];
            const float *r = rows + i * (hd + 1);
#pragma unroll
            for (int c = 0; c < 4; ++c)
                if (c * 32 + lane < hd) acc[c] = fmaf(p, r[c * 32 + lane], acc[c]);
        }
#pragma unroll
        for (int c = 0; c < 4; ++c)
            if (c * 32 + lane < hd) atomicAdd(dst + j * ldkv + c * 32 + lane, acc[c]);
    }
}

// Shared memory: the block's queries (backward: and dout rows) [32][hd + 1], P^T
// (backward: and dP^T) [nk][32], and 8 x 32 for the reductions.
inline __host__ __device__ int64_t fused_smem_floats(int64_t hd, int64_t nk, bool backward) {
    const int64_t n = backward ? 2 : 1;
    return n * kFusedQ * (hd + 1) + n * nk * kFusedQ + kFusedWarps * 32;
}

__global__ void __launch_bounds__(kFusedWarps * 32)
    k_fused_attention(float *out, uint16_t *out16, const float *q, const float *k, const float *v, int64_t nq, int64_t nk,
                      int64_t ldkv, int64_t group, int64_t hd, int64_t visible0, float scale, int64_t kv_stride,
                      const Dropout *drops) {
    extern __shared__ float sm[];
    const FusedBlock b = fused_block(nq, nk, visible0, group, hd, kv_stride, drops, kFusedQ);
    const int64_t D = b.D, at = b.at;
    const Dropout drop = b.drop;
    k += b.kv, v += b.kv;
    float *qs = sm, *pt = qs + kFusedQ * (hd + 1), *red = pt + nk * kFusedQ;
    fused_load_rows(qs, q + at, D, b.nb, hd);
    __syncthreads();
    fused_dots(pt, qs, k, ldkv, b.nv, hd);
    fused_softmax(pt, red, b.nv, b.first, scale);
    if (drop.on()) {
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        const int64_t row = b.h * nq + b.i0 + lane;
        if (lane < b.nb)
            for (int64_t j = warp; j < b.nv; j += kFusedWarps)
                pt[j * kFusedQ + lane] *= drop.factor(static_cast<uint64_t>(row * nk + j));
        __syncthreads();
    }
    fused_cols_times_rows(out + at, D, pt, v, ldkv, b.nv, b.nb, hd, out16 ? out16 + at : nullptr);
}

// dq = ..; dk += ..; dv += .. (the probabilities recomputed as the forward made them).
__global__ void __launch_bounds__(kFusedWarps * 32)
    k_fused_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                               const float *v, int64_t nq, int64_t nk, int64_t ldkv, int64_t group, int64_t hd,
                               int64_t visible0, float scale, int64_t kv_stride, const Dropout *drops) {
    extern __shared__ float sm[];
    const FusedBlock b = fused_block(nq, nk, visible0, group, hd, kv_stride, drops, kFusedQ);
    const int64_t D = b.D, at = b.at;
    const Dropout drop = b.drop;
    k += b.kv, v += b.kv, dk += b.kv, dv += b.kv;
    float *qs = sm, *dos = qs + kFusedQ * (hd + 1), *pt = dos + kFusedQ * (hd + 1), *dpt = pt + nk * kFusedQ;
    float *red = dpt + nk * kFusedQ;
    fused_load_rows(qs, q + at, D, b.nb, hd);
    fused_load_rows(dos, dout + at, D, b.nb, hd);
    __syncthreads();
    fused_dots(pt, qs, k, ldkv, b.nv, hd);
    fused_dots(dpt, dos, v, ldkv, b.nv, hd);  // dout . v_j: the gradient of the dropped probabilities
    fused_softmax(pt, red, b.nv, b.first, scale);
    // Per query: dP *= f (dropout), r = sum_j p_j dP_j, then dS = p (dP - r) scale
    // in place of dP and p *= f (the weights of dv).
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const bool dropping = drop.on() && lane < b.nb;
    const int64_t row = b.h * nq + b.i0 + lane;
    float r = 0.0f;
    for (int64_t j = warp; j < b.nv; j += kFusedWarps) {
        float g = dpt[j * kFusedQ + lane];
        if (dropping) g *= drop.factor(static_cast<uint64_t>(row * nk + j));
        dpt[j * kFusedQ + lane] = g;
        r += pt[j * kFusedQ + lane] * g;
    }
    red[warp * 32 + lane] = r;
    __syncthreads();
    r = 0.0f;
    for (int w = 0; w < kFusedWarps; ++w) r += red[w * 32 + lane];
    for (int64_t j = warp; j < b.nv; j += kFusedWarps) {
        const float p = pt[j * kFusedQ + lane];
        dpt[j * kFusedQ + lane] = p * (dpt[j * kFusedQ + lane] - r) * scale;
        if (dropping) pt[j * kFusedQ + lane] = p * drop.factor(static_cast<uint64_t>(row * nk + j));
    }
    __syncthreads();
    fused_cols_times_rows(dq + at, D, dpt, k, ldkv, b.nv, b.nb, hd);
    fused_add_cols_rows(dk, ldkv, dpt, qs, b.nv, b.nb, hd);
    fused_add_cols_rows(dv, ldkv, pt, dos, b.nv, b.nb, hd);
}

// ---- decoding rows together (Backend::decode_attention) ----
// One CUDA block per row and query head. The block rotates its head of q and of
// the row's new key in shared memory (the CUDA rope kernel's arithmetic), writes
// its q head back, and the first head of each kv group writes the new key and
// value into the row's cache. The block's own copies of them serve as the cache's
// last row, so no block reads a row another block writes. Then the scores of every
// key (one thread per key), the softmax (block reductions), and out = p v with
// the threads split into kDecodeThreads / hd groups of keys by hd columns.
constexpr int kDecodeThreads = 128;  // also the largest head size the kernel takes

// Shared memory: q, the new key and the new value [hd] each, the scores [max_nv],
// and kDecodeThreads for the reductions.
inline __host__ __device__ int64_t decode_smem_floats(int64_t hd, int64_t max_nv) {
    return 3 * hd + max_nv + kDecodeThreads;
}

// The dot product of a [hd] with b [hd] (any memory), four chains of FMAs.
inline __device__ float decode_dot(const float *a, const float *b, int64_t hd) {
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    int64_t d = 0;
    for (; d + 4 <= hd; d += 4) {
        s0 = fmaf(a[d], b[d], s0);
        s1 = fmaf(a[d + 1], b[d + 1], s1);
        s2 = fmaf(a[d + 2], b[d + 2], s2);
        s3 = fmaf(a[d + 3], b[d + 3], s3);
    }
    for (; d < hd; ++d) s0 = fmaf(a[d], b[d], s0);
    return (s0 + s1) + (s2 + s3);
}

// rows NULL: one row, `single` (passed by value). store false: q and the caches
// are only read (Backend::attention of one query row over a cache whose last row
// `at` already holds its key and value, given as k and v).
__global__ void __launch_bounds__(kDecodeThreads)
    k_decode_attention(float *out, float *q, const float *k, const float *v, const CacheRow *rows, CacheRow single,
                       int64_t group, int64_t hd, bool rope, float theta, float scale, bool store) {
    extern __shared__ float sm[];
    const int64_t i = blockIdx.x, h = blockIdx.y, kvh = h / group;
    const int64_t D = gridDim.y * hd, Dkv = (gridDim.y / group) * hd;
    const CacheRow r = rows ? rows[i] : single;
    const int64_t nv = r.at + 1;
    const int t = threadIdx.x, T = blockDim.x;
    float *qs = sm, *ks = qs + hd, *vs = ks + hd, *p = vs + hd, *red = p + nv;
    float *qh = q + i * D + h * hd;
    const int64_t kv_at = i * Dkv + kvh * hd;
    for (int64_t d = t; d < hd; d += T) qs[d] = qh[d], ks[d] = k[kv_at + d], vs[d] = v[kv_at + d];
    __syncthreads();
    if (rope) {  // pairs (j, j + hd/2), one thread each
        const int64_t half = hd / 2;
        for (int64_t j = t; j < half; j += T) {
            const double angle = static_cast<double>(r.pos) *
                                 pow(static_cast<double>(theta), -2.0 * static_cast<double>(j) / static_cast<double>(hd));
            const float c = static_cast<float>(cos(angle)), s = static_cast<float>(sin(angle));
            float a = qs[j], b = qs[j + half];
            qs[j] = a * c - b * s, qs[j + half] = b * c + a * s;
            a = ks[j], b = ks[j + half];
            ks[j] = a * c - b * s, ks[j + half] = b * c + a * s;
        }
        __syncthreads();
    }
    for (int64_t d = t; store && d < hd; d += T) {
        qh[d] = qs[d];
        if (h % group == 0) r.keys[r.at * Dkv + kvh * hd + d] = ks[d], r.values[r.at * Dkv + kvh * hd + d] = vs[d];
    }
    const float *kc = r.keys + kvh * hd, *vc = r.values + kvh * hd;
    float m = -INFINITY;
    for (int64_t j = t; j < nv; j += T) {
        const float x = decode_dot(qs, j == r.at ? ks : kc + j * Dkv, hd) * scale;
        p[j] = x;
        m = fmaxf(m, x);
    }
    red[t] = m;
    __syncthreads();
    m = red[0];
    for (int w = 1; w < T; ++w) m = fmaxf(m, red[w]);
    __syncthreads();  // every thread has read red before it is written again
    float l = 0.0f;
    for (int64_t j = t; j < nv; j += T) {
        const float e = expf(p[j] - m);
        p[j] = e;
        l += e;
    }
    red[t] = l;
    __syncthreads();
    l = 0.0f;
    for (int w = 0; w < T; ++w) l += red[w];
    __syncthreads();
    // out: thread t = g * hd + d (g < G) sums the keys j = g (mod G) of column d.
    const int64_t G = T / hd, g = t / hd, d = t % hd;
    float a0 = 0.0f, a1 = 0.0f;
    if (g < G) {
        int64_t j = g;
        for (; j + G < nv; j += 2 * G) {
            a0 = fmaf(p[j], j == r.at ? vs[d] : vc[j * Dkv + d], a0);
            a1 = fmaf(p[j + G], j + G == r.at ? vs[d] : vc[(j + G) * Dkv + d], a1);
        }
        if (j < nv) a0 = fmaf(p[j], j == r.at ? vs[d] : vc[j * Dkv + d], a0);
    }
    red[t] = a0 + a1;
    __syncthreads();
    if (t < hd) {
        float o = 0.0f;
        for (int64_t gg = 0; gg < G; ++gg) o += red[gg * hd + t];
        out[i * D + h * hd + t] = o / l;
    }
}

}  // namespace rmkv::cuda
