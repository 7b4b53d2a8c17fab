// Attention on the tensor cores, for streams with bf16 attention
// (Backend::set_bf16_attention: bf16 training): the products QK^T, PV and their
// gradients take bf16 inputs with fp32 accumulation (WMMA 16x16x16 fragments),
// softmax, dropout and the running statistics stay in fp32. One CUDA block per
// head, tile of kTcQ queries and stacked sequence (blockIdx.z, as the fused
// kernels of fused_attention.cuh); the keys go by in tiles of kTcK with an
// online softmax, so any number of keys fits.
//
// Like fused_attention.cuh, no warp-level operation but the WMMA calls
// themselves (load / mma / store / fill, each made by the whole warp at the same
// point): threads exchange data through shared memory behind __syncthreads, so
// tests/unit/test_cuda_emulated.cpp runs these lines on CPU threads, with WMMA
// and bf16 written for the host there. The element layout of a fragment is
// never used. Keep it so.
//
// Differences from the fp32 kernels are bf16 rounding of q, k, v, dout, the
// probabilities and the score gradients (relative steps of 2^-8); dk and dv add
// across query tiles and heads with atomics, as the fused kernels do.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <mma.h>
#endif

#include "backend/backend.h"
#include "backend/cuda/fused_attention.cuh"  // fused_block

namespace rmkv::cuda {

constexpr int kTcQ = 64;  // queries per block: 16 per warp
constexpr int kTcK = 64;  // keys per tile
constexpr int kTcWarps = 4;
constexpr int kTcThreads = kTcWarps * 32;
constexpr int64_t kTcMaxHd = 128;

// Head sizes the kernels take: whole 16-column fragments, at most kTcMaxHd.
inline __host__ __device__ bool tc_head_size(int64_t hd) { return hd > 0 && hd <= kTcMaxHd && hd % 16 == 0; }

// Shared memory, in floats from its first 128-byte boundary (WMMA's fragment
// pointers are 32-byte aligned: every buffer starts on a 128-byte boundary, and
// every row stride below keeps 16-row and 16-column steps on 32-byte ones):
//   bf16 [kTcQ][hd + 8]: q (backward: and dout)
//   bf16 [kTcK][hd + 8]: the key and value tiles
//   bf16 [kTcQ][kTcK + 8]: probabilities (backward: and score gradients)
//   fp32 [kTcQ][max(kTcK, hd) + 4]: scores (backward: and dout . v; both also
//        hold a tile's dk and dv rows before they are added)
//   fp32 [kTcQ][hd + 4]: the output rows (backward: dq), forward and backward
//   fp32 6 x kTcQ + 2 x kTcThreads: row statistics and reductions.
struct TcSmem {
    int64_t ldh, ldp, lds, ldo;  // row strides: bf16 tiles, probabilities, scores, outputs
    int64_t q, kv, p, s, o, stats, total;  // offsets in floats from the aligned base; total with the alignment
};
inline __host__ __device__ TcSmem tc_smem(int64_t hd, bool backward) {
    TcSmem m;
    const int64_t n = backward ? 2 : 1;
    m.ldh = hd + 8;
    m.ldp = kTcK + 8;
    m.lds = (hd > kTcK ? hd : kTcK) + 4;
    m.ldo = hd + 4;
    m.q = 0;
    m.kv = m.q + n * kTcQ * m.ldh / 2;
    m.p = m.kv + 2 * kTcK * m.ldh / 2;
    m.s = m.p + n * kTcQ * m.ldp / 2;
    m.o = m.s + n * kTcQ * m.lds;
    m.stats = m.o + kTcQ * m.ldo;
    m.total = m.stats + 6 * kTcQ + 2 * kTcThreads + 32;
    return m;
}

using tc_bf16 = __nv_bfloat16;

// The shared memory's first 128-byte boundary (tc_smem counts 32 floats for it).
inline __device__ float *tc_base(float *sm) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(sm);
    return reinterpret_cast<float *>((a + 127) & ~static_cast<uintptr_t>(127));
}

// dst[r][d] = src[r * ld + d] for r < rows, 0 for the rows up to `all`, d < hd.
inline __device__ void tc_load(tc_bf16 *dst, int64_t ldd, const float *src, int64_t ld, int64_t rows, int64_t all,
                               int64_t hd) {
    const int w = static_cast<int>(hd), n = static_cast<int>(all) * w;  // (32-bit index arithmetic: a tile)
    for (int e = threadIdx.x; e < n; e += blockDim.x) {
        const int r = e / w, d = e - r * w;
        dst[r * ldd + d] = __float2bfloat16_rn(r < rows ? src[r * ld + d] : 0.0f);
    }
}

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800  // bf16 WMMA (the kernels below trap before sm_80)
// C[16w .. 16w + 16][0 .. keys) = A[16w ..][0 .. hd) B[0 .. keys)[0 .. hd)^T for warp w:
// the scores of the warp's 16 rows against a tile of keys (B's rows), in
// columns of 16 (the columns past the last one that holds a key are left as
// they were).
inline __device__ void tc_rows_times_tile(float *C, int64_t ldc, const tc_bf16 *A, const tc_bf16 *B, int64_t ldh,
                                          int64_t hd, int64_t keys) {
    namespace wmma = nvcuda::wmma;
    const int warp = threadIdx.x >> 5;
    for (int c = 0; c * 16 < keys; ++c) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int64_t kk = 0; kk < hd; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, tc_bf16, wmma::row_major> a;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, tc_bf16, wmma::col_major> b;
            wmma::load_matrix_sync(a, A + warp * 16 * ldh + kk, static_cast<unsigned>(ldh));
            wmma::load_matrix_sync(b, B + c * 16 * ldh + kk, static_cast<unsigned>(ldh));
            wmma::mma_sync(acc, a, b, acc);
        }
        wmma::store_matrix_sync(C + warp * 16 * ldc + c * 16, acc, static_cast<unsigned>(ldc), wmma::mem_row_major);
    }
}

// O[16w ..][0 .. hd) += P[16w ..][0 .. keys) V[0 .. keys)[0 .. hd) for warp w
// (O fp32 in shared memory, P and V bf16).
inline __device__ void tc_add_rows_times_tile(float *O, int64_t ldo, const tc_bf16 *P, int64_t ldp, const tc_bf16 *V,
                                              int64_t ldh, int64_t hd, int64_t keys) {
    namespace wmma = nvcuda::wmma;
    const int warp = threadIdx.x >> 5;
    for (int64_t c = 0; c < hd; c += 16) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::load_matrix_sync(acc, O + warp * 16 * ldo + c, static_cast<unsigned>(ldo), wmma::mem_row_major);
        for (int64_t kk = 0; kk < keys; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, tc_bf16, wmma::row_major> a;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, tc_bf16, wmma::row_major> b;
            wmma::load_matrix_sync(a, P + warp * 16 * ldp + kk, static_cast<unsigned>(ldp));
            wmma::load_matrix_sync(b, V + kk * ldh + c, static_cast<unsigned>(ldh));
            wmma::mma_sync(acc, a, b, acc);
        }
        wmma::store_matrix_sync(O + warp * 16 * ldo + c, acc, static_cast<unsigned>(ldo), wmma::mem_row_major);
    }
}

// C[16w ..][0 .. hd) = G[0 .. kTcQ)[16w ..]^T X[0 .. kTcQ)[0 .. hd) for warp w: a
// tile's key rows 16w .. 16w + 16 of dk (G = score gradients, X = q) or dv (G =
// dropped probabilities, X = dout), fp32 in shared memory.
inline __device__ void tc_tile_t_times_rows(float *C, int64_t ldc, const tc_bf16 *G, int64_t ldp, const tc_bf16 *X,
                                            int64_t ldh, int64_t hd) {
    namespace wmma = nvcuda::wmma;
    const int warp = threadIdx.x >> 5;
    for (int64_t c = 0; c < hd; c += 16) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int64_t kk = 0; kk < kTcQ; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, tc_bf16, wmma::col_major> a;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, tc_bf16, wmma::row_major> b;
            wmma::load_matrix_sync(a, G + kk * ldp + warp * 16, static_cast<unsigned>(ldp));
            wmma::load_matrix_sync(b, X + kk * ldh + c, static_cast<unsigned>(ldh));
            wmma::mma_sync(acc, a, b, acc);
        }
        wmma::store_matrix_sync(C + warp * 16 * ldc + c, acc, static_cast<unsigned>(ldc), wmma::mem_row_major);
    }
}

#endif

// The element-wise phases give thread t half a row of a tile: row t / 2, columns
// (t % 2) * 32 .. + 32, its i-th (i < 32) at tc_column(t, i). The order is
// skewed so that a warp's 32 threads read 32 banks at each i: their rows step
// the address by lds = 4 or 20 (mod 32 words), which puts rows r and r + 8 on
// one bank, and the skew (r / 8 + 2 (t % 2)) separates them.
inline __device__ int tc_column(int t, int i) {
    const int half = t & 1, r = (t >> 1) & 15;
    return half * 32 + ((i + (r >> 3) + 2 * half) & 31);
}

// The scores of one key tile (kt .. kt + keys) in S, scaled, to exponentials
// against the rows' running maxima: thread t takes half a row (row t / 2,
// columns (t % 2) * 32 ..). Hidden keys (past the row's last, or the tile's)
// become 0. The row's new maximum goes to m[kTcQ + row] and the factor that
// brings its old sums to it to alpha[row]. The thread's partial sums of e go to
// red[t], and with dout . v in G (backward's first pass) those of e g, g being
// its dropout-scaled value, to red[kTcThreads + t].
inline __device__ void tc_exp_tile(float *S, float *G, int64_t lds, float *m, float *alpha, float *red,
                                   const FusedBlock &b, int64_t nq, int64_t nk, int64_t kt, int64_t keys, float scale,
                                   const Dropout &drop) {
    const int t = threadIdx.x, row = t >> 1;
    const int64_t last = b.first + row;  // the row sees keys 0 .. last
    float *s = S + row * lds;
    float mx = -INFINITY;
    for (int i = 0; i < 32; ++i) {
        const int c = tc_column(t, i);
        const int64_t j = kt + c;
        const float x = c < keys && j <= last ? s[c] * scale : -INFINITY;
        s[c] = x;
        mx = fmaxf(mx, x);
    }
    red[t] = mx;
    __syncthreads();
    const float m_old = m[row], m_new = fmaxf(m_old, fmaxf(red[row * 2], red[row * 2 + 1]));
    __syncthreads();  // every thread has read red and m
    float l = 0.0f, r = 0.0f;
    const bool dropping = G && drop.on();
    const uint64_t base = static_cast<uint64_t>((b.h * nq + b.i0 + row) * nk);
    for (int i = 0; i < 32; ++i) {
        const int c = tc_column(t, i);
        const float e = s[c] == -INFINITY ? 0.0f : expf(s[c] - m_new);
        s[c] = e;
        l += e;
        if (G && e != 0.0f) {  // (G past the tile's computed columns holds anything)
            float g = G[row * lds + c];
            if (dropping) g *= drop.factor(base + static_cast<uint64_t>(kt + c));
            r += e * g;
        }
    }
    red[t] = l;
    red[kTcThreads + t] = r;
    if ((t & 1) == 0) {
        m[kTcQ + row] = m_new;  // m_new, read by the caller after its synchronisation
        alpha[row] = m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
    }
    __syncthreads();
}

__global__ void __launch_bounds__(kTcThreads)
    k_tc_attention(float *out, uint16_t *out16, const float *q, const float *k, const float *v, int64_t nq, int64_t nk,
                   int64_t ldkv, int64_t group, int64_t hd, int64_t visible0, float scale, int64_t kv_stride,
                   const Dropout *drops) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    __trap();  // bf16 WMMA needs sm_80; the backend never launches this below it (supports_bf16)
#else
    extern __shared__ float sm[];
    const FusedBlock b = fused_block(nq, nk, visible0, group, hd, kv_stride, drops, kTcQ);
    const int64_t D = b.D, at = b.at;
    const Dropout drop = b.drop;
    k += b.kv, v += b.kv;
    const TcSmem L = tc_smem(hd, false);
    float *base = tc_base(sm);
    tc_bf16 *qs = reinterpret_cast<tc_bf16 *>(base + L.q), *ks = reinterpret_cast<tc_bf16 *>(base + L.kv);
    tc_bf16 *vs = ks + kTcK * L.ldh, *ps = reinterpret_cast<tc_bf16 *>(base + L.p);
    float *S = base + L.s, *O = base + L.o, *m = base + L.stats, *l = m + 2 * kTcQ, *alpha = l + kTcQ;
    float *red = alpha + kTcQ;  // 2 x kTcThreads (the statistics' last 2 x kTcQ and beyond)
    const int t = threadIdx.x;
    tc_load(qs, L.ldh, q + at, D, b.nb, kTcQ, hd);
    const int w = static_cast<int>(hd);  // (32-bit index arithmetic in the tile loops)
    for (int e = t; e < kTcQ * w; e += kTcThreads) O[(e / w) * L.ldo + e % w] = 0.0f;
    if (t < kTcQ) m[t] = -INFINITY, l[t] = 0.0f;
    for (int64_t kt = 0; kt < b.nv; kt += kTcK) {
        const int64_t keys = min(static_cast<int64_t>(kTcK), b.nv - kt);
        __syncthreads();  // the previous tile is done with ks, vs, ps and S
        tc_load(ks, L.ldh, k + kt * ldkv, ldkv, keys, kTcK, hd);
        tc_load(vs, L.ldh, v + kt * ldkv, ldkv, keys, kTcK, hd);
        __syncthreads();
        tc_rows_times_tile(S, L.lds, qs, ks, L.ldh, hd, keys);
        __syncthreads();
        tc_exp_tile(S, nullptr, L.lds, m, alpha, red, b, nq, nk, kt, keys, scale, drop);
        // Probabilities (dropped) to bf16, the running sums and the output rows
        // brought to the new maxima.
        const int row = t >> 1;
        const uint64_t rbase = static_cast<uint64_t>((b.h * nq + b.i0 + row) * nk);
        for (int i = 0; i < 32; ++i) {
            const int c = tc_column(t, i);
            float p = S[row * L.lds + c];
            if (drop.on() && p != 0.0f) p *= drop.factor(rbase + static_cast<uint64_t>(kt + c));
            ps[row * L.ldp + c] = __float2bfloat16_rn(p);
        }
        if (t < kTcQ) l[t] = l[t] * alpha[t] + red[2 * t] + red[2 * t + 1], m[t] = m[kTcQ + t];
        for (int e = t; e < kTcQ * w; e += kTcThreads) {
            const int r = e / w;
            O[r * L.ldo + e - r * w] *= alpha[r];
        }
        __syncthreads();
        tc_add_rows_times_tile(O, L.ldo, ps, L.ldp, vs, L.ldh, hd, keys);
    }
    __syncthreads();
    for (int e = t; e < b.nb * w; e += kTcThreads) {
        const int r = e / w, d = e - r * w;
        const float o = l[r] > 0.0f ? O[r * L.ldo + d] / l[r] : 0.0f;  // (no key seen: as the CPU, 0)
        out[at + r * D + d] = o;
        if (out16) out16[at + r * D + d] = bf16_bits(o);
    }
#endif
}

// dq = ..; dk += ..; dv += .. Two passes over the key tiles: the first finds
// each row's maximum, sum and r = sum_j p_j g_j (g: dout . v_j, dropout-scaled),
// the second recomputes the probabilities and takes dS = p (g - r) scale.
__global__ void __launch_bounds__(kTcThreads)
    k_tc_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                            const float *v, int64_t nq, int64_t nk, int64_t ldkv, int64_t group, int64_t hd,
                            int64_t visible0, float scale, int64_t kv_stride, const Dropout *drops) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    __trap();
#else
    extern __shared__ float sm[];
    const FusedBlock b = fused_block(nq, nk, visible0, group, hd, kv_stride, drops, kTcQ);
    const int64_t D = b.D, at = b.at;
    const Dropout drop = b.drop;
    k += b.kv, v += b.kv, dk += b.kv, dv += b.kv;
    const TcSmem L = tc_smem(hd, true);
    float *base = tc_base(sm);
    tc_bf16 *qs = reinterpret_cast<tc_bf16 *>(base + L.q), *dos = qs + kTcQ * L.ldh;
    tc_bf16 *ks = reinterpret_cast<tc_bf16 *>(base + L.kv), *vs = ks + kTcK * L.ldh;
    tc_bf16 *ps = reinterpret_cast<tc_bf16 *>(base + L.p), *dss = ps + kTcQ * L.ldp;
    float *S = base + L.s, *G = S + kTcQ * L.lds, *dQ = base + L.o;
    float *m = base + L.stats, *l = m + 2 * kTcQ, *r = l + kTcQ, *alpha = r + kTcQ;  // alpha: kTcQ, then red
    float *red = alpha + kTcQ;
    const int t = threadIdx.x, row = t >> 1;
    tc_load(qs, L.ldh, q + at, D, b.nb, kTcQ, hd);
    tc_load(dos, L.ldh, dout + at, D, b.nb, kTcQ, hd);
    const int w = static_cast<int>(hd);  // (32-bit index arithmetic in the tile loops)
    for (int e = t; e < kTcQ * w; e += kTcThreads) dQ[(e / w) * L.ldo + e % w] = 0.0f;
    if (t < kTcQ) m[t] = -INFINITY, l[t] = 0.0f, r[t] = 0.0f;
    for (int pass = 0; pass < 2; ++pass) {
        for (int64_t kt = 0; kt < b.nv; kt += kTcK) {
            const int64_t keys = min(static_cast<int64_t>(kTcK), b.nv - kt);
            __syncthreads();  // the previous tile is done with ks, vs, ps, dss, S and G
            tc_load(ks, L.ldh, k + kt * ldkv, ldkv, keys, kTcK, hd);
            tc_load(vs, L.ldh, v + kt * ldkv, ldkv, keys, kTcK, hd);
            __syncthreads();
            tc_rows_times_tile(S, L.lds, qs, ks, L.ldh, hd, keys);
            tc_rows_times_tile(G, L.lds, dos, vs, L.ldh, hd, keys);
            __syncthreads();
            if (pass == 0) {
                // The exponentials against the running maxima; red: their sums and
                // the sums of e g, per half row.
                tc_exp_tile(S, G, L.lds, m, alpha, red, b, nq, nk, kt, keys, scale, drop);
                if (t < kTcQ) {
                    l[t] = l[t] * alpha[t] + red[2 * t] + red[2 * t + 1];
                    r[t] = r[t] * alpha[t] + red[kTcThreads + 2 * t] + red[kTcThreads + 2 * t + 1];
                    m[t] = m[kTcQ + t];
                }
                continue;
            }
            // Second pass: m, l and r are final (r already divided by l).
            const int64_t last = b.first + row;
            const uint64_t rbase = static_cast<uint64_t>((b.h * nq + b.i0 + row) * nk);
            const float mr = m[row], inv = 1.0f / l[row], rr = r[row];
            for (int i = 0; i < 32; ++i) {
                const int c = tc_column(t, i);
                const int64_t j = kt + c;
                float p = 0.0f, g = 0.0f, f = 1.0f;
                if (c < keys && j <= last) {
                    p = expf(S[row * L.lds + c] * scale - mr) * inv;
                    if (drop.on()) f = drop.factor(rbase + static_cast<uint64_t>(j));
                    g = G[row * L.lds + c] * f;
                }
                dss[row * L.ldp + c] = __float2bfloat16_rn(p * (g - rr) * scale);
                ps[row * L.ldp + c] = __float2bfloat16_rn(p * f);
            }
            __syncthreads();
            // dq rows += dS K; the tile's dk rows = dS^T q and dv rows = p^T dout
            // (in S and G, no longer needed), then added to the device's.
            tc_add_rows_times_tile(dQ, L.ldo, dss, L.ldp, ks, L.ldh, hd, keys);
            tc_tile_t_times_rows(S, L.lds, dss, L.ldp, qs, L.ldh, hd);
            tc_tile_t_times_rows(G, L.lds, ps, L.ldp, dos, L.ldh, hd);
            __syncthreads();
            for (int e = t; e < static_cast<int>(keys) * w; e += kTcThreads) {
                const int j = e / w, d = e - j * w;
                atomicAdd(dk + (kt + j) * ldkv + d, S[j * L.lds + d]);
                atomicAdd(dv + (kt + j) * ldkv + d, G[j * L.lds + d]);
            }
        }
        if (pass == 0) {
            __syncthreads();
            if (t < kTcQ) r[t] = l[t] > 0.0f ? r[t] / l[t] : 0.0f;
        }
    }
    __syncthreads();
    for (int e = t; e < b.nb * w; e += kTcThreads) {
        const int i = e / w, d = e - i * w;
        dq[at + i * D + d] = dQ[i * L.ldo + d];
    }
#endif
}

}  // namespace rmkv::cuda
