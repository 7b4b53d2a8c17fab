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
}  // namespace rmkv
