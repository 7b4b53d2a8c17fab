#include "io/safetensors.h"

#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/real.h"

namespace rmkv {

using json = nlohmann::json;

size_t dtype_size(rmkv_dtype dtype) { return dtype == RMKV_DTYPE_F32 ? 4 : 2; }

const char *dtype_name(rmkv_dtype dtype) {
    switch (dtype) {
    case RMKV_DTYPE_F32: return "F32";
    case RMKV_DTYPE_BF16: return "BF16";
    case RMKV_DTYPE_F16: return "F16";
    }
    return "?";
}

int64_t TensorView::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

namespace {

// Header limit: generous for any model we make (a tokenizer.json of a 200k vocab
// fits), small enough that a hostile length cannot make us allocate gigabytes.
constexpr uint64_t kMaxHeader = 256ull << 20;

uint64_t read_u64_le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

}  // namespace

SafetensorsFile SafetensorsFile::parse(const uint8_t *data, size_t size, const std::string &what) {
    if (!data && size) fail(RMKV_ERR_INVALID_ARGUMENT, what, ": NULL data");
    if (size < 8) fail(RMKV_ERR_FORMAT, what, ": ", size, " bytes is too short for a safetensors file (needs at least 8)");
    uint64_t n = read_u64_le(data);
    if (n > size - 8) fail(RMKV_ERR_FORMAT, what, ": header length ", n, " exceeds the ", size - 8, " bytes after the length field (truncated file?)");
    if (n > kMaxHeader) fail(RMKV_ERR_FORMAT, what, ": header length ", n, " exceeds the limit of ", kMaxHeader);
    if (n < 2) fail(RMKV_ERR_FORMAT, what, ": header length ", n, " is too small for a JSON object");
    const char *hbegin = reinterpret_cast<const char *>(data + 8);
    json header = json::parse(hbegin, hbegin + n, nullptr, false);
    if (header.is_discarded() || !header.is_object()) fail(RMKV_ERR_FORMAT, what, ": header is not a JSON object");

    SafetensorsFile f;
    const uint8_t *body = data + 8 + n;
    size_t body_size = size - 8 - n;
    for (auto it = header.begin(); it != header.end(); ++it) {
        const std::string &key = it.key();
        const json &v = it.value();
        if (key == "__metadata__") {
            if (!v.is_object()) fail(RMKV_ERR_FORMAT, what, ": __metadata__ is not an object");
            for (auto m = v.begin(); m != v.end(); ++m) {
                if (!m.value().is_string()) fail(RMKV_ERR_FORMAT, what, ": __metadata__ value of '", m.key(), "' is not a string");
                f.metadata[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        if (!v.is_object()) fail(RMKV_ERR_FORMAT, what, ": entry of tensor '", key, "' is not an object");
        auto dt = v.find("dtype");
        auto sh = v.find("shape");
        auto off = v.find("data_offsets");
        if (dt == v.end() || !dt->is_string()) fail(RMKV_ERR_FORMAT, what, ": tensor '", key, "' has no dtype string");
        if (sh == v.end() || !sh->is_array()) fail(RMKV_ERR_FORMAT, what, ": tensor '", key, "' has no shape array");
        if (off == v.end() || !off->is_array() || off->size() != 2) fail(RMKV_ERR_FORMAT, what, ": tensor '", key, "' has no data_offsets pair");
        TensorView t;
        t.name = key;
        std::string dts = dt->get<std::string>();
        if (dts == "F32") t.dtype = RMKV_DTYPE_F32;
        else if (dts == "BF16") t.dtype = RMKV_DTYPE_BF16;
        else if (dts == "F16") t.dtype = RMKV_DTYPE_F16;
        else fail(RMKV_ERR_FORMAT, what, ": tensor '", key, "' has dtype ", dts, "; rmkv reads F32, BF16 and F16");
        uint64_t numel = 1;
        for (const json &d : *sh) {
            if (!d.is_number_unsigned()) fail(RMKV_ERR_FORMAT, what, ": tensor '", key, "' has a shape entry that is not a non-negative integer");
            uint64_t dim = d.get<uint64_t>();
            if (dim > (1ull << 40) || (dim && numel > (1ull << 40) / dim)) fail(RMKV_ERR_FORMAT, what, ": tensor '", key, "' is absurdly large");
            numel *= dim;
            t.shape.push_back(static_cast<int64_t>(dim));
        }
        const json &b = (*off)[0], &e = (*off)[1];
        if (!b.is_number_unsigned() || !e.is_number_unsigned()) fail(RMKV_ERR_FORMAT, what, ": tensor '", key, "' has non-integer data_offsets");
        uint64_t begin = b.get<uint64_t>(), end = e.get<uint64_t>();
        if (begin > end || end > body_size)
            fail(RMKV_ERR_FORMAT, what, ": tensor '", key, "' spans bytes [", begin, ", ", end, ") but the data section has ", body_size, " bytes");
        if (end - begin != numel * dtype_size(t.dtype))
            fail(RMKV_ERR_FORMAT, what, ": tensor '", key, "' has ", end - begin, " bytes but its shape and dtype need ", numel * dtype_size(t.dtype));
        t.data = body + begin;
        t.size = end - begin;
        t.offset = begin;
        f.tensors.emplace(key, std::move(t));
    }
    return f;
}

const TensorView &SafetensorsFile::tensor(const std::string &name, const std::string &what) const {
    auto it = tensors.find(name);
    if (it == tensors.end()) fail(RMKV_ERR_FORMAT, what, ": tensor '", name, "' is missing");
    return it->second;
}

const std::string &SafetensorsFile::meta(const std::string &key, const std::string &what) const {
    auto it = metadata.find(key);
    if (it == metadata.end()) fail(RMKV_ERR_FORMAT, what, ": __metadata__ has no '", key, "'");
    return it->second;
}

void SafetensorsWriter::add(const std::string &name, rmkv_dtype dtype, std::vector<int64_t> shape, const void *data) {
    size_t numel = 1;
    for (int64_t d : shape) numel *= static_cast<size_t>(d);
    size_t bytes = numel * dtype_size(dtype);
    // Every tensor starts 8-byte aligned; nothing follows the last one, so a file
    // cut short by even one byte no longer parses.
    size_t offset = (data_size_ + 7) & ~size_t(7);
    entries_.push_back({name, dtype, std::move(shape), data, bytes, offset});
    data_size_ = offset + bytes;
}

std::string SafetensorsWriter::header() const {
    // Key order in the JSON does not matter to readers; offsets do.
    json h = json::object();
    if (!metadata_.empty()) h["__metadata__"] = metadata_;
    for (const Entry &e : entries_) {
        h[e.name] = {{"dtype", dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {e.offset, e.offset + e.bytes}}};
    }
    std::string s = h.dump();
    while ((8 + s.size()) % 8) s.push_back(' ');  // data section starts 8-byte aligned
    return s;
}

size_t SafetensorsWriter::size() const { return 8 + header().size() + data_size_; }

std::vector<size_t> SafetensorsWriter::data_offsets() const {
    const size_t start = 8 + header().size();
    std::vector<size_t> out;
    out.reserve(entries_.size());
    for (const Entry &e : entries_) out.push_back(start + e.offset);
    return out;
}

void SafetensorsWriter::write(uint8_t *dest) const {
    std::string h = header();
    uint64_t n = h.size();
    for (int i = 0; i < 8; ++i) dest[i] = static_cast<uint8_t>(n >> (8 * i));
    std::memcpy(dest + 8, h.data(), h.size());
    uint8_t *body = dest + 8 + h.size();
    size_t end = 0;  // of the previous tensor: the gap up to this one is padding
    for (const Entry &e : entries_) {
        std::memset(body + end, 0, e.offset - end);
        if (e.data) std::memcpy(body + e.offset, e.data, e.bytes);
        end = e.offset + e.bytes;
    }
}

float bf16_to_f32(uint16_t v) {
    uint32_t u = static_cast<uint32_t>(v) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, u;
    if (exp == 0) {
        if (mant == 0) u = sign;
        else {  // subnormal: normalise
            int e = -1;
            do { ++e; mant <<= 1; } while (!(mant & 0x400));
            u = sign | ((127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

uint16_t f32_to_f16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00);  // NaN
    if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00);  // overflow -> inf
    if (abs < 0x38800000u) {  // subnormal or zero in f16
        if (abs < 0x33000000u) return static_cast<uint16_t>(sign);
        uint32_t exp = abs >> 23, mant = (abs & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - exp;  // 14 + (113 - exp) - ... yields the f16 subnormal mantissa
        uint32_t v = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (v & 1))) ++v;
        return static_cast<uint16_t>(sign | v);
    }
    uint32_t v = ((abs >> 13) - (112u << 10));
    uint32_t rem = abs & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (v & 1))) ++v;
    return static_cast<uint16_t>(sign | v);
}

void convert_to_f32(float *dst, const uint8_t *src, rmkv_dtype dtype, size_t n) {
    if (dtype == RMKV_DTYPE_F32) {
        std::memcpy(dst, src, n * 4);
        return;
    }
    for (size_t i = 0; i < n; ++i) {
        uint16_t v = static_cast<uint16_t>(src[2 * i] | (src[2 * i + 1] << 8));
        dst[i] = dtype == RMKV_DTYPE_BF16 ? bf16_to_f32(v) : f16_to_f32(v);
    }
}

void convert_from_f32(uint8_t *dst, const float *src, rmkv_dtype dtype, size_t n) {
    if (dtype == RMKV_DTYPE_F32) {
        std::memcpy(dst, src, n * 4);
        return;
    }
    for (size_t i = 0; i < n; ++i) {
        uint16_t v = dtype == RMKV_DTYPE_BF16 ? bf16_bits(src[i]) : f32_to_f16(src[i]);
        dst[2 * i] = static_cast<uint8_t>(v);
        dst[2 * i + 1] = static_cast<uint8_t>(v >> 8);
    }
}

}  // namespace rmkv
