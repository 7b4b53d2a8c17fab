// Attention pooling of stacked sequences as strided batched matrix products and
// row-wise softmaxes: the CUDA backend's calls (cuBLAS, column-major), written
// once over an abstract set of operations so that
// tests/unit/test_cuda_emulated.cpp runs the same calls through a reference
// column-major product on the CPU against the CPU's pooling kernels.
//
// Ops provides, all in fp32:
//   batched(ta, tb, m, n, k, A, lda, sa, B, ldb, sb, C, ldc, sc, batch, accumulate):
//       for b < batch, C_b (+)= op(A_b) op(B_b), column-major, X_b = X + b * sx;
//   softmax(S, rows, nk, scale): each row of nk scores softmaxed after the scale;
//   softmax_backward(S, dS, rows, nk, scale): dS = S (dS - rowsum(S dS)) scale.
//
// Sequence i's rows of x (dx) start at i * T * D, its rows of out (dout) at
// i * M * D; the queries P [M, D] are shared. The scores S lie as [M, n_seq, T]:
// slot m of sequence i at (m * n_seq + i) * T, so that the keys of every sequence
// form one product's inner dimension for dP. Row-major X [r, c] is the
// column-major X^T [c, r] with leading dimension c.
#pragma once

#include <cstdint>

namespace rmkv::cuda {

enum class Op { N, T };

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
    ops.softmax(S, n_seq * M, T, scale);
    // out_i^T [D, M] = x_i^T [D, T] . S_i^T [T, M].
    ops.batched(Op::N, Op::N, D, M, T, x, D, T * D, S, n_seq * T, T, out, D, M * D, n_seq, false);
}

// dx_i += .., dP += sum over the sequences (dP NULL: frozen); S, dS: scratch.
template <class Ops>
void pool_backward_products(Ops &ops, float *S, float *dS, float *dx, float *dP, const float *dout, const float *P,
                            const float *x, int64_t M, int64_t T, int64_t D, int64_t n_seq, float scale) {
    pool_scores(ops, S, P, 0, x, M, T, D, n_seq);
    ops.softmax(S, n_seq * M, T, scale);
    pool_scores(ops, dS, dout, M * D, x, M, T, D, n_seq);  // dout_i x_i^T: the probabilities' gradient
    ops.softmax_backward(S, dS, n_seq * M, T, scale);
    // dx_i^T [D, T] += dout_i^T [D, M] . S_i [M, T], and the same with P^T and dS_i.
    ops.batched(Op::N, Op::T, D, T, M, dout, D, M * D, S, n_seq * T, T, dx, D, T * D, n_seq, true);
    ops.batched(Op::N, Op::T, D, T, M, P, D, 0, dS, n_seq * T, T, dx, D, T * D, n_seq, true);
    // dP^T [D, M] += x^T [D, n_seq T] . dS^T [n_seq T, M]: one product over every sequence's keys.
    if (dP) ops.batched(Op::N, Op::N, D, M, n_seq * T, x, D, 0, dS, n_seq * T, 0, dP, D, 0, 1, true);
}

}  // namespace rmkv::cuda
