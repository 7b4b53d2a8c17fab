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

// Writes a file of exactly `size` bytes produced by `fill(dest)` atomically: `dest`
// is the mapped temporary file (no copy of the bytes in memory), whose space is
// reserved before `fill` runs; then msync, fsync, rename and an fsync of the
// directory. The temporary file has no name until it is complete (O_TMPFILE,
// where the file system has it), so a process killed mid-write leaves no file
// behind. On any failure (ENOSPC, a file size limit, read-only directory, ...)
// throws RMKV_ERR_IO, removes the temporary file and leaves an existing file at
// `path` untouched; an exception from `fill` is passed on the same way.
void write_file_atomic(const std::string &path, size_t size, const std::function<void(uint8_t *dest)> &fill);

}  // namespace rmkv
