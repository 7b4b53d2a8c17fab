#include "model/session.h"

#include <algorithm>

#include "core/error.h"
#include "core/memory.h"
#include "core/threads.h"

using namespace rmkv;

namespace {

void check_tokens(const int32_t *tokens, size_t n, const Config &c) {
    for (size_t i = 0; i < n; ++i)
        if (tokens[i] < 0 || tokens[i] >= c.vocab_size)
            fail(RMKV_ERR_INVALID_ARGUMENT, "tokens[", i, "] = ", tokens[i], " is outside the vocabulary [0, ", c.vocab_size, ")");
}

void free_each(Backend &be, std::vector<float *> &buffers) {
    for (float *p : buffers)
        if (p) be.free(p);
    buffers.clear();
}

}  // namespace

rmkv_session::rmkv_session(const rmkv_model &model, int n_threads, bool bf16)
    : model_(model), n_threads_(n_threads), bf16_(bf16), stream_(model.backend().new_stream()),
      last_logits_(static_cast<size_t>(model.config().vocab_size)), sampler_(static_cast<size_t>(model.config().vocab_size)) {
    model.backend().set_bf16(*stream_, bf16);
    allocate();
    reset();
}

rmkv_session::~rmkv_session() { free_all(); }

void rmkv_session::allocate() {
    const Config &c = model_.config();
    const int64_t M = c.memory_slots, D = c.d_model, S = c.segment_len, Dkv = c.d_kv(), F = c.ffn_hidden;
    const int64_t G = std::max<int64_t>(c.cell_gates(), 2), R = std::max(S, M);
    const double L = static_cast<double>(c.n_layers), Md = static_cast<double>(M), Dd = static_cast<double>(D),
                 Sd = static_cast<double>(S), Rd = static_cast<double>(R), Gd = static_cast<double>(G);
    // bf16 sessions: the stream's rows rounded to bf16 (2 bytes each) for the widest product
    const double rounded = bf16_ ? Rd * static_cast<double>(std::max(D, F)) / 2 : 0;
    ensure_fits(sizeof(float) * (L * (3 * Md * Dd + 2 * (Md + Sd) * static_cast<double>(Dkv) + Sd * Dd) + 4 * Rd * Dd +
                                 2 * Sd * static_cast<double>(F) + (4 + 2 * Gd) * Md * Dd + static_cast<double>(c.vocab_size) +
                                 rounded),
                "a session of this model");
    Backend &be = model_.backend();
    auto get = [&](int64_t n) {
        owned_.push_back(nullptr);  // keep owned_ able to free whatever succeeded if alloc throws
        owned_.back() = be.alloc(static_cast<size_t>(n));
        return owned_.back();
    };
    try {
        make_stream_buffers(c, get, layers_, ws_);
    } catch (...) {
        free_all();
        throw;
    }
}

void rmkv_session::free_all() {
    free_each(model_.backend(), owned_);
    layers_.clear();
    if (together_) free_each(model_.backend(), together_->owned);
    together_.reset();
}

rmkv_session::Together &rmkv_session::together(size_t n) {
    if (together_ && together_->rows >= n) return *together_;
    const Config &c = model_.config();
    const int64_t D = c.d_model, Dkv = c.d_kv(), F = c.ffn_hidden, V = c.vocab_size, N = static_cast<int64_t>(n);
    Backend &be = model_.backend();
    // Sessions that end a segment at the same call rewrite their memories together,
    // kRewriteSessions at a time: products of enough rows to run well.
    constexpr int64_t kRewriteSessions = 16;
    const int64_t K = N > 1 ? std::min(N, kRewriteSessions) : 0, KM = K * c.memory_slots;
    // Device rows (x, xn, q, attn, o, k, v, h1, h2, logits), the host logits, for
    // bf16 the rows rounded to bf16 for the widest product (half a float each), and
    // the rewrites' rows (5 of D, 2 of 4D).
    ensure_fits(sizeof(float) * (static_cast<double>(N) * (static_cast<double>(5 * D + 2 * Dkv + 2 * F + 2 * V) +
                                                           (bf16_ ? std::max(D, F) / 2.0 : 0.0)) +
                                 static_cast<double>(KM) * 13.0 * static_cast<double>(D)),
                "the scratch of stepping " + std::to_string(n) + " sessions together");
    auto t = std::make_unique<Together>();
    auto get = [&](int64_t count) {
        t->owned.push_back(nullptr);
        t->owned.back() = be.alloc(static_cast<size_t>(count));
        return t->owned.back();
    };
    try {
        RowsWorkspace &w = t->ws;
        w.x = get(N * D), w.xn = get(N * D), w.q = get(N * D), w.attn = get(N * D), w.o = get(N * D);
        w.k = get(N * Dkv), w.v = get(N * Dkv);
        w.h1 = get(N * F), w.h2 = get(N * F);
        w.logits = get(N * V);
        if (K > 0) {
            RewriteRowsWorkspace &r = t->rewrite;
            r.mem_attn = get(KM * D), r.mem_out = get(KM * D), r.pooled = get(KM * D);
            r.memory = get(KM * D), r.cell = get(KM * D);
            r.gates_i = get(KM * 4 * D), r.gates_h = get(KM * 4 * D);
            t->rewrite_from.resize(static_cast<size_t>(4 * K));
            t->rewrite_to.resize(static_cast<size_t>(K));
            r.from = t->rewrite_from.data(), r.to = t->rewrite_to.data();
            t->rewrite_rows = K;
        }
        t->logits.resize(n * static_cast<size_t>(V));
        t->cache_rows.resize(n);
        t->row_dst.resize(n);
        t->places.resize(n);
        t->positions.resize(n);
        w.cache_rows = t->cache_rows.data();
        w.row_dst = t->row_dst.data();
        w.places = t->places.data();
        w.positions = t->positions.data();
    } catch (...) {
        free_each(be, t->owned);
        throw;
    }
    t->rows = n;
    t->decode.reserve(n);
    t->pass.reserve(n);
    t->sorted.reserve(n);
    if (together_) free_each(be, together_->owned);
    together_ = std::move(t);
    return *together_;
}

void rmkv_session::step_together(rmkv_session *const *ss, size_t n, const int32_t *tokens, float *logits_host) {
    if (n == 0) fail(RMKV_ERR_INVALID_ARGUMENT, "n_sessions is 0 (step at least one session)");
    rmkv_session &lead = *ss[0];
    const rmkv_model &model = lead.model_;
    const Config &c = model.config();
    for (size_t i = 0; i < n; ++i) {
        if (!ss[i]) fail(RMKV_ERR_INVALID_ARGUMENT, "sessions[", i, "] is NULL");
        if (&ss[i]->model_ != &model)
            fail(RMKV_ERR_MISMATCH, "sessions[", i, "] belongs to another model than sessions[0] (one model per call)");
        if (ss[i]->bf16_ != lead.bf16_)
            fail(RMKV_ERR_MISMATCH, "sessions[", i, "] computes with another precision than sessions[0] (",
                 ss[i]->bf16_ ? "BF16" : "FP32", " against ", lead.bf16_ ? "BF16" : "FP32",
                 "): step them in separate calls");
    }
    check_tokens(tokens, n, c);
    const ThreadLimit threads(lead.n_threads_);
    Together &t = lead.together(n);
    t.sorted.assign(ss, ss + n);
    std::sort(t.sorted.begin(), t.sorted.end());
    if (std::adjacent_find(t.sorted.begin(), t.sorted.end()) != t.sorted.end())
        fail(RMKV_ERR_INVALID_ARGUMENT, "a session appears twice in sessions[] (each may take one token per call)");

    // Everything on the leader's stream, in order; one wait at the end.
    Stream &st = *lead.stream_;
    SegmentForward fwd(model.view(), st);
    // f(layers, k) over t.pass in groups of up to t.rewrite_rows sessions (one at
    // a time where there is no stacked scratch).
    auto for_groups = [&t](const auto &f) {
        const int64_t n_group = static_cast<int64_t>(t.pass.size());
        for (int64_t i = 0; i < n_group;) {
            const int64_t k = std::max<int64_t>(1, std::min(n_group - i, t.rewrite_rows));
            f(t.pass.data() + i, k);
            i += k;
        }
    };
    t.decode.clear();
    t.pass.clear();  // first: the sessions whose memory rows are not prepared
    for (size_t i = 0; i < n; ++i) {
        rmkv_session &s = *ss[i];
        if (!s.memory_ready_) t.pass.push_back(&s.layers_);
        t.decode.push_back({&s.layers_, s.fill_, static_cast<int64_t>(s.position_)});
    }
    for_groups([&](std::vector<LayerState> *const *layers, int64_t k) {
        if (k == 1) fwd.prepare_memory(*layers[0], lead.ws_);
        else fwd.prepare_rows(layers, k, t.rewrite);
    });
    for (size_t i = 0; i < n; ++i) ss[i]->memory_ready_ = true;
    const int64_t V = c.vocab_size;
    Backend &be = model.backend();
    run_recorded(be, st, [&] { fwd.decode_rows(t.decode.data(), static_cast<int64_t>(n), tokens, t.ws, t.ws.logits); });
    float *host = logits_host ? logits_host : t.logits.data();
    be.to_host(st, host, t.ws.logits, n * static_cast<size_t>(V));
    t.pass.clear();  // now: the sessions that end a segment
    for (size_t i = 0; i < n; ++i) {
        rmkv_session &s = *ss[i];
        const float *row = host + i * static_cast<size_t>(V);
        std::copy(row, row + V, s.last_logits_.begin());
        s.have_logits_ = true;
        s.sampler_.observe(tokens + i, 1);
        s.fill_ += 1;
        s.position_ += 1;
        if (s.fill_ == c.segment_len) {
            t.pass.push_back(&s.layers_);
            s.fill_ = 0;
            s.memory_ready_ = false;
        }
    }
    // The memory rewrites of the sessions that ended a segment.
    for_groups([&](std::vector<LayerState> *const *layers, int64_t k) {
        if (k == 1) fwd.rewrite_memory(*layers[0], lead.ws_, c.segment_len);
        else fwd.rewrite_rows(layers, k, t.rewrite, c.segment_len);
    });
    be.sync(st);
}

void rmkv_session::rewrite_on(Stream &st) { SegmentForward(model_.view(), st).rewrite_memory(layers_, ws_, fill_); }

void rmkv_session::restart_from(const std::vector<const float *> &memory) {
    reset();
    const Config &c = model_.config();
    for (size_t l = 0; l < layers_.size(); ++l)
        model_.backend().copy(*stream_, layers_[l].memory, memory[l], c.memory_slots * c.d_model);
    model_.backend().sync(*stream_);
}

void rmkv_session::reset() {
    const Config &c = model_.config();
    const int64_t M = c.memory_slots, D = c.d_model;
    Backend &be = model_.backend();
    for (size_t l = 0; l < layers_.size(); ++l) {
        be.copy(*stream_, layers_[l].memory, model_.weights().layers[l].init_memory, M * D);
        if (layers_[l].cell) {
            be.fill(*stream_, layers_[l].cell, 0.0f, static_cast<size_t>(M * D));
        }
    }
    be.sync(*stream_);
    position_ = 0;
    fill_ = 0;
    memory_ready_ = false;
    have_logits_ = false;
    sampler_.reset();
}

int32_t rmkv_session::sample(const rmkv_sampler_params &p) {
    if (!have_logits_) fail(RMKV_ERR_INVALID_ARGUMENT, "no logits to sample from: step at least one token first (after new, reset or state load)");
    return sampler_.sample(last_logits_.data(), p);
}

void rmkv_session::step(const int32_t *tokens, size_t n, float *logits_host, bool all_rows) {
    const Config &c = model_.config();
    if (n == 0) fail(RMKV_ERR_INVALID_ARGUMENT, "n_tokens is 0 (step needs at least one token)");
    if (n == 1 && model_.backend().decodes_by_rows()) {  // a decoding step that a backend replays
        rmkv_session *self = this;
        step_together(&self, 1, tokens, logits_host);
        return;
    }
    check_tokens(tokens, n, c);
    const int64_t V = c.vocab_size;
    const ThreadLimit threads(n_threads_);
    if (all_rows && logits_host && !logits_rows_) {
        owned_.push_back(model_.backend().alloc(static_cast<size_t>(c.segment_len * V)));
        logits_rows_ = owned_.back();
    }
    SegmentForward fwd(model_.view(), *stream_);
    size_t done = 0;
    while (done < n) {
        if (!memory_ready_) {
            fwd.prepare_memory(layers_, ws_);
            memory_ready_ = true;
        }
        int64_t chunk = std::min<int64_t>(static_cast<int64_t>(n - done), c.segment_len - fill_);
        bool last = done + static_cast<size_t>(chunk) == n;
        // The last token's logits are always kept: the sampler draws from them.
        const bool rows = logits_host && all_rows;
        real *out = rows ? logits_rows_ : last ? ws_.logits : nullptr;
        auto queue = [&] { fwd.tokens(layers_, ws_, tokens + done, chunk, fill_, static_cast<int64_t>(position_), out, rows); };
        // A decoding step (one token): its launches recorded as one where the backend can.
        if (chunk == 1) run_recorded(model_.backend(), *stream_, queue);
        else queue();
        if (rows) {
            model_.backend().to_host(*stream_, logits_host + done * V, logits_rows_, static_cast<size_t>(chunk * V));
            if (last) std::copy(logits_host + (n - 1) * V, logits_host + n * V, last_logits_.begin());
        } else if (last) {
            model_.backend().to_host(*stream_, last_logits_.data(), ws_.logits, static_cast<size_t>(V));
            model_.backend().sync(*stream_);
            if (logits_host) std::copy(last_logits_.begin(), last_logits_.end(), logits_host);
        }
        fill_ += chunk;
        position_ += static_cast<uint64_t>(chunk);
        done += static_cast<size_t>(chunk);
        if (fill_ == c.segment_len) flush();
    }
    model_.backend().sync(*stream_);
    sampler_.observe(tokens, n);
    have_logits_ = true;
}

void rmkv_session::flush() {
    if (fill_ == 0) return;
    const ThreadLimit threads(n_threads_);
    rewrite_on(*stream_);
    model_.backend().sync(*stream_);
    fill_ = 0;
    memory_ready_ = false;
}

void rmkv_session::copy_state_from(const rmkv_session &o) {
    const Config &c = model_.config();
    const int64_t M = c.memory_slots, D = c.d_model, S = c.segment_len, Dkv = c.d_kv();
    Backend &be = model_.backend();
    for (size_t l = 0; l < layers_.size(); ++l) {
        const LayerState &a = o.layers_[l];
        LayerState &b = layers_[l];
        be.copy(*stream_, b.memory, a.memory, M * D);
        if (a.cell) be.copy(*stream_, b.cell, a.cell, M * D);
        be.copy(*stream_, b.keys, a.keys, (M + S) * Dkv);
        be.copy(*stream_, b.values, a.values, (M + S) * Dkv);
        be.copy(*stream_, b.mem_q, a.mem_q, M * D);
        be.copy(*stream_, b.tok_out, a.tok_out, S * D);
    }
    be.sync(*stream_);
    position_ = o.position_;
    fill_ = o.fill_;
    memory_ready_ = o.memory_ready_;
    last_logits_ = o.last_logits_;
    have_logits_ = o.have_logits_;
    sampler_ = o.sampler_;
}

std::unique_ptr<rmkv_session> rmkv_session::clone() const {
    auto s = std::make_unique<rmkv_session>(model_, n_threads_, bf16_);
    s->copy_state_from(*this);
    return s;
}
