// The CUDA backend's kernels and their launchers (src/backend/cuda/cuda_kernels.cu
// and the headers it includes), the same source lines, on CPU threads: one
// std::thread per CUDA thread of a block, a barrier for __syncthreads and one per
// warp for shuffles (__shfl_xor_sync only: each lane leaves its value, the warp
// meets, each reads its partner's; the kernels use no other warp-level operation
// but the WMMA calls, which meet the same way), a static array for the block's shared memory (filled
// with NaN before each block, so a read of something not written shows), the
// blocks one after another. RMKV_LAUNCH and RMKV_BLOCK_SHARED, which
// cuda_kernels.cu leaves to whoever includes it, send its launches here.
// Included once by each emulation test program (test_cuda_emulated.cpp: the
// attention kernels, the 16-bit product, the products' calls;
// test_cuda_emulated_ops.cpp: every other kernel), which then compare against
// the CPU backend's kernels. What this cannot show is left to tests/gpu and
// compute-sanitizer on a GPU: speed, and races between blocks (they run one
// after another here, so the atomics that sum across blocks are not put to the
// test; 256 threads on a few cores interleave coarsely, so a missing barrier may
// also pass unseen).
#pragma once

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <type_traits>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"

// The CUDA vocabulary of the kernels and their launchers, on the host.
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using cudaStream_t = struct CUstream_st *;
enum cudaError_t { cudaSuccess = 0 };
namespace {
thread_local dim3 threadIdx, blockIdx;
dim3 gridDim, blockDim;
std::barrier<> *g_block_barrier = nullptr;
std::barrier<> **g_warp_barriers = nullptr;  // one per warp of the block (shuffles and WMMA calls)
uint64_t g_warp_slots[32][32];               // a value of each lane of each warp (shuffles)
template <class T> T __ldg(const T *p) { return *p; }
void atomicAdd(float *p, float v) { std::atomic_ref<float>(*p).fetch_add(v); }
void atomicAdd(double *p, double v) { std::atomic_ref<double>(*p).fetch_add(v); }
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
#define RMKV_LAUNCH(kernel, grid, block, smem, stream, ...) \
    ((void)(stream), emulated_launch(dim3(grid), dim3(block), (smem), [&] { kernel(__VA_ARGS__); }))
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

// Runs kernel() as a grid of blocks, the blocks one after another (last first
// when `reverse`) on one team of threads, a CUDA thread each, which meet at a
// barrier before and after each block. Each block's shared memory starts as NaN,
// and past it lies a guard band that must stay as it was.
template <class F>
void launch(dim3 grid, dim3 block, int64_t shared_floats, const F &kernel, bool reverse = false) {
    constexpr int64_t kGuard = 1024;
    if (shared_floats + kGuard > static_cast<int64_t>(cuda::kSharedFloats))
        fail_msg("shared memory of %lld floats", (long long)shared_floats);
    const unsigned threads = block.x * block.y * block.z, n_blocks = grid.x * grid.y * grid.z;
    if (threads == 0 || threads > 1024) fail_msg("a block of %u threads", threads);
    gridDim = grid;
    blockDim = block;
    std::barrier<> barrier(threads), start(threads + 1), done(threads + 1);
    g_block_barrier = &barrier;
    std::vector<std::unique_ptr<std::barrier<>>> warps;
    std::vector<std::barrier<> *> warp_at;
    for (unsigned w = 0; w < (threads + 31) / 32; ++w) {
        warps.push_back(std::make_unique<std::barrier<>>(std::min(32u, threads - 32 * w)));
        warp_at.push_back(warps.back().get());
    }
    g_warp_barriers = warp_at.data();
    dim3 at;
    bool finished = false;
    std::vector<std::thread> team;
    for (unsigned t = 0; t < threads; ++t)
        team.emplace_back([&, t] {
            threadIdx = dim3{t % block.x, t / block.x % block.y, t / (block.x * block.y)};
            for (;;) {
                start.arrive_and_wait();
                if (finished) return;
                blockIdx = at;
                kernel();
                done.arrive_and_wait();
            }
        });
    for (unsigned i = 0; i < n_blocks; ++i) {
        const unsigned b = reverse ? n_blocks - 1 - i : i;
        at = dim3{b % grid.x, b / grid.x % grid.y, b / (grid.x * grid.y)};
        std::fill(cuda::sm, cuda::sm + shared_floats, NAN);
        std::fill(cuda::sm + shared_floats, cuda::sm + shared_floats + kGuard, 1234.5f);
        start.arrive_and_wait();
        done.arrive_and_wait();
        for (int64_t j = shared_floats; j < shared_floats + kGuard; ++j)
            if (cuda::sm[j] != 1234.5f) {
                finished = true;
                start.arrive_and_wait();
                for (std::thread &th : team) th.join();
                fail_msg("block (%u, %u, %u) wrote past its shared memory", at.x, at.y, at.z);
            }
    }
    finished = true;
    start.arrive_and_wait();
    for (std::thread &th : team) th.join();
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
