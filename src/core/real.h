// The scalar type of the model's computation. float in the library; the
// whole-model finite-difference test (tests/unit/test_model_gradients.cpp)
// compiles the model code (segment, sequence pass, weights, CPU kernels) with
// RMKV_REAL=double, against the reference backend of the tests.
#pragma once

namespace rmkv {
#ifdef RMKV_REAL
using real = RMKV_REAL;
#else
using real = float;
#endif

// The 16-bit formats a model file may store weights in (SPEC file format: BF16,
// F16); an inference model may keep its matrices in them (Matrix, model/weights.h).
enum class Half : unsigned char { bf16, f16 };
}  // namespace rmkv
