// The CPU backend: oneDNN matmul primitives (created once per shape, cached) for
// the matrix products, kernels of its own for products with 16-bit weights
// (cpu_half.h) and OpenMP loops for everything else (cpu_kernels.h).
#pragma once

#include <memory>

#include "backend/backend.h"

namespace rmkv {

std::shared_ptr<Backend> make_cpu_backend();

}  // namespace rmkv
