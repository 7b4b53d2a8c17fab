// The CUDA backend's kernels and their launchers (src/backend/cuda/cuda_kernels.cu
// and the headers it includes), the same source lines, on the CPU: the threads
// of a block as fibers of the launching thread (Fibers below: warp by warp, each
// as far as it goes without the others, in order and in reverse on alternate
// rounds), a barrier for
// __syncthreads and one per warp for shuffles (__shfl_xor_sync only: each lane
// leaves its value, the warp meets, each reads its partner's; the kernels use no
// other warp-level operation but the WMMA calls, which meet the same way), a
// static array for the block's shared memory (filled with NaN before each
// block, so a read of something not written shows), the blocks one after
// another. RMKV_LAUNCH and RMKV_BLOCK_SHARED, which cuda_kernels.cu leaves to
// whoever includes it, send its launches here.
// Included once by each emulation test program (test_cuda_emulated.cpp: the
// attention kernels, the 16-bit product, the products' calls;
// test_cuda_emulated_ops.cpp: every other kernel; test_cuda_emulated_backend.cpp:
// the backend around them), which then compare against the CPU backend's
// kernels. What this cannot show is left to tests/gpu and compute-sanitizer on
// a GPU: speed, and races between blocks (they run one after another here, so
// the atomics that sum across blocks are not put to the test), and between
// threads that meet at no barrier but a warp's implicit lockstep.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <type_traits>
#include <vector>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"

// The CUDA vocabulary of the kernels and their launchers, on the host.
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
#ifdef RMKV_HOST_CUDA_API  // the runtime API on the host (tests/unit/host_cuda), its types included
#include <cuda_runtime.h>
// Staging areas of 256 bytes at least (cuda_stream.h): a recorded step's host
// arrays outgrow the first one, and what does not fit goes the other way.
#define RMKV_STAGING_BYTES 256
#else
using cudaStream_t = struct CUstream_st *;
enum cudaError_t { cudaSuccess = 0 };
#endif
namespace {
dim3 threadIdx, blockIdx, gridDim, blockDim;

// A block's CUDA threads as fibers on the launching thread: each runs until it
// waits at a barrier or returns, then the next one runs. A round takes the warps
// one after another, each as far as it goes without the others (its lanes in
// turn until all wait at a __syncthreads or have returned), in order, and the
// next round in reverse: warps run as far apart as a GPU lets them, so that a
// read of what another warp writes without a __syncthreads between finds it not
// yet written, or already overwritten, whichever comes first. A round in which
// no fiber arrives anywhere or returns is a deadlock (a barrier some threads
// never reach) and fails.
class Fibers {
public:
    static Fibers &get() {
        static Fibers f;
        return f;
    }
    // body() on n fibers, the threads of a block of blockDim (threadIdx set to each's own).
    void run(unsigned n, const std::function<void()> &body);
    // From a fiber: back to the scheduler, until the next round.
    void yield();
    void progressed() { ++progress_; }
    ~Fibers() {
        for (Fiber &f : fibers_) std::free(f.stack);
    }

private:
    static constexpr size_t kStack = size_t(256) << 10;
    struct Fiber {
        void *sp = nullptr;  // its saved stack pointer (fiber_switch)
        char *stack = nullptr;
        bool done = false;
    };
    [[noreturn]] static void entry();
    void switch_to(unsigned t);
    std::vector<Fiber> fibers_;
    void *scheduler_sp_ = nullptr;
    unsigned current_ = 0;
    uint64_t progress_ = 0;
    const std::function<void()> *body_ = nullptr;
#ifdef __SANITIZE_ADDRESS__
    void *fake_stack_ = nullptr;
    const void *main_bottom_ = nullptr;
    size_t main_size_ = 0;
#endif
};

// Saves the callee-saved registers and the stack pointer (into *save), switches
// to the stack at `to` and restores what a previous switch saved there (x86-64,
// System V: what ucontext's swapcontext does, without its system call for the
// signal mask, which made it most of the emulation's time).
extern "C" void fiber_switch(void **save, void *to);
asm(R"(
    .text
    .p2align 4
    .type fiber_switch, @function
fiber_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size fiber_switch, .-fiber_switch
)");

// A barrier of n fibers (__syncthreads, a warp's meeting).
class FiberBarrier {
public:
    explicit FiberBarrier(unsigned n) : n_(n) {}
    void arrive_and_wait() {
        const uint64_t phase = phase_;
        Fibers::get().progressed();
        if (++arrived_ == n_) {
            arrived_ = 0, ++phase_;
            return;
        }
        while (phase_ == phase) Fibers::get().yield();
    }

private:
    unsigned n_, arrived_ = 0;
    uint64_t phase_ = 0;
};

FiberBarrier *g_block_barrier = nullptr;
FiberBarrier **g_warp_barriers = nullptr;  // one per warp of the block (shuffles and WMMA calls)
uint64_t g_warp_slots[32][32];               // a value of each lane of each warp (shuffles)
template <class T> T __ldg(const T *p) { return *p; }
void atomicAdd(float *p, float v) { *p += v; }  // one fiber at a time
void atomicAdd(double *p, double v) { *p += v; }
unsigned thread_in_block() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
// Every lane of the warp enters together: each leaves its value, meets the
// others, reads its partner's, and meets them again before the slots are reused.
template <class T>
T __shfl_xor_sync(unsigned, T v, int lane_mask) {
    static_assert(sizeof(T) <= sizeof(uint64_t));
    const unsigned t = thread_in_block(), warp = t / 32, lane = t % 32;
    std::memcpy(&g_warp_slots[warp][lane], &v, sizeof(T));
    g_warp_barriers[warp]->arrive_and_wait();
    T got;
    std::memcpy(&got, &g_warp_slots[warp][lane ^ static_cast<unsigned>(lane_mask)], sizeof(T));
    g_warp_barriers[warp]->arrive_and_wait();
    return got;
}
// Runs kernel() on every thread of every block of the grid (defined below).
template <class F>
void emulated_launch(dim3 grid, dim3 block, size_t shared_bytes, const F &kernel);
}  // namespace
#define __global__
#define __device__
#define __host__
#define __shared__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __syncthreads() g_block_barrier->arrive_and_wait()
#define RMKV_CUDA_EMULATED 1
#ifdef RMKV_HOST_CUDA_API  // queued on the stream: run now, or at the launch of the graph it is captured into
// (replay.h: folded into the signature of a step being recorded or checked; a check queues nothing)
#define RMKV_LAUNCH(kernel, grid, block, smem, stream, ...)                                                      \
    do {                                                                                                       \
        if (::rmkv::cuda::queues(reinterpret_cast<const void *>(kernel), dim3(grid), dim3(block), size_t(smem),  \
                                 stream, __VA_ARGS__)) {                                                       \
            host_cuda::tally(#kernel);                                                                         \
            host_cuda::queue(stream, [=, grid_ = dim3(grid), block_ = dim3(block), smem_ = size_t(smem)] {     \
                emulated_launch(grid_, block_, smem_, [&] { kernel(__VA_ARGS__); });                            \
            });                                                                                                \
        }                                                                                                      \
    } while (0)
#else
#define RMKV_LAUNCH(kernel, grid, block, smem, stream, ...) \
    ((void)(stream), emulated_launch(dim3(grid), dim3(block), (smem), [&] { kernel(__VA_ARGS__); }))
#endif
#define RMKV_BLOCK_SHARED static  // one array for the block's threads (blocks run one after another)
namespace rmkv::cuda {
using std::isnan;
using std::min;
constexpr size_t kSharedFloats = 1 << 20;
alignas(128) float sm[kSharedFloats];  // the kernels' `extern __shared__ float sm[]`
}  // namespace rmkv::cuda
// bf16 and WMMA for tensor_attention.cuh. A fragment holds its whole 16 x 16
// tile in every lane (the kernels never look at a fragment's elements); each
// call is one step of the whole warp: every lane enters and leaves it together
// (the warp's barrier), and a store is made once, by the warp's first lane. The
// products sum in float, k in order (the tensor cores' order is their own).
struct __nv_bfloat16 {
    uint16_t bits;
};
__nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);  // nearest even (no NaN comes here)
    return {static_cast<uint16_t>(u >> 16)};
}
float __bfloat162float(__nv_bfloat16 h) {
    const uint32_t u = static_cast<uint32_t>(h.bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
namespace nvcuda::wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "the emulation has 16 x 16 x 16 only");
    float x[256];  // [row][column] of the tile
};
inline void warp_step() { g_warp_barriers[thread_in_block() / 32]->arrive_and_wait(); }
inline void check_operand(const void *p, unsigned ldm, unsigned multiple, const char *what) {
    if (reinterpret_cast<uintptr_t>(p) % 32 != 0 || ldm % multiple != 0) {
        std::fprintf(stderr, "WMMA %s: pointer %p (32-byte alignment) or ldm %u (multiple of %u) not allowed\n", what, p,
                     ldm, multiple);
        std::abort();
    }
}
template <class Use, class Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, __nv_bfloat16, Layout> &f, const __nv_bfloat16 *p, unsigned ldm) {
    check_operand(p, ldm, 8, "bf16 load");
    warp_step();
    for (int r = 0; r < 16; ++r)
        for (int c = 0; c < 16; ++c)
            f.x[r * 16 + c] = __bfloat162float(std::is_same_v<Layout, row_major> ? p[r * ldm + c] : p[c * ldm + r]);
    warp_step();
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, const float *p, unsigned ldm, layout_t l) {
    check_operand(p, ldm, 4, "float load");
    warp_step();
    for (int r = 0; r < 16; ++r)
        for (int c = 0; c < 16; ++c) f.x[r * 16 + c] = l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r];
    warp_step();
}
inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ldm, layout_t l) {
    check_operand(p, ldm, 4, "float store");
    warp_step();
    if (thread_in_block() % 32 == 0)
        for (int r = 0; r < 16; ++r)
            for (int c = 0; c < 16; ++c) (l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[r * 16 + c];
    warp_step();
}
inline void fill_fragment(fragment<accumulator, 16, 16, 16, float> &f, float v) { std::fill(f.x, f.x + 256, v); }
template <class LA, class LB>
void mma_sync(fragment<accumulator, 16, 16, 16, float> &d, const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> &a,
              const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> &b,
              const fragment<accumulator, 16, 16, 16, float> &c) {
    float out[256];
    for (int m = 0; m < 16; ++m)
        for (int n = 0; n < 16; ++n) {
            float s = c.x[m * 16 + n];
            for (int k = 0; k < 16; ++k) s = std::fmaf(a.x[m * 16 + k], b.x[k * 16 + n], s);
            out[m * 16 + n] = s;
        }
    std::copy(out, out + 256, d.x);
}
}  // namespace nvcuda::wmma

#include "backend/cuda/cuda_kernels.cu"  // with fused_attention.cuh, half_kernels.cuh, tensor_attention.cuh
#undef __syncthreads
#include "backend/cuda/products.h"

// cmocka last: it defines a macro named fail.
extern "C" {
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
}

namespace {

using namespace rmkv;

void Fibers::entry() {
    Fibers &f = get();
#ifdef __SANITIZE_ADDRESS__
    __sanitizer_finish_switch_fiber(nullptr, &f.main_bottom_, &f.main_size_);
#endif
    const unsigned t = f.current_;
    (*f.body_)();
    f.fibers_[t].done = true;
    ++f.progress_;
#ifdef __SANITIZE_ADDRESS__
    __sanitizer_start_switch_fiber(nullptr, f.main_bottom_, f.main_size_);  // this fiber's stack is done with
#endif
    fiber_switch(&f.fibers_[t].sp, f.scheduler_sp_);
    __builtin_unreachable();  // never resumed
}

void Fibers::yield() {
    Fiber &f = fibers_[current_];
#ifdef __SANITIZE_ADDRESS__
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, main_bottom_, main_size_);
#endif
    fiber_switch(&f.sp, scheduler_sp_);
#ifdef __SANITIZE_ADDRESS__
    __sanitizer_finish_switch_fiber(fake, &main_bottom_, &main_size_);
#endif
}

void Fibers::switch_to(unsigned t) {
    current_ = t;
    threadIdx = dim3{t % blockDim.x, t / blockDim.x % blockDim.y, t / (blockDim.x * blockDim.y)};
#ifdef __SANITIZE_ADDRESS__
    __sanitizer_start_switch_fiber(&fake_stack_, fibers_[t].stack, kStack);
#endif
    fiber_switch(&scheduler_sp_, fibers_[t].sp);
#ifdef __SANITIZE_ADDRESS__
    __sanitizer_finish_switch_fiber(fake_stack_, nullptr, nullptr);
#endif
}

void Fibers::run(unsigned n, const std::function<void()> &body) {
    if (fibers_.size() < n) fibers_.resize(n);
    body_ = &body;
    for (unsigned t = 0; t < n; ++t) {
        Fiber &f = fibers_[t];
        if (!f.stack && !(f.stack = static_cast<char *>(std::malloc(kStack)))) std::abort();
#ifdef __SANITIZE_ADDRESS__
        ASAN_UNPOISON_MEMORY_REGION(f.stack, kStack);  // the frames its last fiber never returned from
#endif
        // The first switch to it pops six zero registers and returns into entry,
        // with the stack aligned as at a call.
        auto *top = reinterpret_cast<uintptr_t *>(reinterpret_cast<uintptr_t>(f.stack + kStack) & ~uintptr_t(15));
        top[-1] = 0;
        top[-2] = reinterpret_cast<uintptr_t>(&entry);
        for (int r = 3; r <= 8; ++r) top[-r] = 0;
        f.sp = top - 8;
        f.done = false;
    }
    const unsigned warps = (n + 31) / 32;
    for (bool forward = true;; forward = !forward) {
        const uint64_t before = progress_;
        bool any = false;
        for (unsigned i = 0; i < warps; ++i) {
            const unsigned w = forward ? i : warps - 1 - i, lanes = std::min(32u, n - 32 * w);
            // This warp as far as it goes without the others (to a __syncthreads, or its end).
            for (bool lanes_forward = forward;; lanes_forward = !lanes_forward) {
                const uint64_t at = progress_;
                for (unsigned j = 0; j < lanes; ++j) {
                    const unsigned t = 32 * w + (lanes_forward ? j : lanes - 1 - j);
                    if (fibers_[t].done) continue;
                    any = true;
                    switch_to(t);
                }
                if (progress_ == at) break;
            }
        }
        if (!any) return;
        if (progress_ == before) {
            std::fprintf(stderr, "emulated block (%u, %u, %u): its threads wait at barriers that not all reach\n",
                         blockIdx.x, blockIdx.y, blockIdx.z);
            std::abort();
        }
    }
}

// Runs kernel() as a grid of blocks, the blocks one after another (last first
// when `reverse`), each block's threads as fibers. Each block's shared memory
// starts as NaN, and past it lies a guard band that must stay as it was.
template <class F>
void launch(dim3 grid, dim3 block, int64_t shared_floats, const F &kernel, bool reverse = false) {
    constexpr int64_t kGuard = 1024;
    if (shared_floats + kGuard > static_cast<int64_t>(cuda::kSharedFloats))
        fail_msg("shared memory of %lld floats", (long long)shared_floats);
    const unsigned threads = block.x * block.y * block.z, n_blocks = grid.x * grid.y * grid.z;
    if (threads == 0 || threads > 1024) fail_msg("a block of %u threads", threads);
    gridDim = grid;
    blockDim = block;
    FiberBarrier barrier(threads);
    g_block_barrier = &barrier;
    std::vector<std::unique_ptr<FiberBarrier>> warps;
    std::vector<FiberBarrier *> warp_at;
    for (unsigned w = 0; w < (threads + 31) / 32; ++w) {
        warps.push_back(std::make_unique<FiberBarrier>(std::min(32u, threads - 32 * w)));
        warp_at.push_back(warps.back().get());
    }
    g_warp_barriers = warp_at.data();
    const std::function<void()> body = [&] { kernel(); };
    for (unsigned i = 0; i < n_blocks; ++i) {
        const unsigned b = reverse ? n_blocks - 1 - i : i;
        blockIdx = dim3{b % grid.x, b / grid.x % grid.y, b / (grid.x * grid.y)};
        std::fill(cuda::sm, cuda::sm + shared_floats, NAN);
        std::fill(cuda::sm + shared_floats, cuda::sm + shared_floats + kGuard, 1234.5f);
        Fibers::get().run(threads, body);
        for (int64_t j = shared_floats; j < shared_floats + kGuard; ++j)
            if (cuda::sm[j] != 1234.5f)
                fail_msg("block (%u, %u, %u) wrote past its shared memory", blockIdx.x, blockIdx.y, blockIdx.z);
    }
}

// The launches of cuda_kernels.cu (RMKV_LAUNCH).
template <class F>
void emulated_launch(dim3 grid, dim3 block, size_t shared_bytes, const F &kernel) {
    if (shared_bytes % sizeof(float)) fail_msg("shared memory of %zu bytes: not whole floats", shared_bytes);
    launch(grid, block, static_cast<int64_t>(shared_bytes / sizeof(float)), kernel);
}

// The largest difference of got from want, relative to want's largest value (a
// NaN anywhere gives NaN).
double worst_error(const std::vector<float> &got, const std::vector<double> &want) {
    double largest = 1e-30, worst = 0;
    for (double x : want) largest = std::max(largest, std::fabs(x));
    for (size_t i = 0; i < want.size(); ++i) {
        const double e = std::fabs(static_cast<double>(got[i]) - want[i]) / largest;
        if (!(e <= worst)) worst = e;  // a NaN sticks
    }
    return worst;
}

std::vector<double> random_values(std::mt19937_64 &rng, int64_t n) {  // exact in float: both sides see the same
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> v(static_cast<size_t>(n));
    for (double &x : v) x = static_cast<float>(normal(rng));
    return v;
}

}  // namespace
