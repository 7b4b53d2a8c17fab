// The whole model on the CUDA backend against the CPU backend, through the C ABI:
// logits of sessions over several segments (also stepped together), loss and every parameter's gradient
// over K = 3 unequal segments (fp32 within kTolF32, with dropout too: both draw
// the same masks; bf16 within kTolBf16Model; the device's trainer also with
// activation recomputation), model files and state files the
// same format whichever backend wrote them (a state saved on one loads on the
// other and continues alike), checkpoints that move between backends, a
// training run of a tiny config whose loss curve follows the CPU's, and state
// tuning on the GPU. scripts/gpu-check.sh runs it again with RMKV_CUDA_GRAPHS=1,
// where every decoding step and training pass is recorded as a CUDA graph.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gpu_common.h"

extern "C" {
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
}

#define CHECK(call)                                                                                                    \
    do {                                                                                                               \
        rmkv_status st_ = (call);                                                                                      \
        if (st_ != RMKV_OK) fail_msg("%s -> %s: %s", #call, rmkv_status_string(st_), rmkv_last_error());              \
    } while (0)

namespace {

using gpu_test::rel;

std::string tmp(const std::string &name) {
    const char *dir = std::getenv("RMKV_TEST_TMP");
    return std::string(dir && *dir ? dir : "/tmp") + "/gpu-" + std::to_string(getpid()) + "-" + name;
}

rmkv_model *create(const std::string &cfg, const char *device, uint64_t seed = 7) {
    rmkv_model_params p = rmkv_model_default_params();
    p.device = device;
    rmkv_model *m = nullptr;
    CHECK(rmkv_model_create(cfg.c_str(), nullptr, seed, &p, &m));
    return m;
}

std::string read_file(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// Tensor names of a model, from the header of its file.
std::vector<std::string> tensor_names(rmkv_model *m) {
    const std::string path = tmp("names.safetensors");
    CHECK(rmkv_model_save(m, path.c_str()));
    std::string bytes = read_file(path);
    std::remove(path.c_str());
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    auto header = nlohmann::json::parse(bytes.substr(8, n));
    std::vector<std::string> names;
    for (auto it = header.begin(); it != header.end(); ++it)
        if (it.key() != "__metadata__") names.push_back(it.key());
    return names;
}

const char *kBase = "\"vocab_size\":61,\"d_model\":32,\"n_layers\":2,\"memory_slots\":3,\"segment_len\":7,";
const char *kConfigs[][2] = {
    {"gru rope layernorm swiglu gqa", "\"n_heads\":4,\"n_kv_heads\":2,\"cell\":\"gru\",\"pos\":\"rope\",\"norm\":\"layernorm\",\"ffn\":\"swiglu\",\"ffn_hidden\":48}"},
    {"lstm learned rmsnorm gelu tied", "\"n_heads\":2,\"cell\":\"lstm\",\"pos\":\"learned\",\"norm\":\"rmsnorm\",\"ffn\":\"gelu\",\"ffn_hidden\":40,\"tie_embeddings\":true}"},
    {"minimal sincos layernorm no-ffn", "\"n_heads\":4,\"n_kv_heads\":1,\"cell\":\"minimal\",\"pos\":\"sincos\",\"norm\":\"layernorm\",\"ffn\":\"none\"}"},
    {"lstm rope rmsnorm swiglu", "\"n_heads\":2,\"cell\":\"lstm\",\"pos\":\"rope\",\"norm\":\"rmsnorm\",\"ffn\":\"swiglu\",\"ffn_hidden\":40}"},
    {"gru sincos layernorm gelu", "\"n_heads\":1,\"cell\":\"gru\",\"pos\":\"sincos\",\"norm\":\"layernorm\",\"ffn\":\"gelu\",\"ffn_hidden\":40}"},
};

// bf16 on the device under test: always on CUDA (sm_80 and later); in the
// self-check build (RMKV_GPU_TEST_DEVICE "cpu") only where the CPU has it.
bool bf16_here() {
    if (std::strcmp(gpu_test::kDevice, "cuda") == 0) return true;
    rmkv_model *m = create("{\"vocab_size\":8,\"d_model\":8,\"n_layers\":1,\"n_heads\":1,\"memory_slots\":1,\"segment_len\":4}", gpu_test::kDevice);
    rmkv_train_params p = rmkv_train_default_params();
    p.precision = RMKV_PRECISION_BF16;
    rmkv_trainer *t = nullptr;
    bool ok = rmkv_trainer_new(m, &p, &t) == RMKV_OK;
    rmkv_trainer_free(t);
    rmkv_model_free(m);
    if (!ok) print_message("no bf16 on %s: bf16 checks left out\n", gpu_test::kDevice);
    return ok;
}

std::string config(int i) { return std::string("{") + kBase + kConfigs[i][1]; }

constexpr int V = 61;

// Logits after every token of a stream of 3.5 segments, on both backends.
void logits_match(void **) {
    for (int c = 0; c < 5; ++c) {
        rmkv_model *mc = create(config(c), "cpu"), *mg = create(config(c), gpu_test::kDevice);
        rmkv_session *sc = nullptr, *sg = nullptr;
        CHECK(rmkv_session_new(mc, nullptr, &sc));
        CHECK(rmkv_session_new(mg, nullptr, &sg));
        std::vector<int32_t> tok(25);
        for (size_t i = 0; i < tok.size(); ++i) tok[i] = static_cast<int32_t>((i * 17 + 3) % V);
        std::vector<float> lc(tok.size() * V), lg(tok.size() * V);
        CHECK(rmkv_session_step_all(sc, tok.data(), tok.size(), lc.data()));
        CHECK(rmkv_session_step_all(sg, tok.data(), tok.size(), lg.data()));
        double e = rel(lg, lc);
        // Then one token at a time (decoding), after a flush.
        CHECK(rmkv_session_flush(sc));
        CHECK(rmkv_session_flush(sg));
        std::vector<float> dc(V), dg(V);
        double ed = 0;
        for (int t = 0; t < 10; ++t) {
            CHECK(rmkv_session_step(sc, &tok[t], 1, dc.data()));
            CHECK(rmkv_session_step(sg, &tok[t], 1, dg.data()));
            ed = std::max(ed, rel(dg, dc));
        }
        print_message("%-36s logits rel err %.2e, decoding %.2e\n", kConfigs[c][0], e, ed);
        assert_true(e < gpu_test::kTolF32);
        assert_true(ed < gpu_test::kTolF32);
        rmkv_session_free(sc);
        rmkv_session_free(sg);
        rmkv_model_free(mc);
        rmkv_model_free(mg);
    }
}

// Sessions at different positions stepped together on the device against the
// same sessions stepped one by one on the CPU, across segment ends, two of them
// at the same calls (their memory rewrites and memory rows stacked) (session
// params sp for both; NULL: the defaults). Returns the worst relative error.
double together_error(rmkv_model *mc, rmkv_model *mg, const rmkv_session_params *sp) {
    const size_t n = 3, pre[n] = {0, 3, 10};
    std::vector<rmkv_session *> sc(n), sg(n);
    std::vector<int32_t> tok(40);
    for (size_t i = 0; i < tok.size(); ++i) tok[i] = static_cast<int32_t>((i * 13 + 5) % V);
    for (size_t i = 0; i < n; ++i) {
        CHECK(rmkv_session_new(mc, sp, &sc[i]));
        CHECK(rmkv_session_new(mg, sp, &sg[i]));
        if (pre[i]) {
            CHECK(rmkv_session_step(sc[i], tok.data(), pre[i], nullptr));
            CHECK(rmkv_session_step(sg[i], tok.data(), pre[i], nullptr));
        }
    }
    std::vector<float> rows(n * V), one(V), dev_row(V);
    double e = 0;
    for (int k = 0; k < 9; ++k) {
        int32_t next[n];
        for (size_t i = 0; i < n; ++i) next[i] = tok[(k * 3 + i * 11) % tok.size()];
        CHECK(rmkv_sessions_step(sg.data(), n, next, rows.data()));
        for (size_t i = 0; i < n; ++i) {
            CHECK(rmkv_session_step(sc[i], &next[i], 1, one.data()));
            std::copy(rows.begin() + static_cast<std::ptrdiff_t>(i * V),
                      rows.begin() + static_cast<std::ptrdiff_t>((i + 1) * V), dev_row.begin());
            e = std::max(e, rel(dev_row, one));
        }
    }
    for (size_t i = 0; i < n; ++i) rmkv_session_free(sc[i]), rmkv_session_free(sg[i]);
    return e;
}

void sessions_together(void **) {
    for (int c = 0; c < 5; ++c) {
        rmkv_model *mc = create(config(c), "cpu"), *mg = create(config(c), gpu_test::kDevice);
        const double e = together_error(mc, mg, nullptr);
        print_message("%-36s 3 sessions together: rel err %.2e\n", kConfigs[c][0], e);
        assert_true(e < gpu_test::kTolF32);
        rmkv_model_free(mc);
        rmkv_model_free(mg);
    }
}

struct Batch {
    std::vector<int32_t> tok, tg;
    int32_t lens[3] = {7, 4, 6};
    rmkv_batch b{};
    explicit Batch(uint64_t seed) {
        const size_t B = 2, N = 17;
        tok.resize(B * N), tg.resize(B * N);
        uint64_t x = seed * 6364136223846793005ull + 1;
        for (size_t i = 0; i < B * N; ++i) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            tok[i] = static_cast<int32_t>((x >> 33) % V);
        }
        for (size_t i = 0; i < B * N; ++i) tg[i] = (i % N == N - 1) ? -1 : tok[i + 1];
        tg[2] = -1;
        b.struct_size = sizeof b;
        b.batch_size = B;
        b.n_tokens = N;
        b.tokens = tok.data();
        b.targets = tg.data();
        b.n_segments = 3;
        b.segment_lens = lens;
    }
};

// Loss and every gradient over K = 3 segments; returns the worst relative error.
// gpu_stack > 0: the device trainer runs one lane with the batch's sequences stacked.
double compare_gradients(int c, int32_t gpu_precision, float dropout, double tol, bool gpu_recompute = false,
                         int64_t gpu_stack = 0) {
    rmkv_model *mc = create(config(c), "cpu"), *mg = create(config(c), gpu_test::kDevice);
    rmkv_train_params p = rmkv_train_default_params();
    p.dropout = dropout;
    p.seed = 99;
    p.precision = RMKV_PRECISION_FP32;
    rmkv_trainer *tc = nullptr, *tg = nullptr;
    CHECK(rmkv_trainer_new(mc, &p, &tc));
    p.precision = gpu_precision;
    p.recompute = gpu_recompute ? 1 : 0;
    if (gpu_stack > 0) p.parallel_sequences = 1, p.stacked_sequences = gpu_stack;
    CHECK(rmkv_trainer_new(mg, &p, &tg));
    Batch b(c + 11);
    float lc = 0, lg = 0;
    CHECK(rmkv_trainer_compute_gradients(tc, &b.b, &lc));
    CHECK(rmkv_trainer_compute_gradients(tg, &b.b, &lg));
    double worst = std::fabs(double(lg) - lc) / std::fabs(double(lc));
    std::string worst_name = "loss";
    // Each tensor's error relative to its largest gradient, or to 1e-3 of the
    // model's largest when all of its own are smaller than that (the key biases:
    // their gradient is zero but for rounding, softmax being blind to them).
    std::vector<std::string> names = tensor_names(mc);
    std::vector<std::vector<float>> gcs, ggs;
    double largest = 0;
    for (const std::string &name : names) {
        size_t n = 0;
        rmkv_trainer_gradient(tc, name.c_str(), nullptr, 0, &n);
        std::vector<float> gc(n), gg(n);
        CHECK(rmkv_trainer_gradient(tc, name.c_str(), gc.data(), n, &n));
        CHECK(rmkv_trainer_gradient(tg, name.c_str(), gg.data(), n, &n));
        for (float x : gc) largest = std::max(largest, std::fabs(double(x)));
        gcs.push_back(std::move(gc)), ggs.push_back(std::move(gg));
    }
    for (size_t i = 0; i < names.size(); ++i) {
        double md = 0, mb = 1e-3 * largest;
        for (size_t j = 0; j < gcs[i].size(); ++j) {
            double d = std::fabs(double(ggs[i][j]) - gcs[i][j]);
            if (!(d <= md)) md = std::isnan(d) ? INFINITY : d;
            mb = std::max(mb, std::fabs(double(gcs[i][j])));
        }
        const double e = md / mb;
        if (e > worst || std::isnan(e)) worst = e, worst_name = names[i];
    }
    print_message("%-36s %s%s%s%s loss %.6f / %.6f, worst %.2e (%s)\n", kConfigs[c][0],
                  gpu_precision == RMKV_PRECISION_BF16 ? "bf16" : "fp32", dropout > 0 ? " dropout" : "",
                  gpu_recompute ? " recompute" : "", gpu_stack > 0 ? " stacked" : "", lc, lg, worst,
                  worst_name.c_str());
    if (!(worst < tol)) fail_msg("%s: gradient %s differs: %.3e >= %.1e", kConfigs[c][0], worst_name.c_str(), worst, tol);
    rmkv_trainer_free(tc);
    rmkv_trainer_free(tg);
    rmkv_model_free(mc);
    rmkv_model_free(mg);
    return worst;
}

void gradients_fp32(void **) {
    for (int c = 0; c < 5; ++c) compare_gradients(c, RMKV_PRECISION_FP32, 0.0f, gpu_test::kTolF32);
}
void gradients_fp32_dropout(void **) {
    compare_gradients(0, RMKV_PRECISION_FP32, 0.2f, gpu_test::kTolF32);
    compare_gradients(1, RMKV_PRECISION_FP32, 0.35f, gpu_test::kTolF32);
}
void gradients_recompute(void **) {
    for (int c = 0; c < 5; ++c) compare_gradients(c, RMKV_PRECISION_FP32, c < 2 ? 0.2f : 0.0f, gpu_test::kTolF32, true);
    if (bf16_here()) compare_gradients(2, RMKV_PRECISION_BF16, 0.0f, gpu_test::kTolBf16Model, true);
}
// Sequences stacked into one pass's rows on the device (the CPU side runs them as
// its default does), with dropout and recomputation on some.
void gradients_stacked(void **) {
    for (int c = 0; c < 5; ++c)
        compare_gradients(c, RMKV_PRECISION_FP32, c < 2 ? 0.2f : 0.0f, gpu_test::kTolF32, c == 3, 2);
}
void gradients_bf16(void **) {
    if (!bf16_here()) return;
    for (int c = 0; c < 5; ++c) compare_gradients(c, RMKV_PRECISION_BF16, 0.0f, gpu_test::kTolBf16Model);
}

// Model files are the same bytes whichever backend holds the weights.
void model_files_identical(void **) {
    rmkv_model *mc = create(config(0), "cpu"), *mg = create(config(0), gpu_test::kDevice);
    const std::string a = tmp("a.safetensors"), b = tmp("b.safetensors");
    CHECK(rmkv_model_save(mc, a.c_str()));
    CHECK(rmkv_model_save(mg, b.c_str()));
    assert_true(read_file(a) == read_file(b));
    // A file loads onto the GPU with the same logits as on the CPU.
    rmkv_model_params p = rmkv_model_default_params();
    p.device = gpu_test::kDevice;
    rmkv_model *mg2 = nullptr;
    CHECK(rmkv_model_load(a.c_str(), &p, &mg2));
    const std::string c = tmp("c.safetensors");
    CHECK(rmkv_model_save(mg2, c.c_str()));
    assert_true(read_file(a) == read_file(c));
    std::remove(a.c_str()), std::remove(b.c_str()), std::remove(c.c_str());
    rmkv_model_free(mc);
    rmkv_model_free(mg);
    rmkv_model_free(mg2);
}

// BF16 and F16 files: on the device their matrices stay 16-bit (its own copy).
// FP32 sessions widen every weight exactly on both backends: the same logits,
// prefill and decoding (CUDA's dot-product kernel up to 8 rows, widened blocks
// above); AUTO on the device takes bf16 products for BF16 files, within the bf16
// tolerance of the CPU's FP32; FP32 sessions stepped together on the device as
// one by one on the CPU. Saving the loaded model gives the file back.
void half_files(void **) {
    for (int c = 0; c < 5; ++c) {
        rmkv_model *m0 = create(config(c), "cpu");
        for (rmkv_dtype dtype : {RMKV_DTYPE_BF16, RMKV_DTYPE_F16}) {
            const std::string path = tmp("half.safetensors"), again = tmp("half-again.safetensors");
            CHECK(rmkv_model_save_as(m0, path.c_str(), dtype));
            rmkv_model_params p = rmkv_model_default_params();
            rmkv_model *mc = nullptr, *mg = nullptr;
            CHECK(rmkv_model_load(path.c_str(), &p, &mc));
            p.device = gpu_test::kDevice;
            CHECK(rmkv_model_load(path.c_str(), &p, &mg));
            CHECK(rmkv_model_save_as(mg, again.c_str(), dtype));
            assert_true(read_file(path) == read_file(again));
            std::vector<int32_t> tok(25);
            for (size_t i = 0; i < tok.size(); ++i) tok[i] = static_cast<int32_t>((i * 13 + 5) % V);
            double worst[2] = {0, 0};  // FP32, AUTO
            for (int auto_precision = 0; auto_precision < 2; ++auto_precision) {
                rmkv_session_params sp = rmkv_session_default_params();
                sp.precision = RMKV_PRECISION_FP32;
                rmkv_session *sc = nullptr, *sg = nullptr;
                CHECK(rmkv_session_new(mc, &sp, &sc));
                if (auto_precision) sp.precision = RMKV_PRECISION_AUTO;
                CHECK(rmkv_session_new(mg, &sp, &sg));
                std::vector<float> lc(tok.size() * V), lg(tok.size() * V), dc(V), dg(V);
                CHECK(rmkv_session_step_all(sc, tok.data(), tok.size(), lc.data()));
                CHECK(rmkv_session_step_all(sg, tok.data(), tok.size(), lg.data()));
                worst[auto_precision] = rel(lg, lc);
                for (int t = 0; t < 10; ++t) {
                    CHECK(rmkv_session_step(sc, &tok[t], 1, dc.data()));
                    CHECK(rmkv_session_step(sg, &tok[t], 1, dg.data()));
                    worst[auto_precision] = std::max(worst[auto_precision], rel(dg, dc));
                }
                rmkv_session_free(sc);
                rmkv_session_free(sg);
            }
            rmkv_session_params sp = rmkv_session_default_params();
            sp.precision = RMKV_PRECISION_FP32;
            const double together = together_error(mc, mg, &sp);
            print_message("%-36s %s file: logits rel err %.2e (FP32), %.2e (AUTO), %.2e (FP32, 3 together)\n",
                          kConfigs[c][0], dtype == RMKV_DTYPE_BF16 ? "BF16" : "F16 ", worst[0], worst[1], together);
            assert_true(worst[0] < gpu_test::kTolF32);
            assert_true(together < gpu_test::kTolF32);
            assert_true(worst[1] < (dtype == RMKV_DTYPE_BF16 ? gpu_test::kTolBf16Model : gpu_test::kTolF32));
            std::remove(path.c_str()), std::remove(again.c_str());
            rmkv_model_free(mc);
            rmkv_model_free(mg);
        }
        rmkv_model_free(m0);
    }
}

// A state saved on one backend loads on the other and continues alike.
void state_files_cross(void **) {
    for (int c : {0, 1}) {
        rmkv_model *mc = create(config(c), "cpu"), *mg = create(config(c), gpu_test::kDevice);
        std::vector<int32_t> tok(19), more(9);
        for (size_t i = 0; i < tok.size(); ++i) tok[i] = static_cast<int32_t>((i * 5 + 1) % V);
        for (size_t i = 0; i < more.size(); ++i) more[i] = static_cast<int32_t>((i * 11 + 2) % V);
        for (int dir = 0; dir < 2; ++dir) {
            rmkv_model *from = dir ? mc : mg, *to = dir ? mg : mc;
            rmkv_session *a = nullptr, *b = nullptr, *ref = nullptr;
            CHECK(rmkv_session_new(from, nullptr, &a));
            CHECK(rmkv_session_new(to, nullptr, &b));
            CHECK(rmkv_session_new(from, nullptr, &ref));
            CHECK(rmkv_session_step(a, tok.data(), tok.size(), nullptr));
            CHECK(rmkv_session_step(ref, tok.data(), tok.size(), nullptr));
            const std::string path = tmp("s.rmkvs");
            CHECK(rmkv_session_state_save_file(a, path.c_str()));
            CHECK(rmkv_session_state_load_file(b, path.c_str()));
            uint64_t pa = 0, pb = 0;
            size_t fa = 0, fb = 0;
            CHECK(rmkv_session_position(a, &pa, &fa));
            CHECK(rmkv_session_position(b, &pb, &fb));
            assert_true(pa == pb && fa == fb);
            // Saved again from where it was loaded: the same file, byte for byte.
            const std::string path2 = tmp("s2.rmkvs");
            CHECK(rmkv_session_state_save_file(b, path2.c_str()));
            assert_true(read_file(path) == read_file(path2));
            std::vector<float> lr(more.size() * V), lb(more.size() * V);
            CHECK(rmkv_session_step_all(ref, more.data(), more.size(), lr.data()));
            CHECK(rmkv_session_step_all(b, more.data(), more.size(), lb.data()));
            double e = rel(lb, lr);
            print_message("%-36s state %s -> %s: continuation rel err %.2e\n", kConfigs[c][0], dir ? "cpu" : gpu_test::kDevice,
                          dir ? gpu_test::kDevice : "cpu", e);
            assert_true(e < gpu_test::kTolF32);
            std::remove(path.c_str()), std::remove(path2.c_str());
            rmkv_session_free(a);
            rmkv_session_free(b);
            rmkv_session_free(ref);
        }
        rmkv_model_free(mc);
        rmkv_model_free(mg);
    }
}

const char *kTiny = "{\"vocab_size\":64,\"d_model\":64,\"n_layers\":2,\"n_heads\":4,\"memory_slots\":4,\"segment_len\":16,"
                    "\"cell\":\"gru\",\"pos\":\"rope\",\"ffn\":\"swiglu\",\"ffn_hidden\":128}";

std::vector<float> train_curve(const char *device, int32_t precision, int steps, rmkv_trainer **keep = nullptr,
                               rmkv_model **keep_model = nullptr) {
    rmkv_model *m = create(kTiny, device, 3);
    rmkv_train_params p = rmkv_train_default_params();
    p.learning_rate = 3e-3f;
    p.warmup_steps = 5;
    p.total_steps = steps;
    p.precision = precision;
    rmkv_trainer *t = nullptr;
    CHECK(rmkv_trainer_new(m, &p, &t));
    // A learnable stream: token i+1 = (3 * token i + 1) mod 64, from random starts.
    const size_t B = 4, N = 48;
    std::vector<int32_t> tok(B * N), tg(B * N);
    std::vector<float> curve;
    for (int s = 0; s < steps; ++s) {
        for (size_t b = 0; b < B; ++b) {
            int32_t x = static_cast<int32_t>((s * 13 + b * 29) % 64);
            for (size_t i = 0; i < N; ++i) tok[b * N + i] = x, x = (3 * x + 1) % 64;
            for (size_t i = 0; i < N; ++i) tg[b * N + i] = i + 1 < N ? tok[b * N + i + 1] : -1;
        }
        rmkv_batch bt{};
        bt.struct_size = sizeof bt;
        bt.batch_size = B;
        bt.n_tokens = N;
        bt.tokens = tok.data();
        bt.targets = tg.data();
        rmkv_train_stats st{};
        st.struct_size = sizeof st;
        CHECK(rmkv_train_step(t, &bt, &st));
        curve.push_back(st.loss);
    }
    if (keep) {
        *keep = t, *keep_model = m;
    } else {
        rmkv_trainer_free(t);
        rmkv_model_free(m);
    }
    return curve;
}

void training_follows_cpu(void **) {
    const int steps = 40;
    std::vector<float> cpu = train_curve("cpu", RMKV_PRECISION_FP32, steps);
    std::vector<float> f32 = train_curve(gpu_test::kDevice, RMKV_PRECISION_FP32, steps);
    const bool bf16 = bf16_here();
    std::vector<float> b16 = bf16 ? train_curve(gpu_test::kDevice, RMKV_PRECISION_BF16, steps) : f32;
    double worst32 = 0, worst16 = 0;
    for (int s = 0; s < steps; ++s) {
        const double e32 = std::fabs(double(f32[s]) - cpu[s]) / cpu[s], e16 = std::fabs(double(b16[s]) - cpu[s]) / cpu[s];
        if (!(e32 <= worst32)) worst32 = e32;  // a NaN sticks
        if (!(e16 <= worst16)) worst16 = e16;
        if (s % 5 == 0 || s == steps - 1)
            print_message("step %2d loss cpu %.5f cuda fp32 %.5f cuda bf16 %.5f\n", s + 1, cpu[s], f32[s], b16[s]);
    }
    print_message("worst relative loss difference: fp32 %.2e, bf16 %.2e\n", worst32, worst16);
    assert_true(cpu.back() < 0.5f * cpu.front());  // it learns
    assert_true(worst32 < 1e-3);
    assert_true(worst16 < 5e-2);
}

// A checkpoint written by a GPU trainer resumes on the CPU (and back) to the same losses.
void checkpoints_cross(void **) {
    rmkv_trainer *tg = nullptr;
    rmkv_model *mg = nullptr;
    train_curve(gpu_test::kDevice, RMKV_PRECISION_FP32, 6, &tg, &mg);
    const std::string path = tmp("ck.rmkvc");
    CHECK(rmkv_trainer_save_checkpoint(tg, path.c_str(), nullptr));
    rmkv_model *mc = create(kTiny, "cpu", 3);
    rmkv_train_params p = rmkv_train_default_params();
    p.learning_rate = 3e-3f;
    p.warmup_steps = 5;
    p.total_steps = 6;
    p.precision = RMKV_PRECISION_FP32;
    rmkv_trainer *tc = nullptr;
    CHECK(rmkv_trainer_new(mc, &p, &tc));
    CHECK(rmkv_trainer_load_checkpoint(tc, path.c_str()));
    assert_int_equal(rmkv_trainer_step_count(tc), 6);
    Batch b(5);
    float lc = 0, lg = 0;
    CHECK(rmkv_trainer_compute_gradients(tc, &b.b, &lc));
    CHECK(rmkv_trainer_compute_gradients(tg, &b.b, &lg));
    print_message("after a GPU checkpoint: loss cpu %.6f cuda %.6f\n", lc, lg);
    assert_true(std::fabs(double(lc) - lg) / lc < gpu_test::kTolF32);
    std::remove(path.c_str());
    rmkv_trainer_free(tc);
    rmkv_trainer_free(tg);
    rmkv_model_free(mc);
    rmkv_model_free(mg);
}

// State tuning on the GPU: the same gradients of the initial memories as the CPU's.
void state_tuning(void **) {
    rmkv_model *mc = create(config(1), "cpu"), *mg = create(config(1), gpu_test::kDevice);
    rmkv_train_params p = rmkv_train_default_params();
    p.precision = RMKV_PRECISION_FP32;
    rmkv_trainer *tc = nullptr, *tg = nullptr;
    CHECK(rmkv_state_tuner_new(mc, &p, &tc));
    CHECK(rmkv_state_tuner_new(mg, &p, &tg));
    Batch b(3);
    float lc = 0, lg = 0;
    CHECK(rmkv_trainer_compute_gradients(tc, &b.b, &lc));
    CHECK(rmkv_trainer_compute_gradients(tg, &b.b, &lg));
    for (const char *name : {"layers.0.init_memory", "layers.1.init_memory"}) {
        size_t n = 0;
        rmkv_trainer_gradient(tc, name, nullptr, 0, &n);
        std::vector<float> gc(n), gg(n);
        CHECK(rmkv_trainer_gradient(tc, name, gc.data(), n, &n));
        CHECK(rmkv_trainer_gradient(tg, name, gg.data(), n, &n));
        print_message("state tuning %s: rel err %.2e\n", name, rel(gg, gc));
        assert_true(rel(gg, gc) < gpu_test::kTolF32);
    }
    for (int s = 0; s < 5; ++s) CHECK(rmkv_train_step(tg, &b.b, nullptr));
    rmkv_session *sg = nullptr;
    CHECK(rmkv_session_new(mg, nullptr, &sg));
    CHECK(rmkv_trainer_apply_state(tg, sg));
    const std::string path = tmp("tuned.rmkvs");
    CHECK(rmkv_session_state_save_file(sg, path.c_str()));
    rmkv_session *sc = nullptr;
    CHECK(rmkv_session_new(mc, nullptr, &sc));
    CHECK(rmkv_session_state_load_file(sc, path.c_str()));  // a GPU-tuned state on the CPU
    std::remove(path.c_str());
    rmkv_session_free(sc);
    rmkv_session_free(sg);
    rmkv_trainer_free(tc);
    rmkv_trainer_free(tg);
    rmkv_model_free(mc);
    rmkv_model_free(mg);
}

}  // namespace

int main() {
    int probe = gpu_test::probe();
    if (probe) return probe;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(logits_match),          cmocka_unit_test(sessions_together),
        cmocka_unit_test(gradients_fp32),
        cmocka_unit_test(gradients_fp32_dropout), cmocka_unit_test(gradients_bf16),
        cmocka_unit_test(gradients_recompute),    cmocka_unit_test(gradients_stacked),
        cmocka_unit_test(model_files_identical), cmocka_unit_test(half_files), cmocka_unit_test(state_files_cross),
        cmocka_unit_test(training_follows_cpu),  cmocka_unit_test(checkpoints_cross),
        cmocka_unit_test(state_tuning),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
