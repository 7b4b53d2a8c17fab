// bf16 training keeps the inputs of its matrix products as bf16 copies only
// (SequencePass with Bf16Copies::instead_of_fp32: Backend's bf16 copies, the fp32
// values neither written nor kept). On the CPU backend with bf16 products, a
// training pass that way gives the loss and every gradient of the pass whose
// products round their fp32 inputs themselves (Bf16Copies::off), bit for bit,
// and so does one that keeps both: for each ffn kind, cell and position kind,
// with stacked sequences, dropout, recomputation and a one-token segment (one row
// per product). Skipped where the CPU has no bf16 products.
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"
#include "model/weights.h"
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

struct Run {
    double loss = 0;
    std::vector<std::vector<float>> grads;
};

// One pass over n_seq sequences of segments `lens` with the given copies; weights
// and shadows set up by the caller on stream st.
Run run_pass(const ModelView &view, Stream &st, const std::vector<ParamSpec> &specs, Bf16Copies copies, bool recompute,
             int64_t n_seq, const std::vector<int64_t> &lens, float dropout) {
    Backend &be = view.backend();
    const Config &c = view.config();
    int64_t total = 0;
    for (int64_t l : lens) total += l;
    std::mt19937_64 rng(42);
    std::vector<int32_t> tokens(static_cast<size_t>(n_seq * total)), targets(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
        tokens[i] = static_cast<int32_t>(rng() % static_cast<uint64_t>(c.vocab_size));
        targets[i] = i % 5 == 3 ? -1 : static_cast<int32_t>(rng() % static_cast<uint64_t>(c.vocab_size));
    }
    std::vector<real *> gp;
    for (const ParamSpec &s : specs) gp.push_back(be.alloc(static_cast<size_t>(s.numel)));
    std::vector<DropoutPlan> plans;
    for (int64_t i = 0; i < n_seq; ++i) plans.push_back({dropout, 0xabcull + 31 * static_cast<uint64_t>(i)});
    Run r;
    {
        SequencePass pass(view, st, recompute, n_seq, copies);
        pass.run(tokens.data(), targets.data(), n_seq, total, lens, bind_weights(c, specs, gp), 0.5f, plans.data());
        r.loss = be.take_loss(st);
    }
    for (size_t i = 0; i < specs.size(); ++i) {
        r.grads.emplace_back(static_cast<size_t>(specs[i].numel));
        be.to_host(st, r.grads.back().data(), gp[i], r.grads.back().size());
        be.free(gp[i]);
    }
    be.sync(st);
    return r;
}

void check_config(const char *name, const std::string &json, int64_t n_seq, float dropout) {
    std::shared_ptr<Backend> be = get_backend("cpu");
    if (!be->supports_bf16()) {
        print_message("%s: this CPU has no bf16 products: nothing to check\n", name);
        skip();
    }
    const Config c = Config::from_json(json, 0, false);
    const std::vector<ParamSpec> specs = param_specs(c);
    std::mt19937_64 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<real *> wp;
    std::vector<uint16_t *> shadows;
    auto st = be->new_stream();
    for (const ParamSpec &s : specs) {
        std::vector<float> v(static_cast<size_t>(s.numel));
        const float scale = s.init == Init::ones ? 0.2f : 0.5f;
        for (float &x : v) x = (s.init == Init::ones ? 1.0f : 0.0f) + scale * normal(rng);
        wp.push_back(be->alloc(v.size()));
        be->from_host(*st, wp.back(), v.data(), v.size());
        shadows.push_back(is_matrix(s) ? be->alloc_bf16(v.size()) : nullptr);
        if (shadows.back()) {
            be->to_bf16(*st, shadows.back(), wp.back(), v.size());
            be->set_shadow(*st, wp.back(), shadows.back());
        }
    }
    be->set_bf16(*st, true);
    const ModelWeights W = bind_weights(c, specs, wp);
    const ModelView view{&c, &W, be.get()};
    const std::vector<int64_t> lens = {c.segment_len, 1, c.segment_len - 2};

    const Run want = run_pass(view, *st, specs, Bf16Copies::off, false, n_seq, lens, dropout);
    struct Way {
        const char *what;
        Bf16Copies copies;
        bool recompute;
    };
    for (const Way &w : {Way{"copies beside fp32", Bf16Copies::beside_fp32, false},
                         Way{"copies only", Bf16Copies::instead_of_fp32, false},
                         Way{"copies only, recomputing", Bf16Copies::instead_of_fp32, true}}) {
        const Run got = run_pass(view, *st, specs, w.copies, w.recompute, n_seq, lens, dropout);
        if (std::memcmp(&got.loss, &want.loss, sizeof(double)) != 0)
            fail_msg("%s, %s: loss %.9g, rounding its own inputs %.9g", name, w.what, got.loss, want.loss);
        size_t nonzero = 0;
        for (size_t t = 0; t < specs.size(); ++t) {
            if (got.grads[t] != want.grads[t])
                fail_msg("%s, %s: the gradient of %s differs", name, w.what, specs[t].name.c_str());
            for (float g : got.grads[t]) nonzero += g != 0.0f;
        }
        assert_true(nonzero > 0);
        print_message("%-44s %-26s loss %.6f: the same bits\n", name, w.what, got.loss);
    }
    for (size_t i = 0; i < specs.size(); ++i) {
        be->free(wp[i]);
        if (shadows[i]) be->free_bf16(shadows[i]);
    }
}

const char *kBase = "\"vocab_size\":97,\"d_model\":64,\"n_layers\":2,\"n_heads\":4,\"memory_slots\":8,\"segment_len\":20,";

void swiglu_gru_rope(void **) {
    check_config("swiglu gru rope layernorm gqa", std::string("{") + kBase +
                 "\"n_kv_heads\":2,\"cell\":\"gru\",\"pos\":\"rope\",\"ffn\":\"swiglu\",\"ffn_hidden\":96}", 1, 0.0f);
}
// 3 x 20 rows of a hidden width of 4400: the activations and their gradients take
// more than one block of the CPU's spill buffer (2^18 floats, shared by swiglu's two
// gradients).
void gelu_lstm_learned_stacked(void **) {
    check_config("gelu lstm learned rmsnorm tied, 3 stacked", std::string("{") + kBase +
                 "\"cell\":\"lstm\",\"pos\":\"learned\",\"norm\":\"rmsnorm\",\"ffn\":\"gelu\",\"ffn_hidden\":4400,"
                 "\"tie_embeddings\":true}", 3, 0.1f);
}
void swiglu_wide_stacked(void **) {
    check_config("swiglu gru rope, 3 stacked, wide", std::string("{") + kBase +
                 "\"cell\":\"gru\",\"pos\":\"rope\",\"ffn\":\"swiglu\",\"ffn_hidden\":4400}", 3, 0.0f);
}
void noffn_minimal_sincos(void **) {
    check_config("no ffn, minimal sincos, 2 stacked", std::string("{") + kBase +
                 "\"cell\":\"minimal\",\"pos\":\"sincos\",\"ffn\":\"none\"}", 2, 0.2f);
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(swiglu_gru_rope),
        cmocka_unit_test(gelu_lstm_learned_stacked),
        cmocka_unit_test(swiglu_wide_stacked),
        cmocka_unit_test(noffn_minimal_sincos),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
