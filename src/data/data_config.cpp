#include "data/data_config.h"

#include <cmath>
#include <initializer_list>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/formatter.h"
#include "tokenizer/tokenizer.h"

namespace rmkv::data {

using json = nlohmann::json;

namespace {

// Reads the keys of one JSON object, refusing unknown ones.
struct Keys {
    const json &obj;
    std::string where;  // "data config" or "data config: sources[1]"

    void only(std::initializer_list<const char *> known) const {
        for (auto it = obj.begin(); it != obj.end(); ++it) {
            bool ok = false;
            for (const char *k : known) ok = ok || it.key() == k;
            if (ok) continue;
            std::string list;
            for (const char *k : known) list += std::string(list.empty() ? "" : ", ") + k;
            fail(RMKV_ERR_INVALID_ARGUMENT, where, ": unknown key \"", it.key(), "\" (known: ", list, ")");
        }
    }
    [[noreturn]] void bad(const char *key, const json &v, const std::string &why) const {
        fail(RMKV_ERR_INVALID_ARGUMENT, where, ": \"", key, "\": ", v.dump(), " ", why);
    }
    const json *find(const char *key) const {
        auto it = obj.find(key);
        return it == obj.end() || it->is_null() ? nullptr : &*it;
    }
    int64_t integer(const char *key, int64_t def, int64_t lo, int64_t hi) const {
        const json *v = find(key);
        if (!v) return def;
        if (!v->is_number_integer()) bad(key, *v, "is not an integer");
        if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) bad(key, *v, "is too large");
        int64_t x = v->get<int64_t>();
        if (x < lo || x > hi) bad(key, *v, concat_message("is out of range [", lo, ", ", hi, "]"));
        return x;
    }
    uint64_t seed(const char *key) const {
        const json *v = find(key);
        if (!v) return 0;
        if (!v->is_number_integer() || (!v->is_number_unsigned() && v->get<int64_t>() < 0)) bad(key, *v, "is not a non-negative integer");
        return v->get<uint64_t>();
    }
    double real(const char *key, double def, double lo, double hi, bool lo_open) const {
        const json *v = find(key);
        if (!v) return def;
        if (!v->is_number()) bad(key, *v, "is not a number");
        double x = v->get<double>();
        if (!std::isfinite(x) || x < lo || (lo_open && x == lo) || x > hi)
            bad(key, *v, concat_message("is out of range ", lo_open ? "(" : "[", lo, ", ", hi, "]"));
        return x;
    }
    bool boolean(const char *key, bool def) const {
        const json *v = find(key);
        if (!v) return def;
        if (!v->is_boolean()) bad(key, *v, "is not true or false");
        return v->get<bool>();
    }
    std::string string(const char *key, const std::string &def, bool allow_empty = true) const {
        const json *v = find(key);
        if (!v) return def;
        if (!v->is_string()) bad(key, *v, "is not a string");
        std::string s = v->get<std::string>();
        if (!allow_empty && s.empty()) bad(key, *v, "is empty");
        return s;
    }
    WalkMode walk(const char *key, WalkMode def) const {
        const json *v = find(key);
        if (!v) return def;
        for (WalkMode m : {WalkMode::random, WalkMode::sequential, WalkMode::shuffled})
            if (v->is_string() && v->get<std::string>() == to_string(m)) return m;
        bad(key, *v, "is not one of random, sequential, shuffled");
    }
    // A token given by id or by its vocabulary string ("<end>"); -1 = none.
    int32_t token(const char *key, int32_t def, const rmkv_tokenizer &tok) const {
        const json *v = find(key);
        if (!v) return def;
        int64_t vocab = static_cast<int64_t>(tok.vocab_size());
        if (v->is_string()) {
            int32_t id = tok.token_id(v->get<std::string>());
            if (id < 0) bad(key, *v, "is not a token of the tokenizer");
            return id;
        }
        if (!v->is_number_integer()) bad(key, *v, "is neither a token id nor a token string");
        int64_t id = v->get<int64_t>();
        if (id < -1 || id >= vocab) bad(key, *v, concat_message("is not a token id in [0, ", vocab, ") nor -1"));
        return static_cast<int32_t>(id);
    }
};

bool ends_with(const std::string &s, const char *suffix) {
    std::string_view x(suffix);
    return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

SourceConfig parse_source(const json &j, size_t index, const DataConfig &top) {
    std::string where = concat_message("data config: sources[", index, "]");
    if (!j.is_object()) fail(RMKV_ERR_INVALID_ARGUMENT, where, " is not an object: ", j.dump());
    Keys k{j, where};
    k.only({"path", "kind", "weight", "walk", "separator", "extensions", "input_field", "output_field", "format",
            "prompt_template", "response_template", "mask_prompt"});
    SourceConfig s;
    if (!k.find("path")) fail(RMKV_ERR_INVALID_ARGUMENT, where, ": \"path\" is missing");
    s.path = k.string("path", "", false);
    std::string kind = k.string("kind", ends_with(s.path, ".jsonl") ? "jsonl" : "text");
    if (kind == "text") s.kind = SourceKind::text;
    else if (kind == "jsonl") s.kind = SourceKind::jsonl;
    else k.bad("kind", j["kind"], "is not \"text\" or \"jsonl\"");
    s.weight = k.real("weight", 1.0, 0.0, 1e12, false);
    s.walk = k.walk("walk", top.walk);
    if (const json *e = k.find("extensions")) {
        if (!e->is_array()) k.bad("extensions", *e, "is not an array of strings");
        for (auto &x : *e) {
            if (!x.is_string()) k.bad("extensions", *e, "is not an array of strings");
            s.extensions.push_back(x.get<std::string>());
        }
    } else if (s.kind == SourceKind::jsonl) {
        s.extensions = {".jsonl"};
    }
    if (s.kind == SourceKind::text) {
        for (const char *key : {"input_field", "output_field", "format", "prompt_template", "response_template", "mask_prompt"})
            if (k.find(key)) k.bad(key, j[key], "applies to jsonl sources only");
        if (k.find("separator")) {
            s.separator = k.string("separator", "", false);
            s.has_separator = true;
        }
        s.mask_prompt = false;
        return s;
    }
    if (k.find("separator")) k.bad("separator", j["separator"], "applies to text sources only");
    s.input_field = k.string("input_field", "input", false);
    s.output_field = k.string("output_field", "output", false);
    std::string format = k.string("format", "default");
    Templates t;
    if (format == "default") t = default_templates();
    else if (format == "chat") t = chat_templates();
    else k.bad("format", j["format"], "is not \"default\" or \"chat\"");
    s.prompt_template = k.string("prompt_template", t.prompt);
    s.response_template = k.string("response_template", t.response);
    s.mask_prompt = k.boolean("mask_prompt", true);
    return s;
}

}  // namespace

DataConfig parse_data_config(std::string_view text, const rmkv_tokenizer &tok) {
    json j;
    try {
        j = json::parse(text.begin(), text.end());
    } catch (const json::exception &e) {
        fail(RMKV_ERR_INVALID_ARGUMENT, "data config is not valid JSON: ", e.what());
    }
    if (!j.is_object()) fail(RMKV_ERR_INVALID_ARGUMENT, "data config is not a JSON object");
    Keys k{j, "data config"};
    k.only({"sources", "batch_size", "n_tokens", "walk", "seed", "validation_fraction", "validation_count", "eod_token",
            "pad_token", "max_prompt_tokens", "max_completion_tokens", "queue_size", "chunk_bytes", "on_error"});
    DataConfig c;
    c.batch_size = static_cast<size_t>(k.integer("batch_size", 8, 1, 1 << 20));
    c.n_tokens = static_cast<size_t>(k.integer("n_tokens", 512, 1, 1 << 24));
    if (static_cast<uint64_t>(c.batch_size) * c.n_tokens > (uint64_t(1) << 30))
        fail(RMKV_ERR_INVALID_ARGUMENT, "data config: batch_size x n_tokens = ", c.batch_size * c.n_tokens, " exceeds 2^30 tokens");
    c.walk = k.walk("walk", WalkMode::shuffled);
    c.seed = k.seed("seed");
    c.validation_fraction = k.real("validation_fraction", 0, 0, 0.999999, false);
    c.validation_count = k.integer("validation_count", 0, 0, INT64_MAX);
    if (c.validation_fraction > 0 && c.validation_count > 0)
        fail(RMKV_ERR_INVALID_ARGUMENT, "data config: give validation_fraction or validation_count, not both");
    c.eod_token = k.token("eod_token", -1, tok);
    int32_t pad_default = tok.token_id("<pad>");
    if (pad_default < 0) pad_default = 0;
    c.pad_token = k.token("pad_token", pad_default, tok);
    if (c.pad_token < 0) k.bad("pad_token", j["pad_token"], "must name a token");
    c.max_prompt_tokens = static_cast<size_t>(k.integer("max_prompt_tokens", 0, 0, 1 << 24));
    c.max_completion_tokens = static_cast<size_t>(k.integer("max_completion_tokens", 0, 0, 1 << 24));
    c.queue_size = static_cast<size_t>(k.integer("queue_size", 4, 0, 1024));
    c.chunk_bytes = static_cast<size_t>(k.integer("chunk_bytes", 1 << 20, 256, int64_t(1) << 30));
    std::string on_error = k.string("on_error", "fail");
    if (on_error == "skip") c.skip_bad_examples = true;
    else if (on_error != "fail") k.bad("on_error", j["on_error"], "is not \"fail\" or \"skip\"");

    const json *sources = k.find("sources");
    if (!sources || !sources->is_array() || sources->empty())
        fail(RMKV_ERR_INVALID_ARGUMENT, "data config: \"sources\" must be a non-empty array of {\"path\": ...} objects");
    double total = 0;
    for (size_t i = 0; i < sources->size(); ++i) {
        c.sources.push_back(parse_source((*sources)[i], i, c));
        total += c.sources.back().weight;
    }
    if (!(total > 0)) fail(RMKV_ERR_INVALID_ARGUMENT, "data config: every source has weight 0");

    // The identity: every resolved value that changes the batches (not queue_size).
    json id = {{"batch_size", c.batch_size}, {"n_tokens", c.n_tokens}, {"seed", c.seed},
               {"validation_fraction", c.validation_fraction}, {"validation_count", c.validation_count},
               {"eod_token", c.eod_token}, {"pad_token", c.pad_token}, {"max_prompt_tokens", c.max_prompt_tokens},
               {"max_completion_tokens", c.max_completion_tokens}, {"chunk_bytes", c.chunk_bytes},
               {"on_error", on_error}, {"sources", json::array()}};
    for (auto &s : c.sources)
        id["sources"].push_back({{"path", s.path}, {"kind", s.kind == SourceKind::text ? "text" : "jsonl"},
                                 {"weight", s.weight}, {"walk", to_string(s.walk)}, {"separator", s.separator},
                                 {"has_separator", s.has_separator}, {"extensions", s.extensions},
                                 {"input_field", s.input_field}, {"output_field", s.output_field},
                                 {"prompt_template", s.prompt_template}, {"response_template", s.response_template},
                                 {"mask_prompt", s.mask_prompt}});
    c.identity = id.dump();
    return c;
}

}  // namespace rmkv::data
