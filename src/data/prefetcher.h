// The background thread that prepares batches ahead of the trainer: one
// producer, a bounded queue (capacity batches), one consumer. The producer
// stops at its first error, which pop() rethrows once the batches made before
// it are consumed.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "data/batch.h"

namespace rmkv::data {

class Prefetcher {
public:
    using Produce = std::function<void(Batch &)>;

    explicit Prefetcher(size_t capacity) : capacity_(capacity ? capacity : 1) {}
    ~Prefetcher() { stop(); }
    Prefetcher(const Prefetcher &) = delete;
    Prefetcher &operator=(const Prefetcher &) = delete;

    void start(Produce produce);
    void stop();  // joins the thread and drops what is queued
    bool running() const { return thread_.joinable(); }
    Batch pop();  // waits for the next batch, or rethrows the producer's error

private:
    void run();

    size_t capacity_;
    Produce produce_;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<Batch> queue_;
    std::exception_ptr error_;
    bool stopping_ = false;
};

}  // namespace rmkv::data
