#include "model/sampler.h"

#include <algorithm>
#include <functional>
#include <cmath>

#include "core/error.h"

namespace rmkv {

Sampler::Sampler(size_t vocab_size)
    : V_(vocab_size), work_(vocab_size), select_(vocab_size), index_(vocab_size), counts_(vocab_size, 0) {
    history_.reserve(kMaxWindow);
}

void Sampler::observe(const int32_t *tokens, size_t n) {
    if (n >= kMaxWindow) {
        history_.assign(tokens + n - kMaxWindow, tokens + n);
        return;
    }
    size_t overflow = history_.size() + n > kMaxWindow ? history_.size() + n - kMaxWindow : 0;
    if (overflow) history_.erase(history_.begin(), history_.begin() + static_cast<std::ptrdiff_t>(overflow));
    history_.insert(history_.end(), tokens, tokens + n);
}

void Sampler::reset() {
    history_.clear();
    seeded_ = false;
}

void Sampler::restore(std::vector<int32_t> history, const uint64_t rng_state[4], uint64_t seed, bool seeded) {
    history_ = std::move(history);
    rng_.set_state(rng_state);
    seed_ = seed;
    seeded_ = seeded;
}

void Sampler::check(const rmkv_sampler_params &p) const {
    if (!(p.temperature >= 0) || !std::isfinite(p.temperature)) fail(RMKV_ERR_INVALID_ARGUMENT, "temperature = ", p.temperature, " must be >= 0");
    if (p.top_k < 0) fail(RMKV_ERR_INVALID_ARGUMENT, "top_k = ", p.top_k, " must be >= 0 (0 = off)");
    if (!(p.top_p > 0 && p.top_p <= 1)) fail(RMKV_ERR_INVALID_ARGUMENT, "top_p = ", p.top_p, " must be in (0, 1]");
    if (!(p.min_p >= 0 && p.min_p <= 1)) fail(RMKV_ERR_INVALID_ARGUMENT, "min_p = ", p.min_p, " must be in [0, 1]");
    if (!(p.repetition_penalty > 0)) fail(RMKV_ERR_INVALID_ARGUMENT, "repetition_penalty = ", p.repetition_penalty, " must be > 0 (1 = off)");
    if (p.penalty_window < 0 || static_cast<size_t>(p.penalty_window) > kMaxWindow)
        fail(RMKV_ERR_INVALID_ARGUMENT, "penalty_window = ", p.penalty_window, " must be in [0, ", kMaxWindow, "]");
    if (p.n_bias > 0 && (!p.bias_tokens || !p.bias_values))
        fail(RMKV_ERR_INVALID_ARGUMENT, "n_bias = ", p.n_bias, " but bias_tokens or bias_values is NULL");
    for (size_t i = 0; i < p.n_bias; ++i) {
        if (p.bias_tokens[i] < 0 || static_cast<size_t>(p.bias_tokens[i]) >= V_)
            fail(RMKV_ERR_INVALID_ARGUMENT, "bias_tokens[", i, "] = ", p.bias_tokens[i], " is not a token id (vocab_size ", V_, ")");
        if (std::isnan(p.bias_values[i]) || p.bias_values[i] == INFINITY)
            fail(RMKV_ERR_INVALID_ARGUMENT, "bias_values[", i, "] = ", p.bias_values[i], " must be a number or -inf (ban)");
    }
    if (p.n_banned > 0 && !p.banned_tokens) fail(RMKV_ERR_INVALID_ARGUMENT, "n_banned = ", p.n_banned, " but banned_tokens is NULL");
    for (size_t i = 0; i < p.n_banned; ++i)
        if (p.banned_tokens[i] < 0 || static_cast<size_t>(p.banned_tokens[i]) >= V_)
            fail(RMKV_ERR_INVALID_ARGUMENT, "banned_tokens[", i, "] = ", p.banned_tokens[i], " is not a token id (vocab_size ", V_, ")");
}

size_t Sampler::filter(const float *logits, const rmkv_sampler_params &p) {
    check(p);
    float *w = work_.data();
    std::copy(logits, logits + V_, w);
    for (size_t i = 0; i < p.n_bias; ++i) w[p.bias_tokens[i]] += p.bias_values[i];
    // Penalties over the window of recent tokens.
    const size_t window = std::min(history_.size(), static_cast<size_t>(p.penalty_window));
    const bool penalise = window > 0 && (p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f);
    if (penalise) {
        const int32_t *recent = history_.data() + history_.size() - window;
        for (size_t i = 0; i < window; ++i) counts_[static_cast<size_t>(recent[i])]++;
        for (size_t i = 0; i < window; ++i) {
            size_t t = static_cast<size_t>(recent[i]);
            if (counts_[t] == 0) continue;  // already applied for this token
            float &l = w[t];
            if (p.repetition_penalty != 1.0f) l = l > 0 ? l / p.repetition_penalty : l * p.repetition_penalty;
            l -= p.presence_penalty + p.frequency_penalty * static_cast<float>(counts_[t]);
            counts_[t] = 0;
        }
    }
    for (size_t i = 0; i < p.n_banned; ++i) w[p.banned_tokens[i]] = -INFINITY;
    // Candidates: every token that is not banned, or the top_k of them, ordered by
    // logit (ties: lower id first), so that a seed draws the same token everywhere.
    auto by_logit = [w](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); };
    const char *all_banned = "every token is banned (banned_tokens or -inf logit biases): nothing to sample";
    if (p.temperature == 0.0f) {  // the first largest logit
        size_t best = V_;
        float bv = -INFINITY;
        for (size_t i = 0; i < V_; ++i)
            if (w[i] > bv) bv = w[i], best = i;
        if (best == V_) fail(RMKV_ERR_INVALID_ARGUMENT, all_banned);
        index_[0] = static_cast<int32_t>(best);
        w[best] = 1.0f;
        return 1;
    }
    size_t n = 0;
    for (size_t i = 0; i < V_; ++i)
        if (w[i] != -INFINITY) select_[n++] = w[i];
    if (n == 0) fail(RMKV_ERR_INVALID_ARGUMENT, all_banned);
    if (p.top_k > 0 && static_cast<size_t>(p.top_k) < n) {
        // The k-th largest logit by a selection over the values (no indirection),
        // then the tokens above it and, in id order, those equal to it.
        const size_t k = static_cast<size_t>(p.top_k);
        std::nth_element(select_.begin(), select_.begin() + static_cast<std::ptrdiff_t>(k - 1),
                         select_.begin() + static_cast<std::ptrdiff_t>(n), std::greater<float>());
        const float kth = select_[k - 1];
        size_t above = 0;
        for (size_t i = 0; i < V_; ++i)
            if (w[i] > kth) index_[above++] = static_cast<int32_t>(i);
        for (size_t i = 0; i < V_ && above < k; ++i)
            if (w[i] == kth) index_[above++] = static_cast<int32_t>(i);
        n = k;
    } else {
        n = 0;
        for (size_t i = 0; i < V_; ++i)
            if (w[i] != -INFINITY) index_[n++] = static_cast<int32_t>(i);
    }
    const bool need_sorted = p.top_p < 1.0f || p.top_k > 0;
    if (need_sorted) std::sort(index_.begin(), index_.begin() + static_cast<std::ptrdiff_t>(n), by_logit);
    // Softmax over the candidates at the temperature (in double for the sums).
    float mx = -INFINITY;
    for (size_t i = 0; i < n; ++i) mx = std::max(mx, w[index_[i]]);
    double total = 0;
    for (size_t i = 0; i < n; ++i) {
        float &l = w[index_[i]];
        l = static_cast<float>(std::exp(static_cast<double>(l - mx) / p.temperature));
        total += l;
    }
    // top_p: the smallest prefix (by probability) whose mass reaches top_p.
    if (need_sorted) {
        double mass = 0;
        size_t keep = 0;
        while (keep < n) {
            mass += w[index_[keep]] / total;
            ++keep;
            if (mass >= static_cast<double>(p.top_p)) break;
        }
        n = keep;
    }
    // min_p: drop tokens below min_p times the most likely one.
    if (p.min_p > 0) {
        float top = 0;
        for (size_t i = 0; i < n; ++i) top = std::max(top, w[index_[i]]);
        size_t kept = 0;
        for (size_t i = 0; i < n; ++i)
            if (w[index_[i]] >= p.min_p * top) index_[kept++] = index_[i];
        n = kept;
    }
    return n;
}

void Sampler::seed_from(const rmkv_sampler_params &p) {
    if (!seeded_ || seed_ != p.seed) {
        rng_ = Rng(p.seed, 0x5eed);
        seed_ = p.seed;
        seeded_ = true;
    }
}

int32_t Sampler::sample(const float *logits, const rmkv_sampler_params &p) {
    check(p);
    seed_from(p);
    const size_t n = filter(logits, p);
    if (p.temperature == 0.0f) return index_[0];
    const float *w = work_.data();
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += w[index_[i]];
    double r = rng_.uniform() * sum;
    for (size_t i = 0; i < n; ++i) {
        r -= w[index_[i]];
        if (r < 0) return index_[i];
    }
    return index_[n - 1];
}

void Sampler::probabilities(const float *logits, const rmkv_sampler_params &p, float *probs) {
    const size_t n = filter(logits, p);
    const float *w = work_.data();
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += w[index_[i]];
    std::fill(probs, probs + V_, 0.0f);
    for (size_t i = 0; i < n; ++i) probs[index_[i]] = static_cast<float>(w[index_[i]] / sum);
}

}  // namespace rmkv
