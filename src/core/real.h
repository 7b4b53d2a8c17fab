// The scalar type of the model's computation. float in the library; the
// whole-model finite-difference test (tests/unit/test_model_gradients.cpp)
// compiles the model code (segment, sequence pass, weights, CPU kernels) with
// RMKV_REAL=double, against the reference backend of the tests.
#pragma once

#include <cstdint>
#include <cstring>

// Functions callable from host and device code, one formula for both backends
// (the dropout hash, bf16 rounding).
#ifdef __CUDACC__
#define RMKV_HOST_DEVICE __host__ __device__
#else
#define RMKV_HOST_DEVICE
#endif

namespace rmkv {
#ifdef RMKV_REAL
using real = RMKV_REAL;
#else
using real = float;
#endif

// The 16-bit formats a model file may store weights in (SPEC file format: BF16,
// F16); an inference model may keep its matrices in them (Matrix, model/weights.h).
enum class Half : unsigned char { bf16, f16 };

// The bits of f rounded to bf16: to nearest, ties to even; a NaN stays a (quiet)
// NaN. The one rounding of files, CPU and CUDA kernels.
RMKV_HOST_DEVICE inline uint16_t bf16_bits(float f) {
    uint32_t u;
#ifdef __CUDA_ARCH__
    u = __float_as_uint(f);
#else
    std::memcpy(&u, &f, 4);
#endif
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}
// The value of 16-bit weight h in `format`, exactly (both formats are subsets of
// f32): the one widening of the CPU and CUDA kernels. f16 subnormals go through
// an exact int-to-float product, so a denormals-are-zero mode cannot flush them;
// infinities and NaNs (payload kept) stay what they are.
RMKV_HOST_DEVICE inline float half_value(uint16_t h, Half format) {
    uint32_t bits;
    if (format == Half::bf16) {
        bits = static_cast<uint32_t>(h) << 16;
    } else {
        const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
        if (e == 0x1f) {
            bits = sign | 0x7f800000u | (m << 13);
        } else if (e != 0) {
            bits = sign | ((e + 112) << 23) | (m << 13);
        } else {
            const float f = static_cast<float>(m) * 0x1p-24f;
#ifdef __CUDA_ARCH__
            bits = __float_as_uint(f) | sign;
#else
            std::memcpy(&bits, &f, 4);
            bits |= sign;
#endif
        }
    }
#ifdef __CUDA_ARCH__
    return __uint_as_float(bits);
#else
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
#endif
}
}  // namespace rmkv
