// Replays of a recorded step (Backend::begin_record with RMKV_CUDA_GRAPHS=1):
// every call a step makes on its stream (each kernel launch, cuBLAS / cuBLASLt
// product and asynchronous copy) goes through queues() below, which folds the
// call and its arguments into the step's signature. While a step is captured,
// the calls are made and the signature kept with the graph; the next step first
// runs on the host alone (a check): its calls are folded into a signature but
// not made, and when the signature matches the graph's, the graph is launched
// as it is, without a capture, an update or any of the step's calls. What a step
// takes from the host (tokens, targets, positions, the loss scale, dropouts,
// the rows of sessions decoded together) goes through pinned memory whose
// address is part of its copy's signature; a check that matches writes it
// there (cuda_backend.cu's stage and end_record) before the launch. A check
// that does not match runs nothing, and the step is captured again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#ifndef RMKV_CUDA_EMULATED  // tests/unit/cuda_emulation.h gives its own dim3
#include <cuda_runtime.h>
#endif

#include "backend/backend.h"

namespace rmkv::cuda {

struct Replay {
    bool check = false;  // true: fold the calls, make none; false: fold and make them (a capture)
    uint64_t sig = 0, calls = 0;
    void fold(uint64_t v) { sig = Dropout::mix(sig ^ (v + 0x9e3779b97f4a7c15ull + (sig << 6) + (sig >> 2))); }
};
// The replay state of the step this thread is capturing or checking, or NULL.
inline thread_local Replay *t_replay = nullptr;

// Arguments: scalars, enums and pointers by value; the structs calls take, field
// by field (their padding is not part of them). Any other type fails to compile:
// give it an overload here.
template <class T>
std::enable_if_t<std::is_scalar_v<T>> fold_arg(Replay &r, const T &v) {
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof v < sizeof bits ? sizeof v : sizeof bits);
    static_assert(sizeof(T) <= sizeof(uint64_t), "fold_arg: a scalar wider than 64 bits");
    r.fold(bits);
}
inline void fold_arg(Replay &r, std::nullptr_t) { r.fold(0); }  // (its bytes are unspecified)
inline void fold_arg(Replay &r, const dim3 &d) {
    r.fold(d.x), r.fold(d.y), r.fold(d.z);
}
inline void fold_arg(Replay &r, const Dropout &d) {
    fold_arg(r, d.p), r.fold(d.key);
}
inline void fold_arg(Replay &r, const Bf16Blocks &b) {
    fold_arg(r, b.dst), fold_arg(r, b.src), fold_arg(r, b.pitch), fold_arg(r, b.width), fold_arg(r, b.count);
}
inline void fold_arg(Replay &r, const ColumnSums &s) {
    fold_arg(r, s.db), fold_arg(r, s.dy), fold_arg(r, s.pitch), fold_arg(r, s.rows), fold_arg(r, s.count),
        fold_arg(r, s.width);
}
template <size_t N, class T>
void fold_arg(Replay &r, const T (&a)[N]) {
    for (const T &x : a) fold_arg(r, x);
}
inline void fold_arg(Replay &r, const CacheRow &c) {
    fold_arg(r, c.keys), fold_arg(r, c.values), r.fold(static_cast<uint64_t>(c.at)), r.fold(static_cast<uint64_t>(c.pos));
}

// Whether a call is to be made: always, outside a capture or a check; during a
// check never (it is folded into the signature only); during a capture, yes,
// after being folded. `what` tells calls apart that have the same arguments
// (a kernel's address, or a name).
template <class... A>
bool queues(const void *what, const A &...args) {
    Replay *r = t_replay;
    if (!r) return true;
    r->fold(reinterpret_cast<uintptr_t>(what));
    (fold_arg(*r, args), ...);
    r->calls++;
    return !r->check;
}

}  // namespace rmkv::cuda
