// The backend seam. The model code (src/model/) computes with these operations
// only; a backend implements them for one kind of device. Every pointer passed to
// an operation is memory of that backend (host memory for the CPU, device memory
// for CUDA), except where a parameter says "host". Matrices are row-major.
//
// A Stream is the per-user execution context (one per session or trainer): the
// backend's queue, scratch memory and anything else that must not be shared
// between threads. Operations on one Stream run in order; a model's weights are
// shared read-only by all streams.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/real.h"

namespace rmkv {

enum class NormKind { layernorm, rmsnorm };
enum class CellKind { gru, lstm, minimal };
// The width of a cell's gate rows, in units of D (gi and dgi are [M, gate_width * D]).
constexpr int64_t gate_width(CellKind k) { return k == CellKind::minimal ? 2 : k == CellKind::gru ? 3 : 4; }

// Backend::to_bf16_blocks: `count` blocks of `width` values, block i at
// src + i * pitch, rounded into dst one after the other (dst: count * width).
struct Bf16Blocks {
    uint16_t *dst;
    const real *src;
    int64_t pitch, width, count;
};

// Backend::add_column_sums: db[width] += the column sums of `count` blocks of
// `rows` rows of width values, block i at dy + i * pitch (the bias gradient of a
// product whose rows are stacked sequences' blocks).
struct ColumnSums {
    real *db;
    const real *dy;
    int64_t pitch, rows, count, width;
};

// Dropout (training only): element i of a site is kept with probability 1 - p and
// then scaled by 1 / (1 - p). Whether it is kept depends on (key, i) alone, through
// a counter-based hash, so a backward pass recomputes the forward's mask and any
// backend, thread count or chunking draws the same one. p == 0: nothing dropped.
struct Dropout {
    float p = 0.0f;
    uint64_t key = 0;
    RMKV_HOST_DEVICE bool on() const { return p > 0.0f; }
    RMKV_HOST_DEVICE static uint64_t mix(uint64_t z) {  // splitmix64's finaliser
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    // The factor of element i: 0 (dropped) or 1 / (1 - p).
    RMKV_HOST_DEVICE float factor(uint64_t i) const {
        const uint64_t z = mix(key + (i + 1) * 0x9e3779b97f4a7c15ull);
        return static_cast<float>(z >> 40) * 0x1p-24f >= p ? 1.0f / (1.0f - p) : 0.0f;
    }
};

// One row of decoding streams of text together (Backend::decode_attention): the
// stream's key and value cache of one layer (this backend's memory, rows of Hkv *
// head_dim), the cache row its new token takes, and that token's RoPE position.
template <class T>
struct CacheRowOf {
    T *keys, *values;
    int64_t at, pos;
};
using CacheRow = CacheRowOf<real>;

class Stream {
public:
    virtual ~Stream() = default;
    // For backends that compute on the host: cross_entropy's sum, and the norm and
    // scale of the last update_scale.
    double host_loss_sum = 0;
    double host_grad_norm = 0;
    float host_update_scale = 1.0f;
};

// The scale of an optimiser update (Backend::update_scale), from the gradient norm
// (already multiplied by grad_scale): grad_scale * min(1, clip / norm), or
// grad_scale when clip is 0. A norm that is not finite gives NaN: the update is
// skipped. One formula for every backend, so that they agree to the bit.
RMKV_HOST_DEVICE inline float update_scale_of(double norm, float grad_scale, float clip) {
    if (!(norm - norm == 0.0)) return static_cast<float>(norm - norm);  // inf or NaN: NaN
    float c = 1.0f;
    if (clip > 0.0f && norm > clip) c = static_cast<float>(clip / norm);
    return grad_scale * c;
}

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    virtual std::unique_ptr<Stream> new_stream() = 0;

    // ---- memory ----
    virtual real *alloc(size_t n_floats) = 0;  // zero-filled; throws OUT_OF_MEMORY
    virtual void free(real *p) = 0;
    // A weight tensor for read-only use: the backend may return `host` itself when
    // it can use host memory directly and `host_stable` says it outlives the model.
    virtual real *import_weights(const real *host, size_t n, bool host_stable) = 0;
    virtual void release_weights(real *p, const real *host) = 0;
    virtual void to_host(Stream &s, real *host, const real *src, size_t n) = 0;
    virtual void from_host(Stream &s, real *dst, const real *host, size_t n) = 0;
    virtual void copy(Stream &s, real *dst, const real *src, size_t n) = 0;
    // count blocks of `width` elements: block i from src + i * src_pitch to dst + i *
    // dst_pitch (pitches >= width; dst and src do not overlap).
    virtual void copy_blocks(Stream &s, real *dst, int64_t dst_pitch, const real *src, int64_t src_pitch,
                             int64_t width, int64_t count) {
        for (int64_t i = 0; i < count; ++i)
            copy(s, dst + i * dst_pitch, src + i * src_pitch, static_cast<size_t>(width));
    }
    virtual void sync(Stream &s) = 0;  // wait until every queued operation is done
    // ---- recorded steps (run_recorded below) ----
    // A backend may record the operations queued on a stream between begin_record
    // and end_record and then run them as one unit (CUDA: a graph, one launch for
    // a decoding step's hundreds of kernels), or check them against its last
    // recording and run that again when they are the same. begin_record: whether
    // it records or checks (false: the operations run as they are queued, and
    // end_record is not called). end_record: runs the recording and returns true,
    // or returns false when none of it ran or will run (a recording that failed,
    // a check that found other operations): then the caller begins again with
    // `again` true (a backend records a step whose check missed, and declines
    // one whose recording failed) or queues the same operations unrecorded.
    // cancel_record drops a recording (an exception between the two). While
    // recording, nothing may wait for the stream (sync, to_host, take_loss,
    // take_grad_norm) and only this thread queues on it.
    virtual bool begin_record(Stream & /*s*/, bool /*again*/) { return false; }
    virtual bool end_record(Stream & /*s*/) { return true; }
    virtual void cancel_record(Stream & /*s*/) {}
    // Whether a session's one-token step should go the way of sessions stepped
    // together (SegmentForward::decode_rows, whose operations keep their
    // arguments from one token to the next: the positions travel in host arrays)
    // rather than through SegmentForward::tokens (CUDA when it records steps: a
    // step that matches the last one then replays its recording).
    virtual bool decodes_by_rows() const { return false; }
    // Operations queued on `waiter` after this call start only once everything queued
    // on `done` so far has finished (neither stream blocks the host). Backends whose
    // operations complete before returning need nothing.
    virtual void wait_for(Stream & /*waiter*/, Stream & /*done*/) {}
    // How many sequences of a training batch to compute at once, each on its own
    // stream and host thread (rmkv_train_params.parallel_sequences = 0): 1 where one
    // stream already uses the whole device.
    virtual int default_parallel_sequences() const { return 1; }
    // How many of a lane's sequences one pass stacks into its rows
    // (rmkv_train_params.stacked_sequences = 0).
    virtual int default_stacked_sequences() const { return 4; }

    // ---- operations ----
    // bf16 copies (mixed-precision training): an operation that takes a uint16_t *
    // for a real * output (norm's y16, swiglu's and gelu's h16, their backwards'
    // dg16 / du16, cross_entropy's dlogits16, attention_stacked's out16,
    // concat_cols's dst16, cell_backward's dgi16 / dgh16, norm_backward's dx16,
    // add's out16, dropout_stacked's x16) also writes that output
    // rounded to bf16 there (to_bf16's values) when it is not NULL. linear and
    // linear_backward take such copies of x (x16) and dy (dy16), or NULL: a
    // product with bf16 inputs (set_bf16 and a shadow of W) reads them instead of
    // rounding x and dy itself, and any other ignores them. The values are the
    // same either way; a caller that keeps the copy of an input that several
    // products read, forward and backward, spares a rounding pass over it in each.
    // Where every reader of an output takes its copy, the caller may pass NULL for
    // the real output of a norm, an activation or an activation's backward (only
    // the copy is written) and then NULL for x or dy: only to products with bf16
    // inputs, and dy only without db.
    //
    // y[n, out] = x[n, in] W[out, in]^T (+ b[out]) (+ y when accumulate).
    virtual void linear(Stream &s, real *y, const real *x, const real *W, const real *b, int64_t n, int64_t in,
                        int64_t out, bool accumulate, const uint16_t *x16 = nullptr) = 0;
    // Rows of x [n, d] normalised into y (may alias x). b is NULL for rmsnorm.
    virtual void norm(Stream &s, NormKind kind, real *y, const real *x, const real *w, const real *b, int64_t n,
                      int64_t d, float eps, uint16_t *y16 = nullptr) = 0;
    // X[n, D] = tok_emb[tokens[i]] (tokens in host memory, already validated).
    virtual void embed(Stream &s, real *X, const real *tok_emb, const int32_t *tokens_host, int64_t n, int64_t d) = 0;
    // out[i] = a[i] + b[i] (out may alias a); out16: NULL, or out's bf16 copy.
    virtual void add(Stream &s, real *out, const real *a, const real *b, int64_t n, uint16_t *out16 = nullptr) = 0;
    // dst[width] += the sum of the n rows of src [n, width] (one parameter's
    // gradients from stacked sequences). The default adds one row after another;
    // backends override it to sum them in one go.
    virtual void add_rows(Stream &s, real *dst, const real *src, int64_t n, int64_t width) {
        for (int64_t i = 0; i < n; ++i) add(s, dst, dst, src + i * width, width);
    }
    // Several column sums (parts: host array of n), in order: the default runs
    // add_rows for each block of each; CUDA makes one launch of the parts that
    // add to distinct db.
    virtual void add_column_sums(Stream &s, const ColumnSums *parts, size_t n) {
        for (size_t k = 0; k < n; ++k)
            for (int64_t i = 0; i < parts[k].count; ++i)
                add_rows(s, parts[k].db, parts[k].dy + i * parts[k].pitch, parts[k].rows, parts[k].width);
    }
    // X[i, :] += PE(p0 + i) (sincos).
    virtual void add_sincos(Stream &s, real *X, int64_t n, int64_t d, int64_t p0) = 0;
    // X[i, :] += PE(positions[i]) (host array of n), the rows of streams of text
    // decoded together; the default calls add_sincos row by row, backends
    // override it to run all rows at once.
    virtual void add_sincos_rows(Stream &s, real *X, const int64_t *positions, int64_t n, int64_t d) {
        for (int64_t i = 0; i < n; ++i) add_sincos(s, X + i * d, 1, d, positions[i]);
    }
    // Rotates n rows of x (row stride ld) in place, heads of head_dim, positions
    // t0..t0+n-1; `inverse` rotates back (the backward of RoPE).
    virtual void rope(Stream &s, real *x, int64_t n, int64_t ld, int64_t n_heads, int64_t head_dim, int64_t t0,
                      float theta, bool inverse) = 0;
    // out[nq, H*hd] = softmax(q k^T / sqrt(hd) + mask) v per head. Query row i sees key
    // rows 0 .. min(nk, visible0 + i + 1) - 1; kv head of query head h is h / (H / Hkv).
    // k, v: [nk, Hkv*hd] with row stride ldkv. With dropout on, probability (h, i, j)
    // is element (h * nq + i) * nk + j of the site.
    virtual void attention(Stream &s, real *out, const real *q, const real *k, const real *v, int64_t nq,
                           int64_t nk, int64_t ldkv, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                           int64_t visible0, const Dropout &drop) = 0;
    // One new token for each of n streams of text, each with its own cache (rows,
    // host memory; n distinct caches): row i's key k[i] and value v[i] ([n, Hkv*hd]
    // each) go to row rows[i].at of its cache, after its key and q[i] ([n, H*hd];
    // rotated in place) are rotated by RoPE at position rows[i].pos when `rope`;
    // then out[i] = attention of q[i] over cache rows 0 .. at (no dropout). The
    // values of copy, rope and attention one row after another (below), up to the
    // order of the sums; backends override it to run all rows at once.
    virtual void decode_attention(Stream &s, real *out, real *q, const real *k, const real *v, const CacheRow *rows,
                                  int64_t n, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, bool rope,
                                  float theta) {
        const int64_t D = n_heads * head_dim, Dkv = n_kv_heads * head_dim;
        for (int64_t i = 0; i < n; ++i) {
            const CacheRow &r = rows[i];
            real *key = r.keys + r.at * Dkv, *qi = q + i * D;
            copy(s, key, k + i * Dkv, static_cast<size_t>(Dkv));
            copy(s, r.values + r.at * Dkv, v + i * Dkv, static_cast<size_t>(Dkv));
            if (rope) {
                this->rope(s, qi, 1, D, n_heads, head_dim, r.pos, theta, false);
                this->rope(s, key, 1, Dkv, n_kv_heads, head_dim, r.pos, theta, false);
            }
            attention(s, out + i * D, qi, r.keys, r.values, 1, r.at + 1, Dkv, n_heads, n_kv_heads, head_dim, r.at, {});
        }
    }
    // ---- sequences stacked in one call (training's passes, SegmentForward::stack) ----
    // n_seq sequences at once: sequence i's rows of q and out (and of dq, dout) follow
    // sequence i - 1's (nq rows of n_heads * head_dim each), its rows of k and v (dk,
    // dv) start i * kv_stride after k's (v's), and its dropout is drops[i] (host array
    // of n_seq; NULL: none). out16 (NULL, or n_seq * nq rows of bf16): out's bf16
    // copy as well (Backend's bf16 copies; attention writes out in any case). The
    // defaults run attention / attention_backward once per sequence, then round out
    // into out16; backends override them to run every sequence in one go.
    virtual void attention_stacked(Stream &s, real *out, const real *q, const real *k, const real *v, int64_t nq,
                                   int64_t nk, int64_t ldkv, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                                   int64_t visible0, int64_t n_seq, int64_t kv_stride, const Dropout *drops,
                                   uint16_t *out16 = nullptr) {
        const int64_t rows = nq * n_heads * head_dim;
        for (int64_t i = 0; i < n_seq; ++i)
            attention(s, out + i * rows, q + i * rows, k + i * kv_stride, v + i * kv_stride, nq, nk, ldkv, n_heads,
                      n_kv_heads, head_dim, visible0, drops ? drops[i] : Dropout{});
        if (out16) to_bf16(s, out16, out, static_cast<size_t>(n_seq * rows));
    }
    virtual void attention_stacked_backward(Stream &s, real *dq, real *dk, real *dv, const real *dout, const real *q,
                                            const real *k, const real *v, int64_t nq, int64_t nk, int64_t ldkv,
                                            int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t visible0,
                                            int64_t n_seq, int64_t kv_stride, const Dropout *drops) {
        const int64_t rows = nq * n_heads * head_dim;
        for (int64_t i = 0; i < n_seq; ++i)
            attention_backward(s, dq + i * rows, dk + i * kv_stride, dv + i * kv_stride, dout + i * rows, q + i * rows,
                               k + i * kv_stride, v + i * kv_stride, nq, nk, ldkv, n_heads, n_kv_heads, head_dim,
                               visible0, drops ? drops[i] : Dropout{});
    }
    // Pooling of n_seq sequences with the same queries P: sequence i's rows of x
    // (dx) start i * T * D after x's (dx's), its rows of out (dout) i * M * D after
    // out's (dout's); dP sums over the sequences.
    virtual void pool_stacked(Stream &s, real *out, const real *P, const real *x, int64_t M, int64_t T, int64_t D,
                              int64_t n_seq) {
        for (int64_t i = 0; i < n_seq; ++i) pool(s, out + i * M * D, P, x + i * T * D, M, T, D);
    }
    virtual void pool_stacked_backward(Stream &s, real *dx, real *dP, const real *dout, const real *P, const real *x,
                                       int64_t M, int64_t T, int64_t D, int64_t n_seq) {
        for (int64_t i = 0; i < n_seq; ++i)
            pool_backward(s, dx + i * T * D, dP, dout + i * M * D, P, x + i * T * D, M, T, D);
    }
    // rope over n_seq blocks of n rows, block i starting i * stride after x, each
    // with the positions t0 .. t0 + n - 1.
    virtual void rope_stacked(Stream &s, real *x, int64_t n, int64_t ld, int64_t n_heads, int64_t head_dim, int64_t t0,
                              float theta, bool inverse, int64_t n_seq, int64_t stride) {
        for (int64_t i = 0; i < n_seq; ++i) rope(s, x + i * stride, n, ld, n_heads, head_dim, t0, theta, inverse);
    }
    // Row i of src [n, width] to dst[i] (host array of n pointers into this
    // backend's memory; the n destination rows overlap neither src nor each other).
    virtual void scatter_rows(Stream &s, real *const *dst, const real *src, int64_t n, int64_t width) {
        for (int64_t i = 0; i < n; ++i) copy(s, dst[i], src + i * width, static_cast<size_t>(width));
    }
    // The other way: src[i] (host array of n pointers; width elements each) to row
    // i of dst [n, width], which overlaps none of them.
    virtual void gather_rows(Stream &s, real *dst, const real *const *src, int64_t n, int64_t width) {
        for (int64_t i = 0; i < n; ++i) copy(s, dst + i * width, src[i], static_cast<size_t>(width));
    }
    // ---- n streams of text with caches of their own at once (the memory rewrite
    // of sessions decoded together; host arrays of n pointers). The defaults run
    // one stream after another; backends override them to run all at once. ----
    // Stream i: out + i * nq * H * hd = attention of q[i] ([nq, H * hd]) over
    // keys[i] and values[i] ([nk, Hkv * hd]), query row r seeing keys 0 ..
    // min(nk, visible0 + r + 1) - 1, no dropout.
    virtual void attention_rows(Stream &s, real *out, const real *const *q, const real *const *keys,
                                const real *const *values, int64_t n, int64_t nq, int64_t nk, int64_t n_heads,
                                int64_t n_kv_heads, int64_t head_dim, int64_t visible0) {
        for (int64_t i = 0; i < n; ++i)
            attention(s, out + i * nq * n_heads * head_dim, q[i], keys[i], values[i], nq, nk, n_kv_heads * head_dim,
                      n_heads, n_kv_heads, head_dim, visible0, {});
    }
    // Stream i: out + i * M * D = pool of x[i] ([T, D]) with the queries P.
    virtual void pool_rows(Stream &s, real *out, const real *P, const real *const *x, int64_t n, int64_t M, int64_t T,
                           int64_t D) {
        for (int64_t i = 0; i < n; ++i) pool(s, out + i * M * D, P, x[i], M, T, D);
    }
    // x[i] *= drop.factor(i) (forward of a dropout site, and its backward).
    virtual void dropout(Stream &s, real *x, int64_t n, const Dropout &drop) = 0;
    // dropout of n_seq stacked sequences, n values each (sequence i's from x + i * n)
    // with drops[i] (host array of n_seq); x16: NULL, or the bf16 copy of all of x
    // after it. The default runs dropout for each that drops, then rounds;
    // backends override it to run them all at once.
    virtual void dropout_stacked(Stream &s, real *x, int64_t n, const Dropout *drops, int64_t n_seq,
                                 uint16_t *x16 = nullptr) {
        for (int64_t i = 0; i < n_seq; ++i)
            if (drops[i].on()) dropout(s, x + i * n, n, drops[i]);
        if (x16) to_bf16(s, x16, x, static_cast<size_t>(n * n_seq));
    }
    // h[i] = silu(g[i]) * u[i]  (swiglu); h[i] = gelu_erf(u[i]) (gelu, g NULL).
    virtual void swiglu(Stream &s, real *h, const real *g, const real *u, int64_t n, uint16_t *h16 = nullptr) = 0;
    virtual void gelu(Stream &s, real *h, const real *u, int64_t n, uint16_t *h16 = nullptr) = 0;
    // Attention pooling: out[M, D] = softmax_rows(P x^T / sqrt(D)) x, x [T, D].
    virtual void pool(Stream &s, real *out, const real *P, const real *x, int64_t M, int64_t T, int64_t D) = 0;
    // The recurrent cells, given the gate pre-activations (SPEC section 4, step 6):
    // gru: gi = W_ih s + b_ih, gh = W_hh h + b_hh, each [M, 3D]; lstm: gi, gh [M, 4D],
    // c_in -> c_out (may alias); minimal: gi = W [h, s] + b, [M, 2D] (gh, c NULL).
    virtual void cell(Stream &s, CellKind kind, real *m_out, real *c_out, const real *c_in, const real *gi,
                      const real *gh, const real *h, int64_t M, int64_t D) = 0;
    // dst[M, 2D] = [a | b] row-wise concat of a[M, D], b[M, D] (and its bf16 copy
    // into dst16 when given).
    virtual void concat_cols(Stream &s, real *dst, const real *a, const real *b, int64_t M, int64_t D,
                             uint16_t *dst16 = nullptr) = 0;

    // ---- training: backward operations (cpu_kernels.h documents each) ----
    // A parameter gradient pointer (dW, db, dw, dP, dtok_emb) may be NULL: that
    // parameter is frozen and nothing is accumulated for it.
    // dx (+)= dy W (dx may be NULL); dW += dy^T x; db += column sums of dy (db may be NULL).
    virtual void linear_backward(Stream &s, real *dx, bool dx_accumulate, real *dW, real *db, const real *dy,
                                 const real *x, const real *W, int64_t n, int64_t in, int64_t out,
                                 const uint16_t *x16 = nullptr, const uint16_t *dy16 = nullptr) = 0;
    // dx (+=) the norm's gradient; dx16: NULL, or dx's bf16 copy after the addition.
    virtual void norm_backward(Stream &s, NormKind kind, real *dx, real *dw, real *db, const real *dy, const real *x,
                               const real *w, int64_t n, int64_t d, float eps, uint16_t *dx16 = nullptr) = 0;
    virtual void embed_backward(Stream &s, real *dtok_emb, const real *dX, const int32_t *tokens_host, int64_t n,
                                int64_t d) = 0;
    virtual void attention_backward(Stream &s, real *dq, real *dk, real *dv, const real *dout, const real *q,
                                    const real *k, const real *v, int64_t nq, int64_t nk, int64_t ldkv, int64_t n_heads,
                                    int64_t n_kv_heads, int64_t head_dim, int64_t visible0, const Dropout &drop) = 0;
    virtual void swiglu_backward(Stream &s, real *dg, real *du, const real *dh, const real *g, const real *u,
                                 int64_t n, uint16_t *dg16 = nullptr, uint16_t *du16 = nullptr) = 0;
    virtual void gelu_backward(Stream &s, real *du, const real *dh, const real *u, int64_t n,
                               uint16_t *du16 = nullptr) = 0;
    virtual void pool_backward(Stream &s, real *dx, real *dP, const real *dout, const real *P, const real *x,
                               int64_t M, int64_t T, int64_t D) = 0;
    // dgi16, dgh16: NULL, or the bf16 copies of dgi and dgh (written with them).
    virtual void cell_backward(Stream &s, CellKind kind, real *dgi, real *dgh, real *dh, real *dc_in, const real *dm,
                               const real *dc_out, const real *c_in, const real *gi, const real *gh, const real *h,
                               int64_t M, int64_t D, uint16_t *dgi16 = nullptr, uint16_t *dgh16 = nullptr) = 0;
    virtual void split_cols_add(Stream &s, real *da, real *db, const real *src, int64_t M, int64_t D) = 0;
    // Cross-entropy of logits [rows, V] against host targets (-1 = none): writes
    // dlogits = scale * (softmax - onehot) (may alias logits) and adds the summed
    // loss to the stream's loss sum, which stays on the device: no waiting here.
    virtual void cross_entropy(Stream &s, real *dlogits, const real *logits, const int32_t *targets_host, int64_t rows,
                               int64_t V, float scale, uint16_t *dlogits16 = nullptr) = 0;
    // The loss summed by cross_entropy on this stream since the last take; resets
    // it to zero. Synchronises (once per training step, at its end).
    virtual double take_loss(Stream &s) = 0;
    // ---- optimiser ----
    virtual void fill(Stream &s, real *x, float value, size_t n) = 0;
    // The gradient norm and the update scale of the adamw calls that follow on this
    // stream, computed there without waiting: norm = grad_scale * sqrt(sum of the
    // squares of every element of `count` tensors (xs[i] of ns[i] elements; NULL
    // ones skipped)), scale = update_scale_of(norm, grad_scale, clip) (0 = no clip).
    virtual void update_scale(Stream &s, const real *const *xs, const size_t *ns, size_t count, float grad_scale,
                              float clip) = 0;
    // The norm of the last update_scale on this stream. Synchronises (once per
    // training step, at its end).
    virtual double take_grad_norm(Stream &s) = 0;
    // With the stream's update scale u: p -= lr * wd * p; m, v moments of g * u;
    // p -= lr * mhat / (sqrt(vhat) + eps). When u is NaN (a norm that is not
    // finite) nothing changes. shadow (may be NULL): receives p rounded to bf16
    // after the update.
    virtual void adamw(Stream &s, real *p, real *m, real *v, const real *g, size_t n, float lr, float beta1,
                       float beta2, float eps, float weight_decay, int64_t step, uint16_t *shadow) = 0;
    // adamw of every tensor of a training step's update at once (CUDA: one launch
    // for them all); the default calls adamw for each.
    struct AdamwTensor {
        real *p, *m, *v;
        const real *g;
        size_t n;
        float weight_decay;
        uint16_t *shadow;
    };
    virtual void adamw_many(Stream &s, const AdamwTensor *ts, size_t count, float lr, float beta1, float beta2, float eps,
                            int64_t step) {
        for (size_t i = 0; i < count; ++i)
            adamw(s, ts[i].p, ts[i].m, ts[i].v, ts[i].g, ts[i].n, lr, beta1, beta2, eps, ts[i].weight_decay, step,
                  ts[i].shadow);
    }
    // dst[i][0 .. ns[i]) += src[i][0 .. ns[i]) for every i with dst[i] not NULL (a
    // lane's gradients into the trainer's; CUDA: one launch); the default calls add.
    virtual void add_many(Stream &s, real *const *dst, const real *const *src, const size_t *ns, size_t count) {
        for (size_t i = 0; i < count; ++i)
            if (dst[i]) add(s, dst[i], dst[i], src[i], static_cast<int64_t>(ns[i]));
    }

    // ---- mixed precision ----
    // When on for a stream, linear / linear_backward with a weight that has a bf16
    // shadow on that stream (training) compute with bf16 inputs and f32 accumulation
    // and outputs; so may linear_w16 with Half::bf16 weights (inference), see there.
    virtual bool supports_bf16() const = 0;
    virtual void set_bf16(Stream &s, bool on) = 0;
    // When on for a stream (bf16 training; sessions leave it off), attention may
    // also run in bf16: q, k, v, dout, the probabilities and the score gradients
    // rounded to bf16, fp32 accumulation. bf16_attention(hd) says whether this
    // backend then does so for head size hd (CUDA: the tensor-core kernels, where
    // their shared memory fits the device); the CPU keeps attention in fp32.
    virtual void set_bf16_attention(Stream & /*s*/, bool /*on*/) {}
    virtual bool bf16_attention(int64_t /*hd*/) const { return false; }
    virtual void set_shadow(Stream &s, const real *W, const uint16_t *W_bf16) = 0;
    virtual uint16_t *alloc_bf16(size_t n) = 0;
    virtual void free_bf16(uint16_t *p) = 0;
    virtual void to_bf16(Stream &s, uint16_t *dst, const real *src, size_t n) = 0;
    // Several roundings at once (parts: host array of n): the default rounds each
    // block with to_bf16; CUDA makes one launch of them all.
    virtual void to_bf16_blocks(Stream &s, const Bf16Blocks *parts, size_t n) {
        for (size_t k = 0; k < n; ++k)
            for (int64_t i = 0; i < parts[k].count; ++i)
                to_bf16(s, parts[k].dst + i * parts[k].width, parts[k].src + i * parts[k].pitch,
                        static_cast<size_t>(parts[k].width));
    }

    // ---- inference with 16-bit weights ----
    // A model loaded from a BF16 or F16 file keeps its matrices (Matrix) in that
    // format on backends whose has_half_weights() is true (the CPU: mapped from
    // the file; CUDA: copied to the device): half the memory, and half the bytes a
    // decoded token reads. Elsewhere, and for training, they are widened to fp32
    // (and the operations below fail).
    virtual bool has_half_weights() const = 0;
    // A 16-bit matrix (has_half_weights) as linear_w16 and embed_w16 read it: `host`
    // itself where the backend computes on host memory (host outlives the model),
    // else a copy in the backend's memory; release_half_weights gives it back.
    virtual const uint16_t *import_half_weights(const uint16_t *host, size_t n) = 0;
    virtual void release_half_weights(const uint16_t *p, const uint16_t *host) = 0;
    // linear and embed with W / tok_emb in the 16-bit format `h`, each weight
    // widened to fp32 exactly (both formats are subsets of fp32): fp32 products and
    // sums, so the values of linear / embed with the widened matrix, up to the
    // order of the sums. Except: with bf16 on for the stream, linear_w16 with
    // Half::bf16 weights rounds x to bf16 (fp32 accumulation; any row count).
    virtual void linear_w16(Stream &s, real *y, const real *x, const uint16_t *W, Half h, const real *b, int64_t n,
                            int64_t in, int64_t out, bool accumulate) = 0;
    virtual void embed_w16(Stream &s, real *X, const uint16_t *tok_emb, Half h, const int32_t *tokens_host, int64_t n,
                           int64_t d) = 0;
};

// Queues the operations of queue() (a function that only queues operations on s,
// of values that depend on its arguments alone, so that it may run more than
// once) as one recorded unit where the backend records (Backend::begin_record),
// else as they come; when nothing ran, it begins once more (again = true), then
// runs queue() unrecorded. B: Backend, or a test's stand-in with the three
// record calls.
template <class B, class F>
void run_recorded(B &be, Stream &s, F &&queue) {
    for (bool again : {false, true}) {
        if (!be.begin_record(s, again)) break;
        try {
            queue();
        } catch (...) {
            be.cancel_record(s);
            throw;
        }
        if (be.end_record(s)) return;
    }
    queue();
}

// "cpu", "cuda", "cuda:N". Backends are shared by every model that names the same
// device. Throws RMKV_ERR_BACKEND when the device is absent or not built in.
// The CUDA backend is a plugin, librmkv_cuda.so, loaded on first use from the
// path in the environment variable RMKV_CUDA_PLUGIN if set, else from the folder
// of librmkv, else from the default library search path.
std::shared_ptr<Backend> get_backend(const std::string &device);

// The plugin's entry point, "rmkv_cuda_backend_new": a new backend for CUDA
// device `index`. Every failure, then and later, is reported by calling `fail`
// (which throws the library's error and does not return), so no exception type
// crosses the boundary in its own right. The caller owns the result (delete).
constexpr int kCudaPluginAbi = 14;  // raised whenever Backend's virtual functions change
using PluginFailFn = void (*)(int status, const char *message);
using CudaBackendNewFn = Backend *(*)(int abi, int index, PluginFailFn fail);

}  // namespace rmkv
