// rmkv_version, errors and logging.
#include "api/guard.h"
#include "api/params.h"
#include "core/log.h"

#define RMKV_STR2(x) #x
#define RMKV_STR(x) RMKV_STR2(x)

extern "C" {

RMKV_API const char *rmkv_version(void) {
    return RMKV_STR(RMKV_VERSION_MAJOR) "." RMKV_STR(RMKV_VERSION_MINOR) "." RMKV_STR(RMKV_VERSION_PATCH);
}

RMKV_API const char *rmkv_last_error(void) { return rmkv::last_error(); }

RMKV_API const char *rmkv_status_string(rmkv_status status) {
    switch (rmkv::raw_enum(status)) {
    case RMKV_OK: return "RMKV_OK";
    case RMKV_ERR_INVALID_ARGUMENT: return "RMKV_ERR_INVALID_ARGUMENT";
    case RMKV_ERR_IO: return "RMKV_ERR_IO";
    case RMKV_ERR_FORMAT: return "RMKV_ERR_FORMAT";
    case RMKV_ERR_MISMATCH: return "RMKV_ERR_MISMATCH";
    case RMKV_ERR_OUT_OF_MEMORY: return "RMKV_ERR_OUT_OF_MEMORY";
    case RMKV_ERR_BUFFER_TOO_SMALL: return "RMKV_ERR_BUFFER_TOO_SMALL";
    case RMKV_ERR_BACKEND: return "RMKV_ERR_BACKEND";
    case RMKV_ERR_CANCELLED: return "RMKV_ERR_CANCELLED";
    case RMKV_ERR_INTERNAL: return "RMKV_ERR_INTERNAL";
    }
    return "RMKV_ERR_UNKNOWN";
}

RMKV_API void rmkv_set_log_callback(rmkv_log_callback callback, void *user_data, rmkv_log_level min_level) {
    int level = rmkv::raw_enum(min_level);
    level = level < RMKV_LOG_DEBUG ? RMKV_LOG_DEBUG : level > RMKV_LOG_ERROR ? RMKV_LOG_ERROR : level;
    rmkv::set_log_sink(callback, user_data, static_cast<rmkv_log_level>(level));
}

}  // extern "C"
