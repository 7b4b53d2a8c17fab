// What the benchmarks measure of the machine itself, in the same run as the
// figures they put next to it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <oneapi/dnnl/dnnl.hpp>

#include "rmkv.h"

namespace bench {

// Exits with the library's message when a call fails (benchmarks only).
inline void check(rmkv_status st, const char *what) {
    if (st != RMKV_OK) {
        std::fprintf(stderr, "%s: %s\n", what, rmkv_last_error());
        std::exit(1);
    }
}

inline double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The best of six oneDNN f32 matrix products of 2048^3, in GFLOP/s.
inline double sgemm_peak_gflops() {
    using namespace dnnl;
    engine eng(engine::kind::cpu, 0);
    stream st(eng);
    const memory::dim N = 2048;
    memory::desc a({N, N}, memory::data_type::f32, memory::format_tag::ab);
    memory::desc b({N, N}, memory::data_type::f32, memory::format_tag::ba);
    matmul::primitive_desc pd(matmul::desc(a, b, a), eng);
    matmul mm(pd);
    memory ma(a, eng), mb(b, eng), mc(a, eng);
    std::fill_n(static_cast<float *>(ma.get_data_handle()), N * N, 0.5f);
    std::fill_n(static_cast<float *>(mb.get_data_handle()), N * N, 0.25f);
    double best = 0;
    for (int rep = 0; rep < 6; ++rep) {
        double t0 = now();
        mm.execute(st, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
        st.wait();
        best = std::max(best, 2.0 * N * N * N / (now() - t0) / 1e9);
    }
    return best;
}

}  // namespace bench
