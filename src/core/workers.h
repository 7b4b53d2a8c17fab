// A fixed set of host threads that run one task each, together with the calling
// thread: run(n, fn) calls fn(0) on the caller and fn(1) .. fn(n - 1) on workers,
// and returns when all are done. The threads live as long as the object, so a
// training step starts no thread. The first exception (by task index) is
// rethrown on the caller once every task has finished.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace rmkv {

class Workers {
public:
    explicit Workers(size_t n_workers);
    ~Workers();
    Workers(const Workers &) = delete;
    Workers &operator=(const Workers &) = delete;

    size_t size() const { return threads_.size() + 1; }  // tasks one run can take
    void run(size_t n_tasks, const std::function<void(size_t)> &fn);

private:
    void loop(size_t index);

    std::vector<std::thread> threads_;
    std::mutex mu_;
    std::condition_variable start_, done_;
    const std::function<void(size_t)> *fn_ = nullptr;
    size_t n_tasks_ = 0, pending_ = 0;
    unsigned long generation_ = 0;
    bool stop_ = false;
    std::vector<std::exception_ptr> errors_;
};

}  // namespace rmkv
