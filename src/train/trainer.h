// The trainer behind the opaque rmkv_trainer: gradients and AdamW moments in the
// parameter layout of the model, the learning-rate schedule, clipping, gradient
// accumulation, and the per-sequence forward/backward (sequence_pass.h).
#pragma once

#include <memory>
#include <vector>

#include "model/model.h"
#include "model/session.h"
#include "core/workers.h"
#include "train/sequence_pass.h"

namespace rmkv {
// The caller's JSON stored in a checkpoint (data position, epoch, ...).
std::string checkpoint_user_json(const std::string &path);
}  // namespace rmkv

struct rmkv_trainer {
public:
    rmkv_trainer(rmkv_model &model, const rmkv_train_params &params);
    // State tuning (SPEC section 6): only layers.*.init_memory are trained, as the
    // trainer's own copies; the model is never written.
    struct StateTuning {};
    rmkv_trainer(const rmkv_model &model, const rmkv_train_params &params, StateTuning);
    bool state_tuning() const { return state_tuning_; }
    // State tuning: the session restarts (position 0, empty segment) from the
    // tuned memories.
    void apply_state(rmkv_session &session) const;
    ~rmkv_trainer();
    rmkv_trainer(const rmkv_trainer &) = delete;
    rmkv_trainer &operator=(const rmkv_trainer &) = delete;

    void step(const rmkv_batch &batch, rmkv_train_stats *stats);
    float compute_gradients(const rmkv_batch &batch);  // replaces the gradients; returns the mean loss
    std::vector<float> gradient(const std::string &name) const;

    void evaluate(const rmkv_batch &batch, rmkv_eval_stats &out);

    // checkpoint.cpp
    void save_checkpoint(const std::string &path, const std::string &user_json) const;
    void load_checkpoint(const std::string &path);
    int64_t step_count() const { return step_; }

    // Learning rate of optimiser step s (1-based) under the schedule.
    float learning_rate_at(int64_t s) const;

private:
    // Queues the batch's gradients (scaled by 1 / its target count) onto the
    // gradient sums and its loss onto the streams' loss sums; returns its target
    // count. Nothing here waits for the device.
    int64_t accumulate(const rmkv_batch &batch);
    // The loss summed on every stream since the last take (waits for them).
    double take_losses();
    void zero_gradients();
    // An optimiser step in two halves: the first queues the update (clip factor
    // and AdamW on the device, no waiting); the second, after the step's one
    // wait, reads the gradient norm and counts the step, or reports it skipped
    // (a norm that is not finite: the device changed nothing).
    void queue_update();
    void finish_update(rmkv_train_stats *stats);

    void init();
    void free_buffers();  // everything init allocated

    rmkv_model &model_;
    rmkv_train_params p_;
    bool state_tuning_ = false;
    std::vector<bool> trainable_;         // per parameter: updated by the optimiser
    rmkv::ModelWeights view_weights_{};   // what the passes read (the model's, or tuned init_memory)
    std::unique_ptr<rmkv::Stream> stream_;
    std::unique_ptr<rmkv::SequencePass> pass_;
    void refresh_shadows();
    // Parallel sequences (rmkv_train_params.parallel_sequences): lane 0 is stream_,
    // pass_ and grads_; each further lane has its own stream, pass (activations) and
    // gradient buffers, and runs sequences lane, lane + L, ... on a worker thread.
    // Its gradients are added into grads_ in lane order after the batch.
    struct Lane {
        std::unique_ptr<rmkv::Stream> stream;
        std::unique_ptr<rmkv::SequencePass> pass;
        std::vector<float *> grads;  // NULL where grads_ is
        rmkv::ModelWeights grad_view{};
    };
    std::vector<Lane> lanes_;  // the lanes after lane 0
    std::vector<std::vector<rmkv::DropoutPlan>> lane_drops_;  // per lane (0 too): the masks of its stacked sequences
    std::unique_ptr<rmkv::Workers> workers_;

    std::vector<float *> params_, grads_, m_, v_;  // grads_: NULL for a frozen parameter
    std::vector<size_t> grad_sizes_;              // elements of each gradient
    std::vector<float *> owned_params_;  // state tuning: the trained init_memory copies
    std::vector<uint16_t *> shadows_;  // bf16 copies of the matrices (mixed precision), else NULL
    std::vector<rmkv::Backend::AdamwTensor> update_;  // queue_update's tensors (kept for its capacity)
    rmkv::ModelWeights grad_view_{};
    int64_t step_ = 0;         // optimiser updates done
    int32_t micro_ = 0;        // train_step calls since the last update
};
