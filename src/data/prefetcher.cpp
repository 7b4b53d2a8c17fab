#include "data/prefetcher.h"

namespace rmkv::data {

void Prefetcher::start(Produce produce) {
    stop();
    produce_ = std::move(produce);
    stopping_ = false;
    error_ = nullptr;
    thread_ = std::thread([this] { run(); });
}

void Prefetcher::stop() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    if (thread_.joinable()) thread_.join();
    queue_.clear();
    error_ = nullptr;
}

void Prefetcher::run() {
    for (;;) {
        Batch batch;
        try {
            produce_(batch);
        } catch (...) {
            std::lock_guard<std::mutex> lock(mutex_);
            error_ = std::current_exception();
            changed_.notify_all();
            return;
        }
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || queue_.size() < capacity_; });
        if (stopping_) return;
        queue_.push_back(std::move(batch));
        changed_.notify_all();
    }
}

Batch Prefetcher::pop() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return !queue_.empty() || error_ != nullptr; });
    if (queue_.empty()) std::rethrow_exception(error_);
    Batch batch = std::move(queue_.front());
    queue_.pop_front();
    changed_.notify_all();
    return batch;
}

}  // namespace rmkv::data
