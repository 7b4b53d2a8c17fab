// The CUDA backend's fused attention kernels (src/backend/cuda/fused_attention.cuh),
// the same source lines, run on CPU threads: one std::thread per CUDA thread of a
// block, a barrier for __syncthreads, a static array for the block's shared
// memory (filled with NaN before each block, as are the outputs, so a read of
// something not written shows), the blocks one after another. Their forward and
// backward are checked against the CPU backend's double kernels (themselves
// checked by finite differences in test_op_gradients) on every shape class the
// GPU tests use: blocks cut short, one decoding row, memory rows that see every
// key, GQA, key rows wider than the heads, dropout, head sizes 8 to 128. This
// runs without a GPU, so CI checks the kernels' arithmetic and indexing. It
// rests on the kernels using no warp-level operations (see the header). What it
// cannot show is left to tests/gpu and compute-sanitizer on a GPU: speed, and
// races between blocks (they run one after another here, so the atomics that
// sum dk and dv across blocks are not put to the test; 256 threads on a few
// cores interleave coarsely, so a missing barrier may also pass unseen).
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"

// The CUDA vocabulary of the header, on the host.
struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
namespace {
thread_local dim3 threadIdx, blockIdx;
dim3 gridDim, blockDim;
std::barrier<> *g_block_barrier = nullptr;
template <class T> T __ldg(const T *p) { return *p; }
void atomicAdd(float *p, float v) { std::atomic_ref<float>(*p).fetch_add(v); }
}  // namespace
#define __global__
#define __device__
#define __host__
#define __shared__
#define __launch_bounds__(n)
#define __syncthreads() g_block_barrier->arrive_and_wait()
namespace rmkv::cuda {
using std::min;
constexpr size_t kSharedFloats = 1 << 20;
float sm[kSharedFloats];  // the kernels' `extern __shared__ float sm[]`
}  // namespace rmkv::cuda
#include "backend/cuda/fused_attention.cuh"
#undef __syncthreads

// cmocka last: it defines a macro named fail.
extern "C" {
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
}

using namespace rmkv;

namespace {

// Runs kernel() as a grid of blocks of `threads` threads.
template <class F>
void launch(unsigned gx, unsigned gy, int threads, int64_t shared_floats, const F &kernel) {
    if (shared_floats > static_cast<int64_t>(cuda::kSharedFloats)) fail_msg("shared memory of %lld floats", (long long)shared_floats);
    gridDim = dim3{gx, gy, 1};
    blockDim = dim3{static_cast<unsigned>(threads), 1, 1};
    for (unsigned by = 0; by < gy; ++by)
        for (unsigned bx = 0; bx < gx; ++bx) {
            std::fill(cuda::sm, cuda::sm + shared_floats, NAN);
            std::barrier<> barrier(threads);
            g_block_barrier = &barrier;
            std::vector<std::thread> team;
            for (int t = 0; t < threads; ++t)
                team.emplace_back([&, t] {
                    threadIdx = dim3{static_cast<unsigned>(t), 0, 0};
                    blockIdx = dim3{bx, by, 0};
                    kernel();
                });
            for (std::thread &th : team) th.join();
        }
}

void fused_attention(void **) {
    struct Case {
        int64_t nq, nk, visible0, H, Hkv, hd;
        bool interleaved;
        float p;
    };
    const Case cases[] = {
        {5, 12, 7, 4, 2, 16, true, 0.0f},      // few rows, GQA, k and v in one wide row
        {40, 56, 16, 4, 1, 32, true, 0.3f},    // two blocks, the second short; one kv head; dropout
        {1, 30, 29, 2, 2, 64, false, 0.0f},    // decoding: one row sees every key
        {24, 24, 0, 2, 2, 8, false, 0.0f},     // pure causal, head size 8
        {33, 40, 7, 8, 2, 8, true, 0.1f},      // groups of 4 query heads
        {70, 90, 20, 2, 1, 128, true, 0.1f},   // head size 128: four 32-lane columns
        {33, 45, 12, 3, 3, 48, false, 0.0f},   // head size 48: columns cut short
        {65, 80, 15, 2, 2, 16, false, 0.2f},   // three blocks
        {16, 40, 40, 8, 8, 48, false, 0.0f},   // memory rows: every key visible
        {40, 60, 200, 2, 1, 64, true, 0.2f},   // memory rows past the keys (visible0 > nk), two blocks
    };
    std::mt19937_64 rng(20261123);
    std::normal_distribution<double> normal(0.0, 1.0);
    auto randf = [&](int64_t n) {  // values exact in float, so both sides see the same inputs
        std::vector<double> v(static_cast<size_t>(n));
        for (double &x : v) x = static_cast<float>(normal(rng));
        return v;
    };
    auto to_float = [](const std::vector<double> &v) { return std::vector<float>(v.begin(), v.end()); };
    for (const Case &c : cases) {
        const int64_t D = c.H * c.hd, kvw = c.Hkv * c.hd, ldkv = c.interleaved ? 2 * kvw : kvw;
        const Dropout drop{c.p, 0xfeedull + static_cast<uint64_t>(c.nq)};
        std::vector<double> q = randf(c.nq * D), kv = randf(c.nk * ldkv), vrows = randf(c.nk * ldkv), dout = randf(c.nq * D);
        const std::vector<double> dk0 = randf(c.nk * ldkv), dv0 = randf(c.nk * ldkv);
        const double *k = kv.data(), *v = c.interleaved ? kv.data() + kvw : vrows.data();
        std::vector<double> out(q.size()), dq(q.size()), dk = dk0, dv = dv0;
        cpu::attention_forward<double>(out.data(), q.data(), k, v, c.nq, c.nk, ldkv, c.H, c.Hkv, c.hd, c.visible0, drop);
        cpu::attention_backward<double>(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k, v, c.nq, c.nk, ldkv, c.H,
                                        c.Hkv, c.hd, c.visible0, drop);

        std::vector<float> qf = to_float(q), kvf = to_float(kv), vrowsf = to_float(vrows), doutf = to_float(dout);
        std::vector<float> outf(q.size(), NAN), dqf(q.size(), NAN), dkf = to_float(dk0), dvf = to_float(dv0);
        const float *kf = kvf.data(), *vf = c.interleaved ? kvf.data() + kvw : vrowsf.data();
        const float scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
        const unsigned gx = static_cast<unsigned>((c.nq + cuda::kFusedQ - 1) / cuda::kFusedQ), gy = static_cast<unsigned>(c.H);
        const int threads = cuda::kFusedWarps * 32;
        launch(gx, gy, threads, cuda::fused_smem_floats(c.hd, c.nk, false), [&] {
            cuda::k_fused_attention(outf.data(), qf.data(), kf, vf, c.nq, c.nk, ldkv, c.H / c.Hkv, c.hd, c.visible0, scale,
                                    drop);
        });
        launch(gx, gy, threads, cuda::fused_smem_floats(c.hd, c.nk, true), [&] {
            cuda::k_fused_attention_backward(dqf.data(), dkf.data(), dvf.data(), doutf.data(), qf.data(), kf, vf, c.nq, c.nk,
                                             ldkv, c.H / c.Hkv, c.hd, c.visible0, scale, drop);
        });
        const char *names[4] = {"out", "dq", "dk (+=)", "dv (+=)"};
        const std::vector<float> *got[4] = {&outf, &dqf, &dkf, &dvf};
        const std::vector<double> *want[4] = {&out, &dq, &dk, &dv};
        for (int t = 0; t < 4; ++t) {
            double largest = 1e-30, worst = 0;
            for (double x : *want[t]) largest = std::max(largest, std::fabs(x));
            for (size_t i = 0; i < want[t]->size(); ++i) {
                const double e = std::fabs(static_cast<double>((*got[t])[i]) - (*want[t])[i]) / largest;
                if (!(e <= worst)) worst = e;  // a NaN sticks
            }
            print_message("emulated CUDA fused attention %-8s nq %3lld nk %3lld hd %3lld H %lld/%lld dropout %.1f: %.2e\n",
                          names[t], (long long)c.nq, (long long)c.nk, (long long)c.hd, (long long)c.H, (long long)c.Hkv,
                          c.p, worst);
            if (!(worst < 1e-5)) fail_msg("%s differs from the CPU kernel by %g of its largest value", names[t], worst);
        }
    }
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(fused_attention)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
