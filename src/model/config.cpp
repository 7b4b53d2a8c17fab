#include "model/config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace rmkv {

using json = nlohmann::json;

const char *to_string(Cell c) { return c == Cell::gru ? "gru" : c == Cell::lstm ? "lstm" : "minimal"; }
const char *to_string(Pos p) { return p == Pos::rope ? "rope" : p == Pos::learned ? "learned" : "sincos"; }
const char *to_string(Norm n) { return n == Norm::layernorm ? "layernorm" : "rmsnorm"; }
const char *to_string(Ffn f) { return f == Ffn::swiglu ? "swiglu" : f == Ffn::gelu ? "gelu" : "none"; }

namespace {

// Limits that keep every size computation far from overflow.
constexpr int64_t kMaxDim = 1 << 20;
constexpr int64_t kMaxVocab = 1 << 24;

struct Parser {
    const json &obj;
    rmkv_status status;

    [[noreturn]] void bad(const std::string &key, const json &v, const std::string &why) const {
        fail(status, "config: \"", key, "\": ", v.dump(), " ", why);
    }
    bool has(const char *key) const { return obj.contains(key); }
    int64_t integer(const char *key, int64_t def, int64_t lo, int64_t hi) const {
        auto it = obj.find(key);
        if (it == obj.end() || it->is_null()) return def;
        if (!it->is_number_integer()) bad(key, *it, "is not an integer");
        int64_t v = it->get<int64_t>();
        if (v < lo || v > hi) bad(key, *it, concat_message("is out of range [", lo, ", ", hi, "]"));
        return v;
    }
    double real(const char *key, double def, double lo, double hi) const {
        auto it = obj.find(key);
        if (it == obj.end() || it->is_null()) return def;
        if (!it->is_number()) bad(key, *it, "is not a number");
        double v = it->get<double>();
        if (!(v > lo && v <= hi)) bad(key, *it, concat_message("is out of range (", lo, ", ", hi, "]"));
        return v;
    }
    bool boolean(const char *key, bool def) const {
        auto it = obj.find(key);
        if (it == obj.end() || it->is_null()) return def;
        if (!it->is_boolean()) bad(key, *it, "is not true or false");
        return it->get<bool>();
    }
    template <class E, size_t N>
    E choice(const char *key, E def, const std::pair<const char *, E> (&options)[N]) const {
        auto it = obj.find(key);
        if (it == obj.end() || it->is_null()) return def;
        std::string allowed;
        for (auto &o : options) allowed += std::string(allowed.empty() ? "" : ", ") + o.first;
        if (!it->is_string()) bad(key, *it, "is not a string (allowed: " + allowed + ")");
        for (auto &o : options)
            if (it->get<std::string>() == o.first) return o.second;
        bad(key, *it, "is not one of: " + allowed);
    }
};

}  // namespace

Config Config::from_json(const std::string &text, int64_t default_vocab, bool from_file) {
    rmkv_status st = from_file ? RMKV_ERR_FORMAT : RMKV_ERR_INVALID_ARGUMENT;
    json obj = json::parse(text, nullptr, false);
    if (obj.is_discarded()) fail(st, "config: not valid JSON");
    if (!obj.is_object()) fail(st, "config: must be a JSON object, got ", obj.dump().substr(0, 60));
    static const char *known[] = {"vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "memory_slots",
                                  "segment_len", "cell", "pos", "norm", "ffn", "ffn_hidden", "tie_embeddings",
                                  "norm_eps", "rope_theta"};
    for (auto it = obj.begin(); it != obj.end(); ++it) {
        bool ok = false;
        for (const char *k : known) ok = ok || it.key() == k;
        if (!ok) fail(st, "config: unknown key \"", it.key(), "\" (value ", it.value().dump(), ")");
    }
    Parser p{obj, st};
    Config c;
    c.vocab_size = p.integer("vocab_size", default_vocab, 1, kMaxVocab);
    if (c.vocab_size == 0) fail(st, "config: \"vocab_size\" is required when no tokenizer is given");
    c.d_model = p.integer("d_model", c.d_model, 2, kMaxDim);
    c.n_layers = p.integer("n_layers", c.n_layers, 1, 4096);
    c.n_heads = p.integer("n_heads", c.n_heads, 1, 4096);
    c.n_kv_heads = p.integer("n_kv_heads", c.n_heads, 1, 4096);
    c.memory_slots = p.integer("memory_slots", c.memory_slots, 1, 65536);
    c.segment_len = p.integer("segment_len", c.segment_len, 1, 1 << 20);
    c.cell = p.choice("cell", Cell::gru, {std::pair{"gru", Cell::gru}, {"lstm", Cell::lstm}, {"minimal", Cell::minimal}});
    c.pos = p.choice("pos", Pos::rope, {std::pair{"rope", Pos::rope}, {"learned", Pos::learned}, {"sincos", Pos::sincos}});
    c.norm = p.choice("norm", Norm::layernorm, {std::pair{"layernorm", Norm::layernorm}, {"rmsnorm", Norm::rmsnorm}});
    c.ffn = p.choice("ffn", Ffn::swiglu, {std::pair{"swiglu", Ffn::swiglu}, {"gelu", Ffn::gelu}, {"none", Ffn::none}});
    int64_t def_hidden = std::max<int64_t>(64, ((8 * c.d_model / 3 + 32) / 64) * 64);
    c.ffn_hidden = p.integer("ffn_hidden", def_hidden, 1, 8 * kMaxDim);
    c.tie_embeddings = p.boolean("tie_embeddings", false);
    c.norm_eps = p.real("norm_eps", 1e-5, 0.0, 1.0);
    c.rope_theta = p.real("rope_theta", 10000.0, 1.0, 1e12);

    if (c.d_model % c.n_heads) p.bad("d_model", obj["d_model"], concat_message("is not a multiple of n_heads = ", c.n_heads));
    if (c.head_dim() % 2) p.bad("n_heads", obj.value("n_heads", json(c.n_heads)), concat_message("gives an odd head_dim ", c.head_dim(), " (d_model / n_heads must be even)"));
    if (c.n_heads % c.n_kv_heads) p.bad("n_kv_heads", obj["n_kv_heads"], concat_message("does not divide n_heads = ", c.n_heads));
    return c;
}

std::string Config::to_json() const {
    json j = json::object();
    j["vocab_size"] = vocab_size;
    j["d_model"] = d_model;
    j["n_layers"] = n_layers;
    j["n_heads"] = n_heads;
    j["n_kv_heads"] = n_kv_heads;
    j["memory_slots"] = memory_slots;
    j["segment_len"] = segment_len;
    j["cell"] = to_string(cell);
    j["pos"] = to_string(pos);
    j["norm"] = to_string(norm);
    j["ffn"] = to_string(ffn);
    j["ffn_hidden"] = ffn_hidden;
    j["tie_embeddings"] = tie_embeddings;
    j["norm_eps"] = norm_eps;
    j["rope_theta"] = rope_theta;
    return j.dump();
}

}  // namespace rmkv
