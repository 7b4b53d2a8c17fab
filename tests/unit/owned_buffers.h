// Buffers of a backend, freed together (the tests that run the model code on
// backends of their own: test_recorded, test_cuda_emulated_backend).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace rmkv {

struct Owned {
    Backend &be;
    std::vector<real *> p;
    explicit Owned(Backend &b) : be(b) {}
    Owned(const Owned &) = delete;
    Owned &operator=(const Owned &) = delete;
    ~Owned() {
        for (real *x : p) be.free(x);
    }
    real *get(int64_t n) {
        p.push_back(be.alloc(static_cast<size_t>(n)));
        return p.back();
    }
};

}  // namespace rmkv
