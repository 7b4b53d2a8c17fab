// Recorded steps (Backend::begin_record, run_recorded in backend.h). run_recorded
// against a stand-in backend: unrecorded, recorded, a failed recording queued
// again unrecorded, a missed check recorded at once, an exception that cancels. Then the property a failed recording rests
// on: a decoding step's operations, queued twice, leave exactly what they leave
// queued once. The model code (a session's one-token step, SegmentForward::tokens,
// and sessions decoded together, decode_rows) runs on the reference backend of
// the tests, once as it is and once through a backend whose every recording
// fails (so each step is queued twice), across a segment end, for the three
// cells and position kinds; logits and every layer state must agree to the bit.
// A training pass (SequencePass::run) adds to its gradients, so it is not queued
// twice: a backend whose every recording fails puts back all its buffers and
// sums as they were when the recording began (a device runs none of a failed
// recording), and the pass queued again must give the loss and gradients of the
// pass run once, bit for bit: one sequence, stacked ones with dropout and bf16
// copies, and recomputation.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/segment.h"
#include "model/weights.h"
#include "owned_buffers.h"
#include "reference_backend.h"
#include "train/sequence_pass.h"

// cmocka last: it defines a macro named fail.
extern "C" {
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
}

using namespace rmkv;

namespace {

// ---- run_recorded ----

// Records when asked first (records) and when asked again (again_records);
// end_record's results in turn (the last one repeated).
struct StandIn {
    bool records = false, again_records = false;
    std::vector<bool> ends = {true};
    int begun = 0, begun_again = 0, ended = 0, cancelled = 0;
    bool begin_record(Stream &, bool again) {
        ++begun;
        begun_again += again;
        return again ? again_records : records;
    }
    bool end_record(Stream &) {
        const bool r = ends[std::min(static_cast<size_t>(ended), ends.size() - 1)];
        ++ended;
        return r;
    }
    void cancel_record(Stream &) { ++cancelled; }
};

void run_recorded_cases(void **) {
    Stream s;
    {  // not recording: queued once, end_record not called
        StandIn b;
        int runs = 0;
        run_recorded(b, s, [&] { ++runs; });
        assert_int_equal(runs, 1);
        assert_int_equal(b.begun, 1);
        assert_int_equal(b.ended, 0);
    }
    {  // recorded: queued once, then run
        StandIn b;
        b.records = true;
        int runs = 0;
        run_recorded(b, s, [&] { ++runs; });
        assert_int_equal(runs, 1);
        assert_int_equal(b.ended, 1);
        assert_int_equal(b.cancelled, 0);
    }
    {  // the recording failed: asked again, declined, queued again unrecorded
        StandIn b;
        b.records = true, b.ends = {false};
        int runs = 0;
        run_recorded(b, s, [&] { ++runs; });
        assert_int_equal(runs, 2);
        assert_int_equal(b.ended, 1);
        assert_int_equal(b.begun_again, 1);
    }
    {  // a check that missed, then a recording: queued twice, the second time recorded and run
        StandIn b;
        b.records = b.again_records = true, b.ends = {false, true};
        int runs = 0;
        run_recorded(b, s, [&] { ++runs; });
        assert_int_equal(runs, 2);
        assert_int_equal(b.ended, 2);
        assert_int_equal(b.begun_again, 1);
    }
    {  // neither ran: queued a third time, unrecorded
        StandIn b;
        b.records = b.again_records = true, b.ends = {false};
        int runs = 0;
        run_recorded(b, s, [&] { ++runs; });
        assert_int_equal(runs, 3);
        assert_int_equal(b.ended, 2);
    }
    {  // an exception while recording: the recording cancelled, the exception passed on
        StandIn b;
        b.records = true;
        bool caught = false;
        try {
            run_recorded(b, s, [] { throw std::runtime_error("queue"); });
        } catch (const std::runtime_error &) {
            caught = true;
        }
        assert_true(caught);
        assert_int_equal(b.cancelled, 1);
        assert_int_equal(b.ended, 0);
    }
}

// ---- a decoding step queued twice ----

// Every recording "fails" after its operations ran: run_recorded queues each
// step a second time, as it does after a failed recording on a device.
class TwiceBackend final : public ReferenceBackend {
public:
    bool begin_record(Stream &, bool again) override { return !again; }
    bool end_record(Stream &) override {
        ++failed;
        return false;
    }
    int failed = 0;
};

struct Net {
    Config c;
    std::vector<std::vector<float>> w;
    ModelWeights W{};
};

void build(Net &n, const std::string &json) {
    n.c = Config::from_json(json, 0, false);
    const std::vector<ParamSpec> specs = param_specs(n.c);
    std::mt19937_64 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<real *> ptrs;
    for (const ParamSpec &s : specs) {
        std::vector<float> v(static_cast<size_t>(s.numel));
        const float scale = s.init == Init::ones ? 0.2f : 0.5f;
        for (float &x : v) x = (s.init == Init::ones ? 1.0f : 0.0f) + scale * normal(rng);
        n.w.push_back(std::move(v));
    }
    for (auto &v : n.w) ptrs.push_back(v.data());
    n.W = bind_weights(n.c, specs, ptrs);
}

// One stream of text's state and a session's workspace, on a backend's memory.
struct Text {
    Owned mem;
    std::vector<LayerState> layers;
    Workspace ws{};
    real *get(int64_t n) { return mem.get(n); }
    Text(Backend &b, const Net &n) : mem(b) {
        const Config &c = n.c;
        make_stream_buffers(c, [this](int64_t count) { return get(count); }, layers, ws);
        for (size_t l = 0; l < layers.size(); ++l)  // as rmkv_session::reset
            std::memcpy(layers[l].memory, n.W.layers[l].init_memory, sizeof(real) * static_cast<size_t>(c.memory_slots * c.d_model));
    }
    // Every layer state, in one vector (for comparison).
    std::vector<float> state(const Config &c) const {
        const int64_t M = c.memory_slots, D = c.d_model, S = c.segment_len, Dkv = c.d_kv();
        std::vector<float> all;
        auto put = [&](const real *p, int64_t n) {
            if (p) all.insert(all.end(), p, p + n);
        };
        for (const LayerState &s : layers) {
            put(s.memory, M * D), put(s.cell, M * D), put(s.keys, (M + S) * Dkv), put(s.values, (M + S) * Dkv);
            put(s.mem_q, M * D), put(s.tok_out, S * D);
        }
        return all;
    }
};

void expect_same(const char *what, const std::string &name, const std::vector<float> &a, const std::vector<float> &b,
                 const char *when = "each decoding step is queued twice") {
    assert_int_equal(a.size(), b.size());
    if (std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) != 0)
        fail_msg("%s: %s differ(s) when %s", name.c_str(), what, when);
}

// A session's step of one token (rmkv_session::step): prefill, then one token at
// a time through run_recorded, the memory rewritten at each segment end.
void one_session(const std::string &name, const std::string &json) {
    Net n;
    build(n, json);
    const Config &c = n.c;
    ReferenceBackend plain;
    TwiceBackend twice;
    Text a(plain, n), b(twice, n);
    auto sa = plain.new_stream(), sb = twice.new_stream();
    ModelView va{&c, &n.W, &plain}, vb{&c, &n.W, &twice};
    SegmentForward fa(va, *sa), fb(vb, *sb);
    std::mt19937 rng(3);
    std::vector<int32_t> prompt(3);
    for (int32_t &t : prompt) t = static_cast<int32_t>(rng() % static_cast<unsigned>(c.vocab_size));
    fa.prepare_memory(a.layers, a.ws), fb.prepare_memory(b.layers, b.ws);
    fa.tokens(a.layers, a.ws, prompt.data(), 3, 0, 0, a.ws.logits, false);
    fb.tokens(b.layers, b.ws, prompt.data(), 3, 0, 0, b.ws.logits, false);
    int64_t fill = 3, pos = 3;
    const int steps = static_cast<int>(2 * c.segment_len + 1);
    for (int i = 0; i < steps; ++i) {
        const int32_t tok = static_cast<int32_t>(rng() % static_cast<unsigned>(c.vocab_size));
        fa.tokens(a.layers, a.ws, &tok, 1, fill, pos, a.ws.logits, false);
        run_recorded(twice, *sb, [&] { fb.tokens(b.layers, b.ws, &tok, 1, fill, pos, b.ws.logits, false); });
        expect_same("logits", name, std::vector<float>(a.ws.logits, a.ws.logits + c.vocab_size),
                    std::vector<float>(b.ws.logits, b.ws.logits + c.vocab_size));
        ++fill, ++pos;
        if (fill == c.segment_len) {
            fa.rewrite_memory(a.layers, a.ws, fill), fb.rewrite_memory(b.layers, b.ws, fill);
            fa.prepare_memory(a.layers, a.ws), fb.prepare_memory(b.layers, b.ws);
            fill = 0;
        }
    }
    expect_same("the layer states", name, a.state(c), b.state(c));
    assert_int_equal(twice.failed, steps);
    print_message("%-36s %d one-token steps, each queued twice: logits and states identical\n", name.c_str(), steps);
}

// Sessions decoded together (rmkv_session::step_together): decode_rows of two
// streams of text at different offsets, through run_recorded.
void rows_together(const std::string &name, const std::string &json) {
    Net n;
    build(n, json);
    const Config &c = n.c;
    const int64_t D = c.d_model, Dkv = c.d_kv(), F = c.ffn_hidden, V = c.vocab_size, N = 2;
    ReferenceBackend plain;
    TwiceBackend twice;
    Text a0(plain, n), a1(plain, n), b0(twice, n), b1(twice, n);
    auto sa = plain.new_stream(), sb = twice.new_stream();
    ModelView va{&c, &n.W, &plain}, vb{&c, &n.W, &twice};
    SegmentForward fa(va, *sa), fb(vb, *sb);
    // The rows' scratch (rmkv_session::together).
    struct Rows {
        Owned mem;
        RowsWorkspace ws{};
        std::vector<CacheRow> cache_rows;
        std::vector<real *> row_dst;
        std::vector<int32_t> places;
        std::vector<int64_t> positions;
        Rows(Backend &be, int64_t N, int64_t D, int64_t Dkv, int64_t F, int64_t V)
            : mem(be), cache_rows(static_cast<size_t>(N)), row_dst(static_cast<size_t>(N)), places(static_cast<size_t>(N)),
              positions(static_cast<size_t>(N)) {
            ws.x = mem.get(N * D), ws.xn = mem.get(N * D), ws.q = mem.get(N * D);
            ws.attn = mem.get(N * D), ws.o = mem.get(N * D);
            ws.k = mem.get(N * Dkv), ws.v = mem.get(N * Dkv);
            ws.h1 = mem.get(N * F), ws.h2 = mem.get(N * F);
            ws.logits = mem.get(N * V);
            ws.cache_rows = cache_rows.data(), ws.row_dst = row_dst.data();
            ws.places = places.data(), ws.positions = positions.data();
        }
    } ra(plain, N, D, Dkv, F, V), rb(twice, N, D, Dkv, F, V);
    // Stream 1 starts two tokens in (a prompt of its own), so the rows sit at different offsets.
    const int32_t prompt[2] = {1, 2};
    for (Text *t : {&a0, &a1}) fa.prepare_memory(t->layers, t->ws);
    for (Text *t : {&b0, &b1}) fb.prepare_memory(t->layers, t->ws);
    fa.tokens(a1.layers, a1.ws, prompt, 2, 0, 0, nullptr, false);
    fb.tokens(b1.layers, b1.ws, prompt, 2, 0, 0, nullptr, false);
    int64_t fill[2] = {0, 2}, pos[2] = {0, 2};
    std::mt19937 rng(8);
    const int steps = static_cast<int>(c.segment_len + 2);
    for (int i = 0; i < steps; ++i) {
        int32_t tok[2];
        for (int32_t &t : tok) t = static_cast<int32_t>(rng() % static_cast<unsigned>(V));
        const DecodeRow da[2] = {{&a0.layers, fill[0], pos[0]}, {&a1.layers, fill[1], pos[1]}};
        const DecodeRow db[2] = {{&b0.layers, fill[0], pos[0]}, {&b1.layers, fill[1], pos[1]}};
        fa.decode_rows(da, N, tok, ra.ws, ra.ws.logits);
        run_recorded(twice, *sb, [&] { fb.decode_rows(db, N, tok, rb.ws, rb.ws.logits); });
        expect_same("logits of sessions together", name, std::vector<float>(ra.ws.logits, ra.ws.logits + N * V),
                    std::vector<float>(rb.ws.logits, rb.ws.logits + N * V));
        for (int k = 0; k < 2; ++k) {
            ++fill[k], ++pos[k];
            if (fill[k] == c.segment_len) {
                Text &ta = k ? a1 : a0, &tb = k ? b1 : b0;
                fa.rewrite_memory(ta.layers, ta.ws, fill[k]), fb.rewrite_memory(tb.layers, tb.ws, fill[k]);
                fa.prepare_memory(ta.layers, ta.ws), fb.prepare_memory(tb.layers, tb.ws);
                fill[k] = 0;
            }
        }
    }
    expect_same("stream 0's layer states", name, a0.state(c), b0.state(c));
    expect_same("stream 1's layer states", name, a1.state(c), b1.state(c));
    assert_int_equal(twice.failed, steps);
    print_message("%-36s %d steps of 2 sessions together, each queued twice: identical\n", name.c_str(), steps);
}

const char *kBase = "\"vocab_size\":13,\"d_model\":8,\"n_layers\":2,\"memory_slots\":2,\"segment_len\":4,";
const struct {
    const char *name, *rest;
} kConfigs[] = {
    {"gru rope layernorm swiglu gqa",
     "\"n_heads\":2,\"n_kv_heads\":1,\"cell\":\"gru\",\"pos\":\"rope\",\"norm\":\"layernorm\",\"ffn\":\"swiglu\","
     "\"ffn_hidden\":12}"},
    {"lstm learned rmsnorm gelu tied",
     "\"n_heads\":2,\"cell\":\"lstm\",\"pos\":\"learned\",\"norm\":\"rmsnorm\",\"ffn\":\"gelu\",\"ffn_hidden\":12,"
     "\"tie_embeddings\":true}"},
    {"minimal sincos layernorm no-ffn",
     "\"n_heads\":4,\"n_kv_heads\":2,\"cell\":\"minimal\",\"pos\":\"sincos\",\"norm\":\"layernorm\",\"ffn\":\"none\"}"},
};

// ---- a training pass whose recording fails ----

// Every recording "fails" after its operations ran, and undoes them first: each
// buffer allocated through this backend is put back as it was at begin_record
// (one allocated since is filled with NaN: a device would not have written it),
// and so are the stream's sums. run_recorded then queues the step again, as after
// a failed recording on a device, where none of it ran. (A pass adds to its
// gradients, so queued twice without the undoing it would double them.)
class RollbackBackend final : public ReferenceBackend {
public:
    real *alloc(size_t n) override { return track(ReferenceBackend::alloc(n), n * sizeof(real)); }
    void free(real *p) override {
        untrack(p);
        ReferenceBackend::free(p);
    }
    uint16_t *alloc_bf16(size_t n) override { return track(ReferenceBackend::alloc_bf16(n), n * sizeof(uint16_t)); }
    void free_bf16(uint16_t *p) override {
        untrack(p);
        ReferenceBackend::free_bf16(p);
    }
    bool begin_record(Stream &s, bool again) override {
        if (again) return false;
        saved_.clear();
        for (const auto &[p, bytes] : sizes_) saved_[p].assign(static_cast<char *>(p), static_cast<char *>(p) + bytes);
        sums_ = {s.host_loss_sum, s.host_grad_norm, s.host_update_scale};
        return true;
    }
    bool end_record(Stream &s) override {
        ++failed;
        for (const auto &[p, bytes] : sizes_) {
            auto it = saved_.find(p);
            if (it == saved_.end()) std::memset(p, 0xff, bytes);
            else std::memcpy(p, it->second.data(), bytes);
        }
        s.host_loss_sum = sums_.loss, s.host_grad_norm = sums_.norm, s.host_update_scale = sums_.scale;
        return false;
    }
    int failed = 0;

private:
    template <class T>
    T *track(T *p, size_t bytes) {
        sizes_[p] = bytes;
        return p;
    }
    void untrack(void *p) {
        sizes_.erase(p);
        saved_.erase(p);
    }
    std::map<void *, size_t> sizes_;
    std::map<void *, std::vector<char>> saved_;
    struct {
        double loss, norm;
        float scale;
    } sums_{};
};

// Two training passes (SequencePass::run, the first growing the pass's buffers)
// over segments {4, 1, 3} of n_seq stacked sequences: the loss and the summed
// gradients of both.
struct PassResult {
    double loss = 0;
    std::vector<float> grads;
};
PassResult training_passes(Backend &be, const Net &n, int64_t n_seq, bool recompute, Bf16Copies copies, float dropout) {
    const Config &c = n.c;
    const std::vector<ParamSpec> specs = param_specs(c);
    const ModelView view{&c, &n.W, &be};
    const std::vector<int64_t> lens = {4, 1, 3};
    const int64_t total = 8;
    std::mt19937_64 rng(11);
    // the second pass reads the tokens one further on
    std::vector<int32_t> tokens(static_cast<size_t>(n_seq * total + 1)), targets(tokens.size() - 1);
    for (int32_t &t : tokens) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(c.vocab_size));
    for (size_t i = 0; i < targets.size(); ++i)
        targets[i] = i % 5 == 2 ? -1 : static_cast<int32_t>(rng() % static_cast<uint64_t>(c.vocab_size));
    std::vector<DropoutPlan> plans;
    for (int64_t i = 0; i < n_seq; ++i) plans.push_back({dropout, 0x5eedull + 7 * static_cast<uint64_t>(i)});
    auto st = be.new_stream();
    Owned g(be);
    std::vector<real *> gp;
    for (const ParamSpec &sp : specs) {
        gp.push_back(g.get(sp.numel));
        be.fill(*st, gp.back(), 0.0f, static_cast<size_t>(sp.numel));
    }
    PassResult r;
    {
        SequencePass pass(view, *st, recompute, n_seq, copies);
        for (int run = 0; run < 2; ++run)
            pass.run(tokens.data() + run, targets.data(), n_seq, total, lens, bind_weights(c, specs, gp), 0.25f,
                     plans.data());
        r.loss = be.take_loss(*st);
    }
    for (size_t i = 0; i < specs.size(); ++i) r.grads.insert(r.grads.end(), gp[i], gp[i] + specs[i].numel);
    return r;
}

void training_pass(const std::string &name, const std::string &json) {
    Net n;
    build(n, json);
    struct Way {
        const char *what;
        int64_t n_seq;
        bool recompute;
        Bf16Copies copies;
        float dropout;
    };
    for (const Way &w : {Way{"1 sequence", 1, false, Bf16Copies::off, 0.0f},
                         Way{"3 stacked, dropout, bf16 copies", 3, false, Bf16Copies::beside_fp32, 0.2f},
                         Way{"2 stacked, recomputing", 2, true, Bf16Copies::off, 0.1f}}) {
        ReferenceBackend once;
        RollbackBackend again;
        const PassResult want = training_passes(once, n, w.n_seq, w.recompute, w.copies, w.dropout);
        const PassResult got = training_passes(again, n, w.n_seq, w.recompute, w.copies, w.dropout);
        assert_int_equal(again.failed, 2);
        if (std::memcmp(&got.loss, &want.loss, sizeof(double)) != 0)
            fail_msg("%s, %s: loss %.9g queued again, %.9g once", name.c_str(), w.what, got.loss, want.loss);
        expect_same("the gradients", name + ", " + w.what, got.grads, want.grads,
                    "each pass is recorded, undone and queued again");
        size_t nonzero = 0;
        for (float x : got.grads) nonzero += x != 0.0f;
        assert_true(nonzero > 0);
        print_message("%-36s %-32s 2 passes, each recorded, undone and queued again: identical\n", name.c_str(),
                      w.what);
    }
}

void one_session_twice(void **) {
    for (const auto &k : kConfigs) one_session(k.name, std::string("{") + kBase + k.rest);
}
void sessions_together_twice(void **) {
    for (const auto &k : kConfigs) rows_together(k.name, std::string("{") + kBase + k.rest);
}
void training_pass_queued_again(void **) {
    for (const auto &k : kConfigs) training_pass(k.name, std::string("{") + kBase + k.rest);
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(run_recorded_cases),
        cmocka_unit_test(one_session_twice),
        cmocka_unit_test(sessions_together_twice),
        cmocka_unit_test(training_pass_queued_again),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
