// Shared by the gpu-labelled tests: skipping when there is no CUDA device, and
// the tolerances of the CUDA backend against the CPU backend.
//
// A test is skipped (exit 77, CTest's SKIP_RETURN_CODE) only when the CUDA
// backend loads and then reports that the machine has no usable driver or
// device; any other failure to obtain it (plugin missing, wrong ABI) fails.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "rmkv.h"

// The device under test. Compiling with -DRMKV_GPU_TEST_DEVICE=\"cpu\" runs the
// tests' logic against the CPU backend itself (every comparison then exact), a
// check of the tests on machines without a GPU.
#ifndef RMKV_GPU_TEST_DEVICE
#define RMKV_GPU_TEST_DEVICE "cuda"
#endif

namespace gpu_test {

constexpr const char *kDevice = RMKV_GPU_TEST_DEVICE;

// fp32 products and kernels: max |a - b| / max |b| against the CPU backend.
constexpr double kTolF32 = 1e-5;
// bf16 matrix products (bf16 inputs, fp32 accumulation) against fp32 on the CPU,
// per operation: rounding of both inputs to 8 significant bits.
constexpr double kTolBf16Linear = 2e-2;
// bf16 products against fp32 products of the same bf16-rounded inputs: the
// products are exact in fp32, only the accumulation differs (tensor cores do
// not round every addition as IEEE fp32 does).
constexpr double kTolBf16Exact = 1e-4;
// Attention with bf16 attention on (bf16 training; CUDA's tensor-core kernels)
// against fp32 attention on the same bf16-rounded inputs: the probabilities and
// score gradients are rounded to bf16 on the way into their products (measured
// at most 3.5e-3 in tests/unit/test_cuda_emulated.cpp).
constexpr double kTolBf16Attention = 1e-2;
// Whole-model gradients and logits with bf16 products against fp32 on the CPU.
constexpr double kTolBf16Model = 5e-2;

// max |a - b| / max |b| (infinite when a NaN appears).
inline double rel(const std::vector<float> &a, const std::vector<float> &b) {
    double md = 0, mb = 1e-30;
    for (size_t i = 0; i < a.size(); ++i) {
        double d = std::fabs(double(a[i]) - double(b[i]));
        if (!(d <= md)) md = std::isnan(d) ? INFINITY : d;
        mb = std::max(mb, std::fabs(double(b[i])));
    }
    return md / mb;
}

inline int skip_code() { return 77; }

// The message of a failure that means "no GPU here" (cuda_backend.cu).
inline bool is_no_device(const char *msg) {
    return msg && (std::strstr(msg, "no usable CUDA driver or device") || std::strstr(msg, "has no CUDA device"));
}

// Creates a tiny model on "cuda" to find out; returns 0 when a device is there,
// 77 (after saying why) when the machine has none, 1 on any other failure.
inline int probe() {
    rmkv_model_params p = rmkv_model_default_params();
    p.device = kDevice;
    rmkv_model *m = nullptr;
    rmkv_status st = rmkv_model_create(
        "{\"vocab_size\":8,\"d_model\":8,\"n_layers\":1,\"n_heads\":1,\"memory_slots\":1,\"segment_len\":4}", nullptr, 1,
        &p, &m);
    if (st == RMKV_OK) {
        rmkv_model_free(m);
        return 0;
    }
    if (st == RMKV_ERR_BACKEND && is_no_device(rmkv_last_error())) {
        std::printf("SKIPPED: no CUDA device on this machine (%s)\n", rmkv_last_error());
        return skip_code();
    }
    std::printf("FAILED: the CUDA backend cannot be used: %s: %s\n", rmkv_status_string(st), rmkv_last_error());
    return 1;
}

}  // namespace gpu_test
