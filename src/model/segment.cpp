#include "model/segment.h"

namespace rmkv {

namespace {
NormKind norm_kind(const Config &c) { return c.norm == Norm::layernorm ? NormKind::layernorm : NormKind::rmsnorm; }
CellKind cell_kind(const Config &c) {
    return c.cell == Cell::gru ? CellKind::gru : c.cell == Cell::lstm ? CellKind::lstm : CellKind::minimal;
}
}  // namespace

void SegmentForward::prepare_memory(std::vector<LayerState> &layers, Workspace &ws) {
    const Config &c = m_.config();
    const int64_t M = c.memory_slots, D = c.d_model, Dkv = c.d_kv();
    const float eps = static_cast<float>(c.norm_eps);
    for (size_t l = 0; l < layers.size(); ++l) {
        const LayerWeights &w = m_.weights().layers[l];
        LayerState &s = layers[l];
        be_.norm(st_, norm_kind(c), ws.xn, s.memory, w.norm1_w, w.norm1_b, M, D, eps);
        be_.linear(st_, s.mem_q, ws.xn, w.wq, w.bq, M, D, D, false);
        be_.linear(st_, s.keys, ws.xn, w.wk, w.bk, M, D, Dkv, false);
        be_.linear(st_, s.values, ws.xn, w.wv, w.bv, M, D, Dkv, false);
    }
}

void SegmentForward::tokens(std::vector<LayerState> &layers, Workspace &ws, const int32_t *tokens, int64_t n,
                            int64_t t0, int64_t p, float *logits, bool all_rows) {
    const Config &c = m_.config();
    const ModelWeights &W = m_.weights();
    const int64_t M = c.memory_slots, D = c.d_model, Dkv = c.d_kv(), F = c.ffn_hidden;
    const int64_t H = c.n_heads, Hkv = c.n_kv_heads, hd = c.head_dim();
    const float eps = static_cast<float>(c.norm_eps), theta = static_cast<float>(c.rope_theta);

    be_.embed(st_, ws.x, W.tok_emb, tokens, n, D);
    if (c.pos == Pos::learned) be_.add(st_, ws.x, W.pos_emb + t0 * D, n * D);
    if (c.pos == Pos::sincos) be_.add_sincos(st_, ws.x, n, D, p);

    for (size_t l = 0; l < layers.size(); ++l) {
        const LayerWeights &w = W.layers[l];
        LayerState &s = layers[l];
        float *k_new = s.keys + (M + t0) * Dkv, *v_new = s.values + (M + t0) * Dkv;
        be_.norm(st_, norm_kind(c), ws.xn, ws.x, w.norm1_w, w.norm1_b, n, D, eps);
        be_.linear(st_, ws.q, ws.xn, w.wq, w.bq, n, D, D, false);
        be_.linear(st_, k_new, ws.xn, w.wk, w.bk, n, D, Dkv, false);
        be_.linear(st_, v_new, ws.xn, w.wv, w.bv, n, D, Dkv, false);
        if (c.pos == Pos::rope) {
            be_.rope(st_, ws.q, n, D, H, hd, t0, theta);
            be_.rope(st_, k_new, n, Dkv, Hkv, hd, t0, theta);
        }
        be_.attention(st_, ws.attn, ws.q, s.keys, s.values, n, M + t0 + n, Dkv, H, Hkv, hd, M + t0);
        float *o_x = s.tok_out + t0 * D;
        be_.linear(st_, o_x, ws.attn, w.wo, w.bo, n, D, D, false);
        be_.add(st_, ws.x, o_x, n * D);
        if (c.ffn != Ffn::none) {
            be_.norm(st_, norm_kind(c), ws.xn, ws.x, w.norm2_w, w.norm2_b, n, D, eps);
            be_.linear(st_, ws.h2, ws.xn, w.ffn_up, nullptr, n, D, F, false);
            if (c.ffn == Ffn::swiglu) {
                be_.linear(st_, ws.h1, ws.xn, w.ffn_gate, nullptr, n, D, F, false);
                be_.swiglu(st_, ws.h1, ws.h1, ws.h2, n * F);
            } else {
                be_.gelu(st_, ws.h1, ws.h2, n * F);
            }
            be_.linear(st_, ws.x, ws.h1, w.ffn_down, nullptr, n, F, D, true);
        }
    }
    if (logits) {
        const int64_t rows = all_rows ? n : 1;
        const float *first = ws.x + (n - rows) * D;
        be_.norm(st_, norm_kind(c), ws.xn, first, W.norm_f_w, W.norm_f_b, rows, D, eps);
        be_.linear(st_, logits, ws.xn, W.head, nullptr, rows, D, c.vocab_size, false);
    }
}

void SegmentForward::rewrite_memory(std::vector<LayerState> &layers, Workspace &ws, int64_t T) {
    const Config &c = m_.config();
    const int64_t M = c.memory_slots, D = c.d_model, Dkv = c.d_kv(), G = c.cell_gates();
    const int64_t H = c.n_heads, Hkv = c.n_kv_heads, hd = c.head_dim();
    for (size_t l = 0; l < layers.size(); ++l) {
        const LayerWeights &w = m_.weights().layers[l];
        LayerState &s = layers[l];
        // O_m: memory rows attend to every memory and token row of the segment.
        be_.attention(st_, ws.attn, s.mem_q, s.keys, s.values, M, M + T, Dkv, H, Hkv, hd, M + T);
        be_.linear(st_, ws.mem_out, ws.attn, w.wo, w.bo, M, D, D, false);
        be_.pool(st_, ws.pooled, w.pool_query, s.tok_out, M, T, D);
        if (c.cell == Cell::minimal) {
            be_.concat_cols(st_, ws.cat, ws.mem_out, ws.pooled, M, D);
            be_.linear(st_, ws.gates_i, ws.cat, w.cell_w, w.cell_b, M, 2 * D, 2 * D, false);
            be_.cell(st_, CellKind::minimal, ws.new_memory, nullptr, ws.gates_i, nullptr, ws.mem_out, M, D);
        } else {
            be_.linear(st_, ws.gates_i, ws.pooled, w.cell_wih, w.cell_bih, M, D, G * D, false);
            be_.linear(st_, ws.gates_h, ws.mem_out, w.cell_whh, w.cell_bhh, M, D, G * D, false);
            be_.cell(st_, cell_kind(c), ws.new_memory, s.cell, ws.gates_i, ws.gates_h, ws.mem_out, M, D);
        }
        be_.copy(st_, s.memory, ws.new_memory, M * D);
    }
}

}  // namespace rmkv
