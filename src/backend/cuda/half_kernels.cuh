// The CUDA backend's product with 16-bit weights for few rows (linear_w16 of a
// stream without bf16: decoding): every weight widened exactly (half_value) and
// read once, fp32 products and sums. Written like fused_attention.cuh, without
// warp-level operations, so that tests/unit/test_cuda_emulated.cpp runs these
// same lines on CPU threads.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace rmkv::cuda {

constexpr int kGemvRows = 8;   // the most rows of x one launch takes
constexpr int kGemvWarps = 8;  // rows of W per block, one per warp

// Shared memory: each warp's 32 partial sums of each row of x [8][8][33].
inline __host__ __device__ int64_t gemv_half_smem_floats() { return kGemvWarps * kGemvRows * 33; }

// y[r, o] (+)= sum_i x[r, i] W[o, i] (+ b[o]) for r < n <= 8: warp w of block k
// takes row o = 8k + w of W, lane l its columns l, l + 32, ...; the lanes' sums
// meet in shared memory, where thread (w, r) adds up row r's 32.
__global__ void __launch_bounds__(kGemvWarps * 32)
    k_gemv_half(float *y, const float *x, const uint16_t *W, Half h, const float *b, int n, int64_t in, int64_t out,
                bool accumulate) {
    extern __shared__ float sm[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t o = static_cast<int64_t>(blockIdx.x) * kGemvWarps + warp;
    float acc[kGemvRows];
    for (int r = 0; r < kGemvRows; ++r) acc[r] = 0.0f;
    if (o < out) {
        const uint16_t *w = W + o * in;
        for (int64_t i = lane; i < in; i += 32) {
            const float wv = half_value(w[i], h);
#pragma unroll
            for (int r = 0; r < kGemvRows; ++r)
                if (r < n) acc[r] = fmaf(x[r * in + i], wv, acc[r]);
        }
    }
    for (int r = 0; r < kGemvRows; ++r) sm[(warp * kGemvRows + r) * 33 + lane] = acc[r];
    __syncthreads();
    if (threadIdx.x < kGemvWarps * kGemvRows) {
        const int w = static_cast<int>(threadIdx.x) / kGemvRows, r = static_cast<int>(threadIdx.x) % kGemvRows;
        const int64_t ow = static_cast<int64_t>(blockIdx.x) * kGemvWarps + w;
        if (r < n && ow < out) {
            const float *p = sm + (w * kGemvRows + r) * 33;
            float s = 0.0f;
            for (int l = 0; l < 32; ++l) s += p[l];
            if (b) s += b[ow];
            float *dst = y + r * out + ow;
            *dst = accumulate ? *dst + s : s;
        }
    }
}

}  // namespace rmkv::cuda
