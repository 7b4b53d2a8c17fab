// Attention and attention pooling as strided batched matrix products around
// row-wise softmaxes: the CUDA backend's calls (cuBLAS, column-major) for key
// rows too long for its fused kernels and for pooling, written once over an
// abstract set of operations so that tests/unit/test_cuda_emulated.cpp runs the
// same calls through a reference column-major product on the CPU against the
// CPU's attention and pooling kernels.
//
// Ops provides, all in fp32:
//   batched(ta, tb, m, n, k, A, lda, sa, B, ldb, sb, C, ldc, sc, batch, accumulate):
//       for b < batch, C_b (+)= op(A_b) op(B_b), column-major, X_b = X + b * sx;
//   softmax(P, heads, nq, nk, visible0, scale, drop, apply_drop): rows of P
//       [heads, nq, nk] scaled, masked (query i sees keys < min(nk, visible0 + i + 1))
//       and softmaxed, then dropout's factors when apply_drop;
//   softmax_backward(P, dP, heads, nq, nk, visible0, scale, drop): P holds the
//       probabilities before dropout, dP the gradient of the dropped ones; leaves
//       dP = scale x the gradient of the scores and P = the dropped probabilities.
// Row-major X [r, c] with row stride l is the column-major X^T [c, r] with
// leading dimension l.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace rmkv::cuda {

enum class Op { N, T };

// ---- attention: head h = b * group + g uses kv head b. For each g, one batched
// product runs over the Hkv kv heads (batch b: query head b * group + g), so every
// product of one call writes a different head. P, dP: [H, nq, nk] of scratch;
// q, out, dq, dout: rows of H * hd; k, v, dk, dv: rows of stride ldkv. ----

// P_h = q_h k_b^T for every head (column-major: P_h^T [nk, nq] = k_b [nk, hd] . q_h^T).
template <class Ops>
void attention_scores(Ops &ops, float *P, const float *q, const float *k, int64_t nq, int64_t nk, int64_t ldkv,
                      int64_t H, int64_t Hkv, int64_t hd) {
    const int64_t group = H / Hkv, D = H * hd;
    for (int64_t g = 0; g < group; ++g)
        ops.batched(Op::T, Op::N, nk, nq, hd, k, ldkv, hd, q + g * hd, D, group * hd, P + g * nq * nk, nk,
                    group * nq * nk, Hkv, false);
}

// out = softmax(q k^T scale + mask) v (Backend::attention).
template <class Ops>
void attention_forward_products(Ops &ops, float *P, float *out, const float *q, const float *k, const float *v,
                                int64_t nq, int64_t nk, int64_t ldkv, int64_t H, int64_t Hkv, int64_t hd,
                                int64_t visible0, float scale, const Dropout &drop) {
    const int64_t group = H / Hkv, D = H * hd;
    attention_scores(ops, P, q, k, nq, nk, ldkv, H, Hkv, hd);
    ops.softmax(P, H, nq, nk, visible0, scale, drop, true);
    // out_h = P_h v_b (column-major: out_h^T [hd, nq] = v_b^T [hd, nk] . P_h^T [nk, nq]).
    for (int64_t g = 0; g < group; ++g)
        ops.batched(Op::N, Op::N, hd, nq, nk, v, ldkv, hd, P + g * nq * nk, nk, group * nq * nk, out + g * hd, D,
                    group * hd, Hkv, false);
}

// dq =, dk +=, dv += (Backend::attention_backward).
template <class Ops>
void attention_backward_products(Ops &ops, float *P, float *dP, float *dq, float *dk, float *dv, const float *dout,
                                 const float *q, const float *k, const float *v, int64_t nq, int64_t nk, int64_t ldkv,
                                 int64_t H, int64_t Hkv, int64_t hd, int64_t visible0, float scale,
                                 const Dropout &drop) {
    const int64_t group = H / Hkv, D = H * hd;
    attention_scores(ops, P, q, k, nq, nk, ldkv, H, Hkv, hd);
    ops.softmax(P, H, nq, nk, visible0, scale, drop, false);
    attention_scores(ops, dP, dout, v, nq, nk, ldkv, H, Hkv, hd);  // dout_h v_b^T: the dropped probabilities' gradient
    ops.softmax_backward(P, dP, H, nq, nk, visible0, scale, drop);
    for (int64_t g = 0; g < group; ++g) {
        const float *dout_g = dout + g * hd, *q_g = q + g * hd;
        const float *P_g = P + g * nq * nk, *dS_g = dP + g * nq * nk;
        const int64_t sh = group * hd, sp = group * nq * nk;
        // dv_b += P_h^T dout_h (column-major: dv_b^T [hd, nk] += dout_h^T [hd, nq] . P_h [nq, nk]).
        ops.batched(Op::N, Op::T, hd, nk, nq, dout_g, D, sh, P_g, nk, sp, dv, ldkv, hd, Hkv, true);
        // dk_b += dS_h^T q_h
        ops.batched(Op::N, Op::T, hd, nk, nq, q_g, D, sh, dS_g, nk, sp, dk, ldkv, hd, Hkv, true);
        // dq_h = dS_h k_b (column-major: dq_h^T [hd, nq] = k_b^T [hd, nk] . dS_h^T [nk, nq]).
        ops.batched(Op::N, Op::N, hd, nq, nk, k, ldkv, hd, dS_g, nk, sp, dq + g * hd, D, sh, Hkv, false);
    }
}

// ---- attention pooling of n_seq stacked sequences: sequence i's rows of x (dx)
// start at i * T * D, its rows of out (dout) at i * M * D; the queries P [M, D]
// are shared. The scores S lie as [M, n_seq, T]: slot m of sequence i at
// (m * n_seq + i) * T, so that the keys of every sequence form one product's
// inner dimension for dP. Every key visible, no dropout. ----

// S_i = Q_i x_i^T (Q_i at Q + i * sq; sq 0: P for every sequence). Column-major:
// S_i^T [T, M] = x_i [T, D] . Q_i^T [D, M], x_i read as x_i^T transposed.
template <class Ops>
void pool_scores(Ops &ops, float *S, const float *Q, int64_t sq, const float *x, int64_t M, int64_t T, int64_t D,
                 int64_t n_seq) {
    ops.batched(Op::T, Op::N, T, M, D, x, D, T * D, Q, D, sq, S, n_seq * T, T, n_seq, false);
}

// out_i [M, D] = softmax(P x_i^T / sqrt(D)) x_i; S: n_seq * M * T floats of scratch.
template <class Ops>
void pool_forward_products(Ops &ops, float *S, float *out, const float *P, const float *x, int64_t M, int64_t T,
                           int64_t D, int64_t n_seq, float scale) {
    pool_scores(ops, S, P, 0, x, M, T, D, n_seq);
    ops.softmax(S, 1, n_seq * M, T, T, scale, Dropout{}, false);
    // out_i^T [D, M] = x_i^T [D, T] . S_i^T [T, M].
    ops.batched(Op::N, Op::N, D, M, T, x, D, T * D, S, n_seq * T, T, out, D, M * D, n_seq, false);
}

// dx_i += .., dP += sum over the sequences (dP NULL: frozen); S, dS: scratch.
template <class Ops>
void pool_backward_products(Ops &ops, float *S, float *dS, float *dx, float *dP, const float *dout, const float *P,
                            const float *x, int64_t M, int64_t T, int64_t D, int64_t n_seq, float scale) {
    pool_scores(ops, S, P, 0, x, M, T, D, n_seq);
    ops.softmax(S, 1, n_seq * M, T, T, scale, Dropout{}, false);
    pool_scores(ops, dS, dout, M * D, x, M, T, D, n_seq);  // dout_i x_i^T: the probabilities' gradient
    ops.softmax_backward(S, dS, 1, n_seq * M, T, T, scale, Dropout{});
    // dx_i^T [D, T] += dout_i^T [D, M] . S_i [M, T], and the same with P^T and dS_i.
    ops.batched(Op::N, Op::T, D, T, M, dout, D, M * D, S, n_seq * T, T, dx, D, T * D, n_seq, true);
    ops.batched(Op::N, Op::T, D, T, M, P, D, 0, dS, n_seq * T, T, dx, D, T * D, n_seq, true);
    // dP^T [D, M] += x^T [D, n_seq T] . dS^T [n_seq T, M]: one product over every sequence's keys.
    if (dP) ops.batched(Op::N, Op::N, D, M, n_seq * T, x, D, 0, dS, n_seq * T, 0, dP, D, 0, 1, true);
}

}  // namespace rmkv::cuda
