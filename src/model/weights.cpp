#include "model/weights.h"

#include <cmath>
#include <map>

#include "core/error.h"
#include "core/rng.h"

namespace rmkv {

std::vector<ParamSpec> param_specs(const Config &c) {
    const int64_t V = c.vocab_size, D = c.d_model, M = c.memory_slots, S = c.segment_len, F = c.ffn_hidden;
    const int64_t Dkv = c.d_kv(), G = c.cell_gates();
    const bool ln = c.norm == Norm::layernorm;
    std::vector<ParamSpec> s;
    auto add = [&](std::string name, std::vector<int64_t> shape, Init init, bool decay) {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        s.push_back({std::move(name), std::move(shape), n, init, decay});
    };
    add("tok_emb.weight", {V, D}, Init::normal, false);
    if (c.pos == Pos::learned) add("pos_emb.weight", {S, D}, Init::normal, false);
    for (int64_t l = 0; l < c.n_layers; ++l) {
        std::string p = "layers." + std::to_string(l) + ".";
        add(p + "init_memory", {M, D}, Init::normal, false);
        add(p + "norm1.weight", {D}, Init::ones, false);
        if (ln) add(p + "norm1.bias", {D}, Init::zeros, false);
        add(p + "attn.q.weight", {D, D}, Init::normal, true);
        add(p + "attn.q.bias", {D}, Init::zeros, false);
        add(p + "attn.k.weight", {Dkv, D}, Init::normal, true);
        add(p + "attn.k.bias", {Dkv}, Init::zeros, false);
        add(p + "attn.v.weight", {Dkv, D}, Init::normal, true);
        add(p + "attn.v.bias", {Dkv}, Init::zeros, false);
        add(p + "attn.o.weight", {D, D}, Init::normal_out, true);
        add(p + "attn.o.bias", {D}, Init::zeros, false);
        add(p + "pool.query", {M, D}, Init::normal, false);
        if (c.cell == Cell::minimal) {
            add(p + "cell.weight", {2 * D, 2 * D}, Init::uniform_cell, true);
            add(p + "cell.bias", {2 * D}, Init::zeros, false);
        } else {
            add(p + "cell.weight_ih", {G * D, D}, Init::uniform_cell, true);
            add(p + "cell.weight_hh", {G * D, D}, Init::uniform_cell, true);
            add(p + "cell.bias_ih", {G * D}, Init::uniform_cell, false);
            add(p + "cell.bias_hh", {G * D}, Init::uniform_cell, false);
        }
        if (c.ffn != Ffn::none) {
            add(p + "norm2.weight", {D}, Init::ones, false);
            if (ln) add(p + "norm2.bias", {D}, Init::zeros, false);
            if (c.ffn == Ffn::swiglu) add(p + "ffn.gate.weight", {F, D}, Init::normal, true);
            add(p + "ffn.up.weight", {F, D}, Init::normal, true);
            add(p + "ffn.down.weight", {D, F}, Init::normal_out, true);
        }
    }
    add("norm_f.weight", {D}, Init::ones, false);
    if (ln) add("norm_f.bias", {D}, Init::zeros, false);
    if (!c.tie_embeddings) add("head.weight", {V, D}, Init::normal, true);
    return s;
}

void init_param(const ParamSpec &spec, const Config &c, uint64_t seed, size_t index, real *out) {
    Rng rng(seed, 0x9e3779b97f4a7c15ull * (index + 1));
    const double std_in = 0.02;
    const double std_out = 0.02 / std::sqrt(2.0 * static_cast<double>(c.n_layers));
    const double bound = 1.0 / std::sqrt(static_cast<double>(c.d_model));
    for (int64_t i = 0; i < spec.numel; ++i) {
        switch (spec.init) {
        case Init::normal: out[i] = static_cast<real>(std_in * rng.normal()); break;
        case Init::normal_out: out[i] = static_cast<real>(std_out * rng.normal()); break;
        case Init::uniform_cell: out[i] = static_cast<real>(bound * (2.0 * rng.uniform() - 1.0)); break;
        case Init::zeros: out[i] = 0.0f; break;
        case Init::ones: out[i] = 1.0f; break;
        }
    }
}

bool is_matrix(const ParamSpec &spec) { return spec.shape.size() == 2 && (spec.decay || spec.name == "tok_emb.weight"); }

ModelWeights bind_weights(const Config &c, const std::vector<ParamSpec> &specs, const std::vector<real *> &ptrs,
                          const std::vector<HalfTensor> &kept) {
    std::map<std::string, size_t> by_name;
    for (size_t i = 0; i < specs.size(); ++i) by_name[specs[i].name] = i;
    auto get = [&](const std::string &name) -> real * {
        auto it = by_name.find(name);
        return it == by_name.end() ? nullptr : ptrs[it->second];
    };
    auto mat = [&](const std::string &name) -> Matrix {
        auto it = by_name.find(name);
        if (it == by_name.end()) return {};
        if (kept.empty() || !kept[it->second].data) return {ptrs[it->second], {}};
        return {ptrs[it->second], kept[it->second]};
    };
    ModelWeights w{};
    w.tok_emb = mat("tok_emb.weight");
    w.pos_emb = get("pos_emb.weight");
    for (int64_t l = 0; l < c.n_layers; ++l) {
        std::string p = "layers." + std::to_string(l) + ".";
        LayerWeights L{};
        L.init_memory = get(p + "init_memory");
        L.norm1_w = get(p + "norm1.weight");
        L.norm1_b = get(p + "norm1.bias");
        L.wq = mat(p + "attn.q.weight"), L.bq = get(p + "attn.q.bias");
        L.wk = mat(p + "attn.k.weight"), L.bk = get(p + "attn.k.bias");
        L.wv = mat(p + "attn.v.weight"), L.bv = get(p + "attn.v.bias");
        L.wo = mat(p + "attn.o.weight"), L.bo = get(p + "attn.o.bias");
        L.pool_query = get(p + "pool.query");
        L.cell_wih = mat(p + "cell.weight_ih"), L.cell_whh = mat(p + "cell.weight_hh");
        L.cell_bih = get(p + "cell.bias_ih"), L.cell_bhh = get(p + "cell.bias_hh");
        L.cell_w = mat(p + "cell.weight"), L.cell_b = get(p + "cell.bias");
        L.norm2_w = get(p + "norm2.weight"), L.norm2_b = get(p + "norm2.bias");
        L.ffn_gate = mat(p + "ffn.gate.weight"), L.ffn_up = mat(p + "ffn.up.weight"), L.ffn_down = mat(p + "ffn.down.weight");
        w.layers.push_back(L);
    }
    w.norm_f_w = get("norm_f.weight");
    w.norm_f_b = get("norm_f.bias");
    w.head = c.tie_embeddings ? w.tok_emb : mat("head.weight");
    return w;
}

}  // namespace rmkv
