// What the benchmarks measure of the machine itself, in the same run as the
// figures they put next to it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
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

// The best of six oneDNN matrix products of 2048^3, in GFLOP/s: inputs f32, or
// bf16 (f32 results, as the bf16 training products), 0 when the CPU has no bf16
// products.
inline double gemm_peak_gflops(dnnl::memory::data_type in = dnnl::memory::data_type::f32) {
    using namespace dnnl;
    if (in == memory::data_type::bf16 && get_effective_cpu_isa() < cpu_isa::avx512_core_bf16) return 0;
    engine eng(engine::kind::cpu, 0);
    stream st(eng);
    const memory::dim N = 2048;
    memory::desc a({N, N}, in, memory::format_tag::ab);
    memory::desc b({N, N}, in, memory::format_tag::ba);
    memory::desc c({N, N}, memory::data_type::f32, memory::format_tag::ab);
    matmul::primitive_desc pd(matmul::desc(a, b, c), eng);
    matmul mm(pd);
    memory ma(a, eng), mb(b, eng), mc(c, eng);
    // 0.5 and 0.25 (bf16: 0x3f00 and 0x3e80), exact in both types.
    const size_t bytes = a.get_size();
    if (in == memory::data_type::f32) {
        std::fill_n(static_cast<float *>(ma.get_data_handle()), N * N, 0.5f);
        std::fill_n(static_cast<float *>(mb.get_data_handle()), N * N, 0.25f);
    } else {
        std::fill_n(static_cast<uint16_t *>(ma.get_data_handle()), bytes / 2, uint16_t{0x3f00});
        std::fill_n(static_cast<uint16_t *>(mb.get_data_handle()), bytes / 2, uint16_t{0x3e80});
    }
    double best = 0;
    for (int rep = 0; rep < 6; ++rep) {
        double t0 = now();
        mm.execute(st, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
        st.wait();
        best = std::max(best, 2.0 * N * N * N / (now() - t0) / 1e9);
    }
    return best;
}
inline double sgemm_peak_gflops() { return gemm_peak_gflops(); }

}  // namespace bench
