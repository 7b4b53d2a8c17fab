// Errors inside the library: exceptions carrying an rmkv_status, turned into a
// status and a thread-local message at the C boundary (src/api/).
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

#include "rmkv.h"

namespace rmkv {

class Error : public std::runtime_error {
public:
    Error(rmkv_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
    rmkv_status status() const { return status_; }

private:
    rmkv_status status_;
};

// Builds a message from any streamable pieces: fail(RMKV_ERR_FORMAT, "tensor ", name, " ends at ", end).
std::string concat_message();
template <class T, class... Rest>
std::string concat_message(const T &first, const Rest &...rest);

[[noreturn]] void throw_error(rmkv_status status, std::string message);

template <class... Parts>
[[noreturn]] void fail(rmkv_status status, const Parts &...parts) {
    throw_error(status, concat_message(parts...));
}

// Thread-local message behind rmkv_last_error().
void set_last_error(std::string message);
const char *last_error();

}  // namespace rmkv

#include <sstream>

namespace rmkv {
inline std::string concat_message() { return {}; }
template <class T, class... Rest>
std::string concat_message(const T &first, const Rest &...rest) {
    std::ostringstream os;
    os << first;
    ((os << rest), ...);
    return os.str();
}
}  // namespace rmkv
