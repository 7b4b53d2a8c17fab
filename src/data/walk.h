// The order in which a stream visits its items (documents or examples):
// random (independent draws, with replacement), sequential (file order) or
// shuffled (a fresh permutation every epoch, no repeats within one).
//
// Everything is derived from a seed with rmkv::Rng, so the same seed gives the
// same order on every platform, and the whole position fits in a WalkState.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"

namespace rmkv::data {

enum class WalkMode { random, sequential, shuffled };

const char *to_string(WalkMode mode);

// Uniform integer in [0, n) without modulo bias (rejects the 2^64 mod n lowest draws).
uint64_t uniform_index(Rng &rng, uint64_t n);

// The position of a walk: what a resumed run needs to continue exactly.
struct WalkState {
    int64_t epoch = 0;     // whole passes completed
    uint64_t pos = 0;      // items drawn in the current epoch
    uint64_t rng[4] = {};  // random mode: the generator (unused otherwise)
};

class Walk {
public:
    // n items (n >= 1). `stream` separates the walks of different sources.
    Walk(WalkMode mode, uint64_t n, uint64_t seed, uint64_t stream);

    // The next item in [0, n); passing the end of an epoch starts the next one.
    uint64_t next();

    WalkState state() const;
    void set_state(const WalkState &s);  // throws RMKV_ERR_FORMAT when out of range

    uint64_t size() const { return n_; }
    bool at_epoch_end() const { return pos_ == n_; }
    WalkMode mode() const { return mode_; }
    double progress() const { return static_cast<double>(epoch_) + static_cast<double>(pos_) / static_cast<double>(n_); }

private:
    void build_permutation();

    WalkMode mode_;
    uint64_t n_, seed_, stream_;
    int64_t epoch_ = 0;
    uint64_t pos_ = 0;
    Rng rng_;
    std::vector<uint32_t> perm_;  // shuffled: the permutation of perm_epoch_
    int64_t perm_epoch_ = -1;
};

}  // namespace rmkv::data
