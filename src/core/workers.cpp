#include "core/workers.h"

namespace rmkv {

Workers::Workers(size_t n_workers) : errors_(n_workers + 1) {
    threads_.reserve(n_workers);
    for (size_t i = 0; i < n_workers; ++i) threads_.emplace_back([this, i] { loop(i + 1); });
}

Workers::~Workers() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
    }
    start_.notify_all();
    for (auto &t : threads_) t.join();
}

void Workers::loop(size_t index) {
    unsigned long seen = 0;
    for (;;) {
        const std::function<void(size_t)> *fn;
        {
            std::unique_lock<std::mutex> lock(mu_);
            start_.wait(lock, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
            if (index >= n_tasks_) continue;
            fn = fn_;
        }
        try {
            (*fn)(index);
        } catch (...) {
            errors_[index] = std::current_exception();
        }
        std::lock_guard<std::mutex> lock(mu_);
        if (--pending_ == 0) done_.notify_one();
    }
}

void Workers::run(size_t n_tasks, const std::function<void(size_t)> &fn) {
    if (n_tasks > size()) n_tasks = size();
    if (n_tasks == 0) return;
    for (auto &e : errors_) e = nullptr;
    if (n_tasks > 1) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            fn_ = &fn;
            n_tasks_ = n_tasks;
            pending_ = n_tasks - 1;
            ++generation_;
        }
        start_.notify_all();
    }
    try {
        fn(0);
    } catch (...) {
        errors_[0] = std::current_exception();
    }
    if (n_tasks > 1) {
        std::unique_lock<std::mutex> lock(mu_);
        done_.wait(lock, [&] { return pending_ == 0; });
    }
    for (auto &e : errors_)
        if (e) std::rethrow_exception(e);
}

}  // namespace rmkv
