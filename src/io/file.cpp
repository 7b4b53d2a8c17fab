#include "io/file.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

namespace rmkv {

namespace {

std::string errno_text() { return std::strerror(errno); }

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const { return fd_; }
    int release() {
        int f = fd_;
        fd_ = -1;
        return f;
    }

private:
    int fd_;
};

}  // namespace

MappedFile::MappedFile(const std::string &path, bool use_mmap) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) fail(RMKV_ERR_IO, "cannot open '", path, "': ", errno_text());
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) fail(RMKV_ERR_IO, "cannot stat '", path, "': ", errno_text());
    if (!S_ISREG(st.st_mode)) fail(RMKV_ERR_IO, "'", path, "' is not a regular file");
    size_ = static_cast<size_t>(st.st_size);
    if (size_ == 0) {
        data_ = copy_.data();
        return;
    }
    if (use_mmap) {
        void *p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
        if (p != MAP_FAILED) {
            data_ = static_cast<const uint8_t *>(p);
            mapped_ = true;
            return;
        }
    }
    copy_.resize(size_);
    size_t done = 0;
    while (done < size_) {
        ssize_t n = ::read(fd.get(), copy_.data() + done, size_ - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail(RMKV_ERR_IO, "cannot read '", path, "' at offset ", done, ": ", n < 0 ? errno_text() : "unexpected end of file");
        done += static_cast<size_t>(n);
    }
    data_ = copy_.data();
}

MappedFile::~MappedFile() {
    if (mapped_) ::munmap(const_cast<uint8_t *>(data_), size_);
}

void write_file_atomic(const std::string &path, size_t size, const std::function<void(uint8_t *dest)> &fill) {
    // The bytes go straight into the temporary file (space reserved first, then
    // mapped and filled), so a large file is never held twice in memory.
    std::string tmp = path + ".tmp-XXXXXX";
    std::vector<char> tmpl(tmp.begin(), tmp.end());
    tmpl.push_back('\0');
    Fd fd(::mkstemp(tmpl.data()));
    if (fd.get() < 0) fail(RMKV_ERR_IO, "cannot create a temporary file next to '", path, "': ", errno_text());
    std::string tmp_path(tmpl.data());
    void *map = MAP_FAILED;
    auto abandon = [&](const std::string &what, int err) {
        std::string msg = concat_message("cannot write '", path, "' (", what, "): ", std::strerror(err),
                                         "; the previous file, if any, is unchanged");
        if (map != MAP_FAILED) ::munmap(map, size);
        ::close(fd.release());
        ::unlink(tmp_path.c_str());
        fail(RMKV_ERR_IO, msg);
    };
    if (size > 0) {
        // posix_fallocate reserves every block: a full disk (ENOSPC) or a file size
        // limit (EFBIG) shows here as an error, never later as SIGBUS on the mapping.
        int err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(size));
        if (err == EINTR) err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(size));
        if (err != 0) abandon("reserving " + std::to_string(size) + " bytes", err);
        map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
        if (map == MAP_FAILED) abandon("map", errno);
        try {
            fill(static_cast<uint8_t *>(map));
        } catch (...) {
            ::munmap(map, size);
            ::close(fd.release());
            ::unlink(tmp_path.c_str());
            throw;
        }
        if (::msync(map, size, MS_SYNC) != 0) abandon("msync", errno);
        ::munmap(map, size);
        map = MAP_FAILED;
    }
    if (::fchmod(fd.get(), 0644) != 0) abandon("chmod", errno);
    if (::fsync(fd.get()) != 0) abandon("fsync", errno);
    if (::close(fd.release()) != 0) {
        std::string msg = concat_message("cannot write '", path, "' (close): ", errno_text());
        ::unlink(tmp_path.c_str());
        fail(RMKV_ERR_IO, msg);
    }
    if (::rename(tmp_path.c_str(), path.c_str()) != 0) {
        std::string msg = concat_message("cannot rename '", tmp_path, "' to '", path, "': ", errno_text());
        ::unlink(tmp_path.c_str());
        fail(RMKV_ERR_IO, msg);
    }
    // Make the rename itself durable.
    std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/') + 1);
    Fd dfd(::open(dir.empty() ? "/" : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dfd.get() >= 0) ::fsync(dfd.get());
}

}  // namespace rmkv
