// Memory the machine can give: a model or a session larger than the machine's
// physical memory is refused up front with RMKV_ERR_OUT_OF_MEMORY, before any
// allocation (zero-filling it would otherwise end in the kernel's OOM killer
// under overcommit rather than in a status).
#pragma once

#include <cstdint>
#include <string>

namespace rmkv {

// Physical memory of the machine in bytes (sysconf), 0 when unknown.
uint64_t physical_memory_bytes();

// Throws RMKV_ERR_OUT_OF_MEMORY naming `what`, the bytes it needs and the machine's
// memory when `bytes` (a double: sizes from configs may be astronomical) exceeds
// the physical memory.
void ensure_fits(double bytes, const std::string &what);

}  // namespace rmkv
