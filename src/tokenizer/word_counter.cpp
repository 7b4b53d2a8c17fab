// Word counting for training, on several threads. Files are cut into ranges of
// whole lines that threads take in turn; each thread counts into its own map and
// the maps are merged at the end, so memory follows the number of distinct words.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "tokenizer/trainer.h"

namespace rmkv::tok {

void report_progress(const TrainOptions &o, const char *stage, uint64_t done, uint64_t total) {
    if (o.progress && o.progress(stage, done, total, o.progress_user_data) != 0)
        fail(RMKV_ERR_CANCELLED, "tokenizer training cancelled by the progress callback (", stage, ")");
}

namespace {

constexpr uint64_t kRange = 4u << 20;  // bytes of a file per work item

struct WorkItem {
    size_t source;           // file index, or text index
    uint64_t begin, end;     // byte range (files)
};

// Reads the lines that start in [begin, end) of a file (a line belongs to the
// range its first byte is in) and hands each, with its '\n', to `line`.
template <class Line>
void read_lines(const std::string &path, uint64_t begin, uint64_t end, Line &&line) {
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) fail(RMKV_ERR_IO, "cannot open ", path);
    struct Closer {
        FILE *f;
        ~Closer() { std::fclose(f); }
    } closer{f};
    uint64_t pos = begin;
    if (begin > 0) {
        // start after the first '\n' at or after begin - 1
        pos = begin - 1;
    }
    if (fseeko(f, static_cast<off_t>(pos), SEEK_SET) != 0) fail(RMKV_ERR_IO, "cannot seek in ", path);
    std::string buf, carry;
    buf.resize(1u << 20);
    bool skipping = begin > 0;
    uint64_t line_start = pos;  // file offset of carry's first byte
    for (;;) {
        size_t n = std::fread(buf.data(), 1, buf.size(), f);
        if (n == 0) {
            if (std::ferror(f)) fail(RMKV_ERR_IO, "cannot read ", path);
            break;
        }
        size_t i = 0;
        if (skipping) {
            const char *nl = static_cast<const char *>(std::memchr(buf.data(), '\n', n));
            if (!nl) {
                pos += n;
                continue;
            }
            i = static_cast<size_t>(nl - buf.data()) + 1;
            pos += i;
            line_start = pos;
            skipping = false;
            if (line_start >= end) return;
        }
        while (i < n) {
            const char *nl = static_cast<const char *>(std::memchr(buf.data() + i, '\n', n - i));
            if (!nl) {
                carry.append(buf.data() + i, n - i);
                pos += n - i;
                break;
            }
            size_t len = static_cast<size_t>(nl - (buf.data() + i)) + 1;
            if (carry.empty()) {
                line(std::string_view(buf.data() + i, len));
            } else {
                carry.append(buf.data() + i, len);
                line(std::string_view(carry));
                carry.clear();
            }
            i += len;
            pos += len;
            line_start = pos;
            if (line_start >= end) return;
        }
    }
    if (!carry.empty() && line_start < end) line(std::string_view(carry));
}

void merge_into(WordCounts &into, WordCounts &from) {
    if (into.size() < from.size()) into.swap(from);
    for (auto &[w, c] : from) into[w] += c;
    WordCounts().swap(from);
}

}  // namespace

WordCounts count_words(const TrainOptions &o, const std::function<void(std::string_view, WordCounts &)> &count_sequence) {
    std::vector<WorkItem> items;
    uint64_t total = 0;
    for (size_t i = 0; i < o.files.size(); ++i) {
        FILE *f = std::fopen(o.files[i].c_str(), "rb");
        if (!f) fail(RMKV_ERR_IO, "cannot open ", o.files[i]);
        fseeko(f, 0, SEEK_END);
        auto size = static_cast<uint64_t>(ftello(f));
        std::fclose(f);
        total += size;
        for (uint64_t b = 0; b < size; b += kRange) items.push_back({i, b, std::min(size, b + kRange)});
    }
    for (size_t i = 0; i < o.texts.size(); ++i) {
        items.push_back({i, 0, o.texts[i].size()});
        total += o.texts[i].size();
    }
    const bool from_files = !o.files.empty();

    unsigned n_threads = std::max(1u, std::min<unsigned>(o.n_threads, static_cast<unsigned>(std::max<size_t>(items.size(), 1))));
    std::vector<WordCounts> maps(n_threads);
    std::atomic<size_t> next{0};
    std::atomic<uint64_t> done_bytes{0};
    std::atomic<bool> stop{false};
    std::exception_ptr error;
    std::mutex error_mutex;

    auto work = [&](unsigned t, bool reporter) {
        try {
            for (size_t k; !stop && (k = next.fetch_add(1)) < items.size();) {
                const WorkItem &it = items[k];
                if (from_files) {
                    read_lines(o.files[it.source], it.begin, it.end,
                               [&](std::string_view line) { count_sequence(line, maps[t]); });
                } else {
                    count_sequence(o.texts[it.source], maps[t]);
                }
                uint64_t d = done_bytes.fetch_add(it.end - it.begin) + (it.end - it.begin);
                if (reporter) report_progress(o, "count words", d, total);
            }
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
            stop = true;
        }
    };
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < n_threads; ++t) pool.emplace_back(work, t, false);
    work(0, true);
    for (auto &th : pool) th.join();
    if (error) std::rethrow_exception(error);
    report_progress(o, "count words", total, total);
    for (unsigned t = 1; t < n_threads; ++t) merge_into(maps[0], maps[t]);
    return std::move(maps[0]);
}

}  // namespace rmkv::tok
