#include "train/sequence_pass.h"

#include <algorithm>

#include "core/error.h"

namespace rmkv {

SequencePass::SequencePass(const ModelView &model, Stream &stream, bool recompute, int64_t stack, Bf16Copies copies)
    : m_(model),
      st_(stream),
      be_(model.backend()),
      recompute_(recompute),
      copies_(copies),
      stack_(std::max<int64_t>(stack, 1)) {
    const Config &c = m_.config();
    const int64_t B = stack_, Dkv = c.d_kv(), F = c.ffn_hidden;
    // Every size below counts the rows of all stacked sequences.
    const int64_t M = B * c.memory_slots, D = c.d_model, S = B * c.segment_len, KV = B * (c.memory_slots + c.segment_len);
    const int64_t G = std::max<int64_t>(c.cell_gates(), 2), V = c.vocab_size;
    try {
        dx_ = buffer(S * D), dxn_ = buffer(S * D), dxn2_ = buffer(S * D);
        dq_ = buffer(S * D), dattn_ = buffer(S * D), dox_ = buffer(S * D);
        // dtok_, dmem_out_ and dpooled_ in one block: one fill clears them.
        dtok_ = buffer((S + 2 * M) * D), dmem_out_ = dtok_ + S * D, dpooled_ = dmem_out_ + M * D;
        dk_ = buffer(2 * KV * Dkv), dv_ = dk_ + KV * Dkv;  // one block: one fill clears both
        dffn_a_ = input_buffer(S * F), dffn_b_ = input_buffer(S * F), dffn_h_ = buffer(S * F);
        logits_ = buffer(S * V), dxnf_ = input_buffer(S * D);
        dffn_a16_ = c.ffn == Ffn::swiglu ? buffer16(S * F) : nullptr;
        dffn_b16_ = c.ffn != Ffn::none ? buffer16(S * F) : nullptr;
        dgi16_ = buffer16(M * G * D), dgh16_ = c.cell != Cell::minimal ? buffer16(M * G * D) : nullptr;
        dres16_ = buffer16(S * D);
        if ((dq16_ = buffer16((S + M) * (D + 2 * Dkv)))) {  // token rows' dq, dk, dv, then the memory rows'
            dk16_ = dq16_ + S * D, dv16_ = dk16_ + S * Dkv;
            dmem_q16_ = dv16_ + S * Dkv, dk_mem16_ = dmem_q16_ + M * D, dv_mem16_ = dk_mem16_ + M * Dkv;
        }
        dxnf16_ = buffer16(S * D), dlogits16_ = buffer16(S * V);
        dmem_q_ = buffer(M * D), dmem_attn_ = buffer(M * D);
        dmem_xn_ = buffer(M * D), dgi_ = buffer(M * G * D), dgh_ = buffer(M * G * D), dcat_ = buffer(M * 2 * D);
        dc_tmp_ = buffer(M * D);
        if (B > 1) k_rows_ = buffer(std::max(M, S) * Dkv), v_rows_ = buffer(std::max(M, S) * Dkv);
        for (int64_t l = 0; l < c.n_layers; ++l) {
            dm_next_.push_back(buffer(M * D));
            dc_next_.push_back(buffer(M * D));
        }
        if (recompute_) {
            const bool ffn = c.ffn != Ffn::none;
            LayerState &s = shared_state_;
            s.keys = buffer(KV * Dkv), s.values = buffer(KV * Dkv), s.mem_q = buffer(M * D);
            s.tok_out = buffer(S * D);
            LayerActs &a = shared_acts_;
            a.xn = input_buffer(S * D), a.q = buffer(S * D), a.attn = buffer(S * D), a.x_mid = buffer(S * D);
            a.xn2 = ffn ? input_buffer(S * D) : nullptr;
            a.ffn_a = c.ffn == Ffn::swiglu ? buffer(S * F) : nullptr;
            a.ffn_b = ffn ? buffer(S * F) : nullptr;
            a.ffn_h = ffn ? input_buffer(S * F) : nullptr;
            a.x_out = buffer(S * D);  // the recomputed output (the tape keeps the original)
            a.mem_xn = input_buffer(M * D), a.mem_attn = buffer(M * D), a.mem_out = buffer(M * D);
            a.pooled = buffer(M * D);
            a.gates_i = buffer(M * G * D), a.gates_h = buffer(M * G * D), a.cat = buffer(M * 2 * D);
            a.xn16 = buffer16(S * D), a.mem_xn16 = buffer16(M * D);
            a.attn16 = buffer16(S * D), a.mem_attn16 = buffer16(M * D), a.cell_in16 = buffer16(M * 2 * D);
            a.xn2_16 = ffn ? buffer16(S * D) : nullptr;
            a.ffn_h16 = ffn ? buffer16(S * F) : nullptr;
            shared_new_memory_ = buffer(M * D), shared_new_cell_ = buffer(M * D);
        } else if (!fp32_inputs()) {
            // With copies only, the fp32 values of these products' inputs are read
            // once, right after they are written: one buffer each for every layer and segment.
            LayerActs &a = shared_acts_;
            a.attn = buffer(S * D), a.mem_attn = buffer(M * D), a.pooled = buffer(M * D), a.cat = buffer(M * 2 * D);
        }
    } catch (...) {
        for (real *p : owned_) be_.free(p);
        for (uint16_t *p : owned16_) be_.free_bf16(p);
        throw;
    }
}

SequencePass::~SequencePass() {
    for (real *p : owned_) be_.free(p);
    for (uint16_t *p : owned16_) be_.free_bf16(p);
}

real *SequencePass::buffer(int64_t n) {
    owned_.push_back(nullptr);
    owned_.back() = be_.alloc(static_cast<size_t>(std::max<int64_t>(n, 1)));
    return owned_.back();
}

uint16_t *SequencePass::buffer16(int64_t n) {
    if (copies_ == Bf16Copies::off) return nullptr;
    owned16_.push_back(nullptr);
    owned16_.back() = be_.alloc_bf16(static_cast<size_t>(std::max<int64_t>(n, 1)));
    return owned16_.back();
}

real *SequencePass::own_or_shared(real *shared, int64_t n) { return recompute_ ? shared : buffer(n); }
uint16_t *SequencePass::own_or_shared16(uint16_t *shared, int64_t n) { return recompute_ ? shared : buffer16(n); }

void SequencePass::grow(size_t n_segments) {
    const Config &c = m_.config();
    const int64_t B = stack_, Dkv = c.d_kv(), F = c.ffn_hidden;
    const int64_t M = B * c.memory_slots, D = c.d_model, S = B * c.segment_len, KV = B * (c.memory_slots + c.segment_len);
    const int64_t G = std::max<int64_t>(c.cell_gates(), 2);
    const bool ffn = c.ffn != Ffn::none;
    while (segs_.size() < n_segments) {
        Segment sg;
        sg.x0 = buffer(S * D);
        sg.dx_head = buffer(S * D);
        for (int64_t l = 0; l < c.n_layers; ++l) {
            LayerState s{};
            s.memory = buffer(M * D);
            s.cell = c.cell == Cell::lstm ? buffer(M * D) : nullptr;
            // Kept per segment and layer in any case: the memory read, the layer's output.
            const LayerState &ss = shared_state_;
            s.keys = own_or_shared(ss.keys, KV * Dkv);
            s.values = own_or_shared(ss.values, KV * Dkv);
            s.mem_q = own_or_shared(ss.mem_q, M * D);
            s.tok_out = own_or_shared(ss.tok_out, S * D);
            const LayerActs &sa = shared_acts_;
            LayerActs a{};
            a.x_in = l == 0 ? sg.x0 : sg.acts.back().x_out;
            a.xn = product_input(sa.xn, S * D), a.q = own_or_shared(sa.q, S * D);
            a.attn = copied(sa.attn, S * D), a.x_mid = own_or_shared(sa.x_mid, S * D);
            a.xn2 = ffn ? product_input(sa.xn2, S * D) : nullptr;
            a.ffn_a = c.ffn == Ffn::swiglu ? own_or_shared(sa.ffn_a, S * F) : nullptr;
            a.ffn_b = ffn ? own_or_shared(sa.ffn_b, S * F) : nullptr;
            a.ffn_h = ffn ? product_input(sa.ffn_h, S * F) : nullptr;
            a.x_out = buffer(S * D);
            a.mem_xn = product_input(sa.mem_xn, M * D), a.mem_attn = copied(sa.mem_attn, M * D);
            a.mem_out = own_or_shared(sa.mem_out, M * D), a.pooled = copied(sa.pooled, M * D);
            a.gates_i = own_or_shared(sa.gates_i, M * G * D), a.gates_h = own_or_shared(sa.gates_h, M * G * D);
            a.cat = copied(sa.cat, M * 2 * D);
            a.k_rows = k_rows_, a.v_rows = v_rows_;
            a.xn16 = own_or_shared16(sa.xn16, S * D), a.mem_xn16 = own_or_shared16(sa.mem_xn16, M * D);
            a.attn16 = own_or_shared16(sa.attn16, S * D), a.mem_attn16 = own_or_shared16(sa.mem_attn16, M * D);
            a.cell_in16 = own_or_shared16(sa.cell_in16, M * 2 * D);
            a.xn2_16 = ffn ? own_or_shared16(sa.xn2_16, S * D) : nullptr;
            a.ffn_h16 = ffn ? own_or_shared16(sa.ffn_h16, S * F) : nullptr;
            sg.state.push_back(s);
            sg.acts.push_back(a);
        }
        segs_.push_back(std::move(sg));
    }
}

void SequencePass::gather(const int32_t *tokens, const int32_t *targets, int64_t n_seq, int64_t stride,
                          const std::vector<int64_t> &lens) {
    if (n_seq < 1 || n_seq > stack_)
        fail(RMKV_ERR_INTERNAL, n_seq, " sequences for a pass made for at most ", stack_);
    n_seq_ = n_seq;
    int64_t n = 0;
    for (int64_t T : lens) n += T;
    tok_.resize(static_cast<size_t>(n_seq * n));
    tgt_.resize(static_cast<size_t>(n_seq * n));
    int64_t p = 0;
    for (int64_t T : lens) {
        for (int64_t i = 0; i < n_seq; ++i) {
            const size_t to = static_cast<size_t>(n_seq * p + i * T);
            std::copy(tokens + i * stride + p, tokens + i * stride + p + T, tok_.begin() + static_cast<std::ptrdiff_t>(to));
            std::copy(targets + i * stride + p, targets + i * stride + p + T, tgt_.begin() + static_cast<std::ptrdiff_t>(to));
        }
        p += T;
    }
}

void SequencePass::forward_segment(SegmentForward &fwd, Segment &sg, const int32_t *tokens, int64_t T, int64_t p,
                                   bool from_init_memory, Segment *next) {
    const Config &c = m_.config();
    const ModelWeights &W = m_.weights();
    const int64_t M = c.memory_slots, D = c.d_model;
    const size_t L = static_cast<size_t>(c.n_layers);
    if (from_init_memory)
        for (size_t l = 0; l < L; ++l) {
            for (int64_t i = 0; i < n_seq_; ++i) be_.copy(st_, sg.state[l].memory + i * M * D, W.layers[l].init_memory, M * D);
            if (sg.state[l].cell) be_.fill(st_, sg.state[l].cell, 0.0f, static_cast<size_t>(n_seq_ * M * D));
        }
    fwd.embed(sg.x0, tokens, T, 0, p);
    for (size_t l = 0; l < L; ++l) {
        fwd.layer_memory(l, sg.state[l], sg.acts[l]);
        fwd.layer_tokens(l, sg.state[l], sg.acts[l], T, 0);
        if (next) fwd.layer_rewrite(l, sg.state[l], sg.acts[l], T, next->state[l].memory, next->state[l].cell);
    }
    fwd.head(sg.acts[L - 1].x_out, dxnf_, logits_, n_seq_ * T, dxnf16_);
}

void SequencePass::run(const int32_t *tokens, const int32_t *targets, int64_t n_seq, int64_t stride,
                       const std::vector<int64_t> &lens, const ModelWeights &G, float scale, const DropoutPlan *dropout) {
    gather(tokens, targets, n_seq, stride, lens);
    grow(lens.size());
    // The whole pass is one recorded unit where the backend records (CUDA graphs:
    // a pass is a few thousand launches): queue_run only queues work on st_.
    run_recorded(be_, st_, [&] { queue_run(lens, G, scale, dropout); });
}

void SequencePass::queue_run(const std::vector<int64_t> &lens, const ModelWeights &G, float scale,
                             const DropoutPlan *dropout) {
    const Config &c = m_.config();
    const ModelWeights &W = m_.weights();
    const int64_t M = c.memory_slots, D = c.d_model, V = c.vocab_size;
    const size_t K = lens.size(), L = static_cast<size_t>(c.n_layers);
    SegmentForward fwd(m_, st_);
    const int64_t B = n_seq_;

    // Forward, keeping everything.
    int64_t p = 0;
    for (size_t k = 0; k < K; ++k) {
        Segment &sg = segs_[k];
        const int64_t T = lens[k], rows = B * T;
        fwd.stack(dropout, B, static_cast<int64_t>(k));
        forward_segment(fwd, sg, tok_.data() + B * p, T, p, k == 0, k + 1 < K ? &segs_[k + 1] : nullptr);
        // Loss of this segment; its gradient reaches the last layer's output now.
        be_.cross_entropy(st_, logits_, logits_, tgt_.data() + B * p, rows, V, scale, dlogits16_);
        be_.linear_backward(st_, dx_, false, G.head.f32, nullptr, logits_, dxnf_, W.head.f32, rows, D, V, dxnf16_,
                            dlogits16_);
        be_.fill(st_, sg.dx_head, 0.0f, static_cast<size_t>(rows * D));
        be_.norm_backward(st_, norm_kind(c), sg.dx_head, G.norm_f_w, G.norm_f_b, dx_, sg.acts[L - 1].x_out, W.norm_f_w,
                          rows, D, static_cast<float>(c.norm_eps));
        p += T;
    }

    // Backward, segment by segment in reverse, each through its layers in reverse.
    for (size_t l = 0; l < L; ++l) {
        be_.fill(st_, dm_next_[l], 0.0f, static_cast<size_t>(B * M * D));
        be_.fill(st_, dc_next_[l], 0.0f, static_cast<size_t>(B * M * D));
    }
    for (size_t k = K; k-- > 0;) {
        p -= lens[k];
        const int64_t T = lens[k];
        be_.copy(st_, dx_, segs_[k].dx_head, B * T * D);
        fwd.stack(dropout, B, static_cast<int64_t>(k));
        for (size_t l = L; l-- > 0;) {
            if (recompute_) recompute_layer(fwd, k, l, T, k + 1 < K);
            backward_layer(fwd, k, l, T, k + 1 < K, G);
        }
        // dx_ now holds the gradient of the embeddings.
        if (G.tok_emb.f32) be_.embed_backward(st_, G.tok_emb.f32, dx_, tok_.data() + B * p, B * T, D);
        if (c.pos == Pos::learned && G.pos_emb) be_.add_rows(st_, G.pos_emb, dx_, B, T * D);
    }
    for (size_t l = 0; l < L; ++l) be_.add_rows(st_, G.layers[l].init_memory, dm_next_[l], B, M * D);
}

void SequencePass::evaluate(const int32_t *tokens, const int32_t *targets, int64_t n_seq, int64_t stride,
                            const std::vector<int64_t> &lens, bool reset_memory, EvalSums &sums) {
    const Config &c = m_.config();
    const int64_t V = c.vocab_size;
    const size_t K = lens.size();
    gather(tokens, targets, n_seq, stride, lens);
    grow(2);
    SegmentForward fwd(m_, st_);
    const int64_t B = n_seq_;
    std::vector<real> logits_host;
    int64_t p = 0;
    for (size_t k = 0; k < K; ++k) {
        // Two tape slots, alternating: segment k reads the memory segment k-1 wrote.
        Segment &sg = segs_[k % 2];
        Segment &next = segs_[(k + 1) % 2];
        const int64_t T = lens[k], rows = B * T;
        fwd.stack(nullptr, B, static_cast<int64_t>(k));
        forward_segment(fwd, sg, tok_.data() + B * p, T, p, k == 0 || reset_memory, k + 1 < K ? &next : nullptr);
        logits_host.resize(static_cast<size_t>(rows * V));
        be_.to_host(st_, logits_host.data(), logits_, logits_host.size());
        be_.sync(st_);
        const int32_t *tgt = tgt_.data() + B * p;
        be_.cross_entropy(st_, logits_, logits_, tgt, rows, V, 0.0f);
        const double loss = be_.take_loss(st_);
        int64_t n = 0, correct = 0;
        for (int64_t t = 0; t < rows; ++t) {
            if (tgt[t] < 0) continue;
            const real *row = logits_host.data() + t * V;
            n++;
            correct += std::max_element(row, row + V) - row == tgt[t];
        }
        sums.loss += loss, sums.targets += n, sums.correct += correct;
        if (k >= 1) sums.loss_later += loss, sums.targets_later += n, sums.correct_later += correct;
        p += T;
    }
}

// The intermediates of layer l of segment k, from its input and the memory it read
// (both on the tape), onto the shared buffers that segs_[k] points to. The
// recomputed output and memory rewrite go to buffers of their own.
void SequencePass::recompute_layer(SegmentForward &fwd, size_t k, size_t l, int64_t T, bool rewritten) {
    LayerState s = segs_[k].state[l];
    LayerActs a = segs_[k].acts[l];
    a.x_out = shared_acts_.x_out;
    fwd.layer_memory(l, s, a);
    fwd.layer_tokens(l, s, a, T, 0);
    if (rewritten) fwd.layer_rewrite(l, s, a, T, shared_new_memory_, s.cell ? shared_new_cell_ : nullptr);
}

// On entry dx_ holds the gradient of this layer's output (x_out) and, when the
// segment rewrote memory, dm_next_[l] / dc_next_[l] that of the memory it wrote.
// On exit dx_ holds the gradient of the layer's input and dm_next_[l] / dc_next_[l]
// that of the memory (cell) the segment read. Every sequence of the run at once:
// rows are stacked as in the forward.
void SequencePass::backward_layer(const SegmentForward &fwd, size_t k, size_t l, int64_t T, bool rewritten,
                                  const ModelWeights &Gw) {
    const Config &c = m_.config();
    const int64_t M = c.memory_slots, D = c.d_model, Dkv = c.d_kv(), F = c.ffn_hidden, Gc = c.cell_gates();
    const int64_t H = c.n_heads, Hkv = c.n_kv_heads, hd = c.head_dim();
    const float eps = static_cast<float>(c.norm_eps), theta = static_cast<float>(c.rope_theta);
    const LayerWeights &w = m_.weights().layers[l];
    const LayerWeights &g = Gw.layers[l];
    const LayerState &s = segs_[k].state[l];
    const LayerActs &a = segs_[k].acts[l];
    const NormKind nk = norm_kind(c);
    const int64_t B = n_seq_, rows = B * T, mrows = B * M, block = fwd.block_rows() * Dkv;

    // dk_ and dv_ are one block of the pass's whole stack, and so are dtok_, dmem_out_ and dpooled_.
    be_.fill(st_, dk_, 0.0f, static_cast<size_t>(2 * stack_ * block));

    // 1. The memory update (only when this segment wrote a memory someone read).
    if (rewritten) {
        be_.fill(st_, dtok_, 0.0f, static_cast<size_t>(stack_ * (c.segment_len + 2 * M) * D));
        if (c.cell == Cell::minimal) {
            be_.cell_backward(st_, CellKind::minimal, dgi_, nullptr, dmem_out_, nullptr, dm_next_[l], nullptr, nullptr,
                              a.gates_i, nullptr, a.mem_out, mrows, D, dgi16_);
            be_.linear_backward(st_, dcat_, false, g.cell_w.f32, g.cell_b, dgi_, a.cat, w.cell_w.f32, mrows, 2 * D, 2 * D,
                                a.cell_in16, dgi16_);
            be_.split_cols_add(st_, dmem_out_, dpooled_, dcat_, mrows, D);
        } else {
            be_.cell_backward(st_, cell_kind(c), dgi_, dgh_, dmem_out_, dc_tmp_, dm_next_[l],
                              c.cell == Cell::lstm ? dc_next_[l] : nullptr, s.cell, a.gates_i, a.gates_h, a.mem_out, mrows,
                              D, dgi16_, dgh16_);
            const uint16_t *h16 = a.cell_in16 ? a.cell_in16 + mrows * D : nullptr;
            be_.linear_backward(st_, dpooled_, false, g.cell_wih.f32, g.cell_bih, dgi_, a.pooled, w.cell_wih.f32, mrows, D,
                                Gc * D, a.cell_in16, dgi16_);
            be_.linear_backward(st_, dmem_out_, true, g.cell_whh.f32, g.cell_bhh, dgh_, a.mem_out, w.cell_whh.f32, mrows,
                                D, Gc * D, h16, dgh16_);
        }
        be_.pool_stacked_backward(st_, dtok_, g.pool_query, dpooled_, w.pool_query, s.tok_out, M, T, D, B);
        fwd.drop_each(dmem_out_, M * D, l, DropSite::wo_memory);
        be_.linear_backward(st_, dmem_attn_, false, g.wo.f32, g.bo, dmem_out_, a.mem_attn, w.wo.f32, mrows, D, D,
                            a.mem_attn16);
        be_.attention_stacked_backward(st_, dmem_q_, dk_, dv_, dmem_attn_, s.mem_q, s.keys, s.values, M, M + T, Dkv, H,
                                       Hkv, hd, M + T, B, block, fwd.drops(l, DropSite::attn_memory));
    }

    // 2. Feed-forward: x_out = x_mid + down(h). dx_ becomes the gradient of x_mid
    // (norm2's backward adds to it). res16: dres16_ holds dx_'s copy (written with
    // dx_ by the norm1 backward of the layer above, or by norm2's here; the top
    // layer's dx_ comes from the head, without one).
    const bool dropping = fwd.dropping();
    const size_t L = static_cast<size_t>(c.n_layers);
    bool res16 = dres16_ && l + 1 < L;
    if (c.ffn != Ffn::none) {
        const real *ddown = dx_;  // gradient of down(h), through its dropout
        const uint16_t *ddown16 = res16 ? dres16_ : nullptr;
        if (dropping) {  // (dres16_: the dropped gradient's copy now)
            be_.copy(st_, dox_, dx_, rows * D);
            fwd.drop_each(dox_, T * D, l, DropSite::ffn_down, dres16_);
            ddown = dox_, ddown16 = dres16_;
        }
        be_.linear_backward(st_, dffn_h_, false, g.ffn_down.f32, nullptr, ddown, a.ffn_h, w.ffn_down.f32, rows, F, D,
                            a.ffn_h16, ddown16);
        if (c.ffn == Ffn::swiglu) {
            be_.swiglu_backward(st_, dffn_a_, dffn_b_, dffn_h_, a.ffn_a, a.ffn_b, rows * F, dffn_a16_, dffn_b16_);
            be_.linear_backward(st_, dxn2_, false, g.ffn_gate.f32, nullptr, dffn_a_, a.xn2, w.ffn_gate.f32, rows, D, F,
                                a.xn2_16, dffn_a16_);
            be_.linear_backward(st_, dxn2_, true, g.ffn_up.f32, nullptr, dffn_b_, a.xn2, w.ffn_up.f32, rows, D, F,
                                a.xn2_16, dffn_b16_);
        } else {
            be_.gelu_backward(st_, dffn_b_, dffn_h_, a.ffn_b, rows * F, dffn_b16_);
            be_.linear_backward(st_, dxn2_, false, g.ffn_up.f32, nullptr, dffn_b_, a.xn2, w.ffn_up.f32, rows, D, F,
                                a.xn2_16, dffn_b16_);
        }
        // Wo's gradient below is dx_ itself only without a rewrite and dropout: then its copy.
        res16 = dres16_ && !rewritten && !dropping;
        be_.norm_backward(st_, nk, dx_, g.norm2_w, g.norm2_b, dxn2_, a.x_mid, w.norm2_w, rows, D, eps,
                          res16 ? dres16_ : nullptr);
    }

    // 3. Attention of the token rows: x_mid = x_in + O_x, O_x also pooled (dtok_,
    // when rewritten); dx_ becomes the gradient of x_in (norm1's backward adds to it).
    const real *dox = dx_;
    uint16_t *dox16 = res16 ? dres16_ : nullptr;
    if (rewritten || dropping) {  // dox_'s copy from the add, or after the dropout
        dox16 = dres16_;
        if (rewritten) be_.add(st_, dox_, dx_, dtok_, rows * D, dropping ? nullptr : dox16);
        else be_.copy(st_, dox_, dx_, rows * D);
        fwd.drop_each(dox_, T * D, l, DropSite::wo_tokens, dropping ? dox16 : nullptr);
        dox = dox_;
    }
    be_.linear_backward(st_, dattn_, false, g.wo.f32, g.bo, dox, a.attn, w.wo.f32, rows, D, D, a.attn16, dox16);
    be_.attention_stacked_backward(st_, dq_, dk_, dv_, dattn_, a.q, s.keys, s.values, T, M + T, Dkv, H, Hkv, hd, M, B,
                                   block, fwd.drops(l, DropSite::attn_tokens));
    if (c.pos == Pos::rope) {
        be_.rope_stacked(st_, dq_, T, D, H, hd, 0, theta, true, B, T * D);
        be_.rope_stacked(st_, dk_ + M * Dkv, T, Dkv, Hkv, hd, 0, theta, true, B, block);
    }
    // Every gradient that reaches the q, k and v products is whole here (the
    // memory rows' too): their bf16 copies in one go, the key and value rows out
    // of their blocks.
    if (dq16_) {
        const Bf16Blocks parts[] = {
            {dq16_, dq_, rows * D, rows * D, 1},
            {dk16_, dk_ + M * Dkv, block, T * Dkv, B},
            {dv16_, dv_ + M * Dkv, block, T * Dkv, B},
            {dk_mem16_, dk_, block, M * Dkv, B},
            {dv_mem16_, dv_, block, M * Dkv, B},
            {dmem_q16_, dmem_q_, mrows * D, mrows * D, 1},  // (last: only when rewritten)
        };
        be_.to_bf16_blocks(st_, parts, rewritten ? 6 : 5);
    }
    // The q, k and v biases' gradients, from the token rows then the memory rows,
    // straight out of the key and value blocks.
    {
        ColumnSums parts[6];
        size_t n = 0;
        auto sum = [&](real *db, const real *dy, int64_t pitch, int64_t r, int64_t count, int64_t width) {
            if (db) parts[n++] = {db, dy, pitch, r, count, width};
        };
        sum(g.bq, dq_, rows * D, rows, 1, D);
        sum(g.bk, dk_ + M * Dkv, block, T, B, Dkv);
        sum(g.bv, dv_ + M * Dkv, block, T, B, Dkv);
        if (rewritten) sum(g.bq, dmem_q_, mrows * D, mrows, 1, D);
        sum(g.bk, dk_, block, M, B, Dkv);
        sum(g.bv, dv_, block, M, B, Dkv);
        be_.add_column_sums(st_, parts, n);
    }
    // The key and value rows' gradients, out of the blocks (stacked runs), for
    // products that take fp32 gradients (with copies only, none does).
    const bool fp32_dy = copies_ != Bf16Copies::instead_of_fp32;
    const real *dk_tok = dk_ + M * Dkv, *dv_tok = dv_ + M * Dkv;
    if (B > 1) {
        dk_tok = dv_tok = nullptr;
        if (fp32_dy) {
            be_.copy_blocks(st_, k_rows_, T * Dkv, dk_ + M * Dkv, block, T * Dkv, B);
            be_.copy_blocks(st_, v_rows_, T * Dkv, dv_ + M * Dkv, block, T * Dkv, B);
            dk_tok = k_rows_, dv_tok = v_rows_;
        }
    }
    be_.linear_backward(st_, dxn_, false, g.wq.f32, nullptr, dq_, a.xn, w.wq.f32, rows, D, D, a.xn16, dq16_);
    be_.linear_backward(st_, dxn_, true, g.wk.f32, nullptr, dk_tok, a.xn, w.wk.f32, rows, D, Dkv, a.xn16, dk16_);
    be_.linear_backward(st_, dxn_, true, g.wv.f32, nullptr, dv_tok, a.xn, w.wv.f32, rows, D, Dkv, a.xn16, dv16_);
    // dx_, the gradient of the layer below's output, with its copy for that layer's products.
    be_.norm_backward(st_, nk, dx_, g.norm1_w, g.norm1_b, dxn_, a.x_in, w.norm1_w, rows, D, eps,
                      l > 0 ? dres16_ : nullptr);

    // 4. The memory rows: their queries (when rewritten), keys and values came from norm1(memory).
    const real *dk_mem = dk_, *dv_mem = dv_;
    if (B > 1) {
        dk_mem = dv_mem = nullptr;
        if (fp32_dy) {
            be_.copy_blocks(st_, k_rows_, M * Dkv, dk_, block, M * Dkv, B);
            be_.copy_blocks(st_, v_rows_, M * Dkv, dv_, block, M * Dkv, B);
            dk_mem = k_rows_, dv_mem = v_rows_;
        }
    }
    if (rewritten)
        be_.linear_backward(st_, dmem_xn_, false, g.wq.f32, nullptr, dmem_q_, a.mem_xn, w.wq.f32, mrows, D, D,
                            a.mem_xn16, dmem_q16_);
    be_.linear_backward(st_, dmem_xn_, rewritten, g.wk.f32, nullptr, dk_mem, a.mem_xn, w.wk.f32, mrows, D, Dkv,
                        a.mem_xn16, dk_mem16_);
    be_.linear_backward(st_, dmem_xn_, true, g.wv.f32, nullptr, dv_mem, a.mem_xn, w.wv.f32, mrows, D, Dkv, a.mem_xn16,
                        dv_mem16_);
    // (dm_next_[l], the gradient of the memory this segment wrote, was read in 1.)
    be_.fill(st_, dm_next_[l], 0.0f, static_cast<size_t>(mrows * D));
    be_.norm_backward(st_, nk, dm_next_[l], g.norm1_w, g.norm1_b, dmem_xn_, s.memory, w.norm1_w, mrows, D, eps);
    if (c.cell == Cell::lstm) {
        // The cell state read by this segment only reaches its own memory update.
        if (rewritten) be_.copy(st_, dc_next_[l], dc_tmp_, mrows * D);
        else be_.fill(st_, dc_next_[l], 0.0f, static_cast<size_t>(mrows * D));
    }
}

}  // namespace rmkv
