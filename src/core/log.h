// Diagnostics: complete lines to the user's log callback (silent by default).
#pragma once

#include "core/error.h"

namespace rmkv {

void set_log_sink(rmkv_log_callback callback, void *user_data, rmkv_log_level min_level);
void log_line(rmkv_log_level level, const std::string &line);

template <class... Parts>
void log(rmkv_log_level level, const Parts &...parts) {
    log_line(level, concat_message(parts...));
}

}  // namespace rmkv
