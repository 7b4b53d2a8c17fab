// rmkv_tokenizer_* and rmkv_token_stream_* : argument checks, then src/tokenizer/.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "api/guard.h"
#include "api/params.h"
#include "io/file.h"
#include "tokenizer/token_stream.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/trainer.h"

using namespace rmkv;

namespace {

std::string read_whole_file(const char *path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail(RMKV_ERR_IO, "cannot open ", path);
    std::ostringstream ss;
    ss << f.rdbuf();
    if (f.bad()) fail(RMKV_ERR_IO, "cannot read ", path);
    return ss.str();
}

// The (buf, capacity, &needed) convention, in elements; an empty result needs no buffer.
template <class T>
void write_out(const T *src, size_t n, T *buf, size_t capacity, size_t *needed) {
    *needed = n;
    if (capacity < n) fail(RMKV_ERR_BUFFER_TOO_SMALL, "the buffer holds ", capacity, "; ", n, " are needed");
    if (n == 0) return;
    if (!buf) fail(RMKV_ERR_INVALID_ARGUMENT, "the buffer is NULL but capacity is ", capacity);
    std::memcpy(buf, src, n * sizeof(T));
}

void write_ids(const std::vector<int32_t> &v, int32_t *ids, size_t capacity, size_t *n_ids) {
    write_out(v.data(), v.size(), ids, capacity, n_ids);
}

unsigned resolve_threads(int32_t n) {
    if (n > 0) return static_cast<unsigned>(n);
    unsigned hw = std::thread::hardware_concurrency();
    return hw ? hw : 1;
}

tok::TrainOptions train_options(const rmkv_tokenizer_train_params *params) {
    auto p = read_params(params, rmkv_tokenizer_train_default_params(), "rmkv_tokenizer_train_params");
    tok::TrainOptions o;
    if (p.vocab_size < 1 || p.vocab_size > (size_t(1) << 30))
        fail(RMKV_ERR_INVALID_ARGUMENT, "vocab_size = ", p.vocab_size, " is out of range (1 .. 2^30)");
    o.vocab_size = p.vocab_size;
    o.min_frequency = p.min_frequency;
    if (p.special_tokens) {
        check_size(p.n_special_tokens, 1u << 20, "n_special_tokens");
        for (size_t i = 0; i < p.n_special_tokens; ++i) {
            if (!p.special_tokens[i]) fail(RMKV_ERR_INVALID_ARGUMENT, "special_tokens[", i, "] is NULL");
            o.special_tokens.emplace_back(p.special_tokens[i]);
        }
    } else {
        o.special_tokens = {"<pad>", "<unk>", "<start>", "<end>", "<think>", "</think>"};
    }
    o.normalizer = p.normalizer ? p.normalizer : "NFD";
    o.individual_digits = p.individual_digits != 0;
    o.add_prefix_space = p.add_prefix_space != 0;
    o.byte_alphabet = p.byte_alphabet != 0;
    o.n_threads = resolve_threads(p.n_threads);
    o.progress = p.progress;
    o.progress_user_data = p.progress_user_data;
    return o;
}

}  // namespace

extern "C" {

RMKV_API rmkv_status rmkv_tokenizer_load(const char *path, rmkv_tokenizer **out) {
    return guarded([&] {
        require_not_null(path, "path");
        require_not_null(out, "out");
        std::string text = read_whole_file(path);
        try {
            *out = rmkv_tokenizer::from_json(text).release();
        } catch (const Error &e) {
            if (e.status() == RMKV_ERR_FORMAT) fail(RMKV_ERR_FORMAT, path, ": ", e.what());
            throw;
        }
    });
}

RMKV_API rmkv_status rmkv_tokenizer_from_json(const char *json, size_t size, rmkv_tokenizer **out) {
    return guarded([&] {
        require_not_null(json, "json");
        require_not_null(out, "out");
        check_size(size, kMaxBufferBytes, "size");
        *out = rmkv_tokenizer::from_json(std::string_view(json, size)).release();
    });
}

RMKV_API rmkv_status rmkv_tokenizer_save(const rmkv_tokenizer *tok, const char *path) {
    return guarded([&] {
        require_not_null(tok, "tok");
        require_not_null(path, "path");
        std::string text = tok->to_json();
        write_file_atomic(path, text.size(), [&](uint8_t *dest) { std::memcpy(dest, text.data(), text.size()); });
    });
}

RMKV_API rmkv_status rmkv_tokenizer_to_json(const rmkv_tokenizer *tok, char *buf, size_t capacity, size_t *needed) {
    return guarded([&] {
        require_not_null(tok, "tok");
        require_not_null(needed, "needed");
        std::string text = tok->to_json();
        write_out(text.c_str(), text.size() + 1, buf, capacity, needed);
    });
}

RMKV_API rmkv_status rmkv_tokenizer_encode(const rmkv_tokenizer *tok, const char *text, size_t size, int32_t *ids,
                                           size_t capacity, size_t *n_ids) {
    return guarded([&] {
        require_not_null(tok, "tok");
        require_not_null(n_ids, "n_ids");
        if (size) require_not_null(text, "text");
        check_size(size, kMaxBufferBytes, "size");
        check_size(capacity, kMaxTokensPerCall * 4, "capacity");
        write_ids(tok->encode(std::string_view(size ? text : "", size)), ids, capacity, n_ids);
    });
}

RMKV_API rmkv_status rmkv_tokenizer_decode(const rmkv_tokenizer *tok, const int32_t *ids, size_t n_ids, char *text,
                                           size_t capacity, size_t *size) {
    return guarded([&] {
        require_not_null(tok, "tok");
        require_not_null(size, "size");
        if (n_ids) require_not_null(ids, "ids");
        check_size(n_ids, kMaxTokensPerCall * 4, "n_ids");
        std::string s = tok->decode(ids, n_ids);
        write_out(s.data(), s.size(), text, capacity, size);
    });
}

RMKV_API int32_t rmkv_tokenizer_token_id(const rmkv_tokenizer *tok, const char *token) {
    if (!tok || !token) return -1;
    return tok->token_id(token);
}

RMKV_API size_t rmkv_tokenizer_vocab_size(const rmkv_tokenizer *tok) { return tok ? tok->vocab_size() : 0; }

RMKV_API void rmkv_tokenizer_free(rmkv_tokenizer *tok) { delete tok; }

RMKV_API rmkv_status rmkv_tokenizer_token_string(const rmkv_tokenizer *tok, int32_t id, char *buf, size_t capacity,
                                                 size_t *needed) {
    return guarded([&] {
        require_not_null(tok, "tok");
        require_not_null(needed, "needed");
        std::string s;
        if (!tok->token_string(id, s))
            fail(RMKV_ERR_INVALID_ARGUMENT, "token id ", id, " is not in the vocabulary (", tok->vocab_size(), " ids)");
        write_out(s.c_str(), s.size() + 1, buf, capacity, needed);
    });
}

RMKV_API rmkv_status rmkv_tokenizer_encode_batch(const rmkv_tokenizer *tok, const char *const *texts, const size_t *sizes,
                                                 size_t n_texts, int32_t n_threads, int32_t *ids, size_t capacity,
                                                 size_t *offsets, size_t *n_ids) {
    return guarded([&] {
        require_not_null(tok, "tok");
        require_not_null(n_ids, "n_ids");
        if (n_texts) require_not_null(texts, "texts");
        check_size(n_texts, kMaxTokensPerCall, "n_texts");
        for (size_t i = 0; i < n_texts; ++i) {
            if (!texts[i] && !(sizes && sizes[i] == 0)) fail(RMKV_ERR_INVALID_ARGUMENT, "texts[", i, "] is NULL");
            if (sizes) check_size(sizes[i], kMaxBufferBytes, "sizes[i]");
        }
        std::vector<std::vector<int32_t>> results(n_texts);
        unsigned nt = std::min<unsigned>(resolve_threads(n_threads), static_cast<unsigned>(std::max<size_t>(n_texts, 1)));
        std::atomic<size_t> next{0};
        std::exception_ptr error;
        std::atomic<bool> failed{false};
        auto work = [&] {
            try {
                for (size_t i; !failed && (i = next.fetch_add(1)) < n_texts;) {
                    std::string_view t = texts[i] ? std::string_view(texts[i], sizes ? sizes[i] : std::strlen(texts[i]))
                                                  : std::string_view();
                    results[i] = tok->encode(t);
                }
            } catch (...) {
                if (!failed.exchange(true)) error = std::current_exception();
            }
        };
        std::vector<std::thread> pool;
        for (unsigned t = 1; t < nt; ++t) pool.emplace_back(work);
        work();
        for (auto &th : pool) th.join();
        if (error) std::rethrow_exception(error);
        size_t total = 0;
        for (const auto &r : results) total += r.size();
        *n_ids = total;
        if (total > capacity)
            fail(RMKV_ERR_BUFFER_TOO_SMALL, "ids holds ", capacity, " ids; ", total, " are needed");
        if (total) require_not_null(ids, "ids");
        size_t at = 0;
        for (size_t i = 0; i < n_texts; ++i) {
            if (offsets) offsets[i] = at;
            std::copy(results[i].begin(), results[i].end(), ids + at);
            at += results[i].size();
        }
        if (offsets) offsets[n_texts] = at;
    });
}

RMKV_API rmkv_tokenizer_train_params rmkv_tokenizer_train_default_params(void) {
    rmkv_tokenizer_train_params p{};
    p.struct_size = sizeof(p);
    p.vocab_size = 30000;
    p.min_frequency = 0;
    p.special_tokens = nullptr;
    p.n_special_tokens = 0;
    p.normalizer = nullptr;
    p.individual_digits = 1;
    p.add_prefix_space = 0;
    p.byte_alphabet = 1;
    p.n_threads = 0;
    p.progress = nullptr;
    p.progress_user_data = nullptr;
    return p;
}

RMKV_API rmkv_status rmkv_tokenizer_train(const char *const *files, size_t n_files, const rmkv_tokenizer_train_params *params,
                                          rmkv_tokenizer **out) {
    return guarded([&] {
        require_not_null(out, "out");
        if (n_files) require_not_null(files, "files");
        check_size(n_files, kMaxTokensPerCall, "n_files");
        tok::TrainOptions o = train_options(params);
        for (size_t i = 0; i < n_files; ++i) {
            if (!files[i]) fail(RMKV_ERR_INVALID_ARGUMENT, "files[", i, "] is NULL");
            o.files.emplace_back(files[i]);
        }
        *out = rmkv_tokenizer::train(o).release();
    });
}

RMKV_API rmkv_status rmkv_tokenizer_train_from_texts(const char *const *texts, const size_t *sizes, size_t n_texts,
                                                     const rmkv_tokenizer_train_params *params, rmkv_tokenizer **out) {
    return guarded([&] {
        require_not_null(out, "out");
        if (n_texts) require_not_null(texts, "texts");
        check_size(n_texts, kMaxTokensPerCall, "n_texts");
        tok::TrainOptions o = train_options(params);
        for (size_t i = 0; i < n_texts; ++i) {
            if (!texts[i] && !(sizes && sizes[i] == 0)) fail(RMKV_ERR_INVALID_ARGUMENT, "texts[", i, "] is NULL");
            if (sizes) check_size(sizes[i], kMaxBufferBytes, "sizes[i]");
            o.texts.emplace_back(texts[i] ? texts[i] : "", texts[i] ? (sizes ? sizes[i] : std::strlen(texts[i])) : 0);
        }
        *out = rmkv_tokenizer::train(o).release();
    });
}

RMKV_API rmkv_status rmkv_token_stream_new(const rmkv_tokenizer *tok, rmkv_token_stream **out) {
    return guarded([&] {
        require_not_null(tok, "tok");
        require_not_null(out, "out");
        *out = new rmkv_token_stream(*tok);
    });
}

RMKV_API rmkv_status rmkv_token_stream_feed(rmkv_token_stream *s, int32_t id, char *text, size_t capacity, size_t *size) {
    return guarded([&] {
        require_not_null(s, "s");
        require_not_null(size, "size");
        size_t held = 0;
        std::string out = s->peek_feed(id, held);
        write_out(out.data(), out.size(), text, capacity, size);
        s->commit_feed(id, held);
    });
}

RMKV_API rmkv_status rmkv_token_stream_flush(rmkv_token_stream *s, char *text, size_t capacity, size_t *size) {
    return guarded([&] {
        require_not_null(s, "s");
        require_not_null(size, "size");
        std::string out = s->peek_flush();
        write_out(out.data(), out.size(), text, capacity, size);
        s->commit_flush();
    });
}

RMKV_API void rmkv_token_stream_free(rmkv_token_stream *s) { delete s; }

}  // extern "C"
