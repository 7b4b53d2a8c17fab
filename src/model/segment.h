// The forward pass of SPEC section 4, written once against the backend interface:
// tokens of the current segment are processed in chunks (a whole segment for
// prefill, one token for decoding) against per-layer caches, and the memory is
// rewritten from those caches when the segment ends.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "model/model.h"

namespace rmkv {

// Everything one stream of text carries on a backend. Sizes are bounded by S.
struct LayerState {
    float *memory;  // [M, D]  m_l, the memory read by the current segment
    float *cell;    // [M, D]  c_l (lstm only, else NULL)
    float *keys;    // [M + S, Dkv]  memory rows, then token rows of the segment
    float *values;  // [M + S, Dkv]
    float *mem_q;   // [M, D]  queries of the memory rows
    float *tok_out; // [S, D]  O_x rows of the segment (pooled at the rewrite)
};

// Scratch for one chunk of up to S tokens; allocated once per session.
struct Workspace {
    float *x, *xn, *q, *attn, *h1, *h2;  // [S, D] x4, [S, F] x2
    float *mem_out, *pooled, *gates_i, *gates_h, *cat, *new_memory;  // memory update, [M, *]
    float *logits;  // [V]
};

class SegmentForward {
public:
    SegmentForward(const rmkv_model &model, Stream &stream) : m_(model), st_(stream), be_(model.backend()) {}

    // Computes the memory rows' queries, keys and values from each layer's memory
    // (start of a segment).
    void prepare_memory(std::vector<LayerState> &layers, Workspace &ws);

    // Processes n tokens (host memory, validated) at segment offset t0 and stream
    // position p. Logits: none (logits NULL), of the last token (logits [V]), or of
    // every token (all_rows, logits [n, V]).
    void tokens(std::vector<LayerState> &layers, Workspace &ws, const int32_t *tokens, int64_t n, int64_t t0,
                int64_t p, float *logits, bool all_rows);

    // Rewrites every layer's memory (and LSTM cell) from a segment of T tokens.
    void rewrite_memory(std::vector<LayerState> &layers, Workspace &ws, int64_t T);

private:
    const rmkv_model &m_;
    Stream &st_;
    Backend &be_;
};

}  // namespace rmkv
