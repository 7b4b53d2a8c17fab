#include "core/fingerprint.h"

#include <cstring>

namespace rmkv {

namespace {
constexpr uint64_t kMul[4] = {0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full, 0x165667b19e3779f9ull, 0xd6e8feb86659fd93ull};

inline uint64_t mix(uint64_t h, uint64_t v, uint64_t m) {
    h ^= v * m;
    h = (h << 31) | (h >> 33);
    return h * 0x87c37b91114253d5ull + 0x52dce729ull;
}
inline uint64_t finish(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}
}  // namespace

Fingerprint::Fingerprint() {
    for (int i = 0; i < 4; ++i) lanes_[i] = kMul[i] ^ (0x1234567ull * (i + 1));
}

void Fingerprint::update(const void *data, size_t size) {
    const uint8_t *p = static_cast<const uint8_t *>(data);
    // Word k of the stream (counted from the first update) goes to lane k mod 4,
    // so split updates hash like one update only when split at multiples of 8;
    // callers update whole tensors. Consecutive words take consecutive lanes, so
    // four words at a time run as four independent chains.
    const int first = static_cast<int>((total_ >> 3) & 3);
    uint64_t h[4], m[4];
    for (int k = 0; k < 4; ++k) h[k] = lanes_[(first + k) & 3], m[k] = kMul[(first + k) & 3];
    size_t i = 0;
    for (; i + 32 <= size; i += 32) {
        uint64_t v[4];
        std::memcpy(v, p + i, 32);
        for (int k = 0; k < 4; ++k) h[k] = mix(h[k], v[k], m[k]);
    }
    for (int k = 0; i + 8 <= size; i += 8, ++k) {
        uint64_t v;
        std::memcpy(&v, p + i, 8);
        h[k] = mix(h[k], v, m[k]);
    }
    for (int k = 0; k < 4; ++k) lanes_[(first + k) & 3] = h[k];
    if (i < size) {
        uint64_t v = 0;
        std::memcpy(&v, p + i, size - i);
        v ^= static_cast<uint64_t>(size - i) << 56;
        lanes_[0] = mix(lanes_[0], v, kMul[0]);
    }
    total_ += size;
}

std::string Fingerprint::hex() const {
    static const char *digits = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 4; ++i) {
        uint64_t h = finish(lanes_[i] ^ (total_ * kMul[(i + 1) & 3]) ^ lanes_[(i + 1) & 3]);
        for (int b = 15; b >= 0; --b) out.push_back(digits[(h >> (4 * b)) & 15]);
    }
    return out;
}

}  // namespace rmkv
