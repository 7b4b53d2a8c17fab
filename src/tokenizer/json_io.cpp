// Reading and writing Hugging Face tokenizer.json. Everything rmkv cannot run
// exactly as Hugging Face does is refused with RMKV_ERR_FORMAT naming it.
#include <algorithm>

#include "tokenizer/tokenizer_impl.h"

using rmkv::fail;
namespace tok = rmkv::tok;
using json = nlohmann::json;

namespace {

const char *kWhere = "tokenizer.json";
// Ids index dense tables, so they are bounded: below kMaxId (far above any real
// vocabulary) and below kSparseness x the vocabulary's entries + kSlack (a file
// of a few entries cannot make tables of millions of ids; real vocabularies are
// dense, or nearly).
constexpr int64_t kMaxId = int64_t(1) << 22;
constexpr int64_t kSparseness = 16, kSlack = 1024;
// Every normaliser and pre-tokenizer step runs over the whole text of every
// encode, so their number is bounded, and so is the nesting of Sequences (each
// level is a recursion while reading). ByteLevel maps every byte to a character
// of one or two bytes: text through N of them grows up to 2^N-fold (a fuzzer's
// file of 15 made 20 million ids from 4 KB), so at most kMaxByteLevel run.
// Real files have one ByteLevel and a few steps.
constexpr size_t kMaxSteps = 32, kMaxDepth = 8, kMaxByteLevel = 4;

void check_depth(size_t depth, const std::string &where) {
    if (depth > kMaxDepth)
        fail(RMKV_ERR_FORMAT, kWhere, ": ", where, ": Sequences nest more than ", kMaxDepth,
             " deep; rmkv reads at most that (flatten the Sequence)");
}

template <class Step>
void check_steps(const std::vector<Step> &steps, const char *where) {
    if (steps.size() > kMaxSteps)
        fail(RMKV_ERR_FORMAT, kWhere, ": ", where, " has ", steps.size(), " steps; rmkv runs at most ", kMaxSteps,
             " (each one passes over the whole text of every encode)");
}

std::string type_of(const json &j, const std::string &where) {
    if (!j.is_object()) fail(RMKV_ERR_FORMAT, kWhere, ": ", where, " must be an object or null");
    auto it = j.find("type");
    if (it == j.end() || !it->is_string()) fail(RMKV_ERR_FORMAT, kWhere, ": ", where, " has no \"type\"");
    return it->get<std::string>();
}

bool get_bool(const json &j, const char *key, bool def, const std::string &where) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return def;
    if (!it->is_boolean()) fail(RMKV_ERR_FORMAT, kWhere, ": ", where, ".", key, " must be true or false");
    return it->get<bool>();
}

void parse_normalizer(const json &j, const std::string &where, std::vector<tok::NormKind> &out, size_t depth = 0) {
    if (j.is_null()) return;
    check_depth(depth, where);
    std::string t = type_of(j, where);
    if (t == "NFD") out.push_back(tok::NormKind::nfd);
    else if (t == "NFC") out.push_back(tok::NormKind::nfc);
    else if (t == "NFKD") out.push_back(tok::NormKind::nfkd);
    else if (t == "NFKC") out.push_back(tok::NormKind::nfkc);
    else if (t == "Lowercase") out.push_back(tok::NormKind::lowercase);
    else if (t == "Sequence") {
        auto it = j.find("normalizers");
        if (it == j.end() || !it->is_array()) fail(RMKV_ERR_FORMAT, kWhere, ": ", where, ".normalizers must be an array");
        for (size_t i = 0; i < it->size(); ++i)
            parse_normalizer((*it)[i], where + ".normalizers[" + std::to_string(i) + "]", out, depth + 1);
    } else {
        fail(RMKV_ERR_FORMAT, kWhere, ": ", where, ": normalizer type \"", t,
             "\" is not supported (rmkv supports NFD, NFC, NFKD, NFKC, Lowercase and Sequence)");
    }
}

void parse_pre_tokenizer(const json &j, const std::string &where, std::vector<tok::PreTokStep> &out,
                         size_t depth = 0) {
    if (j.is_null()) return;
    check_depth(depth, where);
    std::string t = type_of(j, where);
    if (t == "ByteLevel") {
        tok::PreTokStep s;
        s.kind = tok::PreTokStep::Kind::byte_level;
        s.add_prefix_space = get_bool(j, "add_prefix_space", true, where);
        s.trim_offsets = get_bool(j, "trim_offsets", true, where);
        s.use_regex = get_bool(j, "use_regex", true, where);
        out.push_back(s);
    } else if (t == "Digits") {
        tok::PreTokStep s;
        s.kind = tok::PreTokStep::Kind::digits;
        s.individual_digits = get_bool(j, "individual_digits", false, where);
        out.push_back(s);
    } else if (t == "Sequence") {
        auto it = j.find("pretokenizers");
        if (it == j.end() || !it->is_array()) fail(RMKV_ERR_FORMAT, kWhere, ": ", where, ".pretokenizers must be an array");
        for (size_t i = 0; i < it->size(); ++i)
            parse_pre_tokenizer((*it)[i], where + ".pretokenizers[" + std::to_string(i) + "]", out, depth + 1);
    } else {
        fail(RMKV_ERR_FORMAT, kWhere, ": ", where, ": pre-tokenizer type \"", t,
             "\" is not supported (rmkv supports ByteLevel, Digits and Sequence)");
    }
}

void parse_model(const json &j, tok::BpeModel &m) {
    if (!j.is_object()) fail(RMKV_ERR_FORMAT, kWhere, ": \"model\" is missing or not an object");
    auto t = j.find("type");
    if (t != j.end() && !(t->is_string() && t->get<std::string>() == "BPE"))
        fail(RMKV_ERR_FORMAT, kWhere, ": model type ", t->dump(), " is not supported (rmkv supports BPE)");
    auto null_or = [&](const char *key, auto ok) {
        auto it = j.find(key);
        if (it == j.end() || it->is_null()) return;
        if (!ok(*it)) fail(RMKV_ERR_FORMAT, kWhere, ": model.", key, " = ", it->dump(), " is not supported");
    };
    null_or("dropout", [](const json &v) { return v.is_number() && v.get<double>() == 0.0; });
    null_or("continuing_subword_prefix", [](const json &v) { return v.is_string() && v.get<std::string>().empty(); });
    null_or("end_of_word_suffix", [](const json &v) { return v.is_string() && v.get<std::string>().empty(); });
    null_or("byte_fallback", [](const json &v) { return v.is_boolean() && !v.get<bool>(); });
    m.fuse_unk = get_bool(j, "fuse_unk", false, "model");
    m.ignore_merges = get_bool(j, "ignore_merges", false, "model");
    if (auto u = j.find("unk_token"); u != j.end() && !u->is_null()) {
        if (!u->is_string()) fail(RMKV_ERR_FORMAT, kWhere, ": model.unk_token must be a string or null");
        m.unk_token = u->get<std::string>();
    }
    auto v = j.find("vocab");
    if (v == j.end() || !v->is_object()) fail(RMKV_ERR_FORMAT, kWhere, ": model.vocab is missing or not an object");
    tok::Vocab vocab;
    vocab.reserve(v->size());
    const int64_t max_id = std::min(kMaxId, kSparseness * static_cast<int64_t>(v->size()) + kSlack) - 1;
    for (auto it = v->begin(); it != v->end(); ++it) {
        if (!it.value().is_number_integer())
            fail(RMKV_ERR_FORMAT, kWhere, ": model.vocab[\"", it.key(), "\"] is not an integer id");
        auto id = it.value().get<int64_t>();
        if (id < 0 || id > max_id)
            fail(RMKV_ERR_FORMAT, kWhere, ": model.vocab[\"", it.key(), "\"] = ", id, " is out of range (0 .. ", max_id,
                 " for ", v->size(), " entries: ids index dense tables, at most ", kSparseness, " x the entries + ",
                 kSlack, " and below ", kMaxId, ")");
        vocab.emplace(it.key(), static_cast<int32_t>(id));
    }
    m.set_vocab(std::move(vocab));
    if (m.unk_token && !m.vocab.count(*m.unk_token))
        fail(RMKV_ERR_FORMAT, kWhere, ": model.unk_token \"", *m.unk_token,
             "\" is not in model.vocab (Hugging Face would fail on the first unknown character)");
    auto mg = j.find("merges");
    if (mg == j.end() || !mg->is_array()) fail(RMKV_ERR_FORMAT, kWhere, ": model.merges is missing or not an array");
    m.merges.reserve(mg->size());
    m.merge_map.reserve(mg->size());
    for (size_t i = 0; i < mg->size(); ++i) {
        const json &e = (*mg)[i];
        std::string where = std::string(kWhere) + ": model.merges[" + std::to_string(i) + "]";
        if (e.is_string()) {
            const std::string &s = e.get_ref<const std::string &>();
            auto sp = s.find(' ');
            if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
                fail(RMKV_ERR_FORMAT, where, ": \"", s, "\" is not two tokens separated by one space");
            m.add_merge(std::string_view(s).substr(0, sp), std::string_view(s).substr(sp + 1), where);
        } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
            m.add_merge(e[0].get_ref<const std::string &>(), e[1].get_ref<const std::string &>(), where);
        } else {
            fail(RMKV_ERR_FORMAT, where, " is neither \"a b\" nor [\"a\", \"b\"]");
        }
    }
}

}  // namespace

std::unique_ptr<rmkv_tokenizer> rmkv_tokenizer::from_json(std::string_view text) {
    json j;
    try {
        j = json::parse(text.begin(), text.end());
    } catch (const json::exception &e) {
        fail(RMKV_ERR_FORMAT, kWhere, ": not valid JSON: ", e.what());
    }
    if (!j.is_object()) fail(RMKV_ERR_FORMAT, kWhere, ": the top level is not an object");
    auto impl = std::make_unique<Impl>();
    try {
        if (auto v = j.find("version"); v != j.end() && !(v->is_string() && v->get<std::string>() == "1.0"))
            fail(RMKV_ERR_FORMAT, kWhere, ": version ", v->dump(), " is not supported (rmkv reads \"1.0\")");
        for (const char *key : {"truncation", "padding"})
            if (auto v = j.find(key); v != j.end() && !v->is_null())
                fail(RMKV_ERR_FORMAT, kWhere, ": \"", key, "\" is set; rmkv does not support ", key, " (set it to null)");

        json empty;
        auto get = [&](const char *key) -> const json & {
            auto it = j.find(key);
            return it == j.end() ? empty : *it;
        };
        parse_normalizer(get("normalizer"), "normalizer", impl->normalizers);
        check_steps(impl->normalizers, "normalizer");
        impl->normalizer_json = get("normalizer");
        parse_pre_tokenizer(get("pre_tokenizer"), "pre_tokenizer", impl->pre_tokenizer.steps);
        check_steps(impl->pre_tokenizer.steps, "pre_tokenizer");
        const auto byte_levels = static_cast<size_t>(
            std::count_if(impl->pre_tokenizer.steps.begin(), impl->pre_tokenizer.steps.end(),
                          [](const tok::PreTokStep &s) { return s.kind == tok::PreTokStep::Kind::byte_level; }));
        if (byte_levels > kMaxByteLevel)
            fail(RMKV_ERR_FORMAT, kWhere, ": pre_tokenizer has ", byte_levels, " ByteLevel steps; rmkv runs at most ",
                 kMaxByteLevel, " (each maps every byte to a character of up to two bytes, so the text grows up to 2^",
                 byte_levels, "-fold)");
        impl->pre_tokenizer_json = get("pre_tokenizer");

        const json &pp = get("post_processor");
        if (!pp.is_null()) {
            std::string t = type_of(pp, "post_processor");
            if (t != "ByteLevel")
                fail(RMKV_ERR_FORMAT, kWhere, ": post_processor type \"", t,
                     "\" is not supported (rmkv supports none and ByteLevel, which leave the ids unchanged)");
        }
        impl->post_processor_json = pp;

        const json &dec = get("decoder");
        if (dec.is_null()) {
            impl->decoder = Impl::Decoder::none;
        } else {
            std::string t = type_of(dec, "decoder");
            if (t != "ByteLevel")
                fail(RMKV_ERR_FORMAT, kWhere, ": decoder type \"", t, "\" is not supported (rmkv supports ByteLevel and none)");
            impl->decoder = Impl::Decoder::byte_level;
        }
        impl->decoder_json = dec;

        parse_model(get("model"), impl->model);

        std::vector<tok::AddedToken> added;
        const json &at = get("added_tokens");
        if (!at.is_null() && !at.is_array()) fail(RMKV_ERR_FORMAT, kWhere, ": added_tokens must be an array");
        for (size_t i = 0; i < at.size(); ++i) {
            const json &e = at[i];
            std::string where = "added_tokens[" + std::to_string(i) + "]";
            if (!e.is_object()) fail(RMKV_ERR_FORMAT, kWhere, ": ", where, " is not an object");
            tok::AddedToken a;
            auto c = e.find("content");
            if (c == e.end() || !c->is_string()) fail(RMKV_ERR_FORMAT, kWhere, ": ", where, ".content is missing");
            a.content = c->get<std::string>();
            if (auto id = e.find("id"); id != e.end() && id->is_number_integer()) {
                auto v = id->get<int64_t>();
                a.id = v >= 0 && v <= INT32_MAX ? static_cast<int32_t>(v) : -1;
            }
            a.single_word = get_bool(e, "single_word", false, where);
            a.lstrip = get_bool(e, "lstrip", false, where);
            a.rstrip = get_bool(e, "rstrip", false, where);
            a.normalized = get_bool(e, "normalized", true, where);
            a.special = get_bool(e, "special", false, where);
            added.push_back(std::move(a));
        }
        impl->add_tokens(std::move(added), true);
    } catch (const json::exception &e) {
        fail(RMKV_ERR_FORMAT, kWhere, ": ", e.what());
    }
    return from_impl(std::move(impl));
}

namespace {

void append_json_string(std::string &out, const std::string &s) {
    out += json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

std::string rmkv_tokenizer::to_json() const {
    const Impl &m = *impl_;
    std::string out;
    out.reserve(64 + m.model.vocab.size() * 24 + m.model.merges.size() * 24);
    out += "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[";
    std::vector<const tok::AddedToken *> added;
    for (const auto &a : m.added) added.push_back(&a);
    std::sort(added.begin(), added.end(), [](const auto *a, const auto *b) { return a->id < b->id; });
    bool first = true;
    for (const auto *a : added) {
        if (!first) out += ',';
        first = false;
        out += "{\"id\":" + std::to_string(a->id) + ",\"content\":";
        append_json_string(out, a->content);
        auto b = [](bool v) { return v ? "true" : "false"; };
        out += std::string(",\"single_word\":") + b(a->single_word) + ",\"lstrip\":" + b(a->lstrip) +
               ",\"rstrip\":" + b(a->rstrip) + ",\"normalized\":" + b(a->normalized) + ",\"special\":" + b(a->special) + "}";
    }
    out += "],\"normalizer\":" + m.normalizer_json.dump();
    out += ",\"pre_tokenizer\":" + m.pre_tokenizer_json.dump();
    out += ",\"post_processor\":" + m.post_processor_json.dump();
    out += ",\"decoder\":" + m.decoder_json.dump();
    out += ",\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":";
    if (m.model.unk_token)
        append_json_string(out, *m.model.unk_token);
    else
        out += "null";
    out += ",\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,\"fuse_unk\":";
    out += m.model.fuse_unk ? "true" : "false";
    out += ",\"byte_fallback\":false,\"ignore_merges\":";
    out += m.model.ignore_merges ? "true" : "false";
    out += ",\"vocab\":{";
    first = true;
    for (size_t id = 0; id < m.model.id_to_token.size(); ++id) {
        if (!m.model.has_id[id]) continue;
        if (!first) out += ',';
        first = false;
        append_json_string(out, m.model.id_to_token[id]);
        out += ':' + std::to_string(id);
    }
    out += "},\"merges\":[";
    first = true;
    for (size_t r = 0; r < m.model.merges.size(); ++r) {
        auto [a, b] = m.model.merges[r];
        const auto *v = m.model.merge_map.find(a, b);
        if (!v || v->rank != static_cast<int32_t>(r)) continue;  // a later duplicate won (as in HF)
        if (!first) out += ',';
        first = false;
        out += '[';
        append_json_string(out, m.model.id_to_token[static_cast<size_t>(a)]);
        out += ',';
        append_json_string(out, m.model.id_to_token[static_cast<size_t>(b)]);
        out += ']';
    }
    out += "]}}";
    return out;
}
