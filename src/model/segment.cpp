#include "model/segment.h"

namespace rmkv {

namespace {

// Buffer `field` of layer l of each of k streams of text, into `to` (host [k]).
real **each_stream(std::vector<LayerState> *const *layers, int64_t k, size_t l, real *LayerState::*field, real **to) {
    for (int64_t i = 0; i < k; ++i) to[i] = (*layers[i])[l].*field;
    return to;
}

}  // namespace

NormKind norm_kind(const Config &c) { return c.norm == Norm::layernorm ? NormKind::layernorm : NormKind::rmsnorm; }
CellKind cell_kind(const Config &c) {
    return c.cell == Cell::gru ? CellKind::gru : c.cell == Cell::lstm ? CellKind::lstm : CellKind::minimal;
}

LayerActs Workspace::acts() const {
    LayerActs a{};
    a.x_in = a.x_mid = a.x_out = x;
    a.xn = a.xn2 = a.mem_xn = xn;
    a.q = q;
    a.attn = a.mem_attn = attn;
    a.ffn_a = a.ffn_h = h1;
    a.ffn_b = h2;
    a.mem_out = mem_out;
    a.pooled = pooled;
    a.gates_i = gates_i;
    a.gates_h = gates_h;
    a.cat = cat;
    return a;
}

void SegmentForward::linear(real *y, const real *x, const Matrix &W, const real *b, int64_t n, int64_t in, int64_t out,
                            bool accumulate, const uint16_t *x16) const {
    if (W.w16.data)
        be_.linear_w16(st_, y, x, W.w16.data, W.w16.half, b, n, in, out, accumulate);
    else
        be_.linear(st_, y, x, W.f32, b, n, in, out, accumulate, x16);
}

void SegmentForward::embed_rows(real *x, const int32_t *tokens, int64_t n) const {
    const Matrix &E = m_.weights().tok_emb;
    if (E.w16.data)
        be_.embed_w16(st_, x, E.w16.data, E.w16.half, tokens, n, m_.config().d_model);
    else
        be_.embed(st_, x, E.f32, tokens, n, m_.config().d_model);
}

void SegmentForward::embed(real *x, const int32_t *tokens, int64_t n, int64_t t0, int64_t p) {
    const Config &c = m_.config();
    const int64_t D = c.d_model;
    embed_rows(x, tokens, n_seq_ * n);
    for (int64_t i = 0; i < n_seq_; ++i) {
        real *xi = x + i * n * D;
        if (c.pos == Pos::learned) be_.add(st_, xi, xi, m_.weights().pos_emb + t0 * D, n * D);
        if (c.pos == Pos::sincos) be_.add_sincos(st_, xi, n, D, p);
    }
}

void SegmentForward::drop_each(real *x, int64_t n, size_t l, DropSite site, uint16_t *x16) const {
    if (const Dropout *d = drops(l, site)) be_.dropout_stacked(st_, x, n, d, n_seq_, x16);
}

void SegmentForward::new_keys(const LayerWeights &w, LayerState &s, const LayerActs &a, const real *xn,
                              const uint16_t *xn16, int64_t n, int64_t r0) {
    const Config &c = m_.config();
    const int64_t D = c.d_model, Dkv = c.d_kv();
    if (n_seq_ == 1) {
        linear(s.keys + r0 * Dkv, xn, w.wk, w.bk, n, D, Dkv, false, xn16);
        linear(s.values + r0 * Dkv, xn, w.wv, w.bv, n, D, Dkv, false, xn16);
        return;
    }
    // Both products first (they share the input's conversion), then the copies.
    linear(a.k_rows, xn, w.wk, w.bk, n_seq_ * n, D, Dkv, false, xn16);
    linear(a.v_rows, xn, w.wv, w.bv, n_seq_ * n, D, Dkv, false, xn16);
    const int64_t pitch = block_rows() * Dkv;
    be_.copy_blocks(st_, s.keys + r0 * Dkv, pitch, a.k_rows, n * Dkv, n * Dkv, n_seq_);
    be_.copy_blocks(st_, s.values + r0 * Dkv, pitch, a.v_rows, n * Dkv, n * Dkv, n_seq_);
}

void SegmentForward::layer_memory(size_t l, LayerState &s, const LayerActs &a) {
    const Config &c = m_.config();
    const int64_t M = c.memory_slots, D = c.d_model;
    const LayerWeights &w = m_.weights().layers[l];
    const int64_t rows = n_seq_ * M;
    be_.norm(st_, norm_kind(c), a.mem_xn, s.memory, w.norm1_w, w.norm1_b, rows, D, static_cast<float>(c.norm_eps),
             a.mem_xn16);
    linear(s.mem_q, a.mem_xn, w.wq, w.bq, rows, D, D, false, a.mem_xn16);
    new_keys(w, s, a, a.mem_xn, a.mem_xn16, M, 0);
}

void SegmentForward::layer_tokens(size_t l, LayerState &s, const LayerActs &a, int64_t n, int64_t t0) {
    const Config &c = m_.config();
    const int64_t M = c.memory_slots, D = c.d_model, Dkv = c.d_kv();
    const int64_t H = c.n_heads, Hkv = c.n_kv_heads, hd = c.head_dim();
    const float eps = static_cast<float>(c.norm_eps);
    const LayerWeights &w = m_.weights().layers[l];
    const int64_t rows = n_seq_ * n, block = block_rows() * Dkv;
    be_.norm(st_, norm_kind(c), a.xn, a.x_in, w.norm1_w, w.norm1_b, rows, D, eps, a.xn16);
    linear(a.q, a.xn, w.wq, w.bq, rows, D, D, false, a.xn16);
    new_keys(w, s, a, a.xn, a.xn16, n, M + t0);
    if (c.pos == Pos::rope) {
        const float theta = static_cast<float>(c.rope_theta);
        be_.rope_stacked(st_, a.q, n, D, H, hd, t0, theta, false, n_seq_, n * D);
        be_.rope_stacked(st_, s.keys + (M + t0) * Dkv, n, Dkv, Hkv, hd, t0, theta, false, n_seq_, block);
    }
    be_.attention_stacked(st_, a.attn, a.q, s.keys, s.values, n, M + t0 + n, Dkv, H, Hkv, hd, M + t0, n_seq_, block,
                          drops(l, DropSite::attn_tokens), a.attn16);
    real *o_x = s.tok_out + t0 * D;
    linear(o_x, a.attn, w.wo, w.bo, rows, D, D, false, a.attn16);
    drop_each(o_x, n * D, l, DropSite::wo_tokens);  // O_x as the residual and the pooling see it
    be_.add(st_, a.x_mid, a.x_in, o_x, rows * D);
    ffn_block(l, a, n);
}

void SegmentForward::ffn_block(size_t l, const LayerActs &a, int64_t n) {
    const Config &c = m_.config();
    const int64_t D = c.d_model, F = c.ffn_hidden;
    const LayerWeights &w = m_.weights().layers[l];
    const int64_t rows = n_seq_ * n;
    be_.copy(st_, a.x_out, a.x_mid, rows * D);
    if (c.ffn == Ffn::none) return;
    be_.norm(st_, norm_kind(c), a.xn2, a.x_mid, w.norm2_w, w.norm2_b, rows, D, static_cast<float>(c.norm_eps),
             a.xn2_16);
    linear(a.ffn_b, a.xn2, w.ffn_up, nullptr, rows, D, F, false, a.xn2_16);
    if (c.ffn == Ffn::swiglu) {
        linear(a.ffn_a, a.xn2, w.ffn_gate, nullptr, rows, D, F, false, a.xn2_16);
        be_.swiglu(st_, a.ffn_h, a.ffn_a, a.ffn_b, rows * F, a.ffn_h16);
    } else {
        be_.gelu(st_, a.ffn_h, a.ffn_b, rows * F, a.ffn_h16);
    }
    if (!dropping()) {
        linear(a.x_out, a.ffn_h, w.ffn_down, nullptr, rows, F, D, true, a.ffn_h16);
        return;
    }
    // Training with dropout (x_out has its own buffer): x_out = x_mid + dropout(down(h)).
    linear(a.x_out, a.ffn_h, w.ffn_down, nullptr, rows, F, D, false, a.ffn_h16);
    drop_each(a.x_out, n * D, l, DropSite::ffn_down);
    be_.add(st_, a.x_out, a.x_out, a.x_mid, rows * D);
}

void SegmentForward::layer_rewrite(size_t l, const LayerState &s, const LayerActs &a, int64_t T, real *new_memory,
                                   real *new_cell) {
    const Config &c = m_.config();
    const int64_t M = c.memory_slots, D = c.d_model, Dkv = c.d_kv();
    const int64_t H = c.n_heads, Hkv = c.n_kv_heads, hd = c.head_dim();
    const LayerWeights &w = m_.weights().layers[l];
    const int64_t rows = n_seq_ * M, block = block_rows() * Dkv;
    // O_m: memory rows attend to every memory and token row of the segment.
    be_.attention_stacked(st_, a.mem_attn, s.mem_q, s.keys, s.values, M, M + T, Dkv, H, Hkv, hd, M + T, n_seq_, block,
                          drops(l, DropSite::attn_memory), a.mem_attn16);
    linear(a.mem_out, a.mem_attn, w.wo, w.bo, rows, D, D, false, a.mem_attn16);
    drop_each(a.mem_out, M * D, l, DropSite::wo_memory);
    be_.pool_stacked(st_, a.pooled, w.pool_query, s.tok_out, M, T, D, n_seq_);
    cell_update(w, new_memory, new_cell, s.cell, a.mem_out, a.pooled, a.cat, a.gates_i, a.gates_h, rows, a.cell_in16);
}

void SegmentForward::cell_update(const LayerWeights &w, real *new_memory, real *new_cell, const real *cell,
                                 const real *h, const real *s, real *cat, real *gates_i, real *gates_h, int64_t rows,
                                 uint16_t *in16) {
    const Config &c = m_.config();
    const int64_t D = c.d_model, G = c.cell_gates();
    if (c.cell == Cell::minimal) {
        be_.concat_cols(st_, cat, h, s, rows, D, in16);
        linear(gates_i, cat, w.cell_w, w.cell_b, rows, 2 * D, 2 * D, false, in16);
        be_.cell(st_, CellKind::minimal, new_memory, nullptr, nullptr, gates_i, nullptr, h, rows, D);
    } else {
        uint16_t *h16 = nullptr;
        if (in16) {  // kept for the backward's products
            h16 = in16 + rows * D;
            be_.to_bf16(st_, in16, s, static_cast<size_t>(rows * D));
            be_.to_bf16(st_, h16, h, static_cast<size_t>(rows * D));
        }
        linear(gates_i, s, w.cell_wih, w.cell_bih, rows, D, G * D, false, in16);
        linear(gates_h, h, w.cell_whh, w.cell_bhh, rows, D, G * D, false, h16);
        be_.cell(st_, cell_kind(c), new_memory, new_cell, cell, gates_i, gates_h, h, rows, D);
    }
}

void SegmentForward::head(const real *x, real *xn_f, real *logits, int64_t rows, uint16_t *xn_f16) {
    const Config &c = m_.config();
    const ModelWeights &W = m_.weights();
    be_.norm(st_, norm_kind(c), xn_f, x, W.norm_f_w, W.norm_f_b, rows, c.d_model, static_cast<float>(c.norm_eps),
             xn_f16);
    linear(logits, xn_f, W.head, nullptr, rows, c.d_model, c.vocab_size, false, xn_f16);
}

void SegmentForward::prepare_memory(std::vector<LayerState> &layers, Workspace &ws) {
    const LayerActs a = ws.acts();
    for (size_t l = 0; l < layers.size(); ++l) layer_memory(l, layers[l], a);
}

void SegmentForward::tokens(std::vector<LayerState> &layers, Workspace &ws, const int32_t *tokens, int64_t n,
                            int64_t t0, int64_t p, real *logits, bool all_rows) {
    const LayerActs a = ws.acts();
    embed(ws.x, tokens, n, t0, p);
    for (size_t l = 0; l < layers.size(); ++l) layer_tokens(l, layers[l], a, n, t0);
    if (logits) {
        const int64_t rows = all_rows ? n : 1;
        head(ws.x + (n - rows) * m_.config().d_model, ws.xn, logits, rows);
    }
}

void SegmentForward::decode_rows(const DecodeRow *rows, int64_t n, const int32_t *tokens, const RowsWorkspace &ws,
                                 real *logits) {
    const Config &c = m_.config();
    const ModelWeights &W = m_.weights();
    const int64_t M = c.memory_slots, D = c.d_model, Dkv = c.d_kv();
    const int64_t H = c.n_heads, Hkv = c.n_kv_heads, hd = c.head_dim();
    const float theta = static_cast<float>(c.rope_theta);
    embed_rows(ws.x, tokens, n);
    // The rows' positions from host arrays (staged), not from arguments: a step's
    // operations keep their arguments from one token to the next.
    if (c.pos == Pos::learned) {
        for (int64_t i = 0; i < n; ++i) ws.places[i] = static_cast<int32_t>(rows[i].t0);
        be_.embed(st_, ws.o, W.pos_emb, ws.places, n, D);
        be_.add(st_, ws.x, ws.x, ws.o, n * D);
    }
    if (c.pos == Pos::sincos) {
        for (int64_t i = 0; i < n; ++i) ws.positions[i] = rows[i].p;
        be_.add_sincos_rows(st_, ws.x, ws.positions, n, D);
    }
    LayerActs a{};
    a.x_in = a.x_mid = a.x_out = ws.x;
    a.xn = a.xn2 = ws.xn;
    a.ffn_a = a.ffn_h = ws.h1;
    a.ffn_b = ws.h2;
    for (size_t l = 0; l < W.layers.size(); ++l) {
        const LayerWeights &w = W.layers[l];
        be_.norm(st_, norm_kind(c), ws.xn, ws.x, w.norm1_w, w.norm1_b, n, D, static_cast<float>(c.norm_eps));
        linear(ws.q, ws.xn, w.wq, w.bq, n, D, D, false);
        linear(ws.k, ws.xn, w.wk, w.bk, n, D, Dkv, false);
        linear(ws.v, ws.xn, w.wv, w.bv, n, D, Dkv, false);
        for (int64_t i = 0; i < n; ++i) {
            LayerState &s = (*rows[i].layers)[l];
            ws.cache_rows[i] = {s.keys, s.values, M + rows[i].t0, rows[i].t0};
            ws.row_dst[i] = s.tok_out + rows[i].t0 * D;
        }
        be_.decode_attention(st_, ws.attn, ws.q, ws.k, ws.v, ws.cache_rows, n, H, Hkv, hd, c.pos == Pos::rope, theta);
        linear(ws.o, ws.attn, w.wo, w.bo, n, D, D, false);
        be_.scatter_rows(st_, ws.row_dst, ws.o, n, D);
        be_.add(st_, ws.x, ws.x, ws.o, n * D);
        ffn_block(l, a, n);
    }
    head(ws.x, ws.xn, logits, n);
}

void SegmentForward::rewrite_rows(std::vector<LayerState> *const *layers, int64_t k, const RewriteRowsWorkspace &ws,
                                  int64_t T) {
    const Config &c = m_.config();
    const int64_t M = c.memory_slots, D = c.d_model;
    const int64_t H = c.n_heads, Hkv = c.n_kv_heads, hd = c.head_dim(), rows = k * M;
    const bool lstm = c.cell == Cell::lstm;
    const real **q = ws.from, **keys = ws.from + k, **values = ws.from + 2 * k, **x = ws.from + 3 * k;
    for (size_t l = 0; l < m_.weights().layers.size(); ++l) {
        const LayerWeights &w = m_.weights().layers[l];
        for (int64_t i = 0; i < k; ++i) {
            const LayerState &s = (*layers[i])[l];
            q[i] = s.mem_q, keys[i] = s.keys, values[i] = s.values, x[i] = s.tok_out;
        }
        be_.attention_rows(st_, ws.mem_attn, q, keys, values, k, M, M + T, H, Hkv, hd, M + T);
        be_.pool_rows(st_, ws.pooled, w.pool_query, x, k, M, T, D);
        if (lstm) be_.gather_rows(st_, ws.cell, each_stream(layers, k, l, &LayerState::cell, ws.to), k, M * D);
        linear(ws.mem_out, ws.mem_attn, w.wo, w.bo, rows, D, D, false);
        // minimal's [h, s] concatenation in gates_h, which it does not use
        cell_update(w, ws.memory, lstm ? ws.cell : nullptr, lstm ? ws.cell : nullptr, ws.mem_out, ws.pooled, ws.gates_h,
                    ws.gates_i, ws.gates_h, rows);
        be_.scatter_rows(st_, each_stream(layers, k, l, &LayerState::memory, ws.to), ws.memory, k, M * D);
        if (lstm) be_.scatter_rows(st_, each_stream(layers, k, l, &LayerState::cell, ws.to), ws.cell, k, M * D);
    }
}

void SegmentForward::prepare_rows(std::vector<LayerState> *const *layers, int64_t k, const RewriteRowsWorkspace &ws) {
    const Config &c = m_.config();
    const int64_t M = c.memory_slots, D = c.d_model, Dkv = c.d_kv(), rows = k * M;
    // ws.memory: the memory rows; mem_attn: their norm; mem_out: queries; gates_i /
    // gates_h: keys / values.
    for (size_t l = 0; l < m_.weights().layers.size(); ++l) {
        const LayerWeights &w = m_.weights().layers[l];
        be_.gather_rows(st_, ws.memory, each_stream(layers, k, l, &LayerState::memory, ws.to), k, M * D);
        be_.norm(st_, norm_kind(c), ws.mem_attn, ws.memory, w.norm1_w, w.norm1_b, rows, D, static_cast<float>(c.norm_eps));
        linear(ws.mem_out, ws.mem_attn, w.wq, w.bq, rows, D, D, false);
        linear(ws.gates_i, ws.mem_attn, w.wk, w.bk, rows, D, Dkv, false);
        linear(ws.gates_h, ws.mem_attn, w.wv, w.bv, rows, D, Dkv, false);
        be_.scatter_rows(st_, each_stream(layers, k, l, &LayerState::mem_q, ws.to), ws.mem_out, k, M * D);
        be_.scatter_rows(st_, each_stream(layers, k, l, &LayerState::keys, ws.to), ws.gates_i, k, M * Dkv);
        be_.scatter_rows(st_, each_stream(layers, k, l, &LayerState::values, ws.to), ws.gates_h, k, M * Dkv);
    }
}

void SegmentForward::rewrite_memory(std::vector<LayerState> &layers, Workspace &ws, int64_t T) {
    const LayerActs a = ws.acts();
    // The cell reads h = O_m, never the old memory, so the new memory can be
    // written over the old one.
    for (size_t l = 0; l < layers.size(); ++l) layer_rewrite(l, layers[l], a, T, layers[l].memory, layers[l].cell);
}

}  // namespace rmkv
