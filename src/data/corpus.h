// A corpus: the files of one source and an index of its items, built by one
// streaming pass (chunk by chunk) that keeps offsets, never contents. Items are
// documents of a text source (a whole file, or the pieces between separators) or
// the non-blank lines of a JSONL source. Immutable once built; streams read the
// bytes of an item when they need them, through their own FileReader.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "data/data_config.h"

namespace rmkv::data {

struct CorpusFile {
    std::string path;
    uint64_t size = 0;
};

struct Item {
    uint64_t offset = 0;  // bytes into the file
    uint64_t length = 0;
    uint32_t file = 0;    // index into Corpus::files
    uint32_t line = 0;    // jsonl: 1-based line number, for messages
};

struct Corpus {
    std::vector<CorpusFile> files;
    std::vector<Item> items;
    std::string identity;  // file names, sizes and item count, for saved states

    // Throws RMKV_ERR_IO naming a missing or unreadable path, RMKV_ERR_INVALID_ARGUMENT
    // when the source has no items.
    static Corpus build(const SourceConfig &source, size_t chunk_bytes);
};

// Reads byte ranges, keeping the last file open.
class FileReader {
public:
    FileReader() = default;
    ~FileReader();
    FileReader(const FileReader &) = delete;
    FileReader &operator=(const FileReader &) = delete;

    // Exactly `length` bytes at `offset`; RMKV_ERR_IO naming the path otherwise.
    void read(const std::string &path, uint64_t offset, size_t length, std::string &out);

private:
    std::FILE *file_ = nullptr;
    std::string path_;
};

}  // namespace rmkv::data
