// Reading a caller's params struct: NULL means the defaults, and a struct from an
// older caller (smaller struct_size) keeps the defaults for the fields it lacks.
#pragma once

#include <cstddef>
#include <cstring>

#include "core/error.h"

namespace rmkv {

template <class T>
T read_params(const T *given, T defaults, const char *name) {
    if (!given) return defaults;
    if ((given->struct_size) < sizeof(size_t) || (given->struct_size) > (1u << 16))
        fail(RMKV_ERR_INVALID_ARGUMENT, name, "->struct_size is ", given->struct_size, "; set it to sizeof(", name, ")");
    size_t n = given->struct_size < sizeof(T) ? given->struct_size : sizeof(T);
    std::memcpy(static_cast<void *>(&defaults), given, n);
    defaults.struct_size = sizeof(T);
    return defaults;
}

// Sizes no real call uses: a caller passing them has a bug (or an uninitialised
// variable), and trusting them would read far past the caller's buffer.
constexpr size_t kMaxBufferBytes = size_t(1) << 46;
constexpr size_t kMaxTokensPerCall = size_t(1) << 30;
constexpr size_t kMaxSessionsPerCall = size_t(1) << 20;

inline void check_size(size_t size, size_t limit, const char *name) {
    if (size > limit) fail(RMKV_ERR_INVALID_ARGUMENT, name, " = ", size, " is absurdly large (limit ", limit, ")");
}

// The integer a C caller put in an enum parameter. C allows any int there; in C++
// reading an out-of-range enum is undefined, so the bytes are copied instead.
template <class E>
int raw_enum(const E &e) {
    static_assert(sizeof(E) == sizeof(int), "C enums are int-sized here");
    int v;
    std::memcpy(&v, &e, sizeof v);
    return v;
}

// The (buf, capacity, &needed) convention.
inline void copy_out(const void *src, size_t size, void *buf, size_t capacity, size_t *needed) {
    *needed = size;
    if (capacity < size) fail(RMKV_ERR_BUFFER_TOO_SMALL, "buffer of ", capacity, " bytes is too small; ", size, " bytes are needed");
    if (!buf) fail(RMKV_ERR_INVALID_ARGUMENT, "buf is NULL but capacity is ", capacity);
    std::memcpy(buf, src, size);
}

}  // namespace rmkv
