// Forward and backward of training sequences: K consecutive segments from the
// initial memory, their intermediates kept on a tape (one LayerActs/LayerState per
// segment and layer, see model/segment.h), then the gradients in reverse order,
// through each segment's layers and back through the memory (truncated BPTT over K).
// Up to `stack` sequences of equal segment lengths run together, their rows stacked
// (SegmentForward::stack): every matrix product and row-wise operation runs once
// for all of them, on stack times the rows.
//
// With recomputation (activation checkpointing per layer) the tape keeps, for each
// segment and layer, only the layer's output rows and the memory (cell) it read;
// every other intermediate lives in one set of buffers shared by all layers and
// segments, and is recomputed layer by layer just before that layer's backward
// (with the same dropout masks). Same gradients, about one more forward of compute,
// and activation memory that no longer grows with K x L x (ffn_hidden, heads, ...).
//
// In bf16 training the inputs of the matrix products that are made by a norm, an
// activation, attention, the cells' gradients or the cross-entropy are kept as
// bf16 copies, written by the operation that makes them and read by every product
// that takes them, forward and backward (Backend's bf16 copies): the same values,
// without a rounding pass before each product; and as only products read them,
// their fp32 values are neither written nor kept (Bf16Copies::instead_of_fp32;
// attention's, the pooling's and concat_cols's go to one buffer that every layer
// shares). The gradients that reach the q, k and v products are rounded in one
// go, and their biases' gradients summed in one go; the residual stream's
// gradient, which reaches Wo and ffn.down, gets its copy from the norm backward,
// the add or the dropout that makes it.
#pragma once

#include <cstdint>
#include <vector>

#include "model/segment.h"

namespace rmkv {

enum class Bf16Copies {
    off,              // fp32 training (or products that round their own inputs)
    beside_fp32,      // copies, and the fp32 values too (the tests: a backend without bf16 products checks the copies)
    instead_of_fp32,  // copies only: every product must take bf16 inputs (bf16 training: every matrix has a shadow)
};

class SequencePass {
public:
    // stack: the most sequences one run or evaluate takes (activation memory grows with it).
    // copies: how the products' inputs are kept (bf16 training: instead_of_fp32).
    SequencePass(const ModelView &model, Stream &stream, bool recompute = false, int64_t stack = 1,
                 Bf16Copies copies = Bf16Copies::off);
    ~SequencePass();
    SequencePass(const SequencePass &) = delete;
    SequencePass &operator=(const SequencePass &) = delete;

    // Adds to `grads` (one buffer per parameter, same order as model.params(); NULL
    // for a frozen parameter, whose gradient is then not computed, except
    // init_memory) the gradient of scale * (summed cross-entropy of this sequence),
    // and that summed loss (unscaled) to the stream's loss sum, which the caller
    // reads with Backend::take_loss (no waiting for the device here).
    // n_seq (1 .. stack) sequences: sequence i's n tokens and targets (host ints) at
    // tokens + i * stride, targets + i * stride; segment lens sum to n.
    // dropout[i]: rate and seed of sequence i's masks (NULL, or p == 0: none).
    void run(const int32_t *tokens, const int32_t *targets, int64_t n_seq, int64_t stride,
             const std::vector<int64_t> &segment_lens, const ModelWeights &grads, float scale,
             const DropoutPlan *dropout);
    // One sequence.
    void run(const int32_t *tokens, const int32_t *targets, const std::vector<int64_t> &segment_lens,
             const ModelWeights &grads, float scale, const DropoutPlan &dropout = {}) {
        run(tokens, targets, 1, 0, segment_lens, grads, scale, &dropout);
    }

    // Forward only. Sums of the loss and of correct argmax predictions over the
    // targets of all segments and of segments k >= 2 (index 1 on); with
    // reset_memory every segment starts from init_memory (the memory effect, SPEC 6).
    struct EvalSums {
        double loss = 0, loss_later = 0;
        int64_t targets = 0, targets_later = 0, correct = 0, correct_later = 0;
    };
    void evaluate(const int32_t *tokens, const int32_t *targets, int64_t n_seq, int64_t stride,
                  const std::vector<int64_t> &segment_lens, bool reset_memory, EvalSums &sums);
    void evaluate(const int32_t *tokens, const int32_t *targets, const std::vector<int64_t> &segment_lens,
                  bool reset_memory, EvalSums &sums) {
        evaluate(tokens, targets, 1, 0, segment_lens, reset_memory, sums);
    }
    int64_t stack() const { return stack_; }

private:
    struct Segment {
        real *x0, *dx_head;
        std::vector<LayerState> state;
        std::vector<LayerActs> acts;
    };
    // run's device work, after gather and grow: only queues operations on st_, so
    // that a failed recording may queue it again.
    void queue_run(const std::vector<int64_t> &lens, const ModelWeights &G, float scale, const DropoutPlan *dropout);
    real *buffer(int64_t n);
    uint16_t *buffer16(int64_t n);  // a bf16 copy's buffer with copies, else NULL
    // Sequence i's tokens and targets of segment k, one after the other for each
    // segment (segment k from n_seq * (its start)), into tok_/tgt_.
    void gather(const int32_t *tokens, const int32_t *targets, int64_t n_seq, int64_t stride,
                const std::vector<int64_t> &lens);
    // Memory (from init_memory when asked), embeddings, every layer and the head
    // (xn_f in dxnf_, logits in logits_) of one segment of n_seq_ sequences (tokens
    // stacked, host) onto its tape slot.
    // With `next`, each layer then writes the memory `next` reads (right after its
    // tokens, while its intermediates are still there when they are shared).
    void forward_segment(SegmentForward &fwd, Segment &sg, const int32_t *tokens, int64_t T, int64_t p,
                         bool from_init_memory, Segment *next);
    // Recomputation: layer l of segment k again, onto the shared buffers.
    void recompute_layer(SegmentForward &fwd, size_t k, size_t l, int64_t T, bool rewritten);
    void grow(size_t n_segments);
    // fwd: stacked for segment k (its dropout masks).
    void backward_layer(const SegmentForward &fwd, size_t k, size_t l, int64_t T, bool rewritten, const ModelWeights &G);
    real *own_or_shared(real *shared, int64_t n);  // a new buffer, or `shared` when recomputing
    uint16_t *own_or_shared16(uint16_t *shared, int64_t n);
    // The fp32 buffer of a product's input that has a copy (none with copies only):
    // a new one, and on the tape own_or_shared's.
    real *input_buffer(int64_t n) { return fp32_inputs() ? buffer(n) : nullptr; }
    real *product_input(real *shared, int64_t n) { return fp32_inputs() ? own_or_shared(shared, n) : nullptr; }
    // The fp32 buffer of a product's input written with its copy by an operation
    // that needs an fp32 output (attention, pooling, concat_cols): with copies
    // only, `shared` (read at once, then only the copy), else on the tape.
    real *copied(real *shared, int64_t n) { return fp32_inputs() ? own_or_shared(shared, n) : shared; }
    bool fp32_inputs() const { return copies_ != Bf16Copies::instead_of_fp32; }

    ModelView m_;
    Stream &st_;
    Backend &be_;
    const bool recompute_;
    const Bf16Copies copies_;
    const int64_t stack_;
    LayerState shared_state_{};  // recomputation: the intermediates of the layer in hand
    LayerActs shared_acts_{};
    real *shared_new_memory_ = nullptr, *shared_new_cell_ = nullptr;  // its rewrite, recomputed (discarded)
    std::vector<Segment> segs_;
    std::vector<real *> owned_;
    std::vector<uint16_t *> owned16_;
    // Gradient scratch shared by every segment and layer.
    real *dx_, *dxn_, *dxn2_, *dq_, *dattn_, *dox_, *dk_, *dv_, *dtok_;
    real *dffn_a_, *dffn_b_, *dffn_h_, *logits_, *dxnf_;
    real *dmem_q_, *dmem_attn_, *dmem_out_, *dpooled_, *dmem_xn_, *dgi_, *dgh_, *dcat_, *dc_tmp_;
    real *k_rows_ = nullptr, *v_rows_ = nullptr;  // stack > 1: key/value rows to and from the cache blocks
    // bf16 copies (NULL without copies) of dffn_a_, dffn_b_, dxnf_ (those three
    // fp32 buffers: none with copies only) and of the gradient written over logits_
    uint16_t *dffn_a16_ = nullptr, *dffn_b16_ = nullptr, *dxnf16_ = nullptr, *dlogits16_ = nullptr;
    uint16_t *dgi16_ = nullptr, *dgh16_ = nullptr;  // copies of dgi_ and dgh_ (those kept too: the cells' bias gradients)
    // The copy of the residual stream's gradient dx_ (or of dox_, what reaches Wo
    // and ffn.down): written by a norm's backward, the add or the dropout that makes it.
    uint16_t *dres16_ = nullptr;
    // Copies of the q, k, v products' output gradients: dq_, the token rows of dk_
    // and dv_, dmem_q_, the memory rows of dk_ and dv_ (rows in the products' order).
    uint16_t *dq16_ = nullptr, *dk16_ = nullptr, *dv16_ = nullptr;
    uint16_t *dmem_q16_ = nullptr, *dk_mem16_ = nullptr, *dv_mem16_ = nullptr;
    std::vector<real *> dm_next_, dc_next_;  // per layer: gradient of the memory (cell) the segment wrote
    std::vector<int32_t> tok_, tgt_;         // the run's tokens and targets, stacked (gather)
    int64_t n_seq_ = 1;                      // sequences in the run
};

}  // namespace rmkv
