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

// A tensor kept in a 16-bit format, as stored in a BF16 or F16 file.
struct HalfTensor {
    const uint16_t *data = nullptr;
    Half half = Half::bf16;
};

// A matrix of the model (the products' weights and tok_emb): fp32, or, in a model
// kept as stored from a BF16 or F16 file for inference (rmkv_model), w16 with f32
// NULL. Training views (weights, gradients) always have f32.
struct Matrix {
    real *f32 = nullptr;
    HalfTensor w16;
    explicit operator bool() const { return f32 != nullptr || w16.data != nullptr; }
};

// Whether a tensor of the spec may stay 16-bit in an inference model (Matrix).
bool is_matrix(const ParamSpec &spec);

struct LayerWeights {
    real *init_memory;                       // [M, D]
    real *norm1_w, *norm1_b;                 // [D]; norm1_b NULL for rmsnorm
    Matrix wq, wk, wv, wo;
    real *bq, *bk, *bv, *bo;
    real *pool_query;                        // [M, D]
    Matrix cell_wih, cell_whh;               // gru/lstm
    real *cell_bih, *cell_bhh;
    Matrix cell_w;                           // minimal: [2D, 2D], bias [2D]
    real *cell_b;
    real *norm2_w, *norm2_b;                 // with an ffn
    Matrix ffn_gate, ffn_up, ffn_down;       // gate: swiglu only
};

struct ModelWeights {
    Matrix tok_emb;  // [V, D]
    real *pos_emb;   // [S, D], learned only
    std::vector<LayerWeights> layers;
    real *norm_f_w, *norm_f_b;
    Matrix head;     // [V, D]; == tok_emb when tied
};

// Builds the structured view from one pointer per spec (same order as param_specs)
// and, where `kept` (same order, or empty) has data, the 16-bit form of a matrix.
ModelWeights bind_weights(const Config &c, const std::vector<ParamSpec> &specs, const std::vector<real *> &ptrs,
                          const std::vector<HalfTensor> &kept = {});

}  // namespace rmkv
