// Kernels of the CUDA backend (cuda_kernels.cu), one per operation of backend.h
// other than the matrix products (cuBLAS, cuda_backend.cu). Storage is fp32;
// every kernel follows the arithmetic of its CPU counterpart in
// src/backend/cpu/cpu_kernels.cpp (same formulas, same order of the scalar
// operations where it matters, double accumulation where the CPU uses double),
// so the fp32 results agree to rounding. Launchers take the stream last and
// return without synchronising; the caller checks cudaGetLastError.
#pragma once

#include <cstdint>
#include <vector>

#ifndef RMKV_CUDA_EMULATED  // tests/unit/cuda_emulation.h gives its own stand-ins
#include <cuda_runtime.h>
#endif

#include "backend/backend.h"

namespace rmkv::cuda {

// y16, h16, dg16, du16, dlogits16 (below): the output's bf16 copy, or NULL (Backend's bf16 copies).
void norm_forward(NormKind kind, float *y, const float *x, const float *w, const float *b, int64_t n, int64_t d,
                  float eps, uint16_t *y16, cudaStream_t st);
// stats: scratch of norm_backward_scratch(n, d) doubles. dw and db may be NULL
// (frozen); dx16: NULL, or dx's bf16 copy after the addition.
size_t norm_backward_scratch(int64_t n, int64_t d);
void norm_backward(NormKind kind, float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                   int64_t n, int64_t d, float eps, double *stats, cudaStream_t st, uint16_t *dx16 = nullptr);
void embed_forward(float *X, const float *tok_emb, const int32_t *tokens, int64_t n, int64_t d, cudaStream_t st);
// dtok_emb NULL: frozen, nothing done.
void embed_backward(float *dtok_emb, const float *dX, const int32_t *tokens, int64_t n, int64_t d, cudaStream_t st);
void add(float *out, const float *a, const float *b, int64_t n, cudaStream_t st, uint16_t *out16 = nullptr);
void add_bias(float *y, const float *b, int64_t n, int64_t out, cudaStream_t st);
// Backend::add_column_sums: the parts in order, each launch (two where a part has
// more than 256 rows) taking up to kColParts that add to distinct db (the table
// passed by value); scratch: column_sums_scratch(parts, n) doubles.
constexpr int kColParts = 8;
struct ColumnTable {
    ColumnSums part[kColParts];
    int64_t at[kColParts];  // the part's partial sums in scratch (when it has several chunks)
};
size_t column_sums_scratch(const ColumnSums *parts, int64_t n);
void column_sums_add(const ColumnSums *parts, int64_t n, double *scratch, cudaStream_t st);
// Row r at position p0 + r, or positions[r] (device memory) when given.
void sincos_add(float *X, int64_t n, int64_t d, int64_t p0, cudaStream_t st, const int64_t *positions = nullptr);
// n_seq blocks of n rows, block i at x + i * stride (Backend::rope_stacked).
void rope(float *x, int64_t n, int64_t ld, int64_t n_heads, int64_t head_dim, int64_t t0, float theta, bool inverse,
          int64_t n_seq, int64_t stride, cudaStream_t st);
// Fused attention: one kernel for the forward, one for the backward, for head
// sizes up to kFusedMaxHd whose fused_attention_smem fits the device's opt-in
// shared memory per block (fused_attention_setup allows it, once per device).
// Same contract as the backend's attention / attention_backward: dq =, dk +=,
// dv += (dk and dv summed with atomics, in an order that varies between runs).
constexpr int64_t kFusedMaxHd = 128;
size_t fused_attention_smem(int64_t hd, int64_t nk, bool backward);
cudaError_t fused_attention_setup(int max_smem);
// The same on the tensor cores for streams with bf16 attention (training;
// tensor_attention.cuh): q, k, v, dout, the probabilities and the score
// gradients rounded to bf16, fp32 accumulation and softmax; head sizes that
// tc_attention_fits takes, any number of keys (tiles of 64, an online softmax),
// tc_attention_smem bytes a block (fused_attention_setup allows the opt-in
// size).
bool tc_attention_fits(int64_t hd);
size_t tc_attention_smem(int64_t hd, bool backward);
// n_seq sequences stacked as Backend::attention_stacked takes them (drops: device
// array of n_seq, or NULL; out16: NULL, or out's bf16 copy), up to kFusedStack a
// launch; tensor_cores picks the kernels of tensor_attention.cuh.
void fused_attention_forward(float *out, uint16_t *out16, const float *q, const float *k, const float *v, int64_t nq, int64_t nk,
                             int64_t ldkv, int64_t H, int64_t Hkv, int64_t hd, int64_t visible0, float scale,
                             int64_t n_seq, int64_t kv_stride, const Dropout *drops, bool tensor_cores, cudaStream_t st);
void fused_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                              const float *v, int64_t nq, int64_t nk, int64_t ldkv, int64_t H, int64_t Hkv, int64_t hd,
                              int64_t visible0, float scale, int64_t n_seq, int64_t kv_stride, const Dropout *drops,
                              bool tensor_cores, cudaStream_t st);
// Backend::decode_attention for head sizes up to kDecodeMaxHd whose
// decode_attention_smem fits (fused_attention_setup allows the opt-in size):
// rows in device memory, max_nv the most keys a row sees (its at + 1).
constexpr int64_t kDecodeMaxHd = 128;
size_t decode_attention_smem(int64_t hd, int64_t max_nv);
void decode_attention(float *out, float *q, const float *k, const float *v, const CacheRow *rows, int64_t n, int64_t H,
                      int64_t Hkv, int64_t hd, int64_t max_nv, bool rope, float theta, cudaStream_t st);
// Backend::attention of one query row over keys 0 .. at (no dropout; k and v rows
// of Hkv * hd): the decode kernel, reading only (one thread per key, where the
// fused kernel gives a block's 32 query lanes one row).
void attention_one_row(float *out, const float *q, const float *k, const float *v, int64_t at, int64_t H, int64_t Hkv,
                       int64_t hd, cudaStream_t st);
// Row i of src [n, width] to dst[i] (dst: n device pointers in device memory).
void scatter_rows(float *const *dst, const float *src, int64_t n, int64_t width, cudaStream_t st);
// src[i] (n device pointers in device memory) to row i of dst [n, width].
void gather_rows(float *dst, const float *const *src, int64_t n, int64_t width, cudaStream_t st);
// Otherwise (and for pooling) attention's row-wise parts between cuBLAS products
// (cuda_backend.cu).
// P [H, nq, nk] holds scores; softmax of scale * scores under the memory+causal
// mask (row i sees keys < min(nk, visible0 + i + 1); the others become 0), then
// dropout's factors when apply_drop. Every Dropout here is in device memory (the
// backend stages it: a recorded step's launches keep their arguments when the
// masks change), NULL for none.
void attention_softmax(float *P, int64_t n_heads, int64_t nq, int64_t nk, int64_t visible0, float scale,
                       const Dropout *drop, bool apply_drop, cudaStream_t st);
// P: probabilities before dropout; dP: gradient of the dropped probabilities.
// Leaves dP = scale * the gradient of the scores, and P = the dropped probabilities.
void attention_softmax_backward(float *P, float *dP, int64_t n_heads, int64_t nq, int64_t nk, int64_t visible0,
                                float scale, const Dropout *drop, cudaStream_t st);
// n_seq sequences of n values (Backend::dropout_stacked; drops in device memory;
// x16: NULL, or x's bf16 copy after).
void dropout(float *x, int64_t n, const Dropout *drops, int64_t n_seq, cudaStream_t st, uint16_t *x16 = nullptr);
void swiglu_forward(float *h, const float *g, const float *u, int64_t n, uint16_t *h16, cudaStream_t st);
void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n, uint16_t *dg16,
                     uint16_t *du16, cudaStream_t st);
void gelu_forward(float *h, const float *u, int64_t n, uint16_t *h16, cudaStream_t st);
void gelu_backward(float *du, const float *dh, const float *u, int64_t n, uint16_t *du16, cudaStream_t st);
void cell_forward(CellKind kind, float *m_out, float *c_out, const float *c_in, const float *gi, const float *gh,
                  const float *h, int64_t M, int64_t D, cudaStream_t st);
// dgi16, dgh16, dst16: NULL, or the bf16 copies of dgi, dgh, dst.
void cell_backward(CellKind kind, float *dgi, float *dgh, float *dh, float *dc_in, const float *dm, const float *dc_out,
                   const float *c_in, const float *gi, const float *gh, const float *h, int64_t M, int64_t D,
                   uint16_t *dgi16, uint16_t *dgh16, cudaStream_t st);
void concat_cols(float *dst, const float *a, const float *b, int64_t M, int64_t D, uint16_t *dst16, cudaStream_t st);
void split_cols_add(float *da, float *db, const float *src, int64_t M, int64_t D, cudaStream_t st);
// Adds the summed loss of the rows to *loss (device double); the gradient's scale
// is read from device memory (staged with the targets: a recorded training pass
// keeps its arguments when the number of targets changes).
void cross_entropy(float *dlogits, const float *logits, const int32_t *targets, int64_t rows, int64_t V,
                   const float *scale, double *loss, uint16_t *dlogits16, cudaStream_t st);
void fill(float *x, float value, size_t n, cudaStream_t st);
// From acc[1], the summed squares (reset to 0): acc[2] = norm = sqrt(acc[1]) *
// grad_scale, and the update scale (update_scale_of) as the float at acc + 3.
void update_scale(double *acc, float grad_scale, float clip, cudaStream_t st);
// grad_scale: the device float written by update_scale (NaN: nothing changes).
void adamw(float *p, float *m, float *v, const float *g, size_t n, float beta1, float beta2, float eps, float decay,
           float step_size, float inv_sqrt_bc2, const float *grad_scale, uint16_t *shadow, cudaStream_t st);
// Many tensors in one launch (a training step's update): a table of tensors and
// one of chunks (up to kMultiChunk elements of one tensor each), both in device
// memory. sum_squares_many adds the squares of every g to *total; adamw_many
// updates every tensor as adamw does (decay: its 1 - lr * weight_decay);
// add_many adds every g into its p.
struct MultiTensor {
    float *p, *m, *v;
    const float *g;
    uint16_t *shadow;
    int64_t n;
    float decay;
};
struct MultiChunk {
    int64_t tensor, begin, end;
};
constexpr int64_t kMultiChunk = int64_t(1) << 16;
// The chunks of the tensors ts, tensor after tensor.
void multi_chunks(const std::vector<MultiTensor> &ts, std::vector<MultiChunk> &chunks);
void sum_squares_many(const MultiTensor *ts, const MultiChunk *chunks, int64_t n_chunks, double *total, cudaStream_t st);
void adamw_many(const MultiTensor *ts, const MultiChunk *chunks, int64_t n_chunks, float beta1, float beta2, float eps,
                float step_size, float inv_sqrt_bc2, const float *grad_scale, cudaStream_t st);
void add_many(const MultiTensor *ts, const MultiChunk *chunks, int64_t n_chunks, cudaStream_t st);
void to_bf16(uint16_t *dst, const float *src, size_t n, cudaStream_t st);
// Backend::to_bf16_blocks, up to kBf16Parts parts a launch (the table passed by
// value: nothing to stage, and a recorded step's launch the same from step to step).
constexpr int kBf16Parts = 8;
struct Bf16Table {
    Bf16Blocks part[kBf16Parts];
};
void to_bf16_blocks(const Bf16Blocks *parts, int64_t n, cudaStream_t st);
// 16-bit weights (BF16 and F16 files), each widened exactly (half_value):
// y[n, out] (+)= x W^T (+ b) for n <= kHalfGemvRows rows of x (half_kernels.cuh);
// dst[i] = W[i] widened; X[i, :] = the widened row tokens[i] of E.
constexpr int64_t kHalfGemvRows = 8;
void gemv_half(float *y, const float *x, const uint16_t *W, Half h, const float *b, int64_t n, int64_t in, int64_t out,
               bool accumulate, cudaStream_t st);
void widen_half(float *dst, const uint16_t *src, Half h, int64_t n, cudaStream_t st);
void embed_half(float *X, const uint16_t *E, Half h, const int32_t *tokens, int64_t n, int64_t d, cudaStream_t st);

}  // namespace rmkv::cuda
