#include "core/log.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

namespace rmkv {

namespace {
struct Sink {
    rmkv_log_callback callback;
    void *user_data;
    rmkv_log_level min_level;
};
// Swapped atomically; every sink ever installed stays alive (a few bytes each) so a
// line being delivered on another thread never reads freed memory.
std::atomic<const Sink *> g_sink{nullptr};
std::mutex g_sinks_mutex;
std::vector<std::unique_ptr<Sink>> g_sinks;
}  // namespace

void set_log_sink(rmkv_log_callback callback, void *user_data, rmkv_log_level min_level) {
    const Sink *sink = nullptr;
    if (callback) {
        std::lock_guard<std::mutex> lock(g_sinks_mutex);
        g_sinks.push_back(std::make_unique<Sink>(Sink{callback, user_data, min_level}));
        sink = g_sinks.back().get();
    }
    g_sink.store(sink, std::memory_order_release);
}

void log_line(rmkv_log_level level, const std::string &line) {
    const Sink *sink = g_sink.load(std::memory_order_acquire);
    if (!sink || level < sink->min_level) return;
    sink->callback(level, line.c_str(), sink->user_data);
}

}  // namespace rmkv
