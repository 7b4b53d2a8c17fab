#include "core/error.h"

namespace rmkv {

namespace {
thread_local std::string t_last_error;
}

void throw_error(rmkv_status status, std::string message) { throw Error(status, message); }

void set_last_error(std::string message) { t_last_error = std::move(message); }

const char *last_error() { return t_last_error.c_str(); }

}  // namespace rmkv
