// The CUDA backend (plugin librmkv_cuda.so, loaded by get_backend in
// src/backend/backend.cpp): cuBLAS for the matrix products, the kernels of
// cuda_kernels.cuh for everything else, fp32 storage throughout, except the
// matrices of inference models from BF16 and F16 files, kept in 16 bits.
//
// Products with a bias add it in cuBLASLt's epilogue (bias_gemm.h; RMKV_CUDA_BIAS=kernel:
// a kernel after the product, as for shapes cuBLASLt does not take).
//
// Precision: fp32 products use CUBLAS_COMPUTE_32F with the default math mode
// (no TF32), for parity with the CPU; with bf16 on for a stream, products of a
// weight that has a bf16 shadow take bf16 inputs (the shadow, and the activation's
// bf16 copy where the caller passes one, else the activation converted into the
// stream's scratch) with fp32 accumulation and output, on the tensor cores. The
// norm, activation, cross-entropy, attention, cell-gradient and concatenation
// kernels write those copies along with their fp32 outputs.
//
// Streams (cuda_stream.h): a Stream is a non-blocking cudaStream_t with its own
// cuBLAS handle, cuBLAS workspace and grow-once scratch (bf16 conversions, norm statistics,
// staging of host token and target arrays, the loss accumulator). Nothing is
// allocated once the buffers have grown to a model's sizes.
//
// Host synchronisation: sync(), to_host() (its callers read at once),
// take_loss() and take_grad_norm() (at the end of a training step). Nothing in
// between waits: cross_entropy() adds each segment's loss to a device
// accumulator, update_scale() leaves the clip factor on the device for adamw(),
// and host token and target arrays are copied through pinned memory.
//
// Attention: in bf16 training (set_bf16_attention) the tensor-core kernels
// (tensor_attention.cuh) for the head sizes bf16_attention takes; otherwise the
// fused fp32 kernels (fused_attention.cuh) where a head's scores fit the shared
// memory, batched cuBLAS products around row-wise softmax kernels beyond that
// and for pooling;
// sessions decoded together run all their rows in one kernel, and the stacked
// sequences of a training pass share one launch. The environment variable
// RMKV_CUDA_ATTENTION (read when the backend is made) = products uses the
// products everywhere, one row after another, and = fp32 keeps bf16 training on
// the fp32 kernels: the gpu tests run each way, and benchmarks can compare them.
//
// Recorded steps (Backend::begin_record; a session's decoding step, sessions
// decoded together, a training pass): with RMKV_CUDA_GRAPHS=1 the step is
// captured into a CUDA graph and launched as one, or, when its calls have the
// same arguments as the last graph's, that graph is launched again without a
// capture (replay.h); off by default until timed on a GPU.
//
// Errors: every CUDA and cuBLAS call is checked; a failure is reported through
// the fail function given by librmkv (RMKV_ERR_BACKEND, or OUT_OF_MEMORY),
// naming the call and CUDA's message. Kernel launch errors are checked after
// each launch; errors of the kernels themselves surface at the next synchronising call.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_kernels.cuh"
#include "backend/cuda/cuda_stream.h"
#include "backend/cuda/products.h"
#include "backend/cuda/recorded_steps.h"
#include "backend/cuda/replay.h"

namespace rmkv {

namespace {

using cuda::check;
using cuda::check_alloc;
using cuda::check_launch;
using cuda::CudaStream;
using cuda::fail;
using cuda::Grow;
using cuda::kErrBackend;
using cuda::kErrInternal;
using cuda::kErrOutOfMemory;
using cuda::make_current;
using cuda::stage;
using cuda::t_recording;

class CudaBackend final : public Backend {
public:
    explicit CudaBackend(int device) : device_(device) {
        int count = 0;
        cudaError_t e = cudaGetDeviceCount(&count);
        if (e != cudaSuccess) {
            cudaGetLastError();
            fail(kErrBackend, std::string("device 'cuda:") + std::to_string(device) +
                                  "': no usable CUDA driver or device (" + cudaGetErrorName(e) + ": " +
                                  cudaGetErrorString(e) + ")");
        }
        if (count == 0) fail(kErrBackend, "device 'cuda': this machine has no CUDA device");
        if (device < 0 || device >= count)
            fail(kErrBackend, std::string("device 'cuda:") + std::to_string(device) + "': there are " +
                                  std::to_string(count) + " CUDA device(s), numbered from 0");
        make_current(device_);
        check(cudaGetDeviceProperties(&prop_, device_), "cudaGetDeviceProperties");
        check(cuda::fused_attention_setup(static_cast<int>(prop_.sharedMemPerBlockOptin)),
              "cudaFuncSetAttribute (fused attention's shared memory)");
        const int attention = env_choice("RMKV_CUDA_ATTENTION", {"auto", "fp32", "products"});
        fused_ = attention != 2, tensor_ = attention == 0;
        bias_epilogue_ = env_choice("RMKV_CUDA_BIAS", {"epilogue", "kernel"}) == 0;
        graphs_ = env_choice("RMKV_CUDA_GRAPHS", {"0", "1"}) == 1;
    }

    std::string name() const override { return std::string("cuda:") + std::to_string(device_) + " (" + prop_.name + ")"; }

    std::unique_ptr<Stream> new_stream() override {
        use();
        auto s = std::make_unique<CudaStream>(device_);
        check(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), "cudaStreamCreate");
        check(cudaEventCreateWithFlags(&s->event, cudaEventDisableTiming), "cudaEventCreate");
        check(cudaEventCreateWithFlags(&s->graph_done, cudaEventDisableTiming), "cudaEventCreate");
        check(cublasCreate(&s->blas), "cublasCreate");
        check(cublasSetStream(s->blas, s->stream), "cublasSetStream");
        check(cublasSetMathMode(s->blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
        const size_t ws = size_t(32) << 20;
        check(cublasSetWorkspace(s->blas, s->workspace.get(ws, "cudaMalloc (cuBLAS workspace)"), ws), "cublasSetWorkspace");
        if (bias_epilogue_) s->bias_gemm.create(s->workspace.p, ws);
        s->acc = s->acc_buf.get(CudaStream::kAcc, "cudaMalloc (accumulators)");
        check(cudaMemsetAsync(s->acc, 0, CudaStream::kAcc * sizeof(double), s->stream), "cudaMemsetAsync");
        static const float kOne = 1.0f;  // the update scale before any update_scale, as on the CPU
        check(cudaMemcpyAsync(s->acc + 3, &kOne, sizeof kOne, cudaMemcpyHostToDevice, s->stream), "cudaMemcpyAsync");
        check(cudaMallocHost(&s->loss_host, CudaStream::kAcc * sizeof(double)), "cudaMallocHost");
        return s;
    }

    // ---- memory ----
    float *alloc(size_t n) override {
        use();
        void *p = nullptr;
        const size_t bytes = (n ? n : 1) * sizeof(float);
        cudaError_t e = cudaMalloc(&p, bytes);
        if (e != cudaSuccess) {
            cudaGetLastError();
            fail(kErrOutOfMemory, "CUDA: cannot allocate " + std::to_string(bytes) + " bytes on " + name() + ": " +
                                      cudaGetErrorString(e));
        }
        // Zero on the legacy default stream, which non-blocking streams do not wait for: wait here.
        check(cudaMemset(p, 0, bytes), "cudaMemset");
        check(cudaStreamSynchronize(0), "cudaStreamSynchronize");
        return static_cast<float *>(p);
    }
    void free(float *p) override {
        if (!p) return;
        use();
        cudaFree(p);  // waits for the device; errors at exit are of no use to anyone
    }
    float *import_weights(const float *host, size_t n, bool) override {
        float *p = alloc(n);
        check(cudaMemcpy(p, host, n * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy (weights to the device)");
        return p;
    }
    void release_weights(float *p, const float *) override { free(p); }
    void to_host(Stream &s, float *host, const float *src, size_t n) override {
        if (!n) return;
        // Waits for the copy: callers read the host memory at once (a session's logits).
        auto &st = cs(s);
        check(cudaMemcpyAsync(host, src, n * sizeof(float), cudaMemcpyDeviceToHost, st.stream), "cudaMemcpyAsync (to host)");
        wait(st);
    }
    void from_host(Stream &s, float *dst, const float *host, size_t n) override {
        if (!n) return;
        auto &st = cs(s);
        if (cuda::queues("from_host", dst, host, n, st.stream))
            check(cudaMemcpyAsync(dst, host, n * sizeof(float), cudaMemcpyHostToDevice, st.stream), "cudaMemcpyAsync (from host)");
    }
    void copy(Stream &s, float *dst, const float *src, size_t n) override {
        if (dst == src || !n) return;
        auto &st = cs(s);
        if (dst < src + n && src < dst + n) {  // overlapping: through scratch (memmove)
            float *tmp = st.overlap.get(n, "cudaMalloc (scratch)");
            if (cuda::queues("copy", tmp, src, n, st.stream))
                check(cudaMemcpyAsync(tmp, src, n * sizeof(float), cudaMemcpyDeviceToDevice, st.stream), "cudaMemcpyAsync");
            src = tmp;
        }
        if (cuda::queues("copy", dst, src, n, st.stream))
            check(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, st.stream), "cudaMemcpyAsync");
    }
    void sync(Stream &s) override { wait(cs(s)); }
    void wait_for(Stream &waiter, Stream &done) override {
        CudaStream &d = cs(done), &w = cs(waiter);
        check(cudaEventRecord(d.event, d.stream), "cudaEventRecord");
        check(cudaStreamWaitEvent(w.stream, d.event, 0), "cudaStreamWaitEvent");
    }
    // ---- recorded steps (recorded_steps.h) ----
    bool begin_record(Stream &s, bool again) override { return graphs_ && cuda::begin_step(cs(s), again); }
    // (cs: forgets the step's bf16 conversions too, which may not have run)
    bool end_record(Stream &s) override { return cuda::end_step(cs(s)); }
    void cancel_record(Stream &s) override { cuda::cancel_step(cs(s)); }
    bool decodes_by_rows() const override { return graphs_; }

    // One sequence's products have only S (+ M) rows: several streams fed by
    // several host threads keep the device busy.
    int default_parallel_sequences() const override { return 4; }
    int default_stacked_sequences() const override { return 1; }
    void copy_blocks(Stream &s, float *dst, int64_t dst_pitch, const float *src, int64_t src_pitch, int64_t width,
                     int64_t count) override {
        if (width <= 0 || count <= 0) return;
        const size_t f = sizeof(float);
        auto &st = cs(s);
        if (!cuda::queues("copy_blocks", dst, dst_pitch, src, src_pitch, width, count, st.stream)) return;
        check(cudaMemcpy2DAsync(dst, static_cast<size_t>(dst_pitch) * f, src, static_cast<size_t>(src_pitch) * f,
                                static_cast<size_t>(width) * f, static_cast<size_t>(count), cudaMemcpyDeviceToDevice,
                                st.stream),
              "cudaMemcpy2DAsync");
    }

    // ---- matrix products (row-major, mapped onto cuBLAS's column-major) ----
    // Row-major y[n, out] = x[n, in] W[out, in]^T is column-major y^T = W^T' x^T:
    // gemm(T, N, m = out, n = n, k = in, W (ld in), x (ld in), y (ld out)).
    // With a bias, one cuBLASLt product adds it in its epilogue (bias_gemm.h)
    // unless RMKV_CUDA_BIAS=kernel or cuBLASLt does not take the shape; else the
    // product, then an add_bias kernel (a stream made with RMKV_CUDA_BIAS=kernel
    // has no cuBLASLt handle: run() declines).
    void linear(Stream &s, float *y, const float *x, const float *W, const float *b, int64_t n, int64_t in, int64_t out,
                bool accumulate, const uint16_t *x16) override {
        auto &st = cs_product(s);
        if (n <= 0) return;
        const uint16_t *w16 = shadow(st, W);
        const void *A = W, *B = x;
        if (w16) A = w16, B = x16 ? x16 : convert(st, st.cvt_a, st.cvt_a_of, x, n * in);
        if (!B) fail(kErrInternal, "linear: no fp32 input for a product without bf16 inputs");
        if (!b || !st.bias_gemm.run(st.stream, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, A, in, B, in, y, out, b,
                                    accumulate, w16 != nullptr)) {
            gemm(st, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, A, in, B, in, y, out, accumulate, w16 != nullptr);
            if (b) {
                cuda::add_bias(y, b, n, out, st.stream);
                check_launch("add_bias");
            }
        }
        written(st, y, n * out);
    }
    // dx[n, in] (+)= dy[n, out] W[out, in]: gemm(N, N, in, n, out, W (ld in), dy (ld out), dx (ld in));
    // dW[out, in] += dy^T x: gemm(N, T, in, out, n, x (ld in), dy (ld out), dW (ld in)).
    void linear_backward(Stream &s, float *dx, bool dx_accumulate, float *dW, float *db, const float *dy, const float *x,
                         const float *W, int64_t n, int64_t in, int64_t out, const uint16_t *x16,
                         const uint16_t *dy16) override {
        auto &st = cs_product(s);
        if (n <= 0) return;
        if (const uint16_t *w16 = shadow(st, W)) {
            if (!dy16) dy16 = convert(st, st.cvt_a, st.cvt_a_of, dy, n * out);
            if (db && !dy) fail(kErrInternal, "linear_backward: a bias gradient without the fp32 dy");
            if (dx) gemm(st, CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, w16, in, dy16, out, dx, in, dx_accumulate, true);
            if (dW) {
                if (!x16) x16 = convert(st, st.cvt_b, st.cvt_b_of, x, n * in);
                gemm(st, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, x16, in, dy16, out, dW, in, true, true);
            }
        } else {
            if (!x || !dy) fail(kErrInternal, "linear_backward: no fp32 inputs for a product without bf16 inputs");
            if (dx) gemm(st, CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, W, in, dy, out, dx, in, dx_accumulate, false);
            if (dW) gemm(st, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, x, in, dy, out, dW, in, true, false);
        }
        if (db) add_rows(s, db, dy, n, out);
        if (dx) written(st, dx, n * in);
        if (dW) written(st, dW, out * in);
        if (db) written(st, db, out);
    }

    // ---- everything else ----
    void norm(Stream &s, NormKind kind, float *y, const float *x, const float *w, const float *b, int64_t n, int64_t d,
              float eps, uint16_t *y16) override {
        cuda::norm_forward(kind, y, x, w, b, n, d, eps, y16, cs(s).stream);
        check_launch("norm");
    }
    void embed(Stream &s, float *X, const float *E, const int32_t *tokens, int64_t n, int64_t d) override {
        auto &st = cs(s);
        cuda::embed_forward(X, E, stage(st, st.tokens, tokens, n), n, d, st.stream);
        check_launch("embed");
    }
    void add(Stream &s, float *out, const float *a, const float *b, int64_t n, uint16_t *out16 = nullptr) override {
        cuda::add(out, a, b, n, cs(s).stream, out16);
        check_launch("add");
    }
    void add_rows(Stream &s, float *dst, const float *src, int64_t n, int64_t width) override {
        const ColumnSums part{dst, src, n * width, n, 1, width};
        add_column_sums(s, &part, 1);
    }
    void add_column_sums(Stream &s, const ColumnSums *parts, size_t n) override {
        auto &st = cs(s);
        const int64_t count = static_cast<int64_t>(n);
        double *scratch = st.stats.get(std::max<size_t>(cuda::column_sums_scratch(parts, count), 1), "cudaMalloc (scratch)");
        cuda::column_sums_add(parts, count, scratch, st.stream);
        check_launch("column sums");
    }
    void add_sincos(Stream &s, float *X, int64_t n, int64_t d, int64_t p0) override {
        cuda::sincos_add(X, n, d, p0, cs(s).stream);
        check_launch("add_sincos");
    }
    void add_sincos_rows(Stream &s, float *X, const int64_t *positions, int64_t n, int64_t d) override {
        auto &st = cs(s);
        cuda::sincos_add(X, n, d, 0, st.stream, stage(st, st.positions, positions, n));
        check_launch("add_sincos (rows)");
    }
    void rope(Stream &s, float *x, int64_t n, int64_t ld, int64_t h, int64_t hd, int64_t t0, float theta,
              bool inverse) override {
        cuda::rope(x, n, ld, h, hd, t0, theta, inverse, 1, 0, cs(s).stream);
        check_launch("rope");
    }
    void rope_stacked(Stream &s, float *x, int64_t n, int64_t ld, int64_t h, int64_t hd, int64_t t0, float theta,
                      bool inverse, int64_t n_seq, int64_t stride) override {
        cuda::rope(x, n, ld, h, hd, t0, theta, inverse, n_seq, stride, cs(s).stream);
        check_launch("rope");
    }
    // The one place that picks attention's kernel: one query row without dropout
    // (a session's decoding step) takes the decode kernel, read-only; on a stream
    // with bf16 attention (training), the tensor-core kernels where they fit;
    // rows that fit the fused kernel take it; both take n_seq stacked sequences
    // per launch (blockIdx.z, kFusedStack at a time); longer rows of keys go
    // through the products one sequence at a time. The backward picks by the same
    // tests, the decode kernel's aside (it has no backward).
    void attention(Stream &s, float *out, const float *q, const float *k, const float *v, int64_t nq, int64_t nk,
                   int64_t ldkv, int64_t h, int64_t hkv, int64_t hd, int64_t visible0, const Dropout &drop) override {
        attention_stacked(s, out, q, k, v, nq, nk, ldkv, h, hkv, hd, visible0, 1, 0, drop.on() ? &drop : nullptr);
    }
    // out16: the fused and tensor-core kernels write it with out; after the others, one conversion.
    void attention_stacked(Stream &s, float *out, const float *q, const float *k, const float *v, int64_t nq,
                           int64_t nk, int64_t ldkv, int64_t h, int64_t hkv, int64_t hd, int64_t visible0, int64_t n_seq,
                           int64_t kv_stride, const Dropout *drops, uint16_t *out16 = nullptr) override {
        auto &st = cs(s);
        const int64_t at = std::min(nk, visible0 + 1) - 1, D = h * hd;
        const bool tc = tc_fits(st, hd, nk);
        if (nq == 1 && at >= 0 && !drops && ldkv == hkv * hd && decode_fits(hd, at + 1)) {
            for (int64_t i = 0; i < n_seq; ++i)
                cuda::attention_one_row(out + i * D, q + i * D, k + i * kv_stride, v + i * kv_stride, at, h, hkv, hd,
                                        st.stream);
            check_launch("attention (one row)");
        } else if (tc || fused_fits(hd, nk, false)) {
            cuda::fused_attention_forward(out, out16, q, k, v, nq, nk, ldkv, h, hkv, hd, visible0,
                                          1.0f / std::sqrt(static_cast<float>(hd)), n_seq, kv_stride,
                                          drops ? stage(st, st.drops, drops, n_seq) : nullptr, tc, st.stream);
            check_launch("fused attention");
            out16 = nullptr;  // (written with out)
        } else {
            for (int64_t i = 0; i < n_seq; ++i)
                attend(st, out + i * nq * D, q + i * nq * D, k + i * kv_stride, v + i * kv_stride, nq, nk, ldkv, h, hkv,
                       hd, visible0, drops ? drops[i] : Dropout{});
        }
        if (out16) to_bf16(s, out16, out, static_cast<size_t>(n_seq * nq * D));
    }
    void gather_rows(Stream &s, float *dst, const float *const *src, int64_t n, int64_t width) override {
        auto &st = cs(s);
        cuda::gather_rows(dst, stage(st, st.row_src, src, n), n, width, st.stream);
        check_launch("gather_rows");
    }
    // The streams' rows gathered into one block each (a launch each), then one
    // stacked launch: where the fused kernel takes the keys; beyond, the products
    // one stream after another, on the streams' own rows.
    void attention_rows(Stream &s, float *out, const float *const *q, const float *const *keys,
                        const float *const *values, int64_t n, int64_t nq, int64_t nk, int64_t h, int64_t hkv,
                        int64_t hd, int64_t visible0) override {
        if (!fused_fits(hd, nk, false)) {
            Backend::attention_rows(s, out, q, keys, values, n, nq, nk, h, hkv, hd, visible0);
            return;
        }
        if (n <= 0 || nq <= 0) return;
        auto &st = cs(s);
        const int64_t D = h * hd, Dkv = hkv * hd;
        float *gq = st.gathered.get(static_cast<size_t>(n * (nq * D + 2 * nk * Dkv)), "cudaMalloc (gathered rows)");
        float *gk = gq + n * nq * D, *gv = gk + n * nk * Dkv;
        gather_rows(s, gq, q, n, nq * D);
        gather_rows(s, gk, keys, n, nk * Dkv);
        gather_rows(s, gv, values, n, nk * Dkv);
        attention_stacked(s, out, gq, gk, gv, nq, nk, Dkv, h, hkv, hd, visible0, n, nk * Dkv, nullptr);
    }
    void pool_rows(Stream &s, float *out, const float *P, const float *const *x, int64_t n, int64_t M, int64_t T,
                   int64_t D) override {
        if (n <= 0 || M <= 0) return;
        auto &st = cs(s);
        float *g = st.gathered.get(static_cast<size_t>(n * T * D), "cudaMalloc (gathered rows)");
        gather_rows(s, g, x, n, T * D);
        pool_stacked(s, out, P, g, M, T, D, n);
    }
    void decode_attention(Stream &s, float *out, float *q, const float *k, const float *v, const CacheRow *rows,
                          int64_t n, int64_t h, int64_t hkv, int64_t hd, bool rope, float theta) override {
        if (n <= 0) return;
        int64_t max_nv = 0;
        for (int64_t i = 0; i < n; ++i) max_nv = std::max(max_nv, rows[i].at + 1);
        if (!decode_fits(hd, max_nv)) {
            Backend::decode_attention(s, out, q, k, v, rows, n, h, hkv, hd, rope, theta);
            return;
        }
        // Room for a multiple of 256 keys where it fits: the launch keeps its shared
        // memory, and a recorded step its signature, from one token to the next.
        const int64_t room = (max_nv + 255) / 256 * 256;
        auto &st = cs(s);
        cuda::decode_attention(out, q, k, v, stage(st, st.cache_rows, rows, n), n, h, hkv, hd,
                               decode_fits(hd, room) ? room : max_nv, rope, theta, st.stream);
        check_launch("decode attention");
    }
    void scatter_rows(Stream &s, float *const *dst, const float *src, int64_t n, int64_t width) override {
        auto &st = cs(s);
        cuda::scatter_rows(stage(st, st.row_dst, dst, n), src, n, width, st.stream);
        check_launch("scatter_rows");
    }
    void dropout(Stream &s, float *x, int64_t n, const Dropout &drop) override {
        if (drop.on()) dropout_stacked(s, x, n, &drop, 1);
    }
    void dropout_stacked(Stream &s, float *x, int64_t n, const Dropout *drops, int64_t n_seq,
                         uint16_t *x16 = nullptr) override {
        if (n <= 0 || n_seq <= 0) return;
        auto &st = cs(s);
        cuda::dropout(x, n, stage(st, st.drops, drops, n_seq), n_seq, st.stream, x16);
        check_launch("dropout");
    }
    void swiglu(Stream &s, float *h, const float *g, const float *u, int64_t n, uint16_t *h16) override {
        cuda::swiglu_forward(h, g, u, n, h16, cs(s).stream);
        check_launch("swiglu");
    }
    void gelu(Stream &s, float *h, const float *u, int64_t n, uint16_t *h16) override {
        cuda::gelu_forward(h, u, n, h16, cs(s).stream);
        check_launch("gelu");
    }
    // Pooling is attention of M query rows over T keys (= values = x), one head of
    // width D, nothing masked, scale 1/sqrt(D); stacked sequences share each step's
    // product (products.h).
    void pool(Stream &s, float *out, const float *P, const float *x, int64_t M, int64_t T, int64_t D) override {
        pool_stacked(s, out, P, x, M, T, D, 1);
    }
    void pool_stacked(Stream &s, float *out, const float *P, const float *x, int64_t M, int64_t T, int64_t D,
                      int64_t n_seq) override {
        auto &st = cs(s);
        if (M <= 0 || n_seq <= 0) return;
        float *S = st.attn_p.get(static_cast<size_t>(n_seq * M * T), "cudaMalloc (pooling scores)");
        ProductOps ops{*this, st};
        cuda::pool_forward_products(ops, S, out, P, x, M, T, D, n_seq, 1.0f / std::sqrt(static_cast<float>(D)));
    }
    void cell(Stream &s, CellKind kind, float *m_out, float *c_out, const float *c_in, const float *gi, const float *gh,
              const float *h, int64_t M, int64_t D) override {
        cuda::cell_forward(kind, m_out, c_out, c_in, gi, gh, h, M, D, cs(s).stream);
        check_launch("cell");
    }
    void concat_cols(Stream &s, float *dst, const float *a, const float *b, int64_t M, int64_t D,
                     uint16_t *dst16) override {
        cuda::concat_cols(dst, a, b, M, D, dst16, cs(s).stream);
        check_launch("concat_cols");
    }
    void norm_backward(Stream &s, NormKind kind, float *dx, float *dw, float *db, const float *dy, const float *x,
                       const float *w, int64_t n, int64_t d, float eps, uint16_t *dx16) override {
        auto &st = cs(s);
        cuda::norm_backward(kind, dx, dw, db, dy, x, w, n, d, eps,
                            st.stats.get(cuda::norm_backward_scratch(n, d), "cudaMalloc (scratch)"), st.stream, dx16);
        check_launch("norm_backward");
    }
    void embed_backward(Stream &s, float *dE, const float *dX, const int32_t *tokens, int64_t n, int64_t d) override {
        auto &st = cs(s);
        cuda::embed_backward(dE, dX, stage(st, st.tokens, tokens, n), n, d, st.stream);
        check_launch("embed_backward");
    }
    void attention_backward(Stream &s, float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                            const float *v, int64_t nq, int64_t nk, int64_t ldkv, int64_t h, int64_t hkv, int64_t hd,
                            int64_t visible0, const Dropout &drop) override {
        attention_stacked_backward(s, dq, dk, dv, dout, q, k, v, nq, nk, ldkv, h, hkv, hd, visible0, 1, 0,
                                   drop.on() ? &drop : nullptr);
    }
    void attention_stacked_backward(Stream &s, float *dq, float *dk, float *dv, const float *dout, const float *q,
                                    const float *k, const float *v, int64_t nq, int64_t nk, int64_t ldkv, int64_t h,
                                    int64_t hkv, int64_t hd, int64_t visible0, int64_t n_seq, int64_t kv_stride,
                                    const Dropout *drops) override {
        auto &st = cs(s);
        const bool tc = tc_fits(st, hd, nk);
        if (tc || fused_fits(hd, nk, true)) {
            cuda::fused_attention_backward(dq, dk, dv, dout, q, k, v, nq, nk, ldkv, h, hkv, hd, visible0,
                                           1.0f / std::sqrt(static_cast<float>(hd)), n_seq, kv_stride,
                                           drops ? stage(st, st.drops, drops, n_seq) : nullptr, tc, st.stream);
            check_launch("fused attention backward");
            return;
        }
        const int64_t rows = nq * h * hd;
        for (int64_t i = 0; i < n_seq; ++i)
            attend_backward(st, dq + i * rows, dk + i * kv_stride, dv + i * kv_stride, dout + i * rows, q + i * rows,
                            k + i * kv_stride, v + i * kv_stride, nq, nk, ldkv, h, hkv, hd, visible0,
                            drops ? drops[i] : Dropout{});
    }
    void swiglu_backward(Stream &s, float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n,
                         uint16_t *dg16, uint16_t *du16) override {
        cuda::swiglu_backward(dg, du, dh, g, u, n, dg16, du16, cs(s).stream);
        check_launch("swiglu_backward");
    }
    void gelu_backward(Stream &s, float *du, const float *dh, const float *u, int64_t n, uint16_t *du16) override {
        cuda::gelu_backward(du, dh, u, n, du16, cs(s).stream);
        check_launch("gelu_backward");
    }
    void pool_backward(Stream &s, float *dx, float *dP, const float *dout, const float *P, const float *x, int64_t M,
                       int64_t T, int64_t D) override {
        pool_stacked_backward(s, dx, dP, dout, P, x, M, T, D, 1);
    }
    void pool_stacked_backward(Stream &s, float *dx, float *dP, const float *dout, const float *P, const float *x,
                               int64_t M, int64_t T, int64_t D, int64_t n_seq) override {
        auto &st = cs(s);
        if (M <= 0 || n_seq <= 0) return;
        const size_t n = static_cast<size_t>(n_seq * M * T);
        float *S = st.attn_p.get(n, "cudaMalloc (pooling scores)");
        float *dS = st.attn_dp.get(n, "cudaMalloc (pooling score gradients)");
        ProductOps ops{*this, st};
        cuda::pool_backward_products(ops, S, dS, dx, dP, dout, P, x, M, T, D, n_seq,
                                     1.0f / std::sqrt(static_cast<float>(D)));
    }
    void cell_backward(Stream &s, CellKind kind, float *dgi, float *dgh, float *dh, float *dc_in, const float *dm,
                       const float *dc_out, const float *c_in, const float *gi, const float *gh, const float *h, int64_t M,
                       int64_t D, uint16_t *dgi16, uint16_t *dgh16) override {
        cuda::cell_backward(kind, dgi, dgh, dh, dc_in, dm, dc_out, c_in, gi, gh, h, M, D, dgi16, dgh16, cs(s).stream);
        check_launch("cell_backward");
    }
    void split_cols_add(Stream &s, float *da, float *db, const float *src, int64_t M, int64_t D) override {
        cuda::split_cols_add(da, db, src, M, D, cs(s).stream);
        check_launch("split_cols_add");
    }
    void cross_entropy(Stream &s, float *dlogits, const float *logits, const int32_t *targets, int64_t rows, int64_t V,
                       float scale, uint16_t *dlogits16) override {
        auto &st = cs(s);
        if (rows <= 0) return;
        const int32_t *t = stage(st, st.targets, targets, rows);
        cuda::cross_entropy(dlogits, logits, t, rows, V, stage(st, st.ce_scale, &scale, 1), st.acc, dlogits16, st.stream);
        check_launch("cross_entropy");
    }
    double take_loss(Stream &s) override { return take(cs(s), 0); }
    void fill(Stream &s, float *x, float value, size_t n) override {
        cuda::fill(x, value, n, cs(s).stream);
        check_launch("fill");
    }
    void update_scale(Stream &s, const float *const *xs, const size_t *ns, size_t count, float grad_scale,
                      float clip) override {
        auto &st = cs(s);
        st.multi_tensors.clear();
        for (size_t t = 0; t < count; ++t)
            if (xs[t]) st.multi_tensors.push_back({nullptr, nullptr, nullptr, xs[t], nullptr, static_cast<int64_t>(ns[t]), 0.0f});
        int64_t n_chunks = 0;
        const cuda::MultiChunk *chunks = multi_tables(st, n_chunks);
        cuda::sum_squares_many(st.multi_tensors_dev.p, chunks, n_chunks, st.acc + 1, st.stream);
        check_launch("sum_squares_many");
        cuda::update_scale(st.acc, grad_scale, clip, st.stream);
        check_launch("update_scale");
    }
    double take_grad_norm(Stream &s) override { return take(cs(s), 2, false); }
    void adamw(Stream &s, float *p, float *m, float *v, const float *g, size_t n, float lr, float beta1, float beta2,
               float eps, float weight_decay, int64_t step, uint16_t *shadow) override {
        // The scalars exactly as the CPU backend computes them.
        const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
        const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
        const float step_size = static_cast<float>(lr / bc1), inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
        const float decay = 1.0f - lr * weight_decay;
        auto &st = cs(s);
        cuda::adamw(p, m, v, g, n, beta1, beta2, eps, decay, step_size, inv_sqrt_bc2,
                    reinterpret_cast<const float *>(st.acc + 3), shadow, st.stream);
        check_launch("adamw");
    }
    void adamw_many(Stream &s, const AdamwTensor *ts, size_t count, float lr, float beta1, float beta2, float eps,
                    int64_t step) override {
        const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
        const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
        const float step_size = static_cast<float>(lr / bc1), inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
        auto &st = cs(s);
        st.multi_tensors.clear();
        for (size_t i = 0; i < count; ++i)
            st.multi_tensors.push_back({ts[i].p, ts[i].m, ts[i].v, ts[i].g, ts[i].shadow, static_cast<int64_t>(ts[i].n),
                                        1.0f - lr * ts[i].weight_decay});
        int64_t n_chunks = 0;
        const cuda::MultiChunk *chunks = multi_tables(st, n_chunks);
        cuda::adamw_many(st.multi_tensors_dev.p, chunks, n_chunks, beta1, beta2, eps, step_size, inv_sqrt_bc2,
                         reinterpret_cast<const float *>(st.acc + 3), st.stream);
        check_launch("adamw_many");
    }
    void add_many(Stream &s, float *const *dst, const float *const *src, const size_t *ns, size_t count) override {
        auto &st = cs(s);
        st.multi_tensors.clear();
        for (size_t i = 0; i < count; ++i)
            if (dst[i]) st.multi_tensors.push_back({dst[i], nullptr, nullptr, src[i], nullptr, static_cast<int64_t>(ns[i]), 0.0f});
        int64_t n_chunks = 0;
        const cuda::MultiChunk *chunks = multi_tables(st, n_chunks);
        cuda::add_many(st.multi_tensors_dev.p, chunks, n_chunks, st.stream);
        check_launch("add_many");
    }
    // st.multi_tensors and their chunks to the device (the tensors to
    // st.multi_tensors_dev); returns the device chunks.
    const cuda::MultiChunk *multi_tables(CudaStream &st, int64_t &n_chunks) {
        cuda::multi_chunks(st.multi_tensors, st.multi_chunks);
        n_chunks = static_cast<int64_t>(st.multi_chunks.size());
        stage(st, st.multi_tensors_dev, st.multi_tensors.data(), static_cast<int64_t>(st.multi_tensors.size()));
        return stage(st, st.multi_chunks_dev, st.multi_chunks.data(), n_chunks);
    }

    // ---- mixed precision ----
    bool supports_bf16() const override { return prop_.major >= 8; }
    void set_bf16(Stream &s, bool on) override { cs(s).bf16 = on; }
    void set_bf16_attention(Stream &s, bool on) override { cs(s).bf16_attention = on; }
    bool bf16_attention(int64_t hd) const override {
        return tensor_ && supports_bf16() && cuda::tc_attention_fits(hd) &&
               cuda::tc_attention_smem(hd, true) <= static_cast<size_t>(prop_.sharedMemPerBlockOptin);
    }
    void set_shadow(Stream &s, const float *W, const uint16_t *W_bf16) override { cs(s).shadows[W] = W_bf16; }
    // ---- 16-bit weights (inference models from BF16 and F16 files, on the device) ----
    bool has_half_weights() const override { return true; }
    const uint16_t *import_half_weights(const uint16_t *host, size_t n) override {
        uint16_t *p = alloc_bf16(n);
        check(cudaMemcpy(p, host, n * sizeof(uint16_t), cudaMemcpyHostToDevice), "cudaMemcpy (16-bit weights to the device)");
        return p;
    }
    void release_half_weights(const uint16_t *p, const uint16_t *) override { free_bf16(const_cast<uint16_t *>(p)); }
    // A bf16 stream with bf16 weights: x rounded to bf16, the tensor cores (as
    // training's shadows). Otherwise exact: up to kHalfGemvRows rows read each
    // weight once, widened in registers; more rows widen W into the stream's
    // scratch a block of rows at a time (at most kWidenFloats) for fp32 products.
    void linear_w16(Stream &s, float *y, const float *x, const uint16_t *W, Half h, const float *b, int64_t n, int64_t in,
                    int64_t out, bool accumulate) override {
        auto &st = cs_product(s);
        if (n <= 0) return;
        if (h == Half::bf16 && st.bf16) {
            const uint16_t *x16 = convert(st, st.cvt_a, st.cvt_a_of, x, n * in);
            gemm(st, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, W, in, x16, in, y, out, accumulate, true);
        } else if (n <= cuda::kHalfGemvRows) {
            cuda::gemv_half(y, x, W, h, b, n, in, out, accumulate, st.stream);
            check_launch("gemv_half");
            written(st, y, n * out);
            return;
        } else {
            const int64_t rows = std::max<int64_t>(1, kWidenFloats / in);
            float *wf = st.widened.get(static_cast<size_t>(std::min(rows, out) * in), "cudaMalloc (widened weights)");
            for (int64_t o = 0; o < out; o += rows) {
                const int64_t c = std::min(rows, out - o);
                cuda::widen_half(wf, W + o * in, h, c * in, st.stream);
                check_launch("widen_half");
                gemm(st, CUBLAS_OP_T, CUBLAS_OP_N, c, n, in, wf, in, x, in, y + o, out, accumulate, false);
            }
        }
        if (b) {
            cuda::add_bias(y, b, n, out, st.stream);
            check_launch("add_bias");
        }
        written(st, y, n * out);
    }
    void embed_w16(Stream &s, float *X, const uint16_t *E, Half h, const int32_t *tokens, int64_t n, int64_t d) override {
        auto &st = cs(s);
        cuda::embed_half(X, E, h, stage(st, st.tokens, tokens, n), n, d, st.stream);
        check_launch("embed_w16");
    }
    uint16_t *alloc_bf16(size_t n) override { return reinterpret_cast<uint16_t *>(alloc((n + 1) / 2)); }
    void free_bf16(uint16_t *p) override { free(reinterpret_cast<float *>(p)); }
    void to_bf16(Stream &s, uint16_t *dst, const float *src, size_t n) override {
        cuda::to_bf16(dst, src, n, cs(s).stream);
        check_launch("to_bf16");
    }
    void to_bf16_blocks(Stream &s, const Bf16Blocks *parts, size_t n) override {
        cuda::to_bf16_blocks(parts, static_cast<int64_t>(n), cs(s).stream);
        check_launch("to_bf16_blocks");
    }

private:
    // Makes this backend's device current on the calling thread.
    void use() const { make_current(device_); }
    // Every operation but the matrix products forgets the bf16 conversions: it may
    // write their sources.
    CudaStream &cs(Stream &s) const {
        CudaStream &st = cs_product(s);
        st.cvt_a_of = st.cvt_b_of = {};
        return st;
    }
    CudaStream &cs_product(Stream &s) const {
        use();
        return static_cast<CudaStream &>(s);
    }
    // A product writes [p, p + n): a conversion of an overlapping source is stale.
    static void written(CudaStream &st, const float *p, int64_t n) {
        for (CudaStream::Converted *c : {&st.cvt_a_of, &st.cvt_b_of})
            if (c->src && p < c->src + c->n && c->src < p + n) *c = {};
    }
    const uint16_t *shadow(CudaStream &st, const float *W) const {
        if (!st.bf16) return nullptr;
        auto it = st.shadows.find(W);
        return it == st.shadows.end() ? nullptr : it->second;
    }
    // x[n] in bf16 in `buf`, converted unless `of` says buf already holds it.
    const uint16_t *convert(CudaStream &st, Grow<uint16_t> &buf, CudaStream::Converted &of, const float *x, int64_t n) {
        if (of.src == x && of.n == n) return buf.p;
        uint16_t *dst = buf.get(static_cast<size_t>(n), "cudaMalloc (bf16 scratch)");
        cuda::to_bf16(dst, x, static_cast<size_t>(n), st.stream);
        check_launch("to_bf16");
        of = {x, n};
        return dst;
    }
    // Accumulator `slot`: read (waiting for the stream), then reset unless `reset`
    // is false (the norm: the last update_scale's until the next one).
    double take(CudaStream &st, int slot, bool reset = true) {
        check(cudaMemcpyAsync(st.loss_host + slot, st.acc + slot, sizeof(double), cudaMemcpyDeviceToHost, st.stream),
              "cudaMemcpyAsync (accumulator)");
        if (reset) check(cudaMemsetAsync(st.acc + slot, 0, sizeof(double), st.stream), "cudaMemsetAsync");
        wait(st);
        return st.loss_host[slot];
    }
    void wait(CudaStream &st) {
        if (t_recording) {  // a wait inside a recording (which may hold no wait): nothing waited for
            t_recording->spoiled = true;
            return;
        }
        check(cudaStreamSynchronize(st.stream), "a queued operation (cudaStreamSynchronize)");
        st.synchronised();
    }
    // The index in `values` of the environment variable's value (0, the default,
    // when it is unset); any other value fails with the values it may take.
    static int env_choice(const char *name, std::initializer_list<const char *> values) {
        const char *value = std::getenv(name);
        if (!value) return 0;
        int i = 0;
        std::string allowed;
        for (const char *v : values) {
            if (!std::strcmp(value, v)) return i;
            allowed += std::string(i++ ? ", '" : "'") + v + "'";
        }
        fail(kErrBackend, std::string(name) + "='" + value + "': use " + allowed);
    }
    // The decode kernel holds a row's scores (nv keys) in shared memory.
    bool decode_fits(int64_t hd, int64_t nv) const {
        return fused_ && hd <= cuda::kDecodeMaxHd &&
               cuda::decode_attention_smem(hd, nv) <= static_cast<size_t>(prop_.sharedMemPerBlockOptin);
    }
    // The tensor-core kernels: streams with bf16 attention (training), head sizes
    // bf16_attention takes (sm_80 and later, whole 16-column fragments, shared
    // memory within the device's: up to 128 on an H100, 96 on an A100, 48 on
    // sm_86/89); their shared memory does not grow with the keys.
    bool tc_fits(const CudaStream &st, int64_t hd, int64_t nk) const {
        return st.bf16_attention && nk > 0 && bf16_attention(hd);
    }
    // The fused kernels hold a block's whole score column (nk keys) in shared memory.
    bool fused_fits(int64_t hd, int64_t nk, bool backward) const {
        return fused_ && hd <= cuda::kFusedMaxHd && nk > 0 &&
               cuda::fused_attention_smem(hd, nk, backward) <= static_cast<size_t>(prop_.sharedMemPerBlockOptin);
    }
    // ---- attention without the fused kernels (longer rows of keys) and pooling:
    // products.h's batched products around the row-wise softmax kernels, the
    // scores in the stream's scratch ----
    struct ProductOps {
        CudaBackend &be;
        CudaStream &st;
        // A dropout in device memory for the softmax kernels (NULL: none).
        const Dropout *staged(const Dropout &drop) { return drop.on() ? stage(st, st.drops, &drop, 1) : nullptr; }
        void batched(cuda::Op ta, cuda::Op tb, int64_t m, int64_t n, int64_t k, const float *A, int64_t lda, int64_t sa,
                     const float *B, int64_t ldb, int64_t sb, float *C, int64_t ldc, int64_t sc, int64_t batch,
                     bool accumulate) {
            be.gemm_batched(st, ta == cuda::Op::T ? CUBLAS_OP_T : CUBLAS_OP_N, tb == cuda::Op::T ? CUBLAS_OP_T : CUBLAS_OP_N,
                            m, n, k, A, lda, sa, B, ldb, sb, C, ldc, sc, batch, accumulate);
        }
        void softmax(float *P, int64_t heads, int64_t nq, int64_t nk, int64_t visible0, float scale, const Dropout &drop,
                     bool apply_drop) {
            cuda::attention_softmax(P, heads, nq, nk, visible0, scale, staged(drop), apply_drop, st.stream);
            check_launch("attention softmax");
        }
        void softmax_backward(float *P, float *dP, int64_t heads, int64_t nq, int64_t nk, int64_t visible0, float scale,
                              const Dropout &drop) {
            cuda::attention_softmax_backward(P, dP, heads, nq, nk, visible0, scale, staged(drop), st.stream);
            check_launch("attention softmax backward");
        }
    };
    void attend(CudaStream &st, float *out, const float *q, const float *k, const float *v, int64_t nq, int64_t nk,
                int64_t ldkv, int64_t H, int64_t Hkv, int64_t hd, int64_t visible0, const Dropout &drop) {
        if (nq <= 0) return;
        float *P = st.attn_p.get(static_cast<size_t>(H * nq * nk), "cudaMalloc (attention scores)");
        ProductOps ops{*this, st};
        cuda::attention_forward_products(ops, P, out, q, k, v, nq, nk, ldkv, H, Hkv, hd, visible0,
                                         1.0f / std::sqrt(static_cast<float>(hd)), drop);
    }
    void attend_backward(CudaStream &st, float *dq, float *dk, float *dv, const float *dout, const float *q,
                         const float *k, const float *v, int64_t nq, int64_t nk, int64_t ldkv, int64_t H, int64_t Hkv,
                         int64_t hd, int64_t visible0, const Dropout &drop) {
        if (nq <= 0) return;
        const size_t n = static_cast<size_t>(H * nq * nk);
        float *P = st.attn_p.get(n, "cudaMalloc (attention scores)");
        float *dP = st.attn_dp.get(n, "cudaMalloc (attention score gradients)");
        ProductOps ops{*this, st};
        cuda::attention_backward_products(ops, P, dP, dq, dk, dv, dout, q, k, v, nq, nk, ldkv, H, Hkv, hd, visible0,
                                          1.0f / std::sqrt(static_cast<float>(hd)), drop);
    }
    // fp32 strided batched product (full fp32 arithmetic: the default math mode has no TF32).
    void gemm_batched(CudaStream &st, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k,
                      const float *A, int64_t lda, int64_t sa, const float *B, int64_t ldb, int64_t sb, float *C,
                      int64_t ldc, int64_t sc, int64_t batch, bool accumulate) {
        const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
        if (!cuda::queues("gemm_batched", st.blas, ta, tb, m, n, k, A, lda, sa, B, ldb, sb, C, ldc, sc, batch, accumulate))
            return;
        check(cublasSgemmStridedBatched(st.blas, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
                                        &alpha, A, static_cast<int>(lda), sa, B, static_cast<int>(ldb), sb, &beta, C,
                                        static_cast<int>(ldc), sc, static_cast<int>(batch)),
              "cublasSgemmStridedBatched (attention)");
    }
    void gemm(CudaStream &st, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k, const void *A,
              int64_t lda, const void *B, int64_t ldb, float *C, int64_t ldc, bool accumulate, bool bf16) {
        const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
        const cudaDataType_t in = bf16 ? CUDA_R_16BF : CUDA_R_32F;
        if (!cuda::queues("gemm", st.blas, ta, tb, m, n, k, A, lda, B, ldb, C, ldc, accumulate, bf16)) return;
        check(cublasGemmEx(st.blas, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), &alpha, A, in,
                           static_cast<int>(lda), B, in, static_cast<int>(ldb), &beta, C, CUDA_R_32F, static_cast<int>(ldc),
                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
              "cublasGemmEx");
    }

    static constexpr int64_t kWidenFloats = int64_t(1) << 22;  // 16 MiB of widened weights per stream at most
    int device_;
    cudaDeviceProp prop_{};
    bool fused_ = true;  // RMKV_CUDA_ATTENTION: the fused attention kernels where they fit
    bool tensor_ = true;  // and on bf16 streams, the tensor-core ones
    bool graphs_ = false;  // RMKV_CUDA_GRAPHS=1: begin_record records
    bool bias_epilogue_ = true;  // RMKV_CUDA_BIAS: linear's bias in cuBLASLt's epilogue, or a kernel after the product
};

}  // namespace

}  // namespace rmkv

extern "C" __attribute__((visibility("default"))) rmkv::Backend *rmkv_cuda_backend_new(int abi, int index,
                                                                                        rmkv::PluginFailFn fail) {
    rmkv::cuda::g_fail = fail;
    if (abi != rmkv::kCudaPluginAbi)
        fail(rmkv::kErrBackend, "device 'cuda': librmkv_cuda.so was built for another version of librmkv");
    return new rmkv::CudaBackend(index);
}
