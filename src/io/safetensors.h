// safetensors: 8-byte little-endian header length, JSON header, raw tensor data.
// The reader trusts nothing: every length, offset, dtype and shape is checked
// before use. The writer aligns every tensor to 8 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "rmkv.h"

namespace rmkv {

size_t dtype_size(rmkv_dtype dtype);
const char *dtype_name(rmkv_dtype dtype);

struct TensorView {
    std::string name;
    rmkv_dtype dtype = RMKV_DTYPE_F32;
    std::vector<int64_t> shape;
    const uint8_t *data = nullptr;  // inside the parsed buffer
    size_t size = 0;                // bytes
    size_t offset = 0;              // from the start of the data section (for messages)
    int64_t numel() const;
};

// A parsed file. Views point into the caller's buffer, which must outlive this.
struct SafetensorsFile {
    std::map<std::string, std::string> metadata;
    std::map<std::string, TensorView> tensors;

    // `what` names the source in error messages (a path, "model buffer", ...).
    static SafetensorsFile parse(const uint8_t *data, size_t size, const std::string &what);

    const TensorView &tensor(const std::string &name, const std::string &what) const;  // FORMAT if absent
    const std::string &meta(const std::string &key, const std::string &what) const;    // FORMAT if absent
};

// Builds a file in memory. Tensors keep the order they were added in.
class SafetensorsWriter {
public:
    void set_metadata(const std::string &key, const std::string &value) { metadata_[key] = value; }
    // `data` (numel * dtype_size bytes) must stay valid until write(). NULL data:
    // the caller writes the tensor's bytes itself, at dest + data_offsets()[i].
    void add(const std::string &name, rmkv_dtype dtype, std::vector<int64_t> shape, const void *data);
    size_t size() const;                       // exact bytes write() produces
    std::vector<size_t> data_offsets() const;  // where each tensor's bytes start (8-byte aligned), in add order
    // The header, the zero padding between tensors and the tensors added with data.
    void write(uint8_t *dest) const;

private:
    struct Entry {
        std::string name;
        rmkv_dtype dtype;
        std::vector<int64_t> shape;
        const void *data;
        size_t bytes;
        size_t offset;
    };
    std::string header() const;
    std::map<std::string, std::string> metadata_;
    std::vector<Entry> entries_;
    size_t data_size_ = 0;
};

// Number conversions used by readers and writers.
float bf16_to_f32(uint16_t v);
float f16_to_f32(uint16_t v);
uint16_t f32_to_f16(float v);   // round to nearest even (bf16: bf16_bits, core/real.h)
// Converts `n` values of `dtype` at `src` to f32.
void convert_to_f32(float *dst, const uint8_t *src, rmkv_dtype dtype, size_t n);
void convert_from_f32(uint8_t *dst, const float *src, rmkv_dtype dtype, size_t n);

}  // namespace rmkv
