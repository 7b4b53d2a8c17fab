// What the CPU kernels share: the target clones of a kernel, float vectors (GCC's
// vector extension), a vector's lane sum, bf16 widening, a float exp that works
// on them, and per-thread scratch. Internal to src/backend/cpu.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

// GCC only (clang 14 has no target_clones on templates), and not under
// ThreadSanitizer: the clones' resolvers run while the library is relocated,
// before the sanitizer's runtime is initialised, and crash in it. RMKV_NO_CLONES:
// one version for the compiler's -march (bench/bench_decode_kernels.cpp).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__) && \
    !defined(RMKV_NO_CLONES)
#define RMKV_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RMKV_CLONES
#endif

namespace rmkv::cpu {

// 16 floats: one AVX-512 register, for code compiled for AVX-512 only
// (cpu_attention.cpp). Target-cloned kernels use v8f: one register in every
// clone, where GCC keeps a 16-float vector in memory on AVX2.
typedef float v16f __attribute__((vector_size(64)));
typedef uint32_t v16u __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
typedef uint32_t v4u __attribute__((vector_size(16)));

// 8 floats at p (any alignment) as one vector load. (A memcpy into a v8f array
// element can stay a copy through the stack in the AVX2 clone.)
typedef float v8f_unaligned __attribute__((vector_size(32), aligned(4), may_alias));
__attribute__((always_inline)) inline void load8(v8f &v, const float *p) { v = *reinterpret_cast<const v8f_unaligned *>(p); }

// The sum of a vector's lanes, as a tree.
__attribute__((always_inline)) inline float lane_sum(const v8f &a) {
    const v4f s4 = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

// bf16 values at p as the floats they are (exact: a bf16 is a float's upper half),
// read as 32-bit pairs so that widening is two bit operations: even elements
// (low halves) shifted up, odd ones (high halves) masked. widen_pairs keeps them
// apart (for a dot product whose other side is split the same way).
__attribute__((always_inline)) inline void widen_pairs(v8f &even, v8f &odd, const uint16_t *p) {  // 16 values
    v8u u;
    std::memcpy(&u, p, sizeof u);
    const v8u e = u << 16, o = u & 0xffff0000u;
    std::memcpy(&even, &e, sizeof e);
    std::memcpy(&odd, &o, sizeof o);
}
__attribute__((always_inline)) inline void widen_bf16(v8f &f, const uint16_t *p) {  // 8 values, in order
    v4u u;
    std::memcpy(&u, p, sizeof u);
    const v4u e = u << 16, o = u & 0xffff0000u;
    const v8u both = __builtin_shufflevector(e, o, 0, 4, 1, 5, 2, 6, 3, 7);
    std::memcpy(&f, &both, sizeof f);
}
__attribute__((always_inline)) inline float widen_bf16(uint16_t h) {
    const uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

// e^x in single precision without libm, written once for F = float (I = uint32_t)
// and for the vectors (F = v8f, I = v8u; v16f, v16u), so that the loops that call
// it vectorise: Cephes' degree-6 polynomial on x - n ln2, |x - n ln2| <= ln2 / 2,
// times 2^n built in the exponent bits. Within 2 ulp of std::exp on [-87.3, 88.3]; x is clamped to that
// range (below it the result is 1.3e-38 instead of a denormal or 0, above it
// 2.1e38 instead of inf); NaN stays NaN. The double instantiations of the kernels
// (finite-difference checks) use std::exp.
template <class F, class I>
__attribute__((always_inline)) inline void exp_poly(F &x) {  // x = e^x
    const F lo = F{} + -87.3f, hi = F{} + 88.3f, magic = F{} + 12582912.0f;  // 1.5 * 2^23: rounds to an integer
    x = x < lo ? lo : x;
    x = x > hi ? hi : x;
    const F t = x * 1.44269504088896341f + magic;  // the low mantissa bits of t hold n = round(x / ln2)
    const F n = t - magic;
    const F r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    F p = F{} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    I bits;
    std::memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4b400000u + 127u) << 23;  // 2^n: t's bits are 0x4b400000 + n
    F scale;
    std::memcpy(&scale, &bits, sizeof scale);
    x = (p * (r * r) + r + 1.0f) * scale;
}

// Per-thread scratch; each slot grows once to the largest size asked of it.
// Slots 0, 1: attention and pooling rows; 2-5: norm_backward (cpu_kernels.cpp);
// 6-10: the fused attention (cpu_attention.cpp); 11: rows of 16-bit weights
// widened for a chunk of rows, 12: rows of x split into pairs (gemv_w16,
// cpu_half.cpp); 13: a 16-bit matrix widened whole for a prefill (cpu_backend.cpp).
template <class T>
T *scratch(int64_t n, int slot) {
    thread_local std::vector<T> buf[14];
    if (static_cast<int64_t>(buf[slot].size()) < n) buf[slot].resize(static_cast<size_t>(n));
    return buf[slot].data();
}

}  // namespace rmkv::cpu
