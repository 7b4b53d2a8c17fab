// Fingerprint (model_id and the checksum of state files): the same value for the
// same bytes whatever the split of the updates (at multiples of 8) and whatever
// the implementation, since files written earlier carry values it computed.
// Checked against the definition written as plainly as possible, on random data
// and random splits, and pinned on one input.
#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/fingerprint.h"

extern "C" {
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
}

namespace {

// The definition: word k of the stream (8 bytes, little-endian) mixes into lane
// k mod 4; an update's tail of fewer than 8 bytes, padded with zeros and tagged
// with its length, mixes into lane 0; the four lanes are finished into 64 hex
// digits.
struct Reference {
    static constexpr uint64_t kMul[4] = {0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full, 0x165667b19e3779f9ull,
                                         0xd6e8feb86659fd93ull};
    uint64_t lanes[4];
    uint64_t total = 0;
    Reference() {
        for (int i = 0; i < 4; ++i) lanes[i] = kMul[i] ^ (0x1234567ull * (i + 1));
    }
    static uint64_t mix(uint64_t h, uint64_t v, uint64_t m) {
        h ^= v * m;
        h = (h << 31) | (h >> 33);
        return h * 0x87c37b91114253d5ull + 0x52dce729ull;
    }
    static uint64_t finish(uint64_t h) {
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53ull;
        return h ^ (h >> 33);
    }
    void update(const uint8_t *p, size_t size) {
        size_t i = 0;
        for (; i + 8 <= size; i += 8) {
            uint64_t v = 0;
            for (int b = 0; b < 8; ++b) v |= static_cast<uint64_t>(p[i + b]) << (8 * b);
            const int lane = static_cast<int>(((total + i) >> 3) & 3);
            lanes[lane] = mix(lanes[lane], v, kMul[lane]);
        }
        if (i < size) {
            uint64_t v = 0;
            for (size_t b = 0; i + b < size; ++b) v |= static_cast<uint64_t>(p[i + b]) << (8 * b);
            v ^= static_cast<uint64_t>(size - i) << 56;
            lanes[0] = mix(lanes[0], v, kMul[0]);
        }
        total += size;
    }
    std::string hex() const {
        static const char *digits = "0123456789abcdef";
        std::string out;
        for (int i = 0; i < 4; ++i) {
            const uint64_t h = finish(lanes[i] ^ (total * kMul[(i + 1) & 3]) ^ lanes[(i + 1) & 3]);
            for (int b = 15; b >= 0; --b) out.push_back(digits[(h >> (4 * b)) & 15]);
        }
        return out;
    }
};

void matches_the_definition(void **) {
    std::mt19937_64 rng(7);
    for (int trial = 0; trial < 400; ++trial) {
        const size_t n = rng() % (trial < 200 ? 200 : 20000);
        std::vector<uint8_t> data(n);
        for (auto &b : data) b = static_cast<uint8_t>(rng());
        rmkv::Fingerprint fp;
        Reference ref;
        // Updates of random lengths (any length, not only multiples of 8), at
        // random offsets into the data.
        size_t at = 0;
        while (at < n) {
            size_t len = std::min<size_t>(n - at, rng() % 3 == 0 ? rng() % 9 : rng() % 700);
            if (len == 0) len = 1;
            fp.update(data.data() + at, len);
            ref.update(data.data() + at, len);
            at += len;
        }
        if (fp.hex() != ref.hex()) fail_msg("trial %d (%zu bytes): %s, the definition gives %s", trial, n, fp.hex().c_str(), ref.hex().c_str());
    }
}

void pinned(void **) {
    // 1000 bytes i * 37 mod 256, in updates of 1000, then 8 + 992, then 3 + 997:
    // the first two are the same stream split at a multiple of 8.
    std::vector<uint8_t> data(1000);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 37);
    rmkv::Fingerprint whole, split8, split3;
    whole.update(data.data(), data.size());
    split8.update(data.data(), 8), split8.update(data.data() + 8, 992);
    split3.update(data.data(), 3), split3.update(data.data() + 3, 997);
    Reference ref;
    ref.update(data.data(), data.size());
    assert_string_equal(whole.hex().c_str(), ref.hex().c_str());
    assert_string_equal(split8.hex().c_str(), whole.hex().c_str());
    assert_string_not_equal(split3.hex().c_str(), whole.hex().c_str());
    // The value files written so far carry for this input.
    assert_string_equal(whole.hex().c_str(), "8400efeb69a2bc505d9512084501b82e7ee36040ec27599ec71c736ea79a861a");
    rmkv::Fingerprint empty;
    assert_string_equal(empty.hex().c_str(), Reference().hex().c_str());
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matches_the_definition),
        cmocka_unit_test(pinned),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
