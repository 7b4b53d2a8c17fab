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

namespace rmkv {

enum class NormKind { layernorm, rmsnorm };
enum class CellKind { gru, lstm, minimal };

class Stream {
public:
    virtual ~Stream() = default;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    virtual std::unique_ptr<Stream> new_stream() = 0;

    // ---- memory ----
    virtual float *alloc(size_t n_floats) = 0;  // zero-filled; throws OUT_OF_MEMORY
    virtual void free(float *p) = 0;
    // A weight tensor for read-only use: the backend may return `host` itself when
    // it can use host memory directly and `host_stable` says it outlives the model.
    virtual float *import_weights(const float *host, size_t n, bool host_stable) = 0;
    virtual void release_weights(float *p, const float *host) = 0;
    virtual void to_host(Stream &s, float *host, const float *src, size_t n) = 0;
    virtual void from_host(Stream &s, float *dst, const float *host, size_t n) = 0;
    virtual void copy(Stream &s, float *dst, const float *src, size_t n) = 0;
    virtual void sync(Stream &s) = 0;  // wait until every queued operation is done

    // ---- operations ----
    // y[n, out] = x[n, in] W[out, in]^T (+ b[out]) (+ y when accumulate).
    // ldx / ldy: row strides of x and y (0 = dense).
    virtual void linear(Stream &s, float *y, const float *x, const float *W, const float *b, int64_t n, int64_t in,
                        int64_t out, bool accumulate) = 0;
    // Rows of x [n, d] normalised into y (may alias x). b is NULL for rmsnorm.
    virtual void norm(Stream &s, NormKind kind, float *y, const float *x, const float *w, const float *b, int64_t n,
                      int64_t d, float eps) = 0;
    // X[n, D] = tok_emb[tokens[i]] (tokens in host memory, already validated).
    virtual void embed(Stream &s, float *X, const float *tok_emb, const int32_t *tokens_host, int64_t n, int64_t d) = 0;
    // out[i] = a[i] + b[i] (out may alias a).
    virtual void add(Stream &s, float *out, const float *a, const float *b, int64_t n) = 0;
    // X[i, :] += PE(p0 + i) (sincos).
    virtual void add_sincos(Stream &s, float *X, int64_t n, int64_t d, int64_t p0) = 0;
    // Rotates n rows of x (row stride ld) in place, heads of head_dim, positions
    // t0..t0+n-1; `inverse` rotates back (the backward of RoPE).
    virtual void rope(Stream &s, float *x, int64_t n, int64_t ld, int64_t n_heads, int64_t head_dim, int64_t t0,
                      float theta, bool inverse) = 0;
    // out[nq, H*hd] = softmax(q k^T / sqrt(hd) + mask) v per head. Query row i sees key
    // rows 0 .. min(nk, visible0 + i + 1) - 1; kv head of query head h is h / (H / Hkv).
    // k, v: [nk, Hkv*hd] with row stride ldkv.
    virtual void attention(Stream &s, float *out, const float *q, const float *k, const float *v, int64_t nq,
                           int64_t nk, int64_t ldkv, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                           int64_t visible0) = 0;
    // h[i] = silu(g[i]) * u[i]  (swiglu); h[i] = gelu_erf(u[i]) (gelu, g NULL).
    virtual void swiglu(Stream &s, float *h, const float *g, const float *u, int64_t n) = 0;
    virtual void gelu(Stream &s, float *h, const float *u, int64_t n) = 0;
    // Attention pooling: out[M, D] = softmax_rows(P x^T / sqrt(D)) x, x [T, D].
    virtual void pool(Stream &s, float *out, const float *P, const float *x, int64_t M, int64_t T, int64_t D) = 0;
    // The recurrent cells, given the gate pre-activations (SPEC section 4, step 6):
    // gru: gi = W_ih s + b_ih, gh = W_hh h + b_hh, each [M, 3D]; lstm: gi, gh [M, 4D],
    // c_in -> c_out (may alias); minimal: gi = W [h, s] + b, [M, 2D] (gh, c NULL).
    virtual void cell(Stream &s, CellKind kind, float *m_out, float *c_out, const float *c_in, const float *gi,
                      const float *gh, const float *h, int64_t M, int64_t D) = 0;
    // dst[M, 2D] = [a | b] row-wise concat of a[M, D], b[M, D].
    virtual void concat_cols(Stream &s, float *dst, const float *a, const float *b, int64_t M, int64_t D) = 0;

    // ---- training: backward operations (cpu_kernels.h documents each) ----
    // dx (+)= dy W (dx may be NULL); dW += dy^T x; db += column sums of dy (db may be NULL).
    virtual void linear_backward(Stream &s, float *dx, bool dx_accumulate, float *dW, float *db, const float *dy,
                                 const float *x, const float *W, int64_t n, int64_t in, int64_t out) = 0;
    virtual void norm_backward(Stream &s, NormKind kind, float *dx, float *dw, float *db, const float *dy, const float *x,
                               const float *w, int64_t n, int64_t d, float eps) = 0;
    virtual void embed_backward(Stream &s, float *dtok_emb, const float *dX, const int32_t *tokens_host, int64_t n,
                                int64_t d) = 0;
    virtual void attention_backward(Stream &s, float *dq, float *dk, float *dv, const float *dout, const float *q,
                                    const float *k, const float *v, int64_t nq, int64_t nk, int64_t ldkv, int64_t n_heads,
                                    int64_t n_kv_heads, int64_t head_dim, int64_t visible0) = 0;
    virtual void swiglu_backward(Stream &s, float *dg, float *du, const float *dh, const float *g, const float *u,
                                 int64_t n) = 0;
    virtual void gelu_backward(Stream &s, float *du, const float *dh, const float *u, int64_t n) = 0;
    virtual void pool_backward(Stream &s, float *dx, float *dP, const float *dout, const float *P, const float *x,
                               int64_t M, int64_t T, int64_t D) = 0;
    virtual void cell_backward(Stream &s, CellKind kind, float *dgi, float *dgh, float *dh, float *dc_in, const float *dm,
                               const float *dc_out, const float *c_in, const float *gi, const float *gh, const float *h,
                               int64_t M, int64_t D) = 0;
    virtual void split_cols_add(Stream &s, float *da, float *db, const float *src, int64_t M, int64_t D) = 0;
    // Cross-entropy of logits [rows, V] against host targets (-1 = none): writes
    // dlogits = scale * (softmax - onehot) (may alias logits), adds the summed loss to *loss_sum.
    virtual void cross_entropy(Stream &s, float *dlogits, const float *logits, const int32_t *targets_host, int64_t rows,
                               int64_t V, float scale, double *loss_sum) = 0;
    // ---- optimiser ----
    virtual void fill(Stream &s, float *x, float value, size_t n) = 0;
    virtual double sum_squares(Stream &s, const float *x, size_t n) = 0;  // synchronises
    // p -= lr * wd * p; m, v moments of g * grad_scale; p -= lr * mhat / (sqrt(vhat) + eps).
    // shadow (may be NULL): receives p rounded to bf16 after the update.
    virtual void adamw(Stream &s, float *p, float *m, float *v, const float *g, size_t n, float lr, float beta1,
                       float beta2, float eps, float weight_decay, float grad_scale, int64_t step, uint16_t *shadow) = 0;

    // ---- mixed precision (training) ----
    // When on for a stream, linear / linear_backward with a weight that has a bf16
    // shadow on that stream compute with bf16 inputs and f32 accumulation and outputs.
    virtual bool supports_bf16() const = 0;
    virtual void set_bf16(Stream &s, bool on) = 0;
    virtual void set_shadow(Stream &s, const float *W, const uint16_t *W_bf16) = 0;
    virtual uint16_t *alloc_bf16(size_t n) = 0;
    virtual void free_bf16(uint16_t *p) = 0;
    virtual void to_bf16(Stream &s, uint16_t *dst, const float *src, size_t n) = 0;
};

// "cpu", "cuda", "cuda:N". Backends are shared by every model that names the same
// device. Throws RMKV_ERR_BACKEND when the device is absent or not built in.
std::shared_ptr<Backend> get_backend(const std::string &device);

}  // namespace rmkv
