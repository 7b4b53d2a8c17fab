// CPU kernels for weights held in 16 bits (bf16 or IEEE binary16, model files
// kept as they are): the products of x with such a W, and the widening to f32.
// Every weight is widened exactly and every product and sum runs in f32, so the
// results are those of the same weights held in f32, up to the order of the sums.
#pragma once

#include <cstdint>

#include "core/real.h"

namespace rmkv::cpu {

// The product of n rows with W in the 16-bit format h, each weight widened to f32
// exactly: y[n, out] (+)= x[n, in] W^T (+ b), f32 products and sums.
// Up to 23 rows (decoding, sessions stepped together): weights widened in
// registers (from 16 rows, in two passes over W); f16 there on CPUs with F16C.
// Otherwise every 4 rows of W are widened into the thread's scratch, where they
// stay in the cache for a chunk of x's rows.
void gemv_w16(float *y, const float *x, const uint16_t *W, Half h, const float *b, int64_t n, int64_t in, int64_t out,
              bool accumulate);
// Whether this CPU has AVX512-BF16 (with AVX512-BW and -VL): what gemv_bf16 needs.
bool cpu_has_avx512bf16();
// The product of n rows of x, rounded to bf16 (x_bf16 [n, in]), with bf16 W:
// y[n, out] (+)= x W^T (+ b) in AVX512-BF16 dot products, every product exact
// in f32, summed in f32 pair by pair (denormal inputs and results flushed to
// zero). Only on CPUs where cpu_has_avx512bf16(). Every weight read once per
// call: up to 8 rows against one row of W at a time (9 to 12 rows, when their x
// takes at most 24 KiB, the same in two groups), more in tiles of 6 rows against
// 4 rows of W. Each output's sums run in the same order whatever the
// tile: a row's result does not depend on the other rows of the call.
void gemv_bf16(float *y, const uint16_t *x_bf16, const uint16_t *W, const float *b, int64_t n, int64_t in,
               int64_t out, bool accumulate);
// dst[i] = src[i] (bf16) as f32, exactly.
void from_bf16(float *dst, const uint16_t *src, int64_t n);
// dst[i] = src[i] (IEEE binary16) as f32, exactly (subnormals, infinities and NaNs
// included): F16C's conversion where the CPU has it, bit operations elsewhere.
void from_f16(float *dst, const uint16_t *src, int64_t n);
// The same in bit operations, one thread: what from_f16 runs without F16C.
void from_f16_portable(float *dst, const uint16_t *src, int64_t n);
inline void from_half(Half h, float *dst, const uint16_t *src, int64_t n) {
    if (h == Half::f16) from_f16(dst, src, n);
    else from_bf16(dst, src, n);
}
}  // namespace rmkv::cpu
