/*
 * rmkv.hpp — header-only C++ wrapper of the C ABI in rmkv.h.
 *
 * C++17 (std::span overloads are added under C++20). Every object uniquely owns
 * its C handle (move-only) and frees it in its destructor; a failed call throws
 * rmkv::Error carrying the status and rmkv_last_error(). Lifetimes follow rmkv.h:
 * a Model must outlive its Sessions and Trainers, a Tokenizer its TokenStreams and
 * Data pipelines; Model::tokenizer() borrows the model's tokenizer.
 */
#ifndef RMKV_HPP
#define RMKV_HPP

#include "rmkv.h"

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#if __cplusplus >= 202002L && __has_include(<span>)
#include <span>
#define RMKV_HPP_SPAN 1
#endif

namespace rmkv {

/* A failed call: what() is "RMKV_ERR_...: <rmkv_last_error()>". */
class Error : public std::runtime_error {
public:
    Error(rmkv_status status, const std::string &message)
        : std::runtime_error(std::string(rmkv_status_string(status)) + ": " + message),
          status_(status), message_(message) {}
    rmkv_status status() const noexcept { return status_; }
    /* rmkv_last_error() at the time of the failure. */
    const std::string &message() const noexcept { return message_; }

private:
    rmkv_status status_;
    std::string message_;
};

inline void check(rmkv_status s) {
    if (s != RMKV_OK) throw Error(s, rmkv_last_error());
}

inline std::string_view version() { return rmkv_version(); }

namespace detail {
struct ModelFree { void operator()(rmkv_model *p) const noexcept { rmkv_model_free(p); } };
struct SessionFree { void operator()(rmkv_session *p) const noexcept { rmkv_session_free(p); } };
struct StreamFree { void operator()(rmkv_token_stream *p) const noexcept { rmkv_token_stream_free(p); } };
struct DataFree { void operator()(rmkv_data *p) const noexcept { rmkv_data_free(p); } };
struct TrainerFree { void operator()(rmkv_trainer *p) const noexcept { rmkv_trainer_free(p); } };
struct TokenizerFree {
    bool owned = true;
    void operator()(rmkv_tokenizer *p) const noexcept { if (owned) rmkv_tokenizer_free(p); }
};

/* (buf, capacity, &needed) calls returning a NUL-terminated string. */
template <class F>
std::string query_string(F &&f) {
    std::string s(256, '\0');
    size_t needed = 0;
    rmkv_status st = f(&s[0], s.size(), &needed);
    if (st == RMKV_ERR_BUFFER_TOO_SMALL) {
        s.assign(needed, '\0');
        st = f(&s[0], s.size(), &needed);
    }
    check(st);
    s.resize(needed ? needed - 1 : 0);
    return s;
}

inline std::vector<const char *> c_strings(const std::vector<std::string> &v) {
    std::vector<const char *> out;
    out.reserve(v.size());
    for (const auto &s : v) out.push_back(s.c_str());
    return out;
}
}  // namespace detail

class TokenStream;

/* A byte-level BPE tokenizer (owned, or borrowed from a Model). */
class Tokenizer {
public:
    static Tokenizer load(const std::string &path) {
        rmkv_tokenizer *t = nullptr;
        check(rmkv_tokenizer_load(path.c_str(), &t));
        return Tokenizer(t, true);
    }
    static Tokenizer from_json(std::string_view json) {
        rmkv_tokenizer *t = nullptr;
        check(rmkv_tokenizer_from_json(json.data(), json.size(), &t));
        return Tokenizer(t, true);
    }
    static Tokenizer train(const std::vector<std::string> &files, const rmkv_tokenizer_train_params &params) {
        auto c = detail::c_strings(files);
        rmkv_tokenizer *t = nullptr;
        check(rmkv_tokenizer_train(c.data(), c.size(), &params, &t));
        return Tokenizer(t, true);
    }
    static Tokenizer train_from_texts(const std::vector<std::string_view> &texts,
                                      const rmkv_tokenizer_train_params &params) {
        std::vector<const char *> ptrs;
        std::vector<size_t> sizes;
        for (auto t : texts) { ptrs.push_back(t.data()); sizes.push_back(t.size()); }
        rmkv_tokenizer *t = nullptr;
        check(rmkv_tokenizer_train_from_texts(ptrs.data(), sizes.data(), ptrs.size(), &params, &t));
        return Tokenizer(t, true);
    }
    /* Non-owning view of a tokenizer handle (valid while its owner lives). */
    static Tokenizer borrow(const rmkv_tokenizer *t) { return Tokenizer(const_cast<rmkv_tokenizer *>(t), false); }

    void save(const std::string &path) const { check(rmkv_tokenizer_save(get(), path.c_str())); }
    std::string to_json() const {
        return detail::query_string([&](char *b, size_t c, size_t *n) { return rmkv_tokenizer_to_json(get(), b, c, n); });
    }
    std::vector<int32_t> encode(std::string_view text) const {
        std::vector<int32_t> ids(text.size() + 16);
        size_t n = 0;
        rmkv_status st = rmkv_tokenizer_encode(get(), text.data(), text.size(), ids.data(), ids.size(), &n);
        if (st == RMKV_ERR_BUFFER_TOO_SMALL) {
            ids.resize(n);
            st = rmkv_tokenizer_encode(get(), text.data(), text.size(), ids.data(), ids.size(), &n);
        }
        check(st);
        ids.resize(n);
        return ids;
    }
    std::string decode(const int32_t *ids, size_t n_ids) const {
        std::string s(16 * n_ids + 16, '\0');
        size_t n = 0;
        rmkv_status st = rmkv_tokenizer_decode(get(), ids, n_ids, &s[0], s.size(), &n);
        if (st == RMKV_ERR_BUFFER_TOO_SMALL) {
            s.assign(n, '\0');
            st = rmkv_tokenizer_decode(get(), ids, n_ids, &s[0], s.size(), &n);
        }
        check(st);
        s.resize(n);
        return s;
    }
    std::string decode(const std::vector<int32_t> &ids) const { return decode(ids.data(), ids.size()); }
#ifdef RMKV_HPP_SPAN
    std::string decode(std::span<const int32_t> ids) const { return decode(ids.data(), ids.size()); }
#endif
    /* -1 when absent. */
    int32_t token_id(const std::string &token) const { return rmkv_tokenizer_token_id(get(), token.c_str()); }
    std::string token_string(int32_t id) const {
        return detail::query_string(
            [&](char *b, size_t c, size_t *n) { return rmkv_tokenizer_token_string(get(), id, b, c, n); });
    }
    size_t vocab_size() const { return rmkv_tokenizer_vocab_size(get()); }
    inline TokenStream stream() const;

    rmkv_tokenizer *get() const noexcept { return h_.get(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }

private:
    Tokenizer(rmkv_tokenizer *t, bool owned) : h_(t, detail::TokenizerFree{owned}) {}
    std::unique_ptr<rmkv_tokenizer, detail::TokenizerFree> h_;
};

/* Text of tokens fed one at a time, never half a UTF-8 character. */
class TokenStream {
public:
    explicit TokenStream(const Tokenizer &tok) : buf_(1024, '\0') {
        rmkv_token_stream *s = nullptr;
        check(rmkv_token_stream_new(tok.get(), &s));
        h_.reset(s);
    }
    /* The text now complete (often empty). The view is valid until the next call. */
    std::string_view feed(int32_t id) {
        return call([&](char *b, size_t c, size_t *n) { return rmkv_token_stream_feed(h_.get(), id, b, c, n); });
    }
    std::string_view flush() {
        return call([&](char *b, size_t c, size_t *n) { return rmkv_token_stream_flush(h_.get(), b, c, n); });
    }
    rmkv_token_stream *get() const noexcept { return h_.get(); }

private:
    template <class F>
    std::string_view call(F &&f) {
        size_t n = 0;
        rmkv_status st = f(&buf_[0], buf_.size(), &n);
        if (st == RMKV_ERR_BUFFER_TOO_SMALL) {
            buf_.assign(n, '\0');
            st = f(&buf_[0], buf_.size(), &n);
        }
        check(st);
        return std::string_view(buf_.data(), n);
    }
    std::unique_ptr<rmkv_token_stream, detail::StreamFree> h_;
    std::string buf_;
};

inline TokenStream Tokenizer::stream() const { return TokenStream(*this); }

class Model {
public:
    static Model load(const std::string &path, const rmkv_model_params *params = nullptr) {
        rmkv_model *m = nullptr;
        check(rmkv_model_load(path.c_str(), params, &m));
        return Model(m);
    }
    static Model from_memory(const void *data, size_t size, const rmkv_model_params *params = nullptr) {
        rmkv_model *m = nullptr;
        check(rmkv_model_load_from_memory(data, size, params, &m));
        return Model(m);
    }
    /* config_json: keys of SPEC section 2; tokenizer may be null (it is copied). */
    static Model create(const std::string &config_json, const Tokenizer *tokenizer = nullptr, uint64_t seed = 0,
                        const rmkv_model_params *params = nullptr) {
        rmkv_model *m = nullptr;
        check(rmkv_model_create(config_json.c_str(), tokenizer ? tokenizer->get() : nullptr, seed, params, &m));
        return Model(m);
    }
    void save(const std::string &path, rmkv_dtype dtype = RMKV_DTYPE_F32) const {
        check(rmkv_model_save_as(get(), path.c_str(), dtype));
    }
    /* Borrowed (valid while the model lives); an empty Tokenizer when the model has none. */
    Tokenizer tokenizer() const { return Tokenizer::borrow(rmkv_model_tokenizer(get())); }
    size_t vocab_size() const noexcept { return rmkv_model_vocab_size(get()); }
    size_t n_params() const noexcept { return rmkv_model_n_params(get()); }
    std::string id() const { return rmkv_model_id(get()); }
    std::string config_json() const {
        return detail::query_string([&](char *b, size_t c, size_t *n) { return rmkv_model_config_json(get(), b, c, n); });
    }
    rmkv_model *get() const noexcept { return h_.get(); }

private:
    explicit Model(rmkv_model *m) : h_(m) {}
    std::unique_ptr<rmkv_model, detail::ModelFree> h_;
};

class Session {
public:
    explicit Session(const Model &model, const rmkv_session_params *params = nullptr)
        : vocab_(model.vocab_size()) {
        rmkv_session *s = nullptr;
        check(rmkv_session_new(model.get(), params, &s));
        h_.reset(s);
    }
    /* Feeds tokens; logits (vocab_size floats, or nullptr) receives the logits after the last. */
    void step(const int32_t *tokens, size_t n, float *logits) { check(rmkv_session_step(get(), tokens, n, logits)); }
    void step(int32_t token, float *logits = nullptr) { step(&token, 1, logits); }
    /* Feeds tokens and returns the logits after the last one. */
    std::vector<float> step(const std::vector<int32_t> &tokens) {
        std::vector<float> logits(vocab_);
        step(tokens.data(), tokens.size(), logits.data());
        return logits;
    }
    void step(const std::vector<int32_t> &tokens, std::vector<float> &logits) {
        logits.resize(vocab_);
        step(tokens.data(), tokens.size(), logits.data());
    }
#ifdef RMKV_HPP_SPAN
    /* logits: empty (not wanted) or at least vocab_size floats. */
    void step(std::span<const int32_t> tokens, std::span<float> logits) {
        if (!logits.empty() && logits.size() < vocab_)
            throw Error(RMKV_ERR_INVALID_ARGUMENT, "logits span holds fewer than vocab_size floats");
        step(tokens.data(), tokens.size(), logits.empty() ? nullptr : logits.data());
    }
#endif
    /* Logits after every token, n x vocab_size, row after row. */
    std::vector<float> step_all(const std::vector<int32_t> &tokens) {
        std::vector<float> logits(tokens.size() * vocab_);
        check(rmkv_session_step_all(get(), tokens.data(), tokens.size(), logits.data()));
        return logits;
    }
    void flush() { check(rmkv_session_flush(get())); }
    void reset() { check(rmkv_session_reset(get())); }
    Session clone() const {
        rmkv_session *s = nullptr;
        check(rmkv_session_clone(get(), &s));
        return Session(s, vocab_);
    }
    uint64_t position() const {
        uint64_t p = 0;
        size_t f = 0;
        check(rmkv_session_position(get(), &p, &f));
        return p;
    }
    std::vector<uint8_t> save_state() const {
        size_t n = 0;
        check(rmkv_session_state_size(get(), &n));
        std::vector<uint8_t> buf(n);
        check(rmkv_session_state_save(get(), buf.data(), buf.size(), &n));
        buf.resize(n);
        return buf;
    }
    void load_state(const void *data, size_t size) { check(rmkv_session_state_load(get(), data, size)); }
    void load_state(const std::vector<uint8_t> &data) { load_state(data.data(), data.size()); }
    void save_state_file(const std::string &path) const { check(rmkv_session_state_save_file(get(), path.c_str())); }
    void load_state_file(const std::string &path) { check(rmkv_session_state_load_file(get(), path.c_str())); }
    /* Draws the next token (not stepped); NULL params: rmkv_sampler_default_params(). */
    int32_t sample(const rmkv_sampler_params *params = nullptr) {
        rmkv_sampler_params p = params ? *params : rmkv_sampler_default_params();
        int32_t t = 0;
        check(rmkv_session_sample(get(), &p, &t));
        return t;
    }
    /* Greedy draw (temperature 0). */
    int32_t argmax() {
        rmkv_sampler_params p = rmkv_sampler_default_params();
        p.temperature = 0.0f;
        return sample(&p);
    }
    /* Generates a continuation of `prompt` (text; empty: continue after the last token stepped)
       and streams it to on_piece (never half a character; return true to cancel). params:
       sampler, max_tokens, stop tokens and strings (its on_piece/user_data are replaced).
       chat: one chat turn (rmkv_session_chat_turn). An exception thrown by on_piece cancels the
       generation and is rethrown. */
    rmkv_generate_result generate(const Tokenizer &tok, std::string_view prompt,
                                  rmkv_generate_params params = rmkv_generate_default_params(),
                                  const std::function<bool(std::string_view)> &on_piece = {}, bool chat = false) {
        struct Ctx {
            const std::function<bool(std::string_view)> *f;
            std::exception_ptr error;
        } ctx{&on_piece, nullptr};
        params.on_piece = [](const char *text, size_t size, void *user) -> int {
            auto *c = static_cast<Ctx *>(user);
            if (!*c->f) return 0;
            try {
                return (*c->f)(std::string_view(text, size)) ? 1 : 0;
            } catch (...) {
                c->error = std::current_exception();
                return 1;
            }
        };
        params.user_data = &ctx;
        rmkv_generate_result r{};
        rmkv_status st;
        if (chat)
            st = rmkv_session_chat_turn(get(), tok.get(), prompt.data(), prompt.size(), &params, &r);
        else if (prompt.empty())
            st = rmkv_session_generate(get(), tok.get(), nullptr, 0, &params, &r);
        else
            st = rmkv_session_generate_text(get(), tok.get(), prompt.data(), prompt.size(), &params, &r);
        if (ctx.error) std::rethrow_exception(ctx.error);
        check(st);
        return r;
    }
    size_t vocab_size() const noexcept { return vocab_; }
    rmkv_session *get() const noexcept { return h_.get(); }

private:
    Session(rmkv_session *s, size_t vocab) : h_(s), vocab_(vocab) {}
    std::unique_ptr<rmkv_session, detail::SessionFree> h_;
    size_t vocab_;
};

/* One token for each of n sessions of one model, computed together
   (rmkv_sessions_step): tokens[i] goes to *sessions[i]; logits, when not nullptr,
   receives n x vocab_size floats, row i for sessions[i]. */
inline void step_together(Session *const *sessions, const int32_t *tokens, size_t n, float *logits = nullptr) {
    std::vector<rmkv_session *> handles(n);
    for (size_t i = 0; i < n; ++i) handles[i] = sessions[i] ? sessions[i]->get() : nullptr;
    check(rmkv_sessions_step(handles.data(), n, tokens, logits));
}

/* A training data pipeline (see rmkv.h for the configuration keys). */
class Data {
public:
    Data(const std::string &config_json, const Tokenizer &tok) {
        rmkv_data *d = nullptr;
        check(rmkv_data_new(config_json.c_str(), tok.get(), &d));
        h_.reset(d);
        check(rmkv_data_batch_shape(d, &batch_size_, &n_tokens_));
    }
    size_t batch_size() const noexcept { return batch_size_; }
    size_t n_tokens() const noexcept { return n_tokens_; }
    /* Fills tokens and targets (resized to batch_size x n_tokens). */
    rmkv_data_info next(std::vector<int32_t> &tokens, std::vector<int32_t> &targets) {
        return fill(rmkv_data_next, tokens, targets);
    }
    rmkv_data_info next_validation(std::vector<int32_t> &tokens, std::vector<int32_t> &targets) {
        return fill(rmkv_data_next_validation, tokens, targets);
    }
    void rewind_validation() { check(rmkv_data_validation_rewind(get())); }
    rmkv_data *get() const noexcept { return h_.get(); }

private:
    template <class F>
    rmkv_data_info fill(F f, std::vector<int32_t> &tokens, std::vector<int32_t> &targets) {
        tokens.resize(batch_size_ * n_tokens_);
        targets.resize(batch_size_ * n_tokens_);
        rmkv_data_info info{};
        info.struct_size = sizeof info;
        check(f(get(), tokens.data(), targets.data(), tokens.size(), &info));
        return info;
    }
    std::unique_ptr<rmkv_data, detail::DataFree> h_;
    size_t batch_size_ = 0, n_tokens_ = 0;
};

class Trainer {
public:
    explicit Trainer(Model &model, const rmkv_train_params *params = nullptr) {
        rmkv_trainer *t = nullptr;
        check(rmkv_trainer_new(model.get(), params, &t));
        h_.reset(t);
    }
    /* State tuning: a trainer of only the initial memories (the model is never written). */
    static Trainer state_tuner(const Model &model, const rmkv_train_params *params = nullptr) {
        rmkv_trainer *t = nullptr;
        check(rmkv_state_tuner_new(model.get(), params, &t));
        return Trainer(t);
    }
    /* State tuning: resets `session` to position 0 with the tuned memories. */
    void apply_state(Session &session) const { check(rmkv_trainer_apply_state(get(), session.get())); }
    /* A batch of batch_size rows of n_tokens (tokens and targets row after row). */
    static rmkv_batch batch(const std::vector<int32_t> &tokens, const std::vector<int32_t> &targets,
                            size_t batch_size) {
        if (batch_size == 0 || tokens.size() % batch_size || targets.size() != tokens.size())
            throw Error(RMKV_ERR_INVALID_ARGUMENT, "tokens and targets must both hold batch_size equal rows");
        rmkv_batch b{};
        b.struct_size = sizeof b;
        b.batch_size = batch_size;
        b.n_tokens = tokens.size() / batch_size;
        b.tokens = tokens.data();
        b.targets = targets.data();
        return b;
    }
    rmkv_train_stats step(const rmkv_batch &b) {
        rmkv_train_stats s{};
        s.struct_size = sizeof s;
        check(rmkv_train_step(get(), &b, &s));
        return s;
    }
    rmkv_eval_stats evaluate(const rmkv_batch &b) {
        rmkv_eval_stats s{};
        s.struct_size = sizeof s;
        check(rmkv_trainer_evaluate(get(), &b, &s));
        return s;
    }
    void save_checkpoint(const std::string &path, const char *user_json = nullptr) const {
        check(rmkv_trainer_save_checkpoint(get(), path.c_str(), user_json));
    }
    void load_checkpoint(const std::string &path) { check(rmkv_trainer_load_checkpoint(get(), path.c_str())); }
    int64_t step_count() const noexcept { return rmkv_trainer_step_count(get()); }
    rmkv_trainer *get() const noexcept { return h_.get(); }

private:
    explicit Trainer(rmkv_trainer *t) : h_(t) {}
    std::unique_ptr<rmkv_trainer, detail::TrainerFree> h_;
};

}  // namespace rmkv

#endif /* RMKV_HPP */
