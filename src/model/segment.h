// The forward pass of SPEC section 4, written once against the backend interface.
//
// Tokens of the current segment are processed in chunks (a whole segment for
// prefill and training, one token for decoding) against per-layer caches
// (LayerState), and the memory is rewritten from those caches when the segment
// ends. Where each intermediate goes is given by a LayerActs: in inference every
// layer points to one shared workspace (buffers alias, operations run in place);
// in training each segment and layer has its own buffers, kept for the backward
// pass (src/train/).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"
#include "model/weights.h"

namespace rmkv {

// What one stream of text carries for a layer between chunks. Sizes bounded by S.
// With B stacked sequences (training) each buffer holds B of them: memory, cell and
// mem_q B * M rows, keys and values B blocks of M + S rows, tok_out B * T rows.
struct LayerState {
    real *memory;  // [M, D]  m_l, the memory read by the current segment
    real *cell;    // [M, D]  c_l (lstm only, else NULL)
    real *keys;    // [M + S, Dkv]  memory rows, then token rows of the segment
    real *values;  // [M + S, Dkv]
    real *mem_q;   // [M, D]  queries of the memory rows
    real *tok_out; // [S, D]  O_x rows of the segment (pooled at the rewrite)
};

// Intermediates of one layer for a chunk of n tokens (rows) and for the memory
// update. Pointers may alias where noted for inference. With B stacked sequences
// (SegmentForward::stack, training) every [n, *] buffer holds B * n rows, sequence
// after sequence, and every [M, *] buffer B * M rows.
struct LayerActs {
    real *x_in;      // [n, D] input of the layer
    real *xn;        // [n, D] norm1(x_in)
    real *q;         // [n, D] queries after RoPE
    real *attn;      // [n, D] attention output, before Wo
    real *x_mid;     // [n, D] x_in + O_x (may alias x_in)
    real *xn2;       // [n, D] norm2(x_mid)
    real *ffn_a;     // [n, F] swiglu: gate(xn2)
    real *ffn_b;     // [n, F] up(xn2)
    real *ffn_h;     // [n, F] activation (may alias ffn_a)
    real *x_out;     // [n, D] output of the layer (may alias x_mid)
    real *mem_xn;    // [M, D] norm1(memory)
    real *mem_attn;  // [M, D] attention output of the memory rows, before Wo
    real *mem_out;   // [M, D] O_m
    real *pooled;    // [M, D] s, the attention pooling of O_x
    real *gates_i;   // [M, G*D] W_ih s + b_ih (minimal: W [h, s] + b)
    real *gates_h;   // [M, G*D] W_hh h + b_hh
    real *cat;       // [M, 2D] [h, s] (minimal)
    real *k_rows;    // stacked sequences only: [B * max(M, n), Dkv] new key rows, then
    real *v_rows;    //   value rows, on their way into each sequence's cache block
    // bf16 copies of the inputs of matrix products, written where they are made and
    // read by the products forward and backward (Backend's bf16 copies), in bf16
    // training; NULL elsewhere.
    uint16_t *xn16, *xn2_16, *ffn_h16, *mem_xn16;
    uint16_t *attn16, *mem_attn16;  // written by attention with its output, read by Wo's products
    uint16_t *cell_in16;            // [M, 2D]: minimal: cat's; else s's (pooled), then h's (mem_out)
};

// Scratch of an inference session: one set of buffers shared by every layer.
struct Workspace {
    real *x, *xn, *q, *attn, *h1, *h2;                    // [R, D] x4 (R = max(S, M)), [S, F] x2
    real *mem_out, *pooled, *gates_i, *gates_h, *cat;     // memory update, [M, *]
    real *logits;                                         // [V]
    LayerActs acts() const;                                // every layer on these buffers
};

// The layer states of one stream of text and a session's workspace (Workspace),
// each buffer from get(n): n reals of the backend's memory.
template <class Get>
void make_stream_buffers(const Config &c, Get &&get, std::vector<LayerState> &layers, Workspace &ws) {
    const int64_t M = c.memory_slots, D = c.d_model, S = c.segment_len, Dkv = c.d_kv(), F = c.ffn_hidden;
    const int64_t G = std::max<int64_t>(c.cell_gates(), 2), R = std::max(S, M);
    for (int64_t l = 0; l < c.n_layers; ++l) {
        LayerState s{};
        s.memory = get(M * D);
        s.cell = c.cell == Cell::lstm ? get(M * D) : nullptr;
        s.keys = get((M + S) * Dkv);
        s.values = get((M + S) * Dkv);
        s.mem_q = get(M * D);
        s.tok_out = get(S * D);
        layers.push_back(s);
    }
    ws.x = get(R * D), ws.xn = get(R * D), ws.q = get(R * D), ws.attn = get(R * D);
    ws.h1 = get(S * F), ws.h2 = get(S * F);
    ws.mem_out = get(M * D), ws.pooled = get(M * D);
    ws.gates_i = get(M * G * D), ws.gates_h = get(M * G * D), ws.cat = get(M * 2 * D);
    ws.logits = get(c.vocab_size);
}

// Scratch of decoding n streams of text together (one token row each).
struct RowsWorkspace {
    real *x, *xn, *q, *attn, *o;  // [n, D]
    real *k, *v;                  // [n, Dkv]
    real *h1, *h2;                // [n, F]
    real *logits;                 // [n, V]
    CacheRow *cache_rows;         // host [n]: each row's cache of the current layer
    real **row_dst;               // host [n]: each row's place in its tok_out
    int32_t *places;              // host [n]: each row's place in its segment (learned positions)
    int64_t *positions;           // host [n]: each row's position in its text (sincos)
};

// Scratch of the memory rewrites of up to k streams at once (rewrite_rows): every
// buffer k * M rows; gates [k * M, 4D] (lstm's four gates; minimal's two and its
// [h, s] concatenation fit too).
struct RewriteRowsWorkspace {
    real *mem_attn, *mem_out, *pooled, *memory, *cell;  // [k * M, D]
    real *gates_i, *gates_h;                           // [k * M, 4D]
    const real **from;                                 // host [4k]: each stream's buffers of a layer
    real **to;                                         // host [k]
};

// Row i of a decode together: its stream's layer states, segment offset and position.
struct DecodeRow {
    std::vector<LayerState> *layers;
    int64_t t0;
    int64_t p;
};

// What the model code reads of a model: its configuration, its weights and the
// backend they live on (rmkv_model::view()).
struct ModelView {
    const Config *cfg;
    const ModelWeights *w;
    Backend *be;
    const Config &config() const { return *cfg; }
    const ModelWeights &weights() const { return *w; }
    Backend &backend() const { return *be; }
};

// Dropout of a training sequence (SPEC section 4): attention probabilities, the
// outputs of Wo (token and memory rows) and of ffn.down. Each segment, layer and
// site has its own mask key, derived from the sequence's seed; p == 0 (inference)
// drops nothing. A training segment is one chunk, so element indices are those of
// the whole segment.
enum class DropSite : uint64_t { attn_tokens, attn_memory, wo_tokens, wo_memory, ffn_down };
struct DropoutPlan {
    float p = 0.0f;
    uint64_t seed = 0;
    Dropout at(int64_t segment, size_t layer, DropSite site) const {
        if (!(p > 0.0f)) return {};
        const uint64_t where = (static_cast<uint64_t>(segment) << 24) ^ (static_cast<uint64_t>(layer) << 8) ^
                               static_cast<uint64_t>(site);
        return {p, Dropout::mix(seed ^ Dropout::mix(where + 0x632be59bd9b4e019ull))};
    }
};

class SegmentForward {
public:
    SegmentForward(const ModelView &model, Stream &stream) : m_(model), st_(stream), be_(model.backend()) {}
    // Training: segment `segment` of n_seq sequences of equal segment lengths, their
    // rows stacked (LayerActs, LayerState): the norms, matrix products and row-wise
    // operations run once over all of them; RoPE, attention, pooling, the cache
    // blocks and dropout stay per sequence, sequence i with the masks of drops[i]
    // (NULL: none). Chunks start at segment offset 0 when n_seq > 1. Until set: one
    // sequence, no dropout.
    void stack(const DropoutPlan *drops, int64_t n_seq, int64_t segment) {
        drops_ = drops, n_seq_ = n_seq, segment_ = segment;
        if (drop_rows_.size() < static_cast<size_t>(n_seq)) drop_rows_.resize(static_cast<size_t>(n_seq));
    }

    // X[n, D] = embeddings of n tokens (host, validated) at segment offset t0, stream position p.
    void embed(real *x, const int32_t *tokens, int64_t n, int64_t t0, int64_t p);
    // Memory rows' norm, queries, keys and values (start of a segment).
    void layer_memory(size_t l, LayerState &s, const LayerActs &a);
    // One layer over n token rows at segment offset t0: a.x_in -> a.x_out, caches appended.
    void layer_tokens(size_t l, LayerState &s, const LayerActs &a, int64_t n, int64_t t0);
    // The memory update of layer l from a segment of T tokens: writes the new memory
    // to new_memory and (lstm) the new cell to new_cell (may alias s.memory / s.cell).
    void layer_rewrite(size_t l, const LayerState &s, const LayerActs &a, int64_t T, real *new_memory, real *new_cell);
    // xn_f[rows, D] = norm_f(x) (and its bf16 copy to xn_f16 unless NULL), logits[rows, V] = xn_f head^T.
    void head(const real *x, real *xn_f, real *logits, int64_t rows, uint16_t *xn_f16 = nullptr);

    // Inference conveniences over all layers with workspace buffers.
    void prepare_memory(std::vector<LayerState> &layers, Workspace &ws);
    // Logits: none (logits NULL), of the last token (logits [V]), or of every token
    // (all_rows, logits [n, V]).
    void tokens(std::vector<LayerState> &layers, Workspace &ws, const int32_t *tokens, int64_t n, int64_t t0,
                int64_t p, real *logits, bool all_rows);
    void rewrite_memory(std::vector<LayerState> &layers, Workspace &ws, int64_t T);
    // rewrite_memory of k streams that end a segment of T tokens together
    // (decoding together, no dropout): the matrix products and the cells over
    // their k * M memory rows stacked, attention and pooling per stream; the new
    // memories (and lstm cells) copied back into each stream's states.
    void rewrite_rows(std::vector<LayerState> *const *layers, int64_t k, const RewriteRowsWorkspace &ws, int64_t T);
    // prepare_memory of k streams at once: their memory rows' norm and products
    // stacked, the queries, keys and values copied back into each stream's states.
    void prepare_rows(std::vector<LayerState> *const *layers, int64_t k, const RewriteRowsWorkspace &ws);
    // One token for each of n streams of text (their memory rows prepared), every
    // matrix product shared by the n rows; attention and the caches per stream.
    // logits[n, V]: row i after tokens[i] (host, validated).
    void decode_rows(const DecodeRow *rows, int64_t n, const int32_t *tokens, const RowsWorkspace &ws, real *logits);

    // Rows of the key and value cache block of stacked sequence i.
    int64_t block_rows() const { return m_.config().memory_slots + m_.config().segment_len; }

    // The dropout of sequence i at a site of layer l in the segment set by stack()
    // (the backward draws the forward's masks from these too).
    Dropout drop(size_t l, DropSite site, int64_t i) const { return drops_ ? drops_[i].at(segment_, l, site) : Dropout{}; }
    // The dropouts of every stacked sequence at a site of layer l, for the stacked
    // seam operations (valid until the next call; NULL when no sequence drops).
    const Dropout *drops(size_t l, DropSite site) const {
        if (!dropping()) return nullptr;
        for (int64_t i = 0; i < n_seq_; ++i) drop_rows_[static_cast<size_t>(i)] = drop(l, site, i);
        return drop_rows_.data();
    }
    bool dropping() const {
        for (int64_t i = 0; drops_ && i < n_seq_; ++i)
            if (drops_[i].p > 0.0f) return true;
        return false;
    }
    // x[n_seq * n] *= dropout of `site`, each sequence's n elements with its own
    // mask; x16 (dropping only): NULL, or x's bf16 copy after.
    void drop_each(real *x, int64_t n, size_t l, DropSite site, uint16_t *x16 = nullptr) const;

private:
    // The backend's product with W in whichever form the model holds it (Matrix);
    // x16: x's bf16 copy or NULL.
    void linear(real *y, const real *x, const Matrix &W, const real *b, int64_t n, int64_t in, int64_t out,
                bool accumulate, const uint16_t *x16 = nullptr) const;
    // x[n, D] = tok_emb rows of n tokens (host, validated).
    void embed_rows(real *x, const int32_t *tokens, int64_t n) const;
    // Key and value rows of the n normalised rows per sequence in xn (bf16 copy
    // xn16 or NULL), into each sequence's cache block from row r0.
    void new_keys(const LayerWeights &w, LayerState &s, const LayerActs &a, const real *xn, const uint16_t *xn16,
                  int64_t n, int64_t r0);
    // norm2, the feed-forward block and its residual: a.x_mid -> a.x_out (n rows per sequence).
    void ffn_block(size_t l, const LayerActs &a, int64_t n);
    // The recurrent cell over `rows` memory rows (SPEC section 4, step 6): h = O_m,
    // s = the pooled rows; its gate products into gates_i / gates_h (minimal: [h, s]
    // in cat); new_cell / cell for lstm only (may alias). in16: NULL, or the bf16
    // copies of the products' inputs to write and read (LayerActs::cell_in16).
    void cell_update(const LayerWeights &w, real *new_memory, real *new_cell, const real *cell, const real *h,
                     const real *s, real *cat, real *gates_i, real *gates_h, int64_t rows, uint16_t *in16 = nullptr);

    ModelView m_;
    Stream &st_;
    Backend &be_;
    const DropoutPlan *drops_ = nullptr;
    int64_t n_seq_ = 1;
    int64_t segment_ = 0;
    mutable std::vector<Dropout> drop_rows_;  // drops()
};

NormKind norm_kind(const Config &c);
CellKind cell_kind(const Config &c);

}  // namespace rmkv
