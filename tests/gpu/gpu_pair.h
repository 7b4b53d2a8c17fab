// The harness of tests/gpu/test_gpu_ops.cpp: the CPU backend and the backend
// under test (g_cpu, g_gpu, set by the test's main), tensors present on both
// from the same host values (Buf), a stream on each that runs the same
// operations and compares their results (Pair), and bf16 rounding on the host.
// Include after cmocka.h: Pair::expect reports through cmocka.
#pragma once

#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "gpu_common.h"

namespace gpu_test {

inline std::shared_ptr<rmkv::Backend> g_cpu, g_gpu;  // set by the test's main

// A tensor present on both backends, from the same host values.
struct Buf {
    size_t n = 0;
    float *c = nullptr, *g = nullptr;
    float *on(bool gpu) const { return gpu ? g : c; }
};

// A stream on each backend that runs the same operations (both), and the
// comparison of their results (expect).
class Pair {
public:
    Pair() : cs_(g_cpu->new_stream()), gs_(g_gpu->new_stream()) {}
    ~Pair() {
        for (Buf &b : bufs_) g_cpu->free(b.c), g_gpu->free(b.g);
        for (auto &p : b16_) g_cpu->free_bf16(p.first), g_gpu->free_bf16(p.second);
    }
    Buf &make(const std::vector<float> &host) {
        Buf b;
        b.n = host.size();
        b.c = g_cpu->alloc(b.n);
        b.g = g_gpu->alloc(b.n);
        std::memcpy(b.c, host.data(), b.n * sizeof(float));
        g_gpu->from_host(*gs_, b.g, host.data(), b.n);
        g_gpu->sync(*gs_);
        bufs_.push_back(b);
        return bufs_.back();
    }
    Buf &random(size_t n, float scale = 1.0f, float offset = 0.0f) {
        std::normal_distribution<float> d(0.0f, 1.0f);
        std::vector<float> h(n);
        for (float &x : h) x = offset + scale * d(rng_);
        return make(h);
    }
    Buf &zeros(size_t n) { return make(std::vector<float>(n, 0.0f)); }
    std::pair<uint16_t *, uint16_t *> bf16(size_t n) {
        b16_.emplace_back(g_cpu->alloc_bf16(n), g_gpu->alloc_bf16(n));
        return b16_.back();
    }
    // Runs f on both backends (f(backend, stream, gpu)).
    void both(const std::function<void(rmkv::Backend &, rmkv::Stream &, bool)> &f) {
        f(*g_cpu, *cs_, false);
        f(*g_gpu, *gs_, true);
        g_gpu->sync(*gs_);
    }
    std::vector<float> host(const Buf &b, bool gpu) {
        std::vector<float> h(b.n);
        if (gpu) {
            g_gpu->to_host(*gs_, h.data(), b.g, b.n);
            g_gpu->sync(*gs_);
        } else {
            std::memcpy(h.data(), b.c, b.n * sizeof(float));
        }
        return h;
    }
    // Asserts the two copies agree within tol; prints the error.
    void expect(const char *what, const Buf &b, double tol = gpu_test::kTolF32) {
        double e = rel(host(b, true), host(b, false));
        print_message("  %-44s rel err %.2e (tol %.0e)\n", what, e, tol);
        if (!(e < tol)) fail_msg("%s: CUDA and CPU differ: relative error %.3e >= %.1e", what, e, tol);
    }
    rmkv::Stream &cs() { return *cs_; }
    rmkv::Stream &gs() { return *gs_; }
    std::mt19937 rng_{1234};

private:
    std::unique_ptr<rmkv::Stream> cs_, gs_;
    std::deque<Buf> bufs_;
    std::vector<std::pair<uint16_t *, uint16_t *>> b16_;
};

inline float bf16_round(float f) {  // to the nearest bf16, ties to even
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    std::memcpy(&f, &u, 4);
    return f;
}

}  // namespace gpu_test
