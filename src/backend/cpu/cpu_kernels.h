// CPU kernels for the operations of the backend interface other than matrix
// products. Plain functions, outputs first, sizes last; parallel over rows with
// OpenMP. Templates on the scalar type: float for the backend, double for the
// finite-difference checks of every backward (tests/unit/test_op_gradients.cpp).
// Backward functions accumulate (+=) into gradients of inputs that may receive
// several contributions, and say so.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace rmkv::cpu {

template <class T> void norm_forward(NormKind kind, T *y, const T *x, const T *w, const T *b, int64_t n, int64_t d, T eps);
// dx += d(norm)/dx . dy; dw += ..; db += .. (db NULL for rmsnorm)
template <class T> void norm_backward(NormKind kind, T *dx, T *dw, T *db, const T *dy, const T *x, const T *w, int64_t n,
                                      int64_t d, T eps);
template <class T> void embed_forward(T *X, const T *tok_emb, const int32_t *tokens, int64_t n, int64_t d);
template <class T> void embed_backward(T *dtok_emb, const T *dX, const int32_t *tokens, int64_t n, int64_t d);  // +=
template <class T> void add(T *out, const T *a, const T *b, int64_t n);
template <class T> void sincos_add(T *X, int64_t n, int64_t d, int64_t p0);
template <class T> void rope(T *x, int64_t n, int64_t ld, int64_t n_heads, int64_t head_dim, int64_t t0, T theta, bool inverse);
// drop: dropout of the probabilities (backend.h), drop.p == 0 for none.
template <class T> void attention_forward(T *out, const T *q, const T *k, const T *v, int64_t nq, int64_t nk, int64_t ldkv,
                                          int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t visible0,
                                          const Dropout &drop);
// Backend::decode_attention: the rows' keys and values into their caches (RoPE
// first when use_rope, q rotated in place), then every row and head at once.
template <class T> void decode_attention(T *out, T *q, const T *k, const T *v, const CacheRowOf<T> *rows, int64_t n,
                                         int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, bool use_rope, T theta);
// dq = ..; dk += ..; dv += .. (the probabilities are recomputed from q and k)
template <class T> void attention_backward(T *dq, T *dk, T *dv, const T *dout, const T *q, const T *k, const T *v, int64_t nq,
                                           int64_t nk, int64_t ldkv, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                                           int64_t visible0, const Dropout &drop);
// The same two for many query rows (prefill, training; cpu_attention.cpp): blocks
// of 32 queries fused with their softmax in the thread's cache, keys past a
// block's last query skipped. Only where fused_attention_fits(head_dim) (AVX-512,
// head_dim a multiple of 16). The backward's sums do not depend on the thread count.
bool fused_attention_fits(int64_t head_dim);
void fused_attention_forward(float *out, const float *q, const float *k, const float *v, int64_t nq, int64_t nk,
                             int64_t ldkv, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t visible0,
                             const Dropout &drop);
void fused_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                              const float *v, int64_t nq, int64_t nk, int64_t ldkv, int64_t n_heads, int64_t n_kv_heads,
                              int64_t head_dim, int64_t visible0, const Dropout &drop);
// x[i] *= drop.factor(i)
template <class T> void dropout(T *x, int64_t n, const Dropout &drop);
template <class T> void swiglu_forward(T *h, const T *g, const T *u, int64_t n);
template <class T> void swiglu_backward(T *dg, T *du, const T *dh, const T *g, const T *u, int64_t n);  // dg, du =
template <class T> void gelu_forward(T *h, const T *u, int64_t n);
template <class T> void gelu_backward(T *du, const T *dh, const T *u, int64_t n);  // du =
template <class T> void pool_forward(T *out, const T *P, const T *x, int64_t M, int64_t T_, int64_t D);
// dx += ..; dP += ..
template <class T> void pool_backward(T *dx, T *dP, const T *dout, const T *P, const T *x, int64_t M, int64_t T_, int64_t D);
template <class T> void cell_forward(CellKind kind, T *m_out, T *c_out, const T *c_in, const T *gi, const T *gh, const T *h,
                                     int64_t M, int64_t D);
// From dm (and dc_out for lstm, may be NULL): dgi =, dgh = (gru/lstm), dh += (direct
// paths of h only), dc_in = (lstm).
template <class T> void cell_backward(CellKind kind, T *dgi, T *dgh, T *dh, T *dc_in, const T *dm, const T *dc_out,
                                      const T *c_in, const T *gi, const T *gh, const T *h, int64_t M, int64_t D);
template <class T> void concat_cols(T *dst, const T *a, const T *b, int64_t M, int64_t D);
// da += dst[:, :D], db += dst[:, D:]
template <class T> void split_cols_add(T *da, T *db, const T *src, int64_t M, int64_t D);
// Mean-free cross-entropy: dlogits[r] = scale * (softmax(logits[r]) - onehot(target[r]))
// for rows whose target >= 0 (0 elsewhere); returns the sum of -log p(target). dlogits may alias logits.
template <class T> double cross_entropy(T *dlogits, const T *logits, const int32_t *targets, int64_t rows, int64_t V, T scale);

// Rows of scores [rows, nk] (rows = heads x nq, query i = row % nq) scaled, masked
// to key columns 0 .. min(nk, visible0 + i + 1) - 1 and softmaxed in place.
void masked_softmax_rows(float *scores, int64_t nq, int64_t nk, int64_t rows, int64_t visible0, float scale);
// dst[h][i] = src[i, h*hd .. (h+1)*hd): heads of [n, H*hd] rows packed head-major [H, n, hd].
void pack_heads(float *dst, const float *src, int64_t n, int64_t n_heads, int64_t head_dim);
// Rows of dP [rows, nk] become dS = P * (dP - sum_j P dP) * scale, in place (P: probabilities).
void softmax_backward_rows(float *dP, const float *P, int64_t rows, int64_t nk, float scale);
// dst[i] = src[i] rounded to bf16 (nearest even).
void to_bf16(uint16_t *dst, const float *src, int64_t n);
// sum of x[i]^2, accumulated in double (the gradient norm).
double sum_squares(const float *x, int64_t n);
// AdamW on n parameters p with moments m, v and gradients g * grad_scale:
// p = p * decay - step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps); shadow (NULL for
// none) gets the new p in bf16.
void adamw(float *p, float *m, float *v, const float *g, int64_t n, float grad_scale, float beta1, float beta2, float eps,
           float decay, float step_size, float inv_sqrt_bc2, uint16_t *shadow);
// y[out] = W[out, in] x[in] (+ b): the one-row product of decoding, bandwidth-bound.
void gemv(float *y, const float *x, const float *W, const float *b, int64_t in, int64_t out, bool accumulate);
// Reference matrix products for the double-precision checks: y[n,out] (+)= x W^T + b;
// dx (+)= dy W; dW += dy^T x; db += sum dy.
template <class T> void linear_ref(T *y, const T *x, const T *W, const T *b, int64_t n, int64_t in, int64_t out, bool accumulate);
template <class T> void linear_backward_ref(T *dx, bool dx_accumulate, T *dW, T *db, const T *dy, const T *x, const T *W,
                                            int64_t n, int64_t in, int64_t out);

}  // namespace rmkv::cpu
