// Files: read-only mappings, whole-file reads, and atomic writes (temp file in the
// same directory, flush, fsync, rename), the only way rmkv writes a file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace rmkv {

// A read-only view of a file's bytes: mmap'ed when possible, else read into memory.
class MappedFile {
public:
    MappedFile(const std::string &path, bool use_mmap);  // throws RMKV_ERR_IO naming the path
    ~MappedFile();
    MappedFile(const MappedFile &) = delete;
    MappedFile &operator=(const MappedFile &) = delete;

    const uint8_t *data() const { return data_; }
    size_t size() const { return size_; }

private:
    const uint8_t *data_ = nullptr;
    size_t size_ = 0;
    bool mapped_ = false;
    std::vector<uint8_t> copy_;
};

// Writes a file of exactly `size` bytes produced by `fill(dest)` atomically. On any
// failure (ENOSPC, read-only directory, ...) throws RMKV_ERR_IO and leaves an
// existing file at `path` untouched.
void write_file_atomic(const std::string &path, size_t size, const std::function<void(uint8_t *dest)> &fill);

}  // namespace rmkv
