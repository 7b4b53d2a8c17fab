// The parameters of SPEC section 3: a table of named tensors in one canonical
// order (the order of the model file), and a structured view with a pointer per
// tensor for the forward code. Pointers are backend memory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/real.h"
#include "model/config.h"

namespace rmkv {

enum class Init { normal, normal_out, uniform_cell, zeros, ones };

struct ParamSpec {
    std::string name;
    std::vector<int64_t> shape;
    int64_t numel;
    Init init;
    bool decay;  // AdamW weight decay applies (not norms, biases, embeddings, init_memory, pool.query)
};

// Every tensor the config calls for, in file order.
std::vector<ParamSpec> param_specs(const Config &c);

// Fills `out` (numel of the spec) with the spec's initial values; deterministic in
// (seed, index of the tensor).
void init_param(const ParamSpec &spec, const Config &c, uint64_t seed, size_t index, real *out);

struct LayerWeights {
    real *init_memory;                       // [M, D]
    real *norm1_w, *norm1_b;                 // [D]; norm1_b NULL for rmsnorm
    real *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;
    real *pool_query;                        // [M, D]
    real *cell_wih, *cell_whh, *cell_bih, *cell_bhh;  // gru/lstm
    real *cell_w, *cell_b;                   // minimal: [2D, 2D], [2D]
    real *norm2_w, *norm2_b;                 // with an ffn
    real *ffn_gate, *ffn_up, *ffn_down;      // gate: swiglu only
};

struct ModelWeights {
    real *tok_emb;   // [V, D]
    real *pos_emb;   // [S, D], learned only
    std::vector<LayerWeights> layers;
    real *norm_f_w, *norm_f_b;
    real *head;      // [V, D]; == tok_emb when tied
};

// Builds the structured view from one pointer per spec (same order as param_specs).
ModelWeights bind_weights(const Config &c, const std::vector<ParamSpec> &specs, const std::vector<real *> &ptrs);

}  // namespace rmkv
