#include "core/memory.h"

#include <unistd.h>

#include "core/error.h"

namespace rmkv {

uint64_t physical_memory_bytes() {
    long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return 0;
    return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
}

void ensure_fits(double bytes, const std::string &what) {
    double limit = static_cast<double>(physical_memory_bytes());
    if (limit <= 0 || bytes <= limit) return;
    fail(RMKV_ERR_OUT_OF_MEMORY, what, " needs ", static_cast<uint64_t>(bytes / (1024.0 * 1024.0)),
         " MiB, more than this machine's ", static_cast<uint64_t>(limit / (1024.0 * 1024.0)),
         " MiB of memory: choose a smaller configuration (d_model, n_layers, segment_len, memory_slots, vocab_size)");
}

}  // namespace rmkv
