// rmkv-bench-decode-kernels-v3 / -v4: the matrix-vector products of one decoded
// token of the `base` config (D768 L12, swiglu F2048, V32000: every layer's q, k,
// v, o, gate, up and down, then the head), f32 weights (cpu::gemv) against bf16
// and f16 (cpu::gemv_w16), over weights far larger than the caches. The kernels are
// compiled here without their target clones, for one instruction set each: v3
// (AVX2, what CPUs without AVX-512 run) and v4 (AVX-512), so that one machine
// shows both.
// Usage: rmkv-bench-decode-kernels-v3 [--rounds N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <immintrin.h>
#include <omp.h>

#include "backend/cpu/cpu_half.h"
#include "backend/cpu/cpu_kernels.h"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Matrix {
    int64_t in, out;
    size_t offset;
};

}  // namespace

int main(int argc, char **argv) {
    int rounds = 5;
    for (int i = 1; i + 1 < argc; i += 2)
        if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
    const int64_t D = 768, F = 2048, V = 32000, L = 12;
    std::vector<Matrix> ms;
    size_t total = 0;
    for (int64_t l = 0; l < L; ++l) {
        for (int k = 0; k < 4; ++k) ms.push_back({D, D, 0});
        ms.push_back({D, F, 0}), ms.push_back({D, F, 0}), ms.push_back({F, D, 0});
    }
    ms.push_back({D, V, 0});
    for (Matrix &m : ms) m.offset = total, total += static_cast<size_t>(m.in * m.out);
    std::vector<float> W(total), x(F), y(V);
    std::vector<uint16_t> W16(total), F16(total);
    for (size_t i = 0; i < total; ++i) W[i] = static_cast<float>((i * 2654435761u) % 1000) * 1e-5f - 5e-3f;
    for (int64_t i = 0; i < F; ++i) x[static_cast<size_t>(i)] = static_cast<float>(i % 17) * 0.1f;
    rmkv::cpu::to_bf16(W16.data(), W.data(), static_cast<int64_t>(total));
    for (size_t i = 0; i < total; ++i) F16[i] = _cvtss_sh(W[i], 0);  // nearest even
    std::printf("decode products of base (%.0f M weights), %d threads, %s\n", total / 1e6, omp_get_max_threads(),
                RMKV_BENCH_ISA);
    const int per_round = 10;
    double best32 = 1e30, best16 = 1e30, bestf16 = 1e30;
    for (int r = 0; r < rounds; ++r) {  // f32, bf16 and f16 in turn, best of the rounds
        double t0 = now();
        for (int k = 0; k < per_round; ++k)
            for (const Matrix &m : ms) rmkv::cpu::gemv(y.data(), x.data(), W.data() + m.offset, nullptr, m.in, m.out, false);
        double t1 = now();
        for (int k = 0; k < per_round; ++k)
            for (const Matrix &m : ms)
                rmkv::cpu::gemv_w16(y.data(), x.data(), W16.data() + m.offset, rmkv::Half::bf16, nullptr, 1, m.in,
                                    m.out, false);
        double t2 = now();
        for (int k = 0; k < per_round; ++k)
            for (const Matrix &m : ms)
                rmkv::cpu::gemv_w16(y.data(), x.data(), F16.data() + m.offset, rmkv::Half::f16, nullptr, 1, m.in,
                                    m.out, false);
        double t3 = now();
        best32 = std::min(best32, (t1 - t0) / per_round), best16 = std::min(best16, (t2 - t1) / per_round);
        bestf16 = std::min(bestf16, (t3 - t2) / per_round);
    }
    std::printf("f32  %.3f ms/token (%.1f GB/s)\n", best32 * 1e3, total * 4.0 / best32 / 1e9);
    std::printf("bf16 %.3f ms/token (%.1f GB/s), %.2fx the f32 speed\n", best16 * 1e3, total * 2.0 / best16 / 1e9,
                best32 / best16);
    std::printf("f16  %.3f ms/token (%.1f GB/s), %.2fx the f32 speed\n", bestf16 * 1e3, total * 2.0 / bestf16 / 1e9,
                best32 / bestf16);
    return 0;
}
