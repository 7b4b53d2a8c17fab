// How many CPU threads the computations of one call may use.
#pragma once

#include <omp.h>

namespace rmkv {

// For its lifetime, the OpenMP parallel regions started by the calling thread
// (the CPU backend's loops and its oneDNN primitives, whose cache is keyed by
// the count) use at most n threads; the thread's previous setting comes back
// at the end. n == 0 changes nothing. Another thread's setting is untouched.
class ThreadLimit {
public:
    explicit ThreadLimit(int n) : previous_(n > 0 ? omp_get_max_threads() : 0) {
        if (n > 0) omp_set_num_threads(n);
    }
    ~ThreadLimit() {
        if (previous_ > 0) omp_set_num_threads(previous_);
    }
    ThreadLimit(const ThreadLimit &) = delete;
    ThreadLimit &operator=(const ThreadLimit &) = delete;

private:
    int previous_;
};

}  // namespace rmkv
