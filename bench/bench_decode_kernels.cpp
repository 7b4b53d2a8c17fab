// rmkv-bench-decode-kernels-v3 / -v4: the matrix-vector products of one decoded
// token of the `base` config (D768 L12, swiglu F2048, V32000: every layer's q, k,
// v, o, gate, up and down, then the head), f32 weights (cpu::gemv) against bf16
// and f16 (cpu::gemv_w16), over weights far larger than the caches. The kernels are
// compiled here without their target clones, for one instruction set each: v3
// (AVX2, what CPUs without AVX-512 run) and v4 (AVX-512), so that one machine
// shows both. --rows N: N rows at once (sessions stepped together); where the CPU
// has AVX512-BF16, also the products of a session in bf16 precision (the rows
// rounded to bf16, then cpu::gemv_bf16's dot products).
// Usage: rmkv-bench-decode-kernels-v3 [--rounds N] [--rows N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
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
    int64_t rows = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--rows")) rows = std::atoll(argv[i + 1]);
    }
    if (rounds < 1 || rows < 1 || rows > 64) {
        std::fprintf(stderr, "usage: %s [--rounds N>=1] [--rows 1-64]\n", argv[0]);
        return 2;
    }
    const int64_t D = 768, F = 2048, V = 32000, L = 12;
    std::vector<Matrix> ms;
    size_t total = 0;
    for (int64_t l = 0; l < L; ++l) {
        for (int k = 0; k < 4; ++k) ms.push_back({D, D, 0});
        ms.push_back({D, F, 0}), ms.push_back({D, F, 0}), ms.push_back({F, D, 0});
    }
    ms.push_back({D, V, 0});
    for (Matrix &m : ms) m.offset = total, total += static_cast<size_t>(m.in * m.out);
    std::vector<float> W(total), x(static_cast<size_t>(rows * F)), y(static_cast<size_t>(rows * V));
    std::vector<uint16_t> W16(total), F16(total), xb_buf(x.size() + 32);
    uint16_t *xb = xb_buf.data() + (64 - reinterpret_cast<uintptr_t>(xb_buf.data()) % 64) % 64 / 2;  // as a session's
    for (size_t i = 0; i < total; ++i) W[i] = static_cast<float>((i * 2654435761u) % 1000) * 1e-5f - 5e-3f;
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 17) * 0.1f;
    rmkv::cpu::to_bf16(W16.data(), W.data(), static_cast<int64_t>(total));
    for (size_t i = 0; i < total; ++i) F16[i] = _cvtss_sh(W[i], 0);  // nearest even
    std::printf("decode products of base (%.0f M weights), %lld row%s, %d threads, %s\n", total / 1e6,
                static_cast<long long>(rows), rows == 1 ? "" : "s", omp_get_max_threads(), RMKV_BENCH_ISA);
    struct Kernel {
        const char *name;
        double bytes_per_weight;
        std::function<void(const Matrix &)> run;
        double best = 1e30;
    };
    std::vector<Kernel> kernels;
    if (rows == 1)  // the f32 kernel of decoding (more rows of an F32 file go to oneDNN)
        kernels.push_back({"f32", 4, [&](const Matrix &m) {
                               rmkv::cpu::gemv(y.data(), x.data(), W.data() + m.offset, nullptr, m.in, m.out, false);
                           }});
    kernels.push_back({"bf16", 2, [&](const Matrix &m) {
                           rmkv::cpu::gemv_w16(y.data(), x.data(), W16.data() + m.offset, rmkv::Half::bf16, nullptr,
                                               rows, m.in, m.out, false);
                       }});
    kernels.push_back({"f16", 2, [&](const Matrix &m) {
                           rmkv::cpu::gemv_w16(y.data(), x.data(), F16.data() + m.offset, rmkv::Half::f16, nullptr,
                                               rows, m.in, m.out, false);
                       }});
    if (rmkv::cpu::cpu_has_avx512bf16())  // a bf16-precision session: x rounded, then dot products
        kernels.push_back({"bf16 dot", 2, [&](const Matrix &m) {
                               rmkv::cpu::to_bf16(xb, x.data(), rows * m.in);
                               rmkv::cpu::gemv_bf16(y.data(), xb, W16.data() + m.offset, nullptr, rows, m.in,
                                                    m.out, false);
                           }});
    const int per_round = 10;
    for (int r = 0; r < rounds; ++r)  // the kernels in turn, best of the rounds
        for (Kernel &k : kernels) {
            const double t0 = now();
            for (int i = 0; i < per_round; ++i)
                for (const Matrix &m : ms) k.run(m);
            k.best = std::min(k.best, (now() - t0) / per_round);
        }
    for (const Kernel &k : kernels) {
        std::printf("%-9s %.3f ms/step (%.1f GB/s of weights, %.0f tokens/s)", k.name, k.best * 1e3,
                    total * k.bytes_per_weight / k.best / 1e9, rows / k.best);
        if (&k != &kernels[0]) std::printf(", %.2fx the %s speed", kernels[0].best / k.best, kernels[0].name);
        std::printf("\n");
    }
    return 0;
}
