#include "data/walk.h"

#include "core/error.h"

namespace rmkv::data {

const char *to_string(WalkMode mode) {
    switch (mode) {
    case WalkMode::random: return "random";
    case WalkMode::sequential: return "sequential";
    case WalkMode::shuffled: return "shuffled";
    }
    return "?";
}

uint64_t uniform_index(Rng &rng, uint64_t n) {
    uint64_t threshold = (0 - n) % n;  // 2^64 mod n
    uint64_t x = rng.next();
    while (x < threshold) x = rng.next();
    return x % n;
}

Walk::Walk(WalkMode mode, uint64_t n, uint64_t seed, uint64_t stream)
    : mode_(mode), n_(n), seed_(seed), stream_(stream), rng_(seed, stream * 2 + 1) {
    if (n == 0) fail(RMKV_ERR_INTERNAL, "walk over zero items");
    if (n > UINT32_MAX) fail(RMKV_ERR_INVALID_ARGUMENT, "a source holds ", n, " items; at most ", UINT32_MAX, " are supported");
}

void Walk::build_permutation() {
    // One generator per epoch: the permutation of epoch e depends on (seed, stream, e)
    // only, so a restored walk rebuilds it without replaying earlier epochs.
    Rng rng(seed_ ^ (0x5851f42d4c957f2dull * static_cast<uint64_t>(epoch_ + 1)), stream_ * 2 + 2);
    perm_.resize(n_);
    for (uint64_t i = 0; i < n_; ++i) perm_[i] = static_cast<uint32_t>(i);
    for (uint64_t i = n_ - 1; i > 0; --i) std::swap(perm_[i], perm_[uniform_index(rng, i + 1)]);
    perm_epoch_ = epoch_;
}

uint64_t Walk::next() {
    if (pos_ == n_) ++epoch_, pos_ = 0;
    uint64_t item = 0;
    switch (mode_) {
    case WalkMode::random: item = uniform_index(rng_, n_); break;
    case WalkMode::sequential: item = pos_; break;
    case WalkMode::shuffled:
        if (perm_epoch_ != epoch_) build_permutation();
        item = perm_[pos_];
        break;
    }
    ++pos_;
    return item;
}

WalkState Walk::state() const {
    WalkState s;
    s.epoch = epoch_;
    s.pos = pos_;
    for (int i = 0; i < 4; ++i) s.rng[i] = rng_.state()[i];
    return s;
}

void Walk::set_state(const WalkState &s) {
    if (s.epoch < 0 || s.pos > n_) fail(RMKV_ERR_FORMAT, "data state: walk position epoch ", s.epoch, " item ", s.pos, " is outside 0..", n_);
    epoch_ = s.epoch;
    pos_ = s.pos;
    rng_.set_state(s.rng);
}

}  // namespace rmkv::data
