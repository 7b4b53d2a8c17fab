// Helpers shared by the fuzz targets.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

#include "rmkv.h"

// The models of fuzz_state_file (picked by the first input byte) and of
// fuzz_checkpoint; fuzz_seeds makes its seeds with the same ones.
inline const char *const kStateConfigs[3] = {
    "{\"vocab_size\":20,\"d_model\":8,\"n_layers\":1,\"n_heads\":2,\"memory_slots\":2,\"segment_len\":3,\"cell\":\"lstm\",\"ffn\":\"gelu\",\"ffn_hidden\":8}",
    "{\"vocab_size\":30,\"d_model\":8,\"n_layers\":2,\"n_heads\":2,\"n_kv_heads\":1,\"memory_slots\":3,\"segment_len\":4,\"cell\":\"gru\",\"pos\":\"learned\",\"ffn_hidden\":8}",
    "{\"vocab_size\":16,\"d_model\":4,\"n_layers\":1,\"n_heads\":1,\"memory_slots\":1,\"segment_len\":2,\"cell\":\"minimal\",\"ffn\":\"none\"}",
};
inline const char *const kCheckpointConfig = kStateConfigs[0];

// Stops the run (libFuzzer reports it as a crash, with the input) when a check fails.
#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            std::fprintf(stderr, "fuzz check failed: %s: ", #cond);           \
            std::fprintf(stderr, __VA_ARGS__);                                 \
            std::fprintf(stderr, " (last error: %s)\n", rmkv_last_error());   \
            std::abort();                                                      \
        }                                                                      \
    } while (0)

// A failed call must carry a message.
inline void expect_message(rmkv_status st) {
    if (st != RMKV_OK) FUZZ_CHECK(rmkv_last_error()[0] != '\0', "status %s", rmkv_status_string(st));
}

// An in-memory file (memfd) reached by a path, for the readers that take paths.
class MemFile {
public:
    MemFile() {
        fd_ = ::memfd_create("rmkv-fuzz", 0);
        if (fd_ < 0) std::abort();
        path_ = "/proc/self/fd/" + std::to_string(fd_);
    }
    const std::string &set(const uint8_t *data, size_t size) {
        if (::ftruncate(fd_, 0) != 0) std::abort();
        size_t done = 0;
        while (done < size) {
            ssize_t n = ::pwrite(fd_, data + done, size - done, static_cast<off_t>(done));
            if (n <= 0) std::abort();
            done += static_cast<size_t>(n);
        }
        return path_;
    }

private:
    int fd_;
    std::string path_;
};
