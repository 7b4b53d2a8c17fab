// The C boundary: every exported function runs its body through guarded(), which
// turns exceptions into a status and the thread-local message of rmkv_last_error().
#pragma once

#include <new>

#include "core/error.h"

namespace rmkv {

template <class Body>
rmkv_status guarded(Body &&body) noexcept {
    try {
        body();
        return RMKV_OK;
    } catch (const Error &e) {
        set_last_error(e.what());
        return e.status();
    } catch (const std::bad_alloc &) {
        set_last_error("out of memory");
        return RMKV_ERR_OUT_OF_MEMORY;
    } catch (const std::exception &e) {
        set_last_error(std::string("internal error: ") + e.what());
        return RMKV_ERR_INTERNAL;
    } catch (...) {
        set_last_error("internal error: unknown exception");
        return RMKV_ERR_INTERNAL;
    }
}

// Argument checks at the boundary.
template <class T>
void require_not_null(const T *p, const char *name) {
    if (!p) fail(RMKV_ERR_INVALID_ARGUMENT, name, " is NULL");
}

}  // namespace rmkv
