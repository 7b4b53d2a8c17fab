// How many CPU threads the computations of one call may use.
#pragma once

#ifdef _OPENMP
#include <omp.h>
#endif

namespace rmkv {

// The OpenMP thread count of the calling thread's next parallel region (1 in a
// build without OpenMP).
inline int cpu_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// For its lifetime, the OpenMP parallel regions started by the calling thread
// (the CPU backend's loops and its oneDNN primitives, whose cache is keyed by
// the count) use at most n threads; the thread's previous setting comes back
// at the end. n == 0 changes nothing. Another thread's setting is untouched.
class ThreadLimit {
public:
    explicit ThreadLimit(int n) : previous_(n > 0 ? cpu_threads() : 0) { set(n); }
    ~ThreadLimit() { set(previous_); }
    ThreadLimit(const ThreadLimit &) = delete;
    ThreadLimit &operator=(const ThreadLimit &) = delete;

private:
    static void set(int n) {
#ifdef _OPENMP
        if (n > 0) omp_set_num_threads(n);
#else
        (void)n;
#endif
    }
    int previous_;
};

}  // namespace rmkv
