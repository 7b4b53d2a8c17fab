// The whole model's backward against central finite differences, in double
// precision: the model code (segment forward, the K-segment sequence pass with
// BPTT through the memory, weights) is compiled here with RMKV_REAL=double and
// runs on the reference backend (reference_backend.h). For several configs that
// together cover every option of SPEC section 2, K = 3 segments of different
// lengths, some targets masked out, every element of every parameter is checked.
// Stacked runs (several sequences in one pass's rows) are checked the same way,
// and against the sum of the sequences run one by one. The passes keep bf16
// copies of the products' inputs, as bf16 training does: the reference backend
// checks each copy against its source wherever a product takes it, and a pass
// that recomputes every layer gives the same loss and gradients.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "reference_backend.h"
#include "train/sequence_pass.h"

// cmocka last: it defines a macro named fail.
extern "C" {
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
}

static_assert(sizeof(rmkv::real) == sizeof(double), "this test compiles the model code in double precision");

using namespace rmkv;

namespace {

struct Net {
    Config c;
    std::vector<ParamSpec> specs;
    std::vector<std::vector<double>> w, g;
    ModelWeights W{}, G{};
};

void build(Net &n, const std::string &json, uint64_t seed) {
    n.c = Config::from_json(json, 0, false);
    n.specs = param_specs(n.c);
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<real *> wp, gp;
    for (const ParamSpec &s : n.specs) {
        std::vector<double> v(static_cast<size_t>(s.numel));
        // Weights large enough that every nonlinearity is off its linear regime.
        const bool gain = s.init == Init::ones;
        const double scale = gain ? 0.2 : s.shape.size() == 2 ? 0.6 / std::sqrt(static_cast<double>(s.shape[1])) * 2 : 0.3;
        for (double &x : v) x = (gain ? 1.0 : 0.0) + scale * normal(rng);
        n.w.push_back(std::move(v));
        n.g.emplace_back(static_cast<size_t>(s.numel), 0.0);
    }
    for (size_t i = 0; i < n.specs.size(); ++i) wp.push_back(n.w[i].data()), gp.push_back(n.g[i].data());
    n.W = bind_weights(n.c, n.specs, wp);
    n.G = bind_weights(n.c, n.specs, gp);
}

// n_seq sequences stacked in one pass (different tokens and dropout masks each).
void check_config(const char *name, const std::string &json, float dropout = 0.0f, int64_t n_seq = 1) {
    Net n;
    build(n, json, 7);
    ReferenceBackend be;
    auto st = be.new_stream();
    ModelView view{&n.c, &n.W, &be};
    SequencePass pass(view, *st, false, n_seq, Bf16Copies::beside_fp32);

    const std::vector<int64_t> lens = {n.c.segment_len, 3, n.c.segment_len - 1};  // K = 3, unequal
    int64_t total = 0;
    for (int64_t l : lens) total += l;
    std::mt19937_64 rng(99);
    std::vector<int32_t> tokens(static_cast<size_t>(n_seq * total)), targets(static_cast<size_t>(n_seq * total));
    for (int64_t i = 0; i < n_seq * total; ++i) {
        tokens[static_cast<size_t>(i)] = static_cast<int32_t>(rng() % static_cast<uint64_t>(n.c.vocab_size));
        targets[static_cast<size_t>(i)] = i % 4 == 1 ? -1 : static_cast<int32_t>(rng() % static_cast<uint64_t>(n.c.vocab_size));
    }

    // With dropout, the masks are a function of (seed, segment, layer, site, element):
    // the loss is a deterministic function of the weights, differentiable where kept.
    std::vector<DropoutPlan> plans;
    for (int64_t i = 0; i < n_seq; ++i) plans.push_back({dropout, 0xfeedull + 977 * static_cast<uint64_t>(i)});
    pass.run(tokens.data(), targets.data(), n_seq, total, lens, n.G, 1.0f, plans.data());
    const double loss = be.take_loss(*st);
    // The forward alone (evaluation, never dropout) gives the same loss without dropout.
    SequencePass::EvalSums sums;
    pass.evaluate(tokens.data(), targets.data(), n_seq, total, lens, false, sums);
    if (dropout == 0.0f) assert_true(std::fabs(sums.loss - loss) <= 1e-12 * std::fabs(loss));
    else assert_true(std::fabs(sums.loss - loss) > 1e-6 * std::fabs(loss));
    {
        std::vector<std::vector<double>> rg;
        std::vector<real *> rp;
        for (const ParamSpec &s : n.specs) rg.emplace_back(static_cast<size_t>(s.numel), 0.0);
        for (auto &v : rg) rp.push_back(v.data());
        SequencePass recomputing(view, *st, true, n_seq, Bf16Copies::beside_fp32);
        recomputing.run(tokens.data(), targets.data(), n_seq, total, lens, bind_weights(n.c, n.specs, rp), 1.0f,
                        plans.data());
        assert_true(be.take_loss(*st) == loss);
        for (size_t t = 0; t < n.specs.size(); ++t)
            if (rg[t] != n.g[t]) fail_msg("%s: %s: recomputation changed the gradient", name, n.specs[t].name.c_str());
    }
    assert_true(be.copies_checked > 0);

    // A sink for the gradients of the perturbed runs.
    std::vector<std::vector<double>> sink;
    std::vector<real *> sp;
    for (const ParamSpec &s : n.specs) sink.emplace_back(static_cast<size_t>(s.numel), 0.0);
    for (auto &v : sink) sp.push_back(v.data());
    const ModelWeights S = bind_weights(n.c, n.specs, sp);
    auto f = [&]() {
        pass.run(tokens.data(), targets.data(), n_seq, total, lens, S, 1.0f, plans.data());
        return be.take_loss(*st);
    };

    if (n_seq > 1) {
        // Stacked = the sequences one by one: the summed losses and gradients, and
        // each one's evaluation.
        std::vector<std::vector<double>> one;
        std::vector<real *> op;
        for (const ParamSpec &s : n.specs) one.emplace_back(static_cast<size_t>(s.numel), 0.0);
        for (auto &v : one) op.push_back(v.data());
        const ModelWeights O = bind_weights(n.c, n.specs, op);
        SequencePass single(view, *st);
        double loss_one = 0;
        SequencePass::EvalSums sums_one;
        for (int64_t i = 0; i < n_seq; ++i) {
            single.run(tokens.data() + i * total, targets.data() + i * total, lens, O, 1.0f, plans[static_cast<size_t>(i)]);
            loss_one += be.take_loss(*st);
            single.evaluate(tokens.data() + i * total, targets.data() + i * total, lens, false, sums_one);
        }
        assert_true(std::fabs(loss_one - loss) <= 1e-12 * std::fabs(loss));
        assert_true(std::fabs(sums_one.loss - sums.loss) <= 1e-12 * std::fabs(sums.loss));
        assert_int_equal(sums_one.correct, sums.correct);
        assert_int_equal(sums_one.targets, sums.targets);
        for (size_t t = 0; t < n.specs.size(); ++t) {
            double scale = 1e-3, diff = 0;  // a floor for the gradients that are zero but for rounding (k.bias)
            for (size_t i = 0; i < one[t].size(); ++i) {
                scale = std::max(scale, std::fabs(n.g[t][i]));
                diff = std::max(diff, std::fabs(n.g[t][i] - one[t][i]));
            }
            if (!(diff <= 1e-12 * scale))
                fail_msg("%s: %s: stacked gradient differs from the sequences' sum by %g of %g", name,
                         n.specs[t].name.c_str(), diff, scale);
        }
    }

    // RMKV_FD_STRIDE=k checks every k-th element only (the sanitizer builds, where
    // this test is 100x slower; the optimised build checks every element).
    const char *stride_env = std::getenv("RMKV_FD_STRIDE");
    // Stacked runs are held to the one-by-one gradients exactly (above); their finite
    // differences check every 5th element at least.
    size_t stride = stride_env && std::atoi(stride_env) > 1 ? static_cast<size_t>(std::atoi(stride_env)) : 1;
    if (n_seq > 1) stride = std::max<size_t>(stride, 5);
    const double h = 1e-5;
    double worst = 0;
    size_t checked = 0;
    for (size_t t = 0; t < n.specs.size(); ++t) {
        std::vector<double> &x = n.w[t];
        const std::vector<double> &an = n.g[t];
        double scale = 1e-8, tensor_worst = 0, fd_max = 0;
        for (double a : an) scale = std::max(scale, std::fabs(a));
        for (size_t i = t % stride; i < x.size(); i += stride) {
            const double keep = x[i];
            x[i] = keep + h;
            const double fp = f();
            x[i] = keep - h;
            const double fm = f();
            x[i] = keep;
            const double fd = (fp - fm) / (2 * h);
            fd_max = std::max(fd_max, std::fabs(fd));
            const double e = std::fabs(fd - an[i]) / scale;
            if (!(e <= tensor_worst)) tensor_worst = e;  // a NaN sticks
        }
        checked += (x.size() + stride - 1 - t % stride) / stride;
        // A bias added to every key shifts all scores of a query by the same amount,
        // which softmax ignores: its gradient is exactly zero unless RoPE rotates the
        // token keys (memory keys are not rotated). Then both sides must be ~0.
        const bool zero_by_invariance =
            n.specs[t].name.find("attn.k.bias") != std::string::npos && n.c.pos != Pos::rope;
        if (zero_by_invariance) {
            if (!(scale <= 1e-8 && fd_max < 1e-8))
                fail_msg("%s: %s should have a zero gradient (analytic %g, differences %g)", name, n.specs[t].name.c_str(),
                         scale, fd_max);
            continue;
        }
        if (!(tensor_worst < 1e-6))
            fail_msg("%s: %s: finite differences disagree, relative error %g", name, n.specs[t].name.c_str(), tensor_worst);
        // Every other parameter must matter (otherwise the check proves nothing about it).
        if (!(scale > 1e-6)) fail_msg("%s: %s has a zero gradient", name, n.specs[t].name.c_str());
        if (!(tensor_worst <= worst)) worst = tensor_worst;
    }
    print_message("%-40s loss %.6f, %zu parameters, max relative error %.2e\n", name, loss, checked, worst);
}

const char *kBase = "\"vocab_size\":11,\"d_model\":8,\"n_layers\":2,\"memory_slots\":2,\"segment_len\":5,";

void gru_rope_layernorm_swiglu_gqa(void **) {
    check_config("gru rope layernorm swiglu gqa", std::string("{") + kBase +
                 "\"n_heads\":2,\"n_kv_heads\":1,\"cell\":\"gru\",\"pos\":\"rope\",\"norm\":\"layernorm\","
                 "\"ffn\":\"swiglu\",\"ffn_hidden\":12}");
}
void lstm_learned_rmsnorm_gelu_tied(void **) {
    check_config("lstm learned rmsnorm gelu tied", std::string("{") + kBase +
                 "\"n_heads\":2,\"cell\":\"lstm\",\"pos\":\"learned\",\"norm\":\"rmsnorm\",\"ffn\":\"gelu\","
                 "\"ffn_hidden\":12,\"tie_embeddings\":true}");
}
void minimal_sincos_layernorm_noffn(void **) {
    check_config("minimal sincos layernorm no-ffn", std::string("{") + kBase +
                 "\"n_heads\":4,\"n_kv_heads\":2,\"cell\":\"minimal\",\"pos\":\"sincos\",\"norm\":\"layernorm\","
                 "\"ffn\":\"none\"}");
}
void lstm_rope_rmsnorm_swiglu_tied(void **) {
    check_config("lstm rope rmsnorm swiglu tied", std::string("{") + kBase +
                 "\"n_heads\":2,\"cell\":\"lstm\",\"pos\":\"rope\",\"norm\":\"rmsnorm\",\"ffn\":\"swiglu\","
                 "\"ffn_hidden\":12,\"tie_embeddings\":true}");
}
void minimal_learned_rmsnorm_gelu(void **) {
    check_config("minimal learned rmsnorm gelu", std::string("{") + kBase +
                 "\"n_heads\":1,\"cell\":\"minimal\",\"pos\":\"learned\",\"norm\":\"rmsnorm\",\"ffn\":\"gelu\","
                 "\"ffn_hidden\":12}");
}
void gru_sincos_layernorm_gelu(void **) {
    check_config("gru sincos layernorm gelu", std::string("{") + kBase +
                 "\"n_heads\":2,\"cell\":\"gru\",\"pos\":\"sincos\",\"norm\":\"layernorm\",\"ffn\":\"gelu\","
                 "\"ffn_hidden\":12}");
}

// Dropout at every site (attention probabilities of token and memory rows, Wo
// outputs of token and memory rows, ffn.down outputs).
void dropout_gru_rope_swiglu(void **) {
    check_config("dropout 0.2: gru rope layernorm swiglu", std::string("{") + kBase +
                 "\"n_heads\":2,\"n_kv_heads\":1,\"cell\":\"gru\",\"pos\":\"rope\",\"norm\":\"layernorm\","
                 "\"ffn\":\"swiglu\",\"ffn_hidden\":12}", 0.2f);
}
void dropout_lstm_learned_gelu(void **) {
    check_config("dropout 0.35: lstm learned rmsnorm gelu", std::string("{") + kBase +
                 "\"n_heads\":2,\"cell\":\"lstm\",\"pos\":\"learned\",\"norm\":\"rmsnorm\",\"ffn\":\"gelu\","
                 "\"ffn_hidden\":12}", 0.35f);
}

// Sequences stacked into one pass's rows: 3 with dropout (gru, rope, GQA), 2 with
// the minimal cell and sincos positions.
void stacked_dropout_gru_rope_gqa(void **) {
    check_config("3 stacked, dropout 0.2: gru rope gqa", std::string("{") + kBase +
                 "\"n_heads\":2,\"n_kv_heads\":1,\"cell\":\"gru\",\"pos\":\"rope\",\"norm\":\"layernorm\","
                 "\"ffn\":\"swiglu\",\"ffn_hidden\":12}", 0.2f, 3);
}
void stacked_minimal_sincos_lstm(void **) {
    check_config("2 stacked: minimal sincos rmsnorm gelu", std::string("{") + kBase +
                 "\"n_heads\":2,\"cell\":\"minimal\",\"pos\":\"sincos\",\"norm\":\"rmsnorm\",\"ffn\":\"gelu\","
                 "\"ffn_hidden\":12}", 0.0f, 2);
    check_config("2 stacked: lstm learned layernorm", std::string("{") + kBase +
                 "\"n_heads\":1,\"cell\":\"lstm\",\"pos\":\"learned\",\"norm\":\"layernorm\",\"ffn\":\"none\"}",
                 0.0f, 2);
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gru_rope_layernorm_swiglu_gqa), cmocka_unit_test(lstm_learned_rmsnorm_gelu_tied),
        cmocka_unit_test(minimal_sincos_layernorm_noffn), cmocka_unit_test(lstm_rope_rmsnorm_swiglu_tied),
        cmocka_unit_test(minimal_learned_rmsnorm_gelu),  cmocka_unit_test(gru_sincos_layernorm_gelu),
        cmocka_unit_test(dropout_gru_rope_swiglu),       cmocka_unit_test(dropout_lstm_learned_gelu),
        cmocka_unit_test(stacked_dropout_gru_rope_gqa),  cmocka_unit_test(stacked_minimal_sincos_lstm),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
