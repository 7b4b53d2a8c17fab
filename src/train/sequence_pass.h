// Forward and backward of one training sequence: K consecutive segments from the
// initial memory, their intermediates kept on a tape (one LayerActs/LayerState per
// segment and layer, see model/segment.h), then the gradients in reverse order,
// through each segment's layers and back through the memory (truncated BPTT over K).
//
// With recomputation (activation checkpointing per layer) the tape keeps, for each
// segment and layer, only the layer's output rows and the memory (cell) it read;
// every other intermediate lives in one set of buffers shared by all layers and
// segments, and is recomputed layer by layer just before that layer's backward
// (with the same dropout masks). Same gradients, about one more forward of compute,
// and activation memory that no longer grows with K x L x (ffn_hidden, heads, ...).
#pragma once

#include <cstdint>
#include <vector>

#include "model/segment.h"

namespace rmkv {

class SequencePass {
public:
    SequencePass(const ModelView &model, Stream &stream, bool recompute = false);
    ~SequencePass();
    SequencePass(const SequencePass &) = delete;
    SequencePass &operator=(const SequencePass &) = delete;

    // Adds to `grads` (one buffer per parameter, same order as model.params(); NULL
    // for a frozen parameter, whose gradient is then not computed, except
    // init_memory) the gradient of scale * (summed cross-entropy of this sequence),
    // and that summed loss (unscaled) to the stream's loss sum, which the caller
    // reads with Backend::take_loss (no waiting for the device here).
    // tokens/targets: n host ints; segment lens sum to n.
    // `dropout`: rate and seed of this sequence's masks (p == 0: none).
    void run(const int32_t *tokens, const int32_t *targets, const std::vector<int64_t> &segment_lens,
               const ModelWeights &grads, float scale, const DropoutPlan &dropout = {});

    // Forward only. Sums of the loss and of correct argmax predictions over the
    // targets of all segments and of segments k >= 2 (index 1 on); with
    // reset_memory every segment starts from init_memory (the memory effect, SPEC 6).
    struct EvalSums {
        double loss = 0, loss_later = 0;
        int64_t targets = 0, targets_later = 0, correct = 0, correct_later = 0;
    };
    void evaluate(const int32_t *tokens, const int32_t *targets, const std::vector<int64_t> &segment_lens,
                  bool reset_memory, EvalSums &sums);

private:
    struct Segment {
        real *x0, *dx_head;
        std::vector<LayerState> state;
        std::vector<LayerActs> acts;
    };
    real *buffer(int64_t n);
    // Memory (from init_memory when asked), embeddings, every layer and the head
    // (xn_f in dxnf_, logits in logits_) of one segment onto its tape slot.
    // With `next`, each layer then writes the memory `next` reads (right after its
    // tokens, while its intermediates are still there when they are shared).
    void forward_segment(SegmentForward &fwd, Segment &sg, const int32_t *tokens, int64_t T, int64_t p,
                         bool from_init_memory, Segment *next);
    // Recomputation: layer l of segment k again, onto the shared buffers.
    void recompute_layer(SegmentForward &fwd, size_t k, size_t l, int64_t T, bool rewritten);
    void grow(size_t n_segments);
    void backward_layer(size_t k, size_t l, int64_t T, bool rewritten, const ModelWeights &G);
    real *own_or_shared(real *shared, int64_t n);  // a new buffer, or `shared` when recomputing

    ModelView m_;
    Stream &st_;
    Backend &be_;
    const bool recompute_;
    LayerState shared_state_{};  // recomputation: the intermediates of the layer in hand
    LayerActs shared_acts_{};
    real *shared_new_memory_ = nullptr, *shared_new_cell_ = nullptr;  // its rewrite, recomputed (discarded)
    std::vector<Segment> segs_;
    std::vector<real *> owned_;
    // Gradient scratch shared by every segment and layer.
    real *dx_, *dx_mid_, *dxn_, *dxn2_, *dq_, *dattn_, *dox_, *dk_, *dv_, *dtok_;
    real *dffn_a_, *dffn_b_, *dffn_h_, *logits_, *dxnf_;
    real *dmem_q_, *dmem_attn_, *dmem_out_, *dpooled_, *dmem_xn_, *dgi_, *dgh_, *dcat_, *dm_tmp_, *dc_tmp_;
    std::vector<real *> dm_next_, dc_next_;  // per layer: gradient of the memory (cell) the segment wrote
    const int32_t *tokens_ = nullptr;
    DropoutPlan drop_;  // of the sequence being run
};

}  // namespace rmkv
