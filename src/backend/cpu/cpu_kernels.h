// CPU kernels for the non-matmul operations of the backend interface. Plain
// functions, outputs first, sizes last; parallel over rows with OpenMP.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace rmkv::cpu {

void norm_forward(NormKind kind, float *y, const float *x, const float *w, const float *b, int64_t n, int64_t d, float eps);
void embed_forward(float *X, const float *tok_emb, const int32_t *tokens, int64_t n, int64_t d);
void add(float *out, const float *a, const float *b, int64_t n);
void sincos_add(float *X, int64_t n, int64_t d, int64_t p0);
void rope(float *x, int64_t n, int64_t ld, int64_t n_heads, int64_t head_dim, int64_t t0, float theta, bool inverse);
void attention_forward(float *out, const float *q, const float *k, const float *v, int64_t nq, int64_t nk, int64_t ldkv,
                       int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t visible0);
// Rows of scores [rows, nk] (rows = heads x nq, query i = row % nq) scaled, masked
// to key columns 0 .. min(nk, visible0 + i + 1) - 1 and softmaxed in place.
void masked_softmax_rows(float *scores, int64_t nq, int64_t nk, int64_t rows, int64_t visible0, float scale);
void swiglu_forward(float *h, const float *g, const float *u, int64_t n);
void gelu_forward(float *h, const float *u, int64_t n);
void pool_forward(float *out, const float *P, const float *x, int64_t M, int64_t T, int64_t D);
void cell_forward(CellKind kind, float *m_out, float *c_out, const float *c_in, const float *gi, const float *gh,
                  const float *h, int64_t M, int64_t D);
void concat_cols(float *dst, const float *a, const float *b, int64_t M, int64_t D);
// y[out] = W[out, in] x[in] (+ b): the one-row product of decoding, bandwidth-bound.
void gemv(float *y, const float *x, const float *W, const float *b, int64_t in, int64_t out, bool accumulate);

}  // namespace rmkv::cpu
