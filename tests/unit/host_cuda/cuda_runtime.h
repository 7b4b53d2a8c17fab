// The CUDA runtime calls of the CUDA backend (src/backend/cuda), on the host,
// for tests/unit/test_cuda_emulated_backend.cpp: that test puts this folder first
// on its include path, so that cuda_backend.cu compiles for the CPU and runs
// its kernels through tests/unit/cuda_emulation.h. Work queued on a stream runs
// at once, in the calling thread, unless the stream is being captured: then it
// is kept, in order, and runs when the graph made of it is launched (what a
// graph holds is the work with its arguments as they were when it was queued;
// a copy from host memory reads that memory at the launch, as on a device).
// Device memory is host memory (a new allocation is filled with NaN, so that a
// read of something never written shows); events are tokens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

using cudaStream_t = struct CUstream_st *;
using cudaEvent_t = struct CUevent_st *;
using cudaGraph_t = struct CUgraph_st *;
using cudaGraphExec_t = struct CUgraphExec_st *;

enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorNotSupported = 801,
    cudaErrorGraphExecUpdateFailure = 910,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureMerge = 902,
    cudaErrorStreamCaptureUnmatched = 903,
    cudaErrorStreamCaptureUnjoined = 904,
    cudaErrorStreamCaptureIsolation = 905,
    cudaErrorStreamCaptureImplicit = 906,
    cudaErrorCapturedEvent = 907,
    cudaErrorStreamCaptureWrongThread = 908,
};
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};
enum cudaStreamCaptureStatus {
    cudaStreamCaptureStatusNone = 0,
    cudaStreamCaptureStatusActive = 1,
    cudaStreamCaptureStatusInvalidated = 2,
};
enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 };
constexpr unsigned cudaStreamNonBlocking = 1, cudaEventDisableTiming = 2;

struct cudaDeviceProp {
    char name[256];
    size_t sharedMemPerBlockOptin;
    int major, minor;
};
struct cudaGraphExecUpdateResultInfo {
    int result;
    void *errorNode, *errorFromNode;
};

namespace host_cuda {
// Counts of what is live, for the test's leak check, of graph launches and of captures.
inline int g_allocations = 0, g_streams = 0, g_graph_launches = 0, g_captures = 0;
// What was queued on streams, by name (a kernel's, "product (...)", "copy (...)", "fill"):
// what a device would run, a graph's work counted at its capture.
inline std::map<std::string, int> g_queued;
inline void tally(const char *name) { ++g_queued[name]; }
struct Token {};
using Work = std::vector<std::function<void()>>;
struct Stream {
    Work *capture = nullptr;  // the work of the capture under way
};
struct Graph {
    Work work;
};
// Runs f now, or keeps it in the capture under way on s.
template <class F>
void queue(cudaStream_t s, F &&f) {
    auto *st = reinterpret_cast<Stream *>(s);
    if (st && st->capture) st->capture->emplace_back(std::forward<F>(f));
    else f();
}
}  // namespace host_cuda

inline cudaError_t cudaGetDeviceCount(int *count) {
    *count = 1;
    return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidValue; }
// An H100's opt-in shared memory per block and compute capability.
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int) {
    std::memset(p, 0, sizeof *p);
    std::strcpy(p->name, "host emulation");
    p->sharedMemPerBlockOptin = 232448;
    p->major = 9;
    return cudaSuccess;
}
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char *cudaGetErrorName(cudaError_t e) { return e == cudaSuccess ? "cudaSuccess" : "cudaError"; }
inline const char *cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated error"; }

inline cudaError_t cudaMalloc(void **p, size_t bytes) {
    *p = std::malloc(bytes ? bytes : 1);
    if (!*p) return cudaErrorMemoryAllocation;
    std::memset(*p, 0xff, bytes);  // NaN as floats and bf16
    ++host_cuda::g_allocations;
    return cudaSuccess;
}
template <class T>
cudaError_t cudaMalloc(T **p, size_t bytes) {
    return cudaMalloc(reinterpret_cast<void **>(p), bytes);
}
inline cudaError_t cudaFree(void *p) {
    if (p) --host_cuda::g_allocations;
    std::free(p);
    return cudaSuccess;
}
inline cudaError_t cudaMallocHost(void **p, size_t bytes) { return cudaMalloc(p, bytes); }
template <class T>
cudaError_t cudaMallocHost(T **p, size_t bytes) {
    return cudaMalloc(reinterpret_cast<void **>(p), bytes);
}
inline cudaError_t cudaFreeHost(void *p) { return cudaFree(p); }

inline cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind) {
    std::memmove(dst, src, bytes);
    return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
    host_cuda::tally(kind == cudaMemcpyHostToDevice ? "copy (from the host)" : "copy");
    host_cuda::queue(s, [=] { std::memmove(dst, src, bytes); });
    return cudaSuccess;
}
inline cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                                     size_t height, cudaMemcpyKind, cudaStream_t s) {
    if (width > dpitch || width > spitch) return cudaErrorInvalidValue;
    host_cuda::tally("copy (2D)");
    host_cuda::queue(s, [=] {
        for (size_t r = 0; r < height; ++r)
            std::memmove(static_cast<char *>(dst) + r * dpitch, static_cast<const char *>(src) + r * spitch, width);
    });
    return cudaSuccess;
}
inline cudaError_t cudaMemset(void *p, int value, size_t bytes) {
    std::memset(p, value, bytes);
    return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s) {
    host_cuda::tally("fill");
    host_cuda::queue(s, [=] { std::memset(p, value, bytes); });
    return cudaSuccess;
}

inline cudaError_t cudaStreamCreate(cudaStream_t *s) {
    *s = reinterpret_cast<cudaStream_t>(new host_cuda::Stream);
    ++host_cuda::g_streams;
    return cudaSuccess;
}
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { return cudaStreamCreate(s); }
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
    delete reinterpret_cast<host_cuda::Stream *>(s);
    --host_cuda::g_streams;
    return cudaSuccess;
}
// Waiting inside a capture invalidates it, as on a device.
inline cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    auto *st = reinterpret_cast<host_cuda::Stream *>(s);
    return st && st->capture ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}
inline cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = reinterpret_cast<cudaEvent_t>(new host_cuda::Token);
    return cudaSuccess;
}
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) { return cudaEventCreate(e); }
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete reinterpret_cast<host_cuda::Token *>(e);
    return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }  // the work ran when queued

template <class F>
cudaError_t cudaFuncSetAttribute(F *, cudaFuncAttribute, int) {
    return cudaSuccess;
}

inline cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
    auto *st = reinterpret_cast<host_cuda::Stream *>(s);
    if (!st || st->capture) return cudaErrorInvalidValue;
    st->capture = new host_cuda::Work;
    ++host_cuda::g_captures;
    return cudaSuccess;
}
inline cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g) {
    auto *st = reinterpret_cast<host_cuda::Stream *>(s);
    *g = nullptr;
    if (!st || !st->capture) return cudaErrorInvalidValue;
    *g = reinterpret_cast<cudaGraph_t>(new host_cuda::Graph{std::move(*st->capture)});
    delete st->capture;
    st->capture = nullptr;
    return cudaSuccess;
}
inline cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *status) {
    auto *st = reinterpret_cast<host_cuda::Stream *>(s);
    *status = st && st->capture ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
    return cudaSuccess;
}
inline cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode *) { return cudaSuccess; }
inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g, unsigned long long) {
    *exec = reinterpret_cast<cudaGraphExec_t>(new host_cuda::Graph(*reinterpret_cast<host_cuda::Graph *>(g)));
    return cudaSuccess;
}
// Graphs of the same number of operations take each other's arguments (a
// device also wants the same kinds of node in the same order: not modelled).
inline cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t g, cudaGraphExecUpdateResultInfo *) {
    auto *e = reinterpret_cast<host_cuda::Graph *>(exec);
    const auto *from = reinterpret_cast<host_cuda::Graph *>(g);
    if (e->work.size() != from->work.size()) return cudaErrorGraphExecUpdateFailure;
    e->work = from->work;
    return cudaSuccess;
}
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
    const host_cuda::Work work = reinterpret_cast<host_cuda::Graph *>(exec)->work;
    ++host_cuda::g_graph_launches;
    host_cuda::queue(s, [work] {
        for (const auto &f : work) f();
    });
    return cudaSuccess;
}
inline cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete reinterpret_cast<host_cuda::Graph *>(g);
    return cudaSuccess;
}
inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
    delete reinterpret_cast<host_cuda::Graph *>(e);
    return cudaSuccess;
}
