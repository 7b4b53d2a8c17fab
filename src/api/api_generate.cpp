// rmkv_session_generate and the chat turn: sampling, stepping and streaming text
// through the token stream, with stop tokens and stop strings.
#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "api/guard.h"
#include "api/params.h"
#include "model/sampler.h"
#include "model/session.h"
#include "tokenizer/token_stream.h"
#include "tokenizer/tokenizer.h"

using namespace rmkv;

namespace {

void check_generate_params(const rmkv_generate_params &p) {
    if (p.max_tokens < 0) fail(RMKV_ERR_INVALID_ARGUMENT, "max_tokens = ", p.max_tokens, " must be >= 0");
    if (p.n_stop_tokens > 0 && !p.stop_tokens) fail(RMKV_ERR_INVALID_ARGUMENT, "n_stop_tokens = ", p.n_stop_tokens, " but stop_tokens is NULL");
    if (p.n_stop_strings > 0 && !p.stop_strings)
        fail(RMKV_ERR_INVALID_ARGUMENT, "n_stop_strings = ", p.n_stop_strings, " but stop_strings is NULL");
    for (size_t i = 0; i < p.n_stop_strings; ++i) {
        if (!p.stop_strings[i]) fail(RMKV_ERR_INVALID_ARGUMENT, "stop_strings[", i, "] is NULL");
        if (!p.stop_strings[i][0]) fail(RMKV_ERR_INVALID_ARGUMENT, "stop_strings[", i, "] is empty");
    }
}

// Length of the longest suffix of `text` that is a proper prefix of a stop string:
// the bytes to hold back because the next tokens may complete a stop string.
size_t held_suffix(std::string_view text, const std::vector<std::string_view> &stops) {
    size_t best = 0;
    for (auto stop : stops) {
        size_t longest = std::min(text.size(), stop.size() - 1);
        for (size_t k = longest; k > best; --k)
            if (text.compare(text.size() - k, k, stop, 0, k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

rmkv_generate_result generate(rmkv_session &s, const rmkv_tokenizer &tok, const int32_t *prompt, size_t n_prompt,
                              const rmkv_generate_params &p, const int32_t *extra_stop) {
    check_generate_params(p);
    const rmkv_sampler_params sp = read_params(p.sampler, rmkv_sampler_default_params(), "rmkv_sampler_params");
    std::vector<std::string_view> stops;
    for (size_t i = 0; i < p.n_stop_strings; ++i) stops.emplace_back(p.stop_strings[i]);
    if (n_prompt) s.step(prompt, n_prompt, nullptr, false);

    rmkv_generate_result r{};
    r.stop_reason = RMKV_STOP_LIMIT;
    r.stop_index = -1;
    rmkv_token_stream stream(tok);
    std::string pending;  // decoded text not yet emitted (a possible stop string start)
    pending.reserve(256);
    auto emit = [&](size_t n) {
        bool cancel = false;
        if (n && p.on_piece) cancel = p.on_piece(pending.data(), n, p.user_data) != 0;
        r.text_size += n;
        pending.erase(0, n);
        return cancel;
    };
    // Adds decoded text; returns true when generation must stop.
    auto add_text = [&](const std::string &text, bool final) {
        pending += text;
        size_t first = std::string::npos;
        int32_t which = -1;
        for (size_t i = 0; i < stops.size(); ++i) {
            size_t at = pending.find(stops[i]);
            if (at != std::string::npos && (first == std::string::npos || at < first)) {
                first = at;
                which = static_cast<int32_t>(i);
            }
        }
        if (first != std::string::npos) {
            emit(first);
            r.stop_reason = RMKV_STOP_STRING;
            r.stop_index = which;
            return true;
        }
        size_t keep = final ? 0 : held_suffix(pending, stops);
        if (emit(pending.size() - keep)) {
            r.stop_reason = RMKV_STOP_CANCELLED;
            return true;
        }
        return false;
    };
    bool stopped = false;
    while (!stopped && r.n_tokens < p.max_tokens) {
        int32_t t = s.sample(sp);
        s.step(&t, 1, nullptr, false);
        ++r.n_tokens;
        for (size_t i = 0; i < p.n_stop_tokens; ++i)
            if (p.stop_tokens[i] == t) {
                r.stop_reason = RMKV_STOP_TOKEN;
                r.stop_index = static_cast<int32_t>(i);
                stopped = true;
                break;
            }
        if (!stopped && extra_stop && t == *extra_stop) {
            r.stop_reason = RMKV_STOP_TOKEN;
            r.stop_index = static_cast<int32_t>(p.n_stop_tokens);
            stopped = true;
        }
        if (stopped) break;
        stopped = add_text(stream.feed(t), false);
    }
    if (!stopped || r.stop_reason == RMKV_STOP_TOKEN) {
        // The end of the text: what the decoder and the stop-string check held back.
        std::string rest = stream.flush();
        const rmkv_generate_result before = r;
        if (add_text(rest, true) && r.stop_reason == RMKV_STOP_CANCELLED) {
            // A cancel on the last piece changes nothing: the generation had ended.
            r.stop_reason = before.stop_reason;
            r.stop_index = before.stop_index;
        }
    }
    return r;
}

}  // namespace

extern "C" {

RMKV_API rmkv_generate_params rmkv_generate_default_params(void) {
    rmkv_generate_params p{};
    p.struct_size = sizeof(p);
    p.max_tokens = 256;
    return p;
}

RMKV_API rmkv_status rmkv_sampler_probs(const float *logits, size_t n_vocab, const int32_t *recent, size_t n_recent,
                                        const rmkv_sampler_params *params, float *probs) {
    return guarded([&] {
        require_not_null(logits, "logits");
        require_not_null(probs, "probs");
        if (n_vocab == 0) fail(RMKV_ERR_INVALID_ARGUMENT, "n_vocab is 0");
        check_size(n_vocab, size_t(1) << 24, "n_vocab");
        if (n_recent) require_not_null(recent, "recent");
        for (size_t i = 0; i < n_recent; ++i)
            if (recent[i] < 0 || static_cast<size_t>(recent[i]) >= n_vocab)
                fail(RMKV_ERR_INVALID_ARGUMENT, "recent[", i, "] = ", recent[i], " is not a token id (n_vocab ", n_vocab, ")");
        auto p = read_params(params, rmkv_sampler_default_params(), "rmkv_sampler_params");
        Sampler sampler(n_vocab);
        sampler.observe(recent, n_recent);
        sampler.probabilities(logits, p, probs);
    });
}

RMKV_API rmkv_status rmkv_session_generate(rmkv_session *s, const rmkv_tokenizer *tok, const int32_t *prompt,
                                           size_t n_prompt, const rmkv_generate_params *params,
                                           rmkv_generate_result *result) {
    return guarded([&] {
        require_not_null(s, "session");
        require_not_null(tok, "tok");
        if (n_prompt) require_not_null(prompt, "prompt");
        check_size(n_prompt, kMaxTokensPerCall, "n_prompt");
        auto p = read_params(params, rmkv_generate_default_params(), "rmkv_generate_params");
        auto r = generate(*s, *tok, prompt, n_prompt, p, nullptr);
        if (result) *result = r;
    });
}

RMKV_API rmkv_status rmkv_session_generate_text(rmkv_session *s, const rmkv_tokenizer *tok, const char *prompt,
                                                size_t prompt_size, const rmkv_generate_params *params,
                                                rmkv_generate_result *result) {
    return guarded([&] {
        require_not_null(s, "session");
        require_not_null(tok, "tok");
        if (prompt_size) require_not_null(prompt, "prompt");
        check_size(prompt_size, kMaxBufferBytes, "prompt_size");
        auto p = read_params(params, rmkv_generate_default_params(), "rmkv_generate_params");
        std::vector<int32_t> ids = tok->encode(std::string_view(prompt ? prompt : "", prompt_size));
        auto r = generate(*s, *tok, ids.data(), ids.size(), p, nullptr);
        if (result) *result = r;
    });
}

RMKV_API rmkv_status rmkv_session_chat_turn(rmkv_session *s, const rmkv_tokenizer *tok, const char *user_text,
                                            size_t user_size, const rmkv_generate_params *params,
                                            rmkv_generate_result *result) {
    return guarded([&] {
        require_not_null(s, "session");
        require_not_null(tok, "tok");
        if (user_size) require_not_null(user_text, "user_text");
        check_size(user_size, kMaxBufferBytes, "user_size");
        auto p = read_params(params, rmkv_generate_default_params(), "rmkv_generate_params");
        const int32_t start = tok->token_id("<start>"), end = tok->token_id("<end>");
        if (start < 0 || end < 0)
            fail(RMKV_ERR_INVALID_ARGUMENT, "the tokenizer has no <start> or <end> token: a chat turn needs both (SPEC section 8)");
        std::vector<int32_t> ids;
        tok->encode_into(std::string_view(user_text ? user_text : "", user_size), ids);
        ids.push_back(start);
        auto r = generate(*s, *tok, ids.data(), ids.size(), p, &end);
        if (!(r.stop_reason == RMKV_STOP_TOKEN && r.stop_index == static_cast<int32_t>(p.n_stop_tokens)))
            s->step(&end, 1, nullptr, false);
        s->flush();
        if (result) *result = r;
    });
}

}  // extern "C"
