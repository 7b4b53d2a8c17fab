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

namespace {

// The temporary file of a write. Where the file system allows it (O_TMPFILE and
// /proc/self/fd, as on ext4, xfs, btrfs and tmpfs), the bytes go to an unnamed
// file in the target's directory that is given a name only once complete, just
// before the rename: a process killed while writing leaves nothing behind. Else a
// named mkstemp file, which such a kill leaves as `path.tmp-XXXXXX`.
class TempFile {
public:
    explicit TempFile(const std::string &path)
        : path_(path), dir_(path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/') + 1)) {
        if (::access("/proc/self/fd", X_OK) == 0) {
            fd_ = ::open(dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
            // File systems without unnamed files answer one of these; anything else
            // (no such directory, no permission, ...) is the caller's error.
            if (fd_ < 0 && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
                fail(RMKV_ERR_IO, "cannot create a temporary file next to '", path, "': ", errno_text());
        }
        if (fd_ < 0) {
            std::string tmpl = path + ".tmp-XXXXXX";
            fd_ = ::mkstemp(tmpl.data());
            if (fd_ < 0) fail(RMKV_ERR_IO, "cannot create a temporary file next to '", path, "': ", errno_text());
            name_ = tmpl;
        }
    }
    ~TempFile() {
        if (fd_ >= 0) ::close(fd_);
        if (!name_.empty()) ::unlink(name_.c_str());
    }
    TempFile(const TempFile &) = delete;
    TempFile &operator=(const TempFile &) = delete;
    int fd() const { return fd_; }
    // Closes the complete file and moves it to the target path, then makes the
    // rename durable (fsync of the directory). Throws RMKV_ERR_IO.
    void commit() {
        if (name_.empty()) {
            // Named for the instant before the rename (linkat through /proc needs no
            // privilege, unlike AT_EMPTY_PATH).
            const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
            for (unsigned attempt = 0; name_.empty(); ++attempt) {
                std::string candidate = path_ + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(fd_) + "-" +
                                        std::to_string(attempt);
                if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, candidate.c_str(), AT_SYMLINK_FOLLOW) == 0) name_ = candidate;
                else if (errno != EEXIST || attempt > 100)
                    fail(RMKV_ERR_IO, "cannot write '", path_, "' (link): ", errno_text(), "; the previous file, if any, is unchanged");
            }
        }
        const int fd = fd_;
        fd_ = -1;
        if (::close(fd) != 0)
            fail(RMKV_ERR_IO, "cannot write '", path_, "' (close): ", errno_text(), "; the previous file, if any, is unchanged");
        if (::rename(name_.c_str(), path_.c_str()) != 0)
            fail(RMKV_ERR_IO, "cannot rename '", name_, "' to '", path_, "': ", errno_text());
        name_.clear();
        Fd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (dir.get() >= 0) ::fsync(dir.get());
    }

private:
    std::string path_, dir_, name_;  // name_: the temporary file's name while it has one
    int fd_ = -1;
};

}  // namespace

void write_file_atomic(const std::string &path, size_t size, const std::function<void(uint8_t *dest)> &fill) {
    // The bytes go straight into the temporary file (space reserved first, then
    // mapped and filled), so a large file is never held twice in memory.
    TempFile tmp(path);
    void *map = MAP_FAILED;
    auto abandon = [&](const std::string &what, int err) {
        std::string msg = concat_message("cannot write '", path, "' (", what, "): ", std::strerror(err),
                                         "; the previous file, if any, is unchanged");
        if (map != MAP_FAILED) ::munmap(map, size);
        fail(RMKV_ERR_IO, msg);
    };
    if (size > 0) {
        // posix_fallocate reserves every block: a full disk (ENOSPC) or a file size
        // limit (EFBIG) shows here as an error, never later as SIGBUS on the mapping.
        int err = ::posix_fallocate(tmp.fd(), 0, static_cast<off_t>(size));
        if (err == EINTR) err = ::posix_fallocate(tmp.fd(), 0, static_cast<off_t>(size));
        if (err != 0) abandon("reserving " + std::to_string(size) + " bytes", err);
        map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, tmp.fd(), 0);
        if (map == MAP_FAILED) abandon("map", errno);
        try {
            fill(static_cast<uint8_t *>(map));
        } catch (...) {
            ::munmap(map, size);
            throw;
        }
        if (::msync(map, size, MS_SYNC) != 0) abandon("msync", errno);
        ::munmap(map, size);
        map = MAP_FAILED;
    }
    if (::fchmod(tmp.fd(), 0644) != 0) abandon("chmod", errno);
    if (::fsync(tmp.fd()) != 0) abandon("fsync", errno);
    tmp.commit();
}

}  // namespace rmkv
