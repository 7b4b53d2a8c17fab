// The CUDA plugin's streams (cuda_backend.cu): how a failed call is reported
// (through librmkv's fail function), the recording of a step under way on a
// thread (Backend::begin_record: stream capture), device buffers that only grow,
// and CudaStream, the per-user context behind a Stream: its cudaStream_t, cuBLAS
// handle, scratch, pinned staging of host arrays and accumulators, and its
// recorded steps (replay.h: a step that matches the last one replays its graph).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/bias_gemm.h"
#include "backend/cuda/cuda_kernels.cuh"
#include "backend/cuda/replay.h"

namespace rmkv::cuda {

static_assert(sizeof(real) == sizeof(float), "the CUDA backend computes in float");

// RMKV_ERR_* values of rmkv.h (not included here: the plugin sees backend.h only).
constexpr int kErrOutOfMemory = 5, kErrBackend = 7, kErrInternal = 9;

inline PluginFailFn g_fail = nullptr;  // set by rmkv_cuda_backend_new

[[noreturn]] inline void fail(int status, const std::string &msg) {
    g_fail(status, msg.c_str());
    __builtin_unreachable();
}

// A stream's recording (Backend::begin_record: stream capture into a graph),
// while the thread that began it queues the step.
struct Recording {
    cudaStream_t stream = nullptr;
    bool spoiled = false;  // the capture failed: end_record reports it, the step runs again unrecorded
    std::vector<void *> retired;  // device buffers replaced while recording: freed once the stream has synchronised
};
inline thread_local Recording *t_recording = nullptr;

// Whether an error belongs to this thread's recording rather than to the call:
// the capture could not hold an operation (and is invalidated). The recording is
// then spoiled, and the step's second, unrecorded run meets any real error.
inline bool spoils_recording(cudaError_t e) {
    if (!t_recording) return false;
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    const bool capture = e == cudaErrorStreamCaptureUnsupported || e == cudaErrorStreamCaptureInvalidated ||
                         e == cudaErrorStreamCaptureMerge || e == cudaErrorStreamCaptureUnmatched ||
                         e == cudaErrorStreamCaptureUnjoined || e == cudaErrorStreamCaptureIsolation ||
                         e == cudaErrorStreamCaptureImplicit || e == cudaErrorCapturedEvent ||
                         e == cudaErrorStreamCaptureWrongThread;
    if (!capture && (cudaStreamIsCapturing(t_recording->stream, &status) != cudaSuccess ||
                     status != cudaStreamCaptureStatusInvalidated))
        return false;
    cudaGetLastError();
    t_recording->spoiled = true;
    return true;
}

// The smallest pinned area for staging host arrays (tests/unit/cuda_emulation.h
// takes a smaller one, so that its recorded steps outgrow theirs).
#ifndef RMKV_STAGING_BYTES
#define RMKV_STAGING_BYTES 16384
#endif
inline constexpr size_t kStagingBytes = RMKV_STAGING_BYTES;

// Allocations while this thread records (a buffer that grows): allowed by
// relaxed capture for the call; allocations are not part of a graph, and the
// recording is launched once, at once.
class RelaxedCapture {
public:
    RelaxedCapture() : on_(t_recording != nullptr) {
        if (on_) cudaThreadExchangeStreamCaptureMode(&mode_);
    }
    ~RelaxedCapture() {
        if (on_) cudaThreadExchangeStreamCaptureMode(&mode_);
    }
    RelaxedCapture(const RelaxedCapture &) = delete;
    RelaxedCapture &operator=(const RelaxedCapture &) = delete;

private:
    cudaStreamCaptureMode mode_ = cudaStreamCaptureModeRelaxed;
    bool on_;
};

[[noreturn]] inline void fail_call(cudaError_t e, const char *what) {
    fail(e == cudaErrorMemoryAllocation ? kErrOutOfMemory : kErrBackend,
         std::string("CUDA: ") + what + " failed: " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}
inline void check(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return;
    cudaGetLastError();  // clears a non-sticky error
    if (spoils_recording(e)) return;
    fail_call(e, what);
}
// An allocation's failure is its own, never the recording's: the caller uses the result at once.
inline void check_alloc(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return;
    cudaGetLastError();
    fail_call(e, what);
}
// While recording, any cuBLAS failure spoils the recording (a product the capture
// could not hold need not invalidate it): the unrecorded run meets a real one.
inline void check(cublasStatus_t e, const char *what) {
    if (e == CUBLAS_STATUS_SUCCESS) return;
    if (t_recording) {
        t_recording->spoiled = true;
        return;
    }
    fail(e == CUBLAS_STATUS_ALLOC_FAILED ? kErrOutOfMemory : kErrBackend,
         std::string("cuBLAS: ") + what + " failed: " + cublasGetStatusName(e) + " (" + cublasGetStatusString(e) + ")");
}
inline void check_launch(const char *what) { check(cudaGetLastError(), what); }

// The calling thread's current device, as last set here (cudaSetDevice is cheap
// but not free; every entry point makes its backend's device current).
inline thread_local int t_current_device = -1;
inline void make_current(int device) {
    if (t_current_device != device) {
        check(cudaSetDevice(device), "cudaSetDevice");
        t_current_device = device;
    }
}

// A device buffer that only grows (frees the old one: cudaFree waits for the
// device; while recording, the recording may use it: freed later).
template <class T>
struct Grow {
    T *p = nullptr;
    size_t n = 0;
    T *get(size_t need, const char *what) {
        if (need <= n) return p;
        if (p && t_recording) t_recording->retired.push_back(p);
        else if (p) cudaFree(p);
        p = nullptr, n = 0;
        size_t want = need < 1024 ? 1024 : need + need / 4;
        RelaxedCapture relaxed;
        check_alloc(cudaMalloc(&p, want * sizeof(T)), what);
        n = want;
        return p;
    }
    ~Grow() {
        if (p) cudaFree(p);
    }
};

class CudaStream : public Stream {
public:
    explicit CudaStream(int device) : device_(device) {}
    ~CudaStream() override {
        if (cudaSetDevice(device_) == cudaSuccess) t_current_device = device_;
        if (stream) cudaStreamSynchronize(stream);
        if (graph) cudaGraphExecDestroy(graph);
        if (blas) cublasDestroy(blas);
        if (event) cudaEventDestroy(event);
        if (graph_done) cudaEventDestroy(graph_done);
        if (stream) cudaStreamDestroy(stream);
        if (loss_host) cudaFreeHost(loss_host);
        synchronised();
        if (pinned.p) cudaFreeHost(pinned.p);
        if (step_pinned.p) cudaFreeHost(step_pinned.p);
    }
    int device_;
    cudaStream_t stream = nullptr;
    cudaEvent_t event = nullptr;  // wait_for: marks what this stream has queued
    cudaEvent_t graph_done = nullptr;  // marks the last graph launched
    cublasHandle_t blas = nullptr;
    Grow<char> workspace;  // cuBLAS and bias_gemm's
    BiasGemm bias_gemm;    // products with their bias (linear), cuBLASLt
    Grow<uint16_t> cvt_a, cvt_b;  // bf16 copies of activations for the matrix products
    // What cvt_a / cvt_b hold: reused by the next product with the same input (the
    // q, k, v projections of one xn) until any other operation runs on the stream
    // or a product writes over the source.
    struct Converted {
        const float *src = nullptr;
        int64_t n = 0;
    } cvt_a_of, cvt_b_of;
    Grow<double> stats;
    Grow<int32_t> tokens, targets;
    Grow<int64_t> positions;  // add_sincos_rows' positions
    Grow<float> ce_scale;     // cross_entropy's scale
    Grow<Dropout> drops;      // the dropouts of attention and dropout()
    Grow<CacheRow> cache_rows;  // decode_attention's rows
    Grow<float *> row_dst;      // scatter_rows' destinations
    Grow<const float *> row_src;  // gather_rows' sources
    Grow<float> gathered;  // attention_rows' and pool_rows' rows of each stream, gathered
    Grow<float> overlap;  // copy() between overlapping ranges
    Grow<float> widened;  // linear_w16: a block of 16-bit weights widened
    Grow<float> attn_p, attn_dp;  // attention scores and their gradients [H, nq, nk]
    // Device: [0] loss, [1] sum of squares, [2] gradient norm, [3] the update
    // scale (a float; update_scale).
    double *acc = nullptr;
    Grow<double> acc_buf;
    double *loss_host = nullptr;  // pinned: kAcc doubles
    static constexpr int kAcc = 4;
    // Host arrays (tokens, targets, the rows of decode_attention and scatter_rows)
    // go to the device through this pinned memory, so that their copies never
    // wait for the stream: filled in stream order (16-byte aligned pieces),
    // recycled at each synchronisation of the stream (every copy out of it done
    // then); a full one is replaced and kept until then. A recorded step stages
    // into step_pinned and a check into step_host (recorded_steps.h's stage).
    struct Pinned {
        char *p = nullptr;
        size_t cap = 0, used = 0;  // bytes
    } pinned, step_pinned;
    std::vector<char> step_host;  // a check's staging, at step_pinned's offsets
    Grow<char> step_device;       // the copy on the device of step_pinned's first step_copy bytes
    size_t step_copy = 0;         // bytes of step_pinned a recorded step copies (its last capture's)
    bool launched_since_sync = false;
    std::vector<char *> pinned_retired;
    void synchronised() {
        pinned.used = 0;
        launched_since_sync = false;
        for (char *p : pinned_retired) cudaFreeHost(p);
        pinned_retired.clear();
        for (void *p : rec.retired) cudaFree(p);
        rec.retired.clear();
    }
    // Recorded steps (recorded_steps.h): the recording under way, and the last one
    // instantiated (each new recording updates it) with its signature (replay.h; a
    // graph is instantiated only from a recording, which signs it); the step being
    // recorded or checked; whether the last check missed (the caller begins
    // again: record); consecutive failed recordings, up to kRecordTries.
    Recording rec;
    cudaGraphExec_t graph = nullptr;
    uint64_t graph_sig = 0, graph_calls = 0;
    Replay replay;
    bool check_missed = false;
    int record_failures = 0;
    static constexpr int kRecordTries = 3;
    bool bf16 = false;
    bool bf16_attention = false;  // set_bf16_attention (training)
    std::unordered_map<const float *, const uint16_t *> shadows;
    // The tables of the *_many operations: built on the host (their capacity
    // kept), staged to the device.
    std::vector<cuda::MultiTensor> multi_tensors;
    std::vector<cuda::MultiChunk> multi_chunks;
    Grow<cuda::MultiTensor> multi_tensors_dev;
    Grow<cuda::MultiChunk> multi_chunks_dev;
};

}  // namespace rmkv::cuda
