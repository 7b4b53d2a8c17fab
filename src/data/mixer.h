// The mixer: which source each sequence comes from, drawn with the configured
// weights (5:1:1 gives the first source 5/7 of the sequences on average) from
// its own seeded generator, so the choice is part of the saved position.
#pragma once

#include <vector>

#include "core/rng.h"

namespace rmkv::data {

class Mixer {
public:
    Mixer(std::vector<double> weights, uint64_t seed) : weights_(std::move(weights)), rng_(seed, 0x6d6978) {
        for (double w : weights_) total_ += w;
    }

    size_t pick() {
        double u = rng_.uniform() * total_, sum = 0;
        size_t last = 0;
        for (size_t i = 0; i < weights_.size(); ++i) {
            if (weights_[i] <= 0) continue;
            sum += weights_[i];
            last = i;
            if (u < sum) return i;
        }
        return last;  // rounding at the very top
    }

    const uint64_t *state() const { return rng_.state(); }
    void set_state(const uint64_t s[4]) { rng_.set_state(s); }

private:
    std::vector<double> weights_;
    double total_ = 0;
    Rng rng_;
};

}  // namespace rmkv::data
