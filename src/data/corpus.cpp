#include "data/corpus.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "core/fingerprint.h"

namespace rmkv::data {

namespace fs = std::filesystem;

namespace {

bool has_extension(const std::string &name, const std::vector<std::string> &extensions) {
    if (extensions.empty()) return true;
    for (auto &e : extensions)
        if (name.size() >= e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0) return true;
    return false;
}

// A file, or every regular file under a folder (recursively, hidden names
// skipped, sorted by path so that the order is the same everywhere).
std::vector<CorpusFile> list_files(const SourceConfig &source) {
    std::error_code ec;
    fs::path root(source.path);
    auto st = fs::status(root, ec);
    if (ec || !fs::exists(st)) fail(RMKV_ERR_IO, "data source ", source.path, ": no such file or folder");
    std::vector<CorpusFile> files;
    if (fs::is_regular_file(st)) {
        files.push_back({source.path, static_cast<uint64_t>(fs::file_size(root, ec))});
        if (ec) fail(RMKV_ERR_IO, "data source ", source.path, ": ", ec.message());
        return files;
    }
    if (!fs::is_directory(st)) fail(RMKV_ERR_IO, "data source ", source.path, " is neither a file nor a folder");
    fs::recursive_directory_iterator it(root, fs::directory_options::follow_directory_symlink, ec), end;
    if (ec) fail(RMKV_ERR_IO, "data source ", source.path, ": ", ec.message());
    for (; it != end; it.increment(ec)) {
        if (ec) fail(RMKV_ERR_IO, "data source ", source.path, ": ", ec.message());
        std::string name = it->path().filename().string();
        if (!name.empty() && name[0] == '.') {
            if (it->is_directory(ec)) it.disable_recursion_pending();
            continue;
        }
        if (!it->is_regular_file(ec) || !has_extension(name, source.extensions)) continue;
        files.push_back({it->path().string(), static_cast<uint64_t>(it->file_size(ec))});
    }
    std::sort(files.begin(), files.end(), [](const CorpusFile &a, const CorpusFile &b) { return a.path < b.path; });
    return files;
}

struct ChunkedFile {
    std::FILE *f;
    const std::string &path;
    ChunkedFile(const std::string &p) : f(std::fopen(p.c_str(), "rb")), path(p) {
        if (!f) fail(RMKV_ERR_IO, "cannot open ", p, ": ", std::strerror(errno));
    }
    ~ChunkedFile() { std::fclose(f); }
    size_t read(char *buf, size_t n) {
        size_t got = std::fread(buf, 1, n, f);
        if (got < n && std::ferror(f)) fail(RMKV_ERR_IO, "cannot read ", path, ": ", std::strerror(errno));
        return got;
    }
};

void index_separated(const CorpusFile &file, uint32_t fi, const std::string &sep, size_t chunk, std::vector<Item> &items) {
    ChunkedFile in(file.path);
    std::string buf;       // a carried tail (shorter than sep) plus the new chunk
    uint64_t base = 0;     // file offset of buf[0]
    uint64_t doc_start = 0;
    std::vector<char> tmp(chunk);
    auto add = [&](uint64_t start, uint64_t end) {
        if (end > start) items.push_back({start, end - start, fi, 0});
    };
    for (;;) {
        size_t got = in.read(tmp.data(), chunk);
        if (got == 0) break;
        buf.append(tmp.data(), got);
        size_t from = 0, p;
        while ((p = buf.find(sep, from)) != std::string::npos) {
            add(doc_start, base + p);
            doc_start = base + p + sep.size();
            from = p + sep.size();
        }
        size_t keep = buf.size() >= sep.size() - 1 ? buf.size() - (sep.size() - 1) : 0;
        keep = std::max(keep, from);
        base += keep;
        buf.erase(0, keep);
    }
    add(doc_start, base + buf.size());
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

void index_lines(const CorpusFile &file, uint32_t fi, size_t chunk, std::vector<Item> &items) {
    ChunkedFile in(file.path);
    std::vector<char> tmp(chunk);
    uint64_t offset = 0, line_start = 0;
    uint32_t line = 1;
    bool blank = true;
    char last = 0;
    auto end_line = [&](uint64_t end) {  // end: offset of the '\n' (or of the end of file)
        uint64_t len = end - line_start;
        if (!blank) items.push_back({line_start, len - (len && last == '\r' ? 1 : 0), fi, line});
        line_start = end + 1;
        blank = true;
        ++line;
    };
    for (;;) {
        size_t got = in.read(tmp.data(), chunk);
        if (got == 0) break;
        for (size_t i = 0; i < got; ++i) {
            char c = tmp[i];
            if (c == '\n') end_line(offset + i);
            else if (!is_space(c)) blank = false;
            last = c;
        }
        offset += got;
    }
    if (line_start < offset) end_line(offset);
}

}  // namespace

Corpus Corpus::build(const SourceConfig &source, size_t chunk_bytes) {
    Corpus c;
    c.files = list_files(source);
    if (c.files.size() > UINT32_MAX) fail(RMKV_ERR_INVALID_ARGUMENT, "data source ", source.path, " has too many files");
    for (uint32_t fi = 0; fi < c.files.size(); ++fi) {
        const CorpusFile &f = c.files[fi];
        if (source.kind == SourceKind::jsonl) index_lines(f, fi, chunk_bytes, c.items);
        else if (source.has_separator) index_separated(f, fi, source.separator, chunk_bytes, c.items);
        else if (f.size > 0) c.items.push_back({0, f.size, fi, 0});
    }
    if (c.items.empty())
        fail(RMKV_ERR_INVALID_ARGUMENT, "data source ", source.path, " holds no ",
             source.kind == SourceKind::jsonl ? "examples" : "documents", " (", c.files.size(), " files",
             source.extensions.empty() ? "" : ", filtered by extensions", ")");
    Fingerprint fp;
    for (auto &f : c.files) {
        fp.update(f.path.data(), f.path.size() + 1);
        fp.update(&f.size, sizeof f.size);
    }
    uint64_t n = c.items.size();
    fp.update(&n, sizeof n);
    c.identity = fp.hex();
    return c;
}

FileReader::~FileReader() {
    if (file_) std::fclose(file_);
}

void FileReader::read(const std::string &path, uint64_t offset, size_t length, std::string &out) {
    if (!file_ || path_ != path) {
        if (file_) std::fclose(file_);
        file_ = std::fopen(path.c_str(), "rb");
        path_ = path;
        if (!file_) fail(RMKV_ERR_IO, "cannot open ", path, ": ", std::strerror(errno));
    }
    out.resize(length);
    if (fseeko(file_, static_cast<off_t>(offset), SEEK_SET) != 0 ||
        std::fread(out.data(), 1, length, file_) != length) {
        std::fclose(file_);
        file_ = nullptr;
        fail(RMKV_ERR_IO, "cannot read ", length, " bytes at offset ", offset, " of ", path,
             " (was the file changed after the data pipeline indexed it?)");
    }
}

}  // namespace rmkv::data
