// Session state files (SPEC section 7, "rmkv-state"): the memories, positions and,
// for a session in the middle of a segment, that segment's caches. Everything is
// validated (format, version, checksum, model_id, shapes) before anything is
// swapped in.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>

#include "core/error.h"
#include "core/fingerprint.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "model/session.h"

using namespace rmkv;

namespace {

constexpr const char *kStateVersion = "1";

struct Part {
    std::vector<int64_t> shape;
    float *device;  // session buffer
};

// The tensors a state holds, by name (sorted: the checksum order).
std::map<std::string, Part> state_parts(const Config &c, const std::vector<LayerState> &layers, int64_t fill) {
    const int64_t M = c.memory_slots, D = c.d_model, Dkv = c.d_kv();
    std::map<std::string, Part> parts;
    for (size_t l = 0; l < layers.size(); ++l) {
        std::string i = std::to_string(l);
        parts["memory." + i] = {{M, D}, layers[l].memory};
        if (layers[l].cell) parts["cell." + i] = {{M, D}, layers[l].cell};
        if (fill > 0) {
            parts["segment.keys." + i] = {{M + fill, Dkv}, layers[l].keys};
            parts["segment.values." + i] = {{M + fill, Dkv}, layers[l].values};
            parts["segment.memory_queries." + i] = {{M, D}, layers[l].mem_q};
            parts["segment.token_outputs." + i] = {{fill, D}, layers[l].tok_out};
        }
    }
    return parts;
}

int64_t numel(const std::vector<int64_t> &shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

std::string shape_str(const std::vector<int64_t> &shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// Over every tensor and every metadata value that the state is made of.
std::string checksum(const std::map<std::string, std::pair<const void *, size_t>> &data,
                     const std::map<std::string, std::string> &meta) {
    Fingerprint fp;
    for (const auto &kv : data) {
        fp.update(kv.first.data(), kv.first.size());
        fp.update(kv.second.first, kv.second.second);
    }
    for (const auto &kv : meta) {
        fp.update(kv.first.data(), kv.first.size());
        fp.update(kv.second.data(), kv.second.size());
    }
    return fp.hex();
}

// The metadata keys covered by the checksum.
const char *kChecked[] = {"position", "segment_fill", "sampler_rng", "sampler_seed", "sampler_seeded"};

std::string hex64(uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

uint64_t parse_u64(const SafetensorsFile &f, const std::string &key, const std::string &what) {
    const std::string &s = f.meta(key, what);
    uint64_t v = 0;
    auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size())
        fail(RMKV_ERR_FORMAT, what, ": metadata ", key, " = '", s.substr(0, 40), "' is not a non-negative integer");
    return v;
}

// A state image's layout: the writer over the tensors' shapes, the session
// buffer each one is copied from, and the metadata. The session's tensors go
// straight from the backend into the destination, where the checksum reads them.
struct StateImage {
    SafetensorsWriter writer;
    std::map<std::string, Part> parts;
    std::vector<float> history;  // the sampler's recent tokens, as exact small floats
    std::map<std::string, std::string> meta;
};

const std::string kUnsetChecksum(64, '0');  // same length as every checksum: the layout does not change

void plan_image(StateImage &img, const rmkv_model &model, const std::vector<LayerState> &layers, uint64_t position,
                int64_t fill, const Sampler &sampler) {
    img.parts = state_parts(model.config(), layers, fill);
    for (const auto &kv : img.parts) img.writer.add(kv.first, RMKV_DTYPE_F32, kv.second.shape, nullptr);
    const auto &hist = sampler.history();
    if (!hist.empty()) {
        img.history.assign(hist.begin(), hist.end());
        img.writer.add("sampler.history", RMKV_DTYPE_F32, {static_cast<int64_t>(img.history.size())}, img.history.data());
    }
    auto &meta = img.meta;
    meta["position"] = std::to_string(position);
    meta["segment_fill"] = std::to_string(fill);
    std::string rng;
    for (int i = 0; i < 4; ++i) rng += hex64(sampler.rng_state()[i]);
    meta["sampler_rng"] = rng;
    meta["sampler_seed"] = std::to_string(sampler.seed());
    meta["sampler_seeded"] = sampler.seeded() ? "1" : "0";
    for (const auto &kv : meta) img.writer.set_metadata(kv.first, kv.second);
    img.writer.set_metadata("format", "rmkv-state");
    img.writer.set_metadata("format_version", kStateVersion);
    img.writer.set_metadata("model_id", model.model_id());
    img.writer.set_metadata("checksum", kUnsetChecksum);
}

// Writes the planned image (img.writer.size() bytes) at dest, aligned for floats.
void write_image(StateImage &img, uint8_t *dest, const rmkv_model &model, Stream &stream) {
    const std::vector<size_t> offsets = img.writer.data_offsets();
    std::map<std::string, std::pair<const void *, size_t>> bytes;  // sorted by name: the checksum order
    size_t k = 0;
    for (auto &kv : img.parts) {
        const size_t n = static_cast<size_t>(numel(kv.second.shape));
        float *at = reinterpret_cast<float *>(dest + offsets[k++]);
        model.backend().to_host(stream, at, kv.second.device, n);
        bytes[kv.first] = {at, n * sizeof(float)};
    }
    if (!img.history.empty()) bytes["sampler.history"] = {img.history.data(), img.history.size() * sizeof(float)};
    model.backend().sync(stream);
    img.writer.set_metadata("checksum", checksum(bytes, img.meta));
    img.writer.write(dest);  // header and padding; the session's tensors are in place
}

}  // namespace

size_t rmkv_session::state_size() const {
    StateImage img;
    plan_image(img, model_, layers_, position_, fill_, sampler_);
    return img.writer.size();
}

size_t rmkv_session::state_save(uint8_t *dest, size_t capacity) const {
    StateImage img;
    plan_image(img, model_, layers_, position_, fill_, sampler_);
    const size_t size = img.writer.size();
    if (!dest || capacity < size) return size;
    if (reinterpret_cast<uintptr_t>(dest) % alignof(float) == 0) {
        write_image(img, dest, model_, *stream_);
    } else {  // the tensors are written as floats: through an aligned buffer
        std::vector<uint8_t> aligned(size);
        write_image(img, aligned.data(), model_, *stream_);
        std::memcpy(dest, aligned.data(), size);
    }
    return size;
}

void rmkv_session::state_save_file(const std::string &path) const {
    StateImage img;
    plan_image(img, model_, layers_, position_, fill_, sampler_);
    const size_t size = img.writer.size();
    write_file_atomic(path, size, [&](uint8_t *dest) { write_image(img, dest, model_, *stream_); });  // dest: a mapping
}

void rmkv_session::state_load(const uint8_t *data, size_t size, const std::string &what) {
    const Config &c = model_.config();
    SafetensorsFile f = SafetensorsFile::parse(data, size, what);
    const std::string &format = f.meta("format", what);
    if (format != "rmkv-state") fail(RMKV_ERR_FORMAT, what, ": format is '", format.substr(0, 40), "', expected 'rmkv-state'");
    const std::string &version = f.meta("format_version", what);
    if (version != kStateVersion)
        fail(RMKV_ERR_FORMAT, what, ": format_version '", version.substr(0, 40), "' is not supported (this library reads ", kStateVersion, ")");
    std::map<std::string, std::pair<const void *, size_t>> bytes;
    for (const auto &kv : f.tensors) {
        if (kv.second.dtype != RMKV_DTYPE_F32) fail(RMKV_ERR_FORMAT, what, ": tensor '", kv.first, "' is ", dtype_name(kv.second.dtype), ", states hold F32");
        bytes[kv.first] = {kv.second.data, kv.second.size};
    }
    std::map<std::string, std::string> meta;
    for (const char *key : kChecked) meta[key] = f.meta(key, what);
    if (checksum(bytes, meta) != f.meta("checksum", what)) fail(RMKV_ERR_FORMAT, what, ": checksum does not match the data (the state is corrupt)");
    const std::string &id = f.meta("model_id", what);
    if (id != model_.model_id())
        fail(RMKV_ERR_MISMATCH, what, ": made for model ", id.substr(0, 16), "..., this session's model is ", model_.model_id().substr(0, 16), "...");
    uint64_t position = parse_u64(f, "position", what);
    uint64_t fill = parse_u64(f, "segment_fill", what);
    if (fill >= static_cast<uint64_t>(c.segment_len))
        fail(RMKV_ERR_MISMATCH, what, ": segment_fill ", fill, " does not fit this model's segment_len ", c.segment_len);
    if (fill > position) fail(RMKV_ERR_FORMAT, what, ": segment_fill ", fill, " exceeds position ", position);
    auto parts = state_parts(c, layers_, static_cast<int64_t>(fill));
    for (const auto &kv : parts) {
        auto it = f.tensors.find(kv.first);
        if (it == f.tensors.end()) fail(RMKV_ERR_MISMATCH, what, ": tensor '", kv.first, "' is missing (the state was made for another model shape)");
        if (it->second.shape != kv.second.shape)
            fail(RMKV_ERR_MISMATCH, what, ": tensor '", kv.first, "' has shape ", shape_str(it->second.shape), ", this model needs ", shape_str(kv.second.shape));
    }
    for (const auto &kv : f.tensors)
        if (!parts.count(kv.first) && kv.first != "sampler.history")
            fail(RMKV_ERR_MISMATCH, what, ": unexpected tensor '", kv.first, "' for this model");
    // The sampler's part.
    std::vector<int32_t> history;
    if (auto it = f.tensors.find("sampler.history"); it != f.tensors.end()) {
        const TensorView &t = it->second;
        if (t.shape.size() != 1 || static_cast<size_t>(t.numel()) > Sampler::kMaxWindow)
            fail(RMKV_ERR_FORMAT, what, ": sampler.history must be a vector of at most ", Sampler::kMaxWindow, " tokens");
        std::vector<float> h(static_cast<size_t>(t.numel()));
        convert_to_f32(h.data(), t.data, RMKV_DTYPE_F32, h.size());
        for (float v : h) {
            if (!(v >= 0 && v < static_cast<float>(c.vocab_size)) || v != std::floor(v))
                fail(RMKV_ERR_MISMATCH, what, ": sampler.history holds ", v, ", not a token of this model");
            history.push_back(static_cast<int32_t>(v));
        }
    }
    const std::string &rng_hex = meta["sampler_rng"];
    uint64_t rng[4];
    if (rng_hex.size() != 64) fail(RMKV_ERR_FORMAT, what, ": sampler_rng is not 64 hex digits");
    for (int i = 0; i < 4; ++i) {
        auto r = std::from_chars(rng_hex.data() + 16 * i, rng_hex.data() + 16 * (i + 1), rng[i], 16);
        if (r.ec != std::errc() || r.ptr != rng_hex.data() + 16 * (i + 1)) fail(RMKV_ERR_FORMAT, what, ": sampler_rng is not 64 hex digits");
    }
    const uint64_t sampler_seed = parse_u64(f, "sampler_seed", what);
    const std::string &seeded = meta["sampler_seeded"];
    if (seeded != "0" && seeded != "1") fail(RMKV_ERR_FORMAT, what, ": sampler_seeded is not 0 or 1");
    // Validated: swap in.
    // Straight from the image where its floats are aligned (a mapped file, most
    // buffers). The copies may run asynchronously (CUDA): nothing returns or
    // throws out of here while one may still read the image.
    Backend &be = model_.backend();
    std::vector<float> tmp;
    try {
        for (const auto &kv : parts) {
            const TensorView &t = f.tensors.at(kv.first);
            const size_t n = static_cast<size_t>(t.numel());
            if (reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0) {
                be.from_host(*stream_, kv.second.device, reinterpret_cast<const float *>(t.data), n);
            } else {
                be.sync(*stream_);  // before tmp is reallocated or reused
                tmp.resize(n);
                std::memcpy(tmp.data(), t.data, n * sizeof(float));
                be.from_host(*stream_, kv.second.device, tmp.data(), n);
            }
        }
        be.sync(*stream_);
    } catch (...) {
        try {
            be.sync(*stream_);
        } catch (...) {
        }
        throw;
    }
    position_ = position;
    fill_ = static_cast<int64_t>(fill);
    memory_ready_ = fill_ > 0;
    sampler_.restore(std::move(history), rng, sampler_seed, seeded == "1");
    have_logits_ = false;
}
