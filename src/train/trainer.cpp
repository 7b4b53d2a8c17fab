#include "train/trainer.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"

using namespace rmkv;

rmkv_trainer::rmkv_trainer(rmkv_model &model, const rmkv_train_params &params)
    : model_(model), p_(params), stream_(model.backend().new_stream()) {
    init();
}

// The model is only read: model_ is never used to write in this mode.
rmkv_trainer::rmkv_trainer(const rmkv_model &model, const rmkv_train_params &params, StateTuning)
    : model_(const_cast<rmkv_model &>(model)), p_(params), state_tuning_(true), stream_(model.backend().new_stream()) {
    init();
}

void rmkv_trainer::init() {
    if (!(p_.learning_rate >= 0) || !(p_.min_learning_rate >= 0)) fail(RMKV_ERR_INVALID_ARGUMENT, "learning rates must be >= 0");
    if (p_.warmup_steps < 0 || p_.total_steps < 0) fail(RMKV_ERR_INVALID_ARGUMENT, "warmup_steps and total_steps must be >= 0");
    if (!(p_.beta1 >= 0 && p_.beta1 < 1) || !(p_.beta2 >= 0 && p_.beta2 < 1))
        fail(RMKV_ERR_INVALID_ARGUMENT, "beta1 = ", p_.beta1, ", beta2 = ", p_.beta2, ": each must be in [0, 1)");
    if (!(p_.epsilon > 0)) fail(RMKV_ERR_INVALID_ARGUMENT, "epsilon = ", p_.epsilon, " must be > 0");
    if (!(p_.grad_clip >= 0)) fail(RMKV_ERR_INVALID_ARGUMENT, "grad_clip = ", p_.grad_clip, " must be >= 0 (0 = off)");
    if (p_.grad_accum_steps < 1) fail(RMKV_ERR_INVALID_ARGUMENT, "grad_accum_steps = ", p_.grad_accum_steps, " must be >= 1");
    if (!(p_.weight_decay >= 0)) fail(RMKV_ERR_INVALID_ARGUMENT, "weight_decay = ", p_.weight_decay, " must be >= 0");
    if (!(p_.dropout >= 0.0f && p_.dropout < 1.0f))
        fail(RMKV_ERR_INVALID_ARGUMENT, "dropout = ", p_.dropout, " must be in [0, 1)");
    if (p_.recompute != 0 && p_.recompute != 1)
        fail(RMKV_ERR_INVALID_ARGUMENT, "recompute = ", p_.recompute, " must be 0 (keep activations) or 1 (recompute them)");
    if (p_.parallel_sequences < 0 || p_.parallel_sequences > 64)
        fail(RMKV_ERR_INVALID_ARGUMENT, "parallel_sequences = ", p_.parallel_sequences,
             " must be in [0, 64] (0: the device's default, 1: one sequence at a time)");
    if (p_.stacked_sequences < 0 || p_.stacked_sequences > 256)
        fail(RMKV_ERR_INVALID_ARGUMENT, "stacked_sequences = ", p_.stacked_sequences,
             " must be in [0, 256] (0: the device's default, 1: no stacking)");
    if (p_.n_threads < 0 || p_.n_threads > 1024)
        fail(RMKV_ERR_INVALID_ARGUMENT, "n_threads = ", p_.n_threads, " is outside [0, 1024] (0 = OpenMP's setting)");
    Backend &be = model_.backend();
    const auto &all_specs = model_.specs();
    for (const ParamSpec &s : all_specs)
        trainable_.push_back(!state_tuning_ || s.name.find(".init_memory") != std::string::npos);
    // Full training writes the model's weights in place; state tuning trains its own
    // copies of the initial memories and reads everything else from the model.
    if (!state_tuning_) params_ = model_.writable_params();
    else params_ = model_.params();
    try {
        for (size_t i = 0; i < all_specs.size(); ++i) {
            const size_t n = static_cast<size_t>(all_specs[i].numel);
            grads_.push_back(trainable_[i] ? be.alloc(n) : nullptr);  // frozen: no gradient computed
            m_.push_back(trainable_[i] ? be.alloc(n) : nullptr);
            v_.push_back(trainable_[i] ? be.alloc(n) : nullptr);
            if (!params_[i]) {  // state tuning a matrix kept in 16 bits: the trainer reads an f32 copy
                params_[i] = model_.f32_copy(i);
                owned_params_.push_back(params_[i]);
            }
            if (state_tuning_ && trainable_[i]) {
                float *own = be.alloc(n);
                be.copy(*stream_, own, params_[i], n);
                params_[i] = own;
                owned_params_.push_back(own);
            }
        }
        grad_view_ = bind_weights(model_.config(), model_.specs(), grads_);
        for (size_t i = 0; i < all_specs.size(); ++i) grad_sizes_.push_back(static_cast<size_t>(all_specs[i].numel));
        view_weights_ = bind_weights(model_.config(), model_.specs(), params_);
        const int32_t precision = p_.precision;
        if (precision < RMKV_PRECISION_AUTO || precision > RMKV_PRECISION_BF16)
            fail(RMKV_ERR_INVALID_ARGUMENT, "precision = ", precision, " is not an rmkv_precision");
        if (precision == RMKV_PRECISION_BF16 && !be.supports_bf16())
            fail(RMKV_ERR_BACKEND, "precision BF16: the ", be.name(), " backend has no bf16 matrix products on this machine");
        const bool bf16 = precision == RMKV_PRECISION_BF16 || (precision == RMKV_PRECISION_AUTO && be.supports_bf16());
        const auto &specs = model_.specs();
        for (size_t i = 0; i < specs.size(); ++i) {
            // The matrices (the decayed tensors), and tok_emb when it is also the head.
            bool matrix = specs[i].decay || (model_.config().tie_embeddings && specs[i].name == "tok_emb.weight");
            shadows_.push_back(bf16 && matrix ? be.alloc_bf16(static_cast<size_t>(specs[i].numel)) : nullptr);
        }
        const ModelView view{&model_.config(), &view_weights_, &be};
        const int64_t n_lanes = p_.parallel_sequences > 0 ? p_.parallel_sequences : be.default_parallel_sequences();
        for (int64_t i = 1; i < n_lanes; ++i) {
            Lane &lane = lanes_.emplace_back();
            lane.stream = be.new_stream();
            for (size_t j = 0; j < grads_.size(); ++j) lane.grads.push_back(grads_[j] ? be.alloc(grad_sizes_[j]) : nullptr);
            lane.grad_view = bind_weights(model_.config(), model_.specs(), lane.grads);
        }
        be.set_bf16(*stream_, bf16);
        be.set_bf16_attention(*stream_, bf16);
        for (Lane &lane : lanes_) be.set_bf16(*lane.stream, bf16), be.set_bf16_attention(*lane.stream, bf16);
        refresh_shadows();
        const int64_t stack = p_.stacked_sequences > 0 ? p_.stacked_sequences : be.default_stacked_sequences();
        // bf16: every matrix has a shadow, so every product takes bf16 inputs.
        const Bf16Copies copies = bf16 ? Bf16Copies::instead_of_fp32 : Bf16Copies::off;
        pass_ = std::make_unique<SequencePass>(view, *stream_, p_.recompute == 1, stack, copies);
        for (Lane &lane : lanes_)
            lane.pass = std::make_unique<SequencePass>(view, *lane.stream, p_.recompute == 1, stack, copies);
        if (!lanes_.empty()) workers_ = std::make_unique<Workers>(lanes_.size());
        lane_drops_.assign(lanes_.size() + 1, std::vector<DropoutPlan>(static_cast<size_t>(stack)));
    } catch (...) {
        free_buffers();
        throw;
    }
}

void rmkv_trainer::free_buffers() {
    Backend &be = model_.backend();
    workers_.reset();
    for (Lane &lane : lanes_) {
        lane.pass.reset();
        for (float *q : lane.grads)
            if (q) be.free(q);
    }
    lanes_.clear();
    for (auto *vec : {&grads_, &m_, &v_, &owned_params_})
        for (float *q : *vec)
            if (q) be.free(q);
    for (uint16_t *q : shadows_) be.free_bf16(q);
}

void rmkv_trainer::refresh_shadows() {
    Backend &be = model_.backend();
    for (size_t i = 0; i < shadows_.size(); ++i) {
        if (!shadows_[i]) continue;
        be.to_bf16(*stream_, shadows_[i], params_[i], static_cast<size_t>(model_.specs()[i].numel));
        be.set_shadow(*stream_, params_[i], shadows_[i]);
        for (Lane &lane : lanes_) be.set_shadow(*lane.stream, params_[i], shadows_[i]);
    }
}

rmkv_trainer::~rmkv_trainer() {
    pass_.reset();
    free_buffers();
}

float rmkv_trainer::learning_rate_at(int64_t s) const {
    const double peak = p_.learning_rate, floor = p_.min_learning_rate;
    if (p_.warmup_steps > 0 && s <= p_.warmup_steps) return static_cast<float>(peak * s / p_.warmup_steps);
    if (p_.total_steps <= 0) return static_cast<float>(peak);
    double progress = static_cast<double>(s - p_.warmup_steps) / std::max<int64_t>(1, p_.total_steps - p_.warmup_steps);
    progress = std::min(1.0, progress);
    return static_cast<float>(floor + 0.5 * (peak - floor) * (1.0 + std::cos(3.14159265358979323846 * progress)));
}

void rmkv_trainer::zero_gradients() {
    for (size_t i = 0; i < grads_.size(); ++i)
        if (grads_[i]) model_.backend().fill(*stream_, grads_[i], 0.0f, static_cast<size_t>(model_.specs()[i].numel));
}

namespace {

// Validates a batch against the model and returns its segment lengths.
std::vector<int64_t> check_batch(const rmkv_batch &b, const Config &c) {
    if (b.batch_size == 0 || b.n_tokens == 0) fail(RMKV_ERR_INVALID_ARGUMENT, "batch: batch_size and n_tokens must be >= 1");
    if (b.batch_size > (1u << 20) || b.n_tokens > (1u << 26)) fail(RMKV_ERR_INVALID_ARGUMENT, "batch: absurd batch_size or n_tokens");
    if (!b.tokens || !b.targets) fail(RMKV_ERR_INVALID_ARGUMENT, "batch: tokens and targets must not be NULL");
    std::vector<int64_t> lens;
    if (b.n_segments == 0) {
        for (size_t done = 0; done < b.n_tokens; done += static_cast<size_t>(c.segment_len))
            lens.push_back(std::min<int64_t>(c.segment_len, static_cast<int64_t>(b.n_tokens - done)));
    } else {
        if (!b.segment_lens) fail(RMKV_ERR_INVALID_ARGUMENT, "batch: segment_lens is NULL but n_segments is ", b.n_segments);
        if (b.n_segments > b.n_tokens) fail(RMKV_ERR_INVALID_ARGUMENT, "batch: n_segments ", b.n_segments, " exceeds n_tokens");
        int64_t sum = 0;
        for (size_t k = 0; k < b.n_segments; ++k) {
            int32_t len = b.segment_lens[k];
            if (len < 1 || len > c.segment_len)
                fail(RMKV_ERR_INVALID_ARGUMENT, "batch: segment_lens[", k, "] = ", len, " is outside [1, segment_len = ", c.segment_len, "]");
            sum += len;
            lens.push_back(len);
        }
        if (sum != static_cast<int64_t>(b.n_tokens))
            fail(RMKV_ERR_INVALID_ARGUMENT, "batch: segment_lens sum to ", sum, ", n_tokens is ", b.n_tokens);
    }
    const size_t n = b.batch_size * b.n_tokens;
    for (size_t i = 0; i < n; ++i) {
        if (b.tokens[i] < 0 || b.tokens[i] >= c.vocab_size)
            fail(RMKV_ERR_INVALID_ARGUMENT, "batch: tokens[", i, "] = ", b.tokens[i], " is outside [0, ", c.vocab_size, ")");
        if (b.targets[i] < -1 || b.targets[i] >= c.vocab_size)
            fail(RMKV_ERR_INVALID_ARGUMENT, "batch: targets[", i, "] = ", b.targets[i], " is outside [-1, ", c.vocab_size, ")");
    }
    return lens;
}

}  // namespace

int64_t rmkv_trainer::accumulate(const rmkv_batch &b) {
    std::vector<int64_t> lens = check_batch(b, model_.config());
    int64_t n_targets = 0;
    for (size_t i = 0; i < b.batch_size * b.n_tokens; ++i) n_targets += b.targets[i] >= 0;
    if (n_targets == 0) return 0;
    const float scale = 1.0f / static_cast<float>(n_targets);
    Backend &be = model_.backend();
    const size_t n_lanes = std::min(lanes_.size() + 1, b.batch_size);
    // Sequence s runs on lane s % n_lanes, stacked with the lane's next ones (up to
    // the pass's stack); the lanes after 0 start from zeroed gradients once the
    // trainer's stream (the last update) is done.
    auto run_lane = [&](size_t lane) {
        const ThreadLimit threads(static_cast<int>(p_.n_threads));  // a lane's worker thread too
        Stream &st = lane ? *lanes_[lane - 1].stream : *stream_;
        SequencePass &pass = lane ? *lanes_[lane - 1].pass : *pass_;
        const ModelWeights &grads = lane ? lanes_[lane - 1].grad_view : grad_view_;
        if (lane)
            for (size_t i = 0; i < grads_.size(); ++i)
                if (grads_[i]) be.fill(st, lanes_[lane - 1].grads[i], 0.0f, grad_sizes_[i]);
        const size_t stack = static_cast<size_t>(pass.stack());
        std::vector<DropoutPlan> &drops = lane_drops_[lane];
        for (size_t s = lane; s < b.batch_size; s += n_lanes * stack) {
            const size_t count = std::min(stack, (b.batch_size - s + n_lanes - 1) / n_lanes);
            // Masks depend on (seed, optimiser step, micro-batch, sequence): a resumed run
            // draws the ones the uninterrupted run drew.
            for (size_t i = 0; i < count; ++i)
                drops[i] = {p_.dropout, Dropout::mix(p_.seed ^ Dropout::mix((static_cast<uint64_t>(step_) << 32) ^
                                                                             (static_cast<uint64_t>(micro_) << 20) ^
                                                                             (s + i * n_lanes)))};
            const int64_t stride = static_cast<int64_t>(n_lanes * b.n_tokens);
            pass.run(b.tokens + s * b.n_tokens, b.targets + s * b.n_tokens, static_cast<int64_t>(count), stride, lens,
                     grads, scale, drops.data());
        }
    };
    if (n_lanes == 1) {
        run_lane(0);
        return n_targets;
    }
    for (size_t l = 1; l < n_lanes; ++l) be.wait_for(*lanes_[l - 1].stream, *stream_);
    workers_->run(n_lanes, run_lane);
    for (size_t l = 1; l < n_lanes; ++l) {
        Lane &lane = lanes_[l - 1];
        be.wait_for(*stream_, *lane.stream);
        be.add_many(*stream_, grads_.data(), lane.grads.data(), grad_sizes_.data(), grads_.size());
    }
    return n_targets;
}

double rmkv_trainer::take_losses() {
    Backend &be = model_.backend();
    double loss = be.take_loss(*stream_);
    for (Lane &lane : lanes_) loss += be.take_loss(*lane.stream);
    return loss;
}

void rmkv_trainer::evaluate(const rmkv_batch &b, rmkv_eval_stats &out) {
    const ThreadLimit threads(static_cast<int>(p_.n_threads));
    std::vector<int64_t> lens = check_batch(b, model_.config());
    SequencePass::EvalSums carried, reset;
    const size_t stack = static_cast<size_t>(pass_->stack());
    const int64_t stride = static_cast<int64_t>(b.n_tokens);
    for (size_t s = 0; s < b.batch_size; s += stack) {
        const int64_t count = static_cast<int64_t>(std::min(stack, b.batch_size - s));
        const int32_t *tokens = b.tokens + s * b.n_tokens, *targets = b.targets + s * b.n_tokens;
        pass_->evaluate(tokens, targets, count, stride, lens, false, carried);
        if (lens.size() > 1) pass_->evaluate(tokens, targets, count, stride, lens, true, reset);
    }
    auto mean = [](double sum, int64_t n) { return n ? static_cast<float>(sum / static_cast<double>(n)) : 0.0f; };
    out.loss = mean(carried.loss, carried.targets);
    out.accuracy = mean(static_cast<double>(carried.correct), carried.targets);
    out.loss_later = mean(carried.loss_later, carried.targets_later);
    out.accuracy_later = mean(static_cast<double>(carried.correct_later), carried.targets_later);
    out.loss_later_reset = mean(reset.loss_later, reset.targets_later);
    out.accuracy_later_reset = mean(static_cast<double>(reset.correct_later), reset.targets_later);
    out.n_targets = carried.targets;
    out.n_targets_later = carried.targets_later;
}

float rmkv_trainer::compute_gradients(const rmkv_batch &b) {
    const ThreadLimit threads(static_cast<int>(p_.n_threads));
    zero_gradients();
    micro_ = 0;
    const int64_t n = accumulate(b);
    const double loss = take_losses();
    model_.backend().sync(*stream_);
    return n ? static_cast<float>(loss / static_cast<double>(n)) : 0.0f;
}

std::vector<float> rmkv_trainer::gradient(const std::string &name) const {
    const auto &specs = model_.specs();
    for (size_t i = 0; i < specs.size(); ++i) {
        if (specs[i].name != name) continue;
        if (!grads_[i]) fail(RMKV_ERR_INVALID_ARGUMENT, "'", name, "' is frozen (state tuning trains only init_memory)");
        std::vector<float> out(static_cast<size_t>(specs[i].numel));
        model_.backend().to_host(*stream_, out.data(), grads_[i], out.size());
        model_.backend().sync(*stream_);
        return out;
    }
    fail(RMKV_ERR_INVALID_ARGUMENT, "no parameter named '", name, "' in this model");
}

void rmkv_trainer::step(const rmkv_batch &b, rmkv_train_stats *stats) {
    const ThreadLimit threads(static_cast<int>(p_.n_threads));
    if (micro_ == 0) zero_gradients();
    const int64_t n = accumulate(b);
    ++micro_;
    const bool update = micro_ >= p_.grad_accum_steps;
    if (update) queue_update();
    // The step's one wait: everything above is queued.
    const double loss = take_losses();
    if (stats) {
        stats->loss = n ? static_cast<float>(loss / static_cast<double>(n)) : 0.0f;
        stats->n_targets = n;
        stats->step = step_;
        stats->learning_rate = learning_rate_at(step_ + 1);
    }
    if (update) finish_update(stats);
    model_.backend().sync(*stream_);
}

void rmkv_trainer::queue_update() {
    Backend &be = model_.backend();
    const auto &specs = model_.specs();
    // Each micro-batch's gradient is a mean over its targets: average the micro-batches.
    const float accum_scale = 1.0f / static_cast<float>(micro_);
    micro_ = 0;
    be.update_scale(*stream_, grads_.data(), grad_sizes_.data(), grads_.size(), accum_scale, p_.grad_clip);
    const int64_t next = step_ + 1;
    const float lr = learning_rate_at(next);
    update_.clear();  // (its capacity stays: no allocation after the first step)
    for (size_t i = 0; i < grads_.size(); ++i)
        if (trainable_[i])
            update_.push_back({params_[i], m_[i], v_[i], grads_[i], static_cast<size_t>(specs[i].numel),
                               specs[i].decay ? p_.weight_decay : 0.0f, shadows_[i]});
    be.adamw_many(*stream_, update_.data(), update_.size(), lr, p_.beta1, p_.beta2, p_.epsilon, next);
}

void rmkv_trainer::finish_update(rmkv_train_stats *stats) {
    const double norm = model_.backend().take_grad_norm(*stream_);
    if (stats) stats->grad_norm = static_cast<float>(norm);
    if (!std::isfinite(norm)) {
        log(RMKV_LOG_WARN, "train step ", step_ + 1, ": gradient norm is ", norm, "; update skipped, weights unchanged");
        return;
    }
    ++step_;
    if (!state_tuning_) model_.weights_changed();
    if (stats) {
        stats->step = step_;
        stats->learning_rate = learning_rate_at(step_);
    }
}

void rmkv_trainer::apply_state(rmkv_session &session) const {
    if (!state_tuning_) fail(RMKV_ERR_INVALID_ARGUMENT, "this trainer trains the whole model, not a state (use the model)");
    if (&session.model() != &model_)
        fail(RMKV_ERR_MISMATCH, "the session belongs to another model than the one being state-tuned");
    std::vector<const float *> memory;
    for (const LayerWeights &l : view_weights_.layers) memory.push_back(l.init_memory);
    model_.backend().sync(*stream_);
    session.restart_from(memory);
}
