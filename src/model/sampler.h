// The sampler of a session: draws the next token from the logits of the last
// token stepped, with temperature, top-k, top-p, min-p and the repetition,
// presence and frequency penalties over a window of recent tokens. Its RNG and
// that window are part of the session state, so a restored session samples
// exactly as the one that was saved.
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "rmkv.h"

namespace rmkv {

class Sampler {
public:
    static constexpr size_t kMaxWindow = 1024;  // the longest penalty_window kept

    explicit Sampler(size_t vocab_size);

    void observe(const int32_t *tokens, size_t n);  // tokens fed to the model, oldest first
    // logits: the V logits of the last token. Throws INVALID_ARGUMENT on bad params.
    int32_t sample(const float *logits, const rmkv_sampler_params &p);
    void reset();
    // The distribution a draw uses now: probs[V] (0 for every token filtered out).
    void probabilities(const float *logits, const rmkv_sampler_params &p, float *probs);

    // State: the recent tokens (oldest first), the RNG and the seed it was seeded with.
    const std::vector<int32_t> &history() const { return history_; }
    void restore(std::vector<int32_t> history, const uint64_t rng_state[4], uint64_t seed, bool seeded);
    const uint64_t *rng_state() const { return rng_.state(); }
    uint64_t seed() const { return seed_; }
    bool seeded() const { return seeded_; }

private:
    void check(const rmkv_sampler_params &p) const;
    void seed_from(const rmkv_sampler_params &p);
    // Bias, penalties, bans and filters: the candidates are index_[0..n) with
    // unnormalised weights in work_ (greedy: the one argmax). Returns n.
    size_t filter(const float *logits, const rmkv_sampler_params &p);
    size_t V_;
    std::vector<int32_t> history_;
    Rng rng_{0};
    uint64_t seed_ = 0;
    bool seeded_ = false;
    std::vector<float> work_, select_;  // select_: logits for the top_k threshold
    std::vector<int32_t> index_, counts_;
};

}  // namespace rmkv
