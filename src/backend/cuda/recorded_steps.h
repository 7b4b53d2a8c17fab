// A CudaStream's recorded steps (Backend::begin_record, end_record and
// cancel_record of cuda_backend.cu) and the staging of host arrays they rest on.
//
// A step is first checked against the stream's last graph (replay.h: its calls
// folded into a signature on the host, none made; the same signature launches
// the graph as it is), else captured (thread-local stream capture: other
// threads' calls do not disturb it) into a graph, instantiated into the stream's
// executable graph the first time and updated after (cudaGraphExecUpdate: steps
// of the same shape differ in their kernels' arguments only), then launched. A
// step that does not match the last graph runs nothing and is captured when the
// caller begins again. A failed recording (an operation the capture cannot
// hold, or an update and an instantiation that fail) runs nothing; after
// kRecordTries in a row the stream stops recording for good. A step of another
// shape than the last (another number of sessions together, the products path
// at long keys, other segment lengths) fails the update and is instantiated anew.
#pragma once

#include <algorithm>
#include <cstring>

#include "backend/cuda/cuda_stream.h"
#include "backend/cuda/replay.h"

namespace rmkv::cuda {

// A pinned area with room for `need` bytes from its start (`fresh`), else for
// `need` more: a full one is replaced by a larger one (the old kept until the
// stream's next synchronisation).
inline void make_room(CudaStream &st, CudaStream::Pinned &a, size_t need, bool fresh = false) {
    const size_t want = fresh ? need : a.used + need;
    if (want <= a.cap) return;
    const size_t cap = std::max({a.cap * 2, 2 * want, kStagingBytes});
    void *p = nullptr;
    RelaxedCapture relaxed;
    check_alloc(cudaMallocHost(&p, cap), "cudaMallocHost (staging)");
    if (a.p) st.pinned_retired.push_back(a.p);
    a.p = static_cast<char *>(p), a.cap = cap, a.used = 0;
}

// Host array -> device memory, for an operation queued next on the stream.
// Within a recorded step, at the step's next offset of step_pinned (a check: of
// step_host, which end_step copies there when the check matches), whose first
// step_copy bytes the step's graph copies to step_device in its first operation
// (begin_step): one copy for all of a step's host arrays, from the same addresses
// at every step. What does not fit there (the first step, one that stages more
// than the last) goes the way of arrays outside recorded steps, and the next
// capture copies what this step staged: into the stream's device buffer `buf`
// (in stream order, so a later call may reuse the buffer) through its pinned memory.
template <class T>
T *stage(CudaStream &st, Grow<T> &buf, const T *host, int64_t n) {
    if (n <= 0) return buf.get(0, "cudaMalloc (staging)");
    const size_t bytes = static_cast<size_t>(n) * sizeof(T), piece = (bytes + 15) / 16 * 16;
    if (t_replay == &st.replay) {
        CudaStream::Pinned &a = st.step_pinned;
        const size_t at = a.used;
        a.used += piece;  // (past step_copy: what the step needs, for the next capture)
        if (a.used <= st.step_copy) {
            if (st.replay.check) {
                if (st.step_host.size() < a.cap) st.step_host.resize(a.cap);
                std::memcpy(st.step_host.data() + at, host, bytes);
            } else {
                std::memcpy(a.p + at, host, bytes);
            }
            fold_arg(st.replay, a.p), st.replay.fold(at), st.replay.fold(bytes);
            return reinterpret_cast<T *>(st.step_device.p + at);
        }
    }
    T *dst = buf.get(static_cast<size_t>(n), "cudaMalloc (staging)");
    make_room(st, st.pinned, piece);
    char *src = st.pinned.p + st.pinned.used;
    st.pinned.used += piece;
    std::memcpy(src, host, bytes);
    if (queues("stage", dst, src, bytes, st.stream))
        check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, st.stream), "cudaMemcpyAsync (staging)");
    return dst;
}

inline void launch_graph(CudaStream &st) {
    check(cudaGraphLaunch(st.graph, st.stream), "cudaGraphLaunch");
    check(cudaEventRecord(st.graph_done, st.stream), "cudaEventRecord");
    st.launched_since_sync = true;
}

// Ends this thread's capture on st: the graph, or NULL when the recording failed.
inline cudaGraph_t stop_recording(CudaStream &st) {
    t_recording = nullptr;
    cudaGraph_t g = nullptr;
    if (cudaStreamEndCapture(st.stream, &g) != cudaSuccess || st.rec.spoiled) {
        cudaGetLastError();
        if (g) cudaGraphDestroy(g);
        return nullptr;
    }
    return g;
}

// Backend::begin_record on a stream of a backend that records (RMKV_CUDA_GRAPHS=1).
inline bool begin_step(CudaStream &st, bool again) {
    if (t_recording || t_replay) return false;
    if (st.record_failures >= CudaStream::kRecordTries) return false;
    if (again && !st.check_missed) return false;  // the recording failed: the caller runs the step unrecorded
    st.replay = {};
    st.replay.check = !again && st.graph;  // every graph instantiated was signed
    const size_t last_need = st.step_pinned.used;
    st.step_pinned.used = 0;
    if (!st.replay.check) {
        // A capture stages into step_pinned, which the last graph may still read (a
        // check missed between two launches of a lane's passes): it waits for that
        // graph first, so that the next step's check can match this capture. It
        // copies as many bytes as the last step staged, kStagingBytes at least.
        if (st.launched_since_sync) {
            check(cudaEventSynchronize(st.graph_done), "cudaEventSynchronize (the last graph)");
            st.launched_since_sync = false;
        }
        st.step_copy = std::max(last_need, kStagingBytes);  // (small steps fit from the first capture)
        make_room(st, st.step_pinned, st.step_copy, true);
        st.step_device.get(st.step_copy, "cudaMalloc (staging)");
        check(cudaStreamBeginCapture(st.stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
        st.rec.stream = st.stream, st.rec.spoiled = false;
        t_recording = &st.rec;
    }
    t_replay = &st.replay;
    // The step's first operation: its host arrays, staged as it is queued (stage), to the device.
    const CudaStream::Pinned &a = st.step_pinned;
    if (queues("step staging", st.step_device.p, a.p, st.step_copy, st.stream))
        check(cudaMemcpyAsync(st.step_device.p, a.p, st.step_copy, cudaMemcpyHostToDevice, st.stream),
              "cudaMemcpyAsync (staging)");
    return true;
}

// Backend::end_record.
inline bool end_step(CudaStream &st) {
    t_replay = nullptr;
    if (st.replay.check) {
        st.check_missed = st.replay.sig != st.graph_sig || st.replay.calls != st.graph_calls;
        if (st.check_missed) return false;
        // The last graph may still read step_pinned (a lane's passes of one step
        // follow each other unsynchronised): wait for it, only now that the check matched.
        if (st.launched_since_sync)
            check(cudaEventSynchronize(st.graph_done), "cudaEventSynchronize (the last graph)");
        const size_t staged = std::min(st.step_pinned.used, st.step_copy);  // (the rest went the other way)
        if (staged) std::memcpy(st.step_pinned.p, st.step_host.data(), staged);
        launch_graph(st);
        return true;
    }
    st.check_missed = false;
    cudaGraph_t g = stop_recording(st);
    if (g && st.graph) {
        cudaGraphExecUpdateResultInfo info{};
        if (cudaGraphExecUpdate(st.graph, g, &info) != cudaSuccess) {
            cudaGetLastError();
            cudaGraphExecDestroy(st.graph);
            st.graph = nullptr;
        }
    }
    if (g && !st.graph && cudaGraphInstantiate(&st.graph, g, 0) != cudaSuccess) {
        cudaGetLastError();
        st.graph = nullptr;
    }
    if (g) cudaGraphDestroy(g);
    // A failed recording leaves the last step's graph as it was: never launched for this one.
    if (!g || !st.graph) {
        ++st.record_failures;
        return false;
    }
    st.record_failures = 0;
    st.graph_sig = st.replay.sig, st.graph_calls = st.replay.calls;
    launch_graph(st);
    return true;
}

// Backend::cancel_record.
inline void cancel_step(CudaStream &st) {
    t_replay = nullptr;
    if (st.replay.check) return;  // nothing was captured
    if (cudaGraph_t g = stop_recording(st)) cudaGraphDestroy(g);
}

}  // namespace rmkv::cuda
