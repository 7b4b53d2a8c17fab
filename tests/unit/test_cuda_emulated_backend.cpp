// The CUDA backend itself (src/backend/cuda/cuda_backend.cu with cuda_stream.h,
// bias_gemm.h and products.h) compiled for the CPU: its kernels as fibers
// (cuda_emulation.h), the CUDA runtime, cuBLAS and cuBLASLt calls on the host
// (tests/unit/host_cuda: the products as cuBLAS documents them, their sizes and
// leading dimensions checked as cuBLAS checks them; new device memory NaN).
// What the kernel tests (test_cuda_emulated, _ops) cannot see: the backend's own
// code between the seam and the kernels, that is, the mapping of row-major
// operations onto column-major products, the bias in cuBLASLt's epilogue, the
// bf16 conversions and shadows, the bf16 copies, the staging of host arrays,
// the scratch buffers, and the stacked operations. A training pass of the model
// code (SequencePass: K = 3 unequal segments, stacked sequences, with and
// without dropout, recomputation) runs on it and on the CPU backend; the loss and
// every gradient must agree: fp32 within 1e-5 (relative to each tensor's
// largest value, as tests/gpu does; also with attention through the cuBLAS
// products, RMKV_CUDA_ATTENTION=products); bf16 (products with bf16 inputs through
// bf16 copies) against the CPU's bf16 products, within 1e-2 with attention in
// fp32 and within the gpu tests' whole-model bf16 tolerance on the tensor-core
// attention kernels (against fp32 within 1e-1 on a CPU without bf16). Then decoding: a
// session's prompt and one token at a time across segment ends, and two
// sessions stepped together ending a segment together (decode_rows,
// rewrite_rows, prepare_rows), every step's logits within 1e-5. With
// RMKV_CUDA_GRAPHS=1 (the backend's recording: capture, instantiation, update,
// launch), every training pass and decoding step runs as one graph (counted), to
// the same results; a third training pass (the second is captured again: the
// first grew the stream's scratch and staging), and every decoding step but the
// first of one session and of two together, replays the last graph without a
// capture (counted), with its new tokens, targets, loss scale, dropout masks
// and rows. Each bf16 pass prints what it queued on the device (kernel launches,
// the roundings to bf16 among them, products, copies and fills; host_cuda counts
// them by name): the launch counts of BENCHMARKS.md.
// What this cannot show is left to tests/gpu on a GPU: cuBLAS's and the
// driver's real behaviour (what a capture may hold, what an update accepts),
// streams running at once, speed.
#define RMKV_HOST_CUDA_API 1
#include "cuda_emulation.h"
#undef fail  // cmocka's; cuda_backend.cu has its own

namespace rmkv::cuda {
cudaError_t fused_attention_setup(int) { return cudaSuccess; }  // cudaFuncSetAttribute on a device only
}  // namespace rmkv::cuda

#include "backend/cuda/cuda_backend.cu"
#include "core/error.h"
#include "model/config.h"
#include "model/weights.h"
#include "owned_buffers.h"
#include "train/sequence_pass.h"
#define fail() _fail(__FILE__, __LINE__)  // cmocka's again (fail_msg uses it)

namespace {

using namespace rmkv;

// tests/gpu/gpu_common.h's kTolF32 and kTolBf16Model.
constexpr double gpu_tolerance_f32 = 1e-5, gpu_tolerance_bf16 = 5e-2;
// bf16 with fp32 attention on the emulated device against bf16 products on the
// CPU: the same rounded inputs, the sums in another order (measured at most
// 4.9e-3 here).
constexpr double bf16_against_bf16 = 1e-2;
// bf16 against fp32 on a CPU without bf16 products: every product's inputs
// rounded to 8 bits on one side only (measured up to 5.1e-2 on the RoPE key
// bias, whose gradient is mostly cancellation).
constexpr double bf16_against_fp32 = 1e-1;

[[noreturn]] void plugin_fail(int status, const char *message) {
    throw Error(static_cast<rmkv_status>(status), message);
}

// A model's weights (and, for bf16, the shadows of its matrices) on a backend.
struct Weights {
    Backend &be;
    std::vector<real *> p;
    std::vector<uint16_t *> shadows;
    ModelWeights W{};
    Weights(Backend &b, Stream &st, const Config &c, const std::vector<ParamSpec> &specs,
            const std::vector<std::vector<float>> &host, bool bf16)
        : be(b) {
        for (size_t i = 0; i < specs.size(); ++i) {
            p.push_back(be.alloc(host[i].size()));
            be.from_host(st, p.back(), host[i].data(), host[i].size());
            shadows.push_back(bf16 && is_matrix(specs[i]) ? be.alloc_bf16(host[i].size()) : nullptr);
            if (shadows.back()) {
                be.to_bf16(st, shadows.back(), p.back(), host[i].size());
                be.set_shadow(st, p.back(), shadows.back());
            }
        }
        be.set_bf16(st, bf16);
        be.set_bf16_attention(st, bf16);
        W = bind_weights(c, specs, p);
    }
    ~Weights() {
        for (size_t i = 0; i < p.size(); ++i) {
            be.free(p[i]);
            if (shadows[i]) be.free_bf16(shadows[i]);
        }
    }
};

struct PassResult {
    double loss = 0;
    std::vector<std::vector<float>> grads;
    // Each pass's: what it queued on the device (host_cuda::g_queued; a replayed
    // pass queues nothing but the launch of its graph), and with graphs, whether
    // it was captured (else replayed).
    std::vector<std::map<std::string, int>> queued;
    std::vector<bool> captured;
};

struct PassCase {
    int64_t n_seq;
    float dropout;
    bool recompute;
};

// `passes` training passes (one pass object, one stream, the loss taken after the
// last: a trainer's lane runs its passes of a step without waiting) over n_seq
// stacked sequences of segments {S, 1, S - 2}, each of its own tokens, loss scale
// and dropout masks: the loss and gradients summed over the passes.
PassResult training_pass(Backend &be, const Config &c, const std::vector<ParamSpec> &specs,
                         const std::vector<std::vector<float>> &host, bool bf16, const PassCase &pc, int passes = 1) {
    auto st = be.new_stream();
    Weights w(be, *st, c, specs, host, bf16);
    const ModelView view{&c, &w.W, &be};
    const std::vector<int64_t> lens = {c.segment_len, 1, c.segment_len - 2};
    const int64_t total = 2 * c.segment_len - 1;
    std::mt19937_64 rng(3);
    std::vector<int32_t> tokens(static_cast<size_t>(pc.n_seq * total)), targets(tokens.size());
    std::vector<DropoutPlan> plans;
    for (int64_t i = 0; i < pc.n_seq; ++i) plans.push_back({pc.dropout, 0xd40ull + 17 * static_cast<uint64_t>(i)});
    Owned mem(be);
    std::vector<real *> g;
    for (const ParamSpec &s : specs) g.push_back(mem.get(s.numel));  // zeroed
    PassResult r;
    {
        SequencePass pass(view, *st, pc.recompute, pc.n_seq, bf16 ? Bf16Copies::instead_of_fp32 : Bf16Copies::off);
        for (int i = 0; i < passes; ++i) {
            for (size_t j = 0; j < tokens.size(); ++j) {
                tokens[j] = static_cast<int32_t>(rng() % static_cast<uint64_t>(c.vocab_size));
                targets[j] = j % 7 == 4 ? -1 : static_cast<int32_t>(rng() % static_cast<uint64_t>(c.vocab_size));
            }
            const float scale = 0.125f / static_cast<float>(i + 1);  // as 1 / targets, which change from step to step
            for (int64_t j = 0; j < pc.n_seq; ++j)  // masks of their own, as each step's
                plans[static_cast<size_t>(j)].seed = 0xd40ull + 17 * static_cast<uint64_t>(j) + 1000 * static_cast<uint64_t>(i);
            const int captures = host_cuda::g_captures;
            host_cuda::g_queued.clear();
            pass.run(tokens.data(), targets.data(), pc.n_seq, total, lens, bind_weights(c, specs, g), scale, plans.data());
            r.captured.push_back(host_cuda::g_captures > captures);
            r.queued.push_back(host_cuda::g_queued);
        }
        r.loss = be.take_loss(*st);
    }
    for (size_t i = 0; i < specs.size(); ++i) {
        r.grads.emplace_back(static_cast<size_t>(specs[i].numel));
        be.to_host(*st, r.grads.back().data(), g[i], r.grads.back().size());
    }
    return r;
}

// max |got - want| relative to want's largest value, or to `floor` when that is
// larger (a NaN gives NaN).
double relative(const std::vector<float> &got, const std::vector<float> &want, double floor) {
    double largest = std::max(floor, 1e-30), worst = 0;
    for (float x : want) largest = std::max(largest, std::fabs(static_cast<double>(x)));
    for (size_t i = 0; i < want.size(); ++i) {
        const double e = std::fabs(static_cast<double>(got[i]) - want[i]) / largest;
        if (!(e <= worst)) worst = e;  // a NaN sticks
    }
    return worst;
}

// What a pass queued: kernel launches (roundings to bf16 among them), products
// (cuBLAS and cuBLASLt), copies and fills, for the launch counts of BENCHMARKS.md.
void print_queued(const std::string &what, const std::map<std::string, int> &queued) {
    int all = 0, roundings = 0, products = 0, copies = 0;
    for (const auto &[name, n] : queued) {
        all += n;
        if (name.rfind("k_to_bf16", 0) == 0) roundings += n;
        if (name.rfind("product", 0) == 0) products += n;
        if (name.rfind("copy", 0) == 0 || name == "fill") copies += n;
    }
    print_message("%-58s queued %d: %d kernels (%d roundings to bf16), %d products, %d copies and fills\n",
                  what.c_str(), all, all - products - copies, roundings, products, copies);
}

// The CUDA backend, made with the environment variable `name` set to `value`
// when given (the backend reads its choices when it is made). RMKV_CUDA_GRAPHS=1:
// recorded steps (a training pass, decoding steps) captured and launched as
// graphs (host_cuda's capture keeps the work queued while recording and runs it
// at the graph's launch).
std::unique_ptr<Backend> cuda_backend(const char *name = nullptr, const char *value = nullptr) {
    if (name) setenv(name, value, 1);
    std::unique_ptr<Backend> be(rmkv_cuda_backend_new(kCudaPluginAbi, 0, plugin_fail));
    if (name) unsetenv(name);
    return be;
}

// Every stream and device buffer of the backends made by a test is gone.
void expect_nothing_left() {
    assert_int_equal(host_cuda::g_streams, 0);
    assert_int_equal(host_cuda::g_allocations, 0);
}

// Weights around the values a model starts from (norm weights near one).
std::vector<std::vector<float>> random_weights(const std::vector<ParamSpec> &specs) {
    std::mt19937_64 rng(9);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<std::vector<float>> host;
    for (const ParamSpec &s : specs) {
        std::vector<float> v(static_cast<size_t>(s.numel));
        for (float &x : v) x = (s.init == Init::ones ? 1.0f : 0.0f) + 0.1f * normal(rng);
        host.push_back(std::move(v));
    }
    return host;
}

// The loss and every gradient of got against want within tol.
void expect_close(const std::string &what, const PassResult &got, const PassResult &want, const Config &c,
                  const std::vector<ParamSpec> &specs, double tol) {
    const double loss_error = std::fabs(got.loss - want.loss) / std::fabs(want.loss);
    if (!(loss_error <= tol)) fail_msg("%s: loss %.9g, CPU %.9g", what.c_str(), got.loss, want.loss);
    // As tests/gpu: each tensor relative to its largest gradient, or to 1e-3 of the
    // model's largest when all of its own are smaller.
    double largest = 0;
    for (const std::vector<float> &g : want.grads)
        for (float x : g) largest = std::max(largest, std::fabs(static_cast<double>(x)));
    double worst = 0;
    std::string worst_name;
    for (size_t t = 0; t < specs.size(); ++t) {
        // Without RoPE the key bias only shifts each query's scores by one constant:
        // its gradient is rounding alone, a cancelling sum over every key row, and is
        // held to the model's largest gradient.
        const bool zero = c.pos != Pos::rope && specs[t].name.find("attn.k.bias") != std::string::npos;
        const double e = relative(got.grads[t], want.grads[t], zero ? largest : 1e-3 * largest);
        if (!(e <= worst)) worst = e, worst_name = specs[t].name;
    }
    if (!(worst <= tol))
        fail_msg("%s: the gradient of %s differs by %.3g (tolerance %.0e)", what.c_str(), worst_name.c_str(), worst, tol);
    print_message("%-58s loss %.2e, worst gradient %.2e (%s)\n", what.c_str(), loss_error, worst, worst_name.c_str());
}

void check_config(const char *name, const std::string &json, std::initializer_list<PassCase> cases) {
    std::unique_ptr<Backend> cuda = cuda_backend(), cuda_fp32_attention = cuda_backend("RMKV_CUDA_ATTENTION", "fp32");
    std::unique_ptr<Backend> cuda_graphs = cuda_backend("RMKV_CUDA_GRAPHS", "1");
    std::unique_ptr<Backend> cuda_products = cuda_backend("RMKV_CUDA_ATTENTION", "products");
    std::shared_ptr<Backend> cpu = get_backend("cpu");
    const Config c = Config::from_json(json, 0, false);
    const std::vector<ParamSpec> specs = param_specs(c);
    const std::vector<std::vector<float>> host = random_weights(specs);
    const bool cpu_bf16 = cpu->supports_bf16();
    for (const PassCase &pc : cases) {
        char what[128];
        std::snprintf(what, sizeof what, "%s, %lld sequences%s%s", name, (long long)pc.n_seq,
                      pc.dropout > 0 ? ", dropout" : "", pc.recompute ? ", recomputing" : "");
        const PassResult want = training_pass(*cpu, c, specs, host, false, pc);
        expect_close(std::string(what) + ", fp32", training_pass(*cuda, c, specs, host, false, pc), want, c, specs,
                     gpu_tolerance_f32);
        expect_close(std::string(what) + ", fp32, attention by products",
                     training_pass(*cuda_products, c, specs, host, false, pc), want, c, specs, gpu_tolerance_f32);
        // Three passes as graphs (other tokens, targets, loss scale and masks each,
        // the same operations): the first captured; the second captured again, as
        // the first grew the stream's scratch (the staging of its host arrays, its
        // bf16 conversions), whose addresses its graph holds; the third replays
        // the second's graph.
        const int launches = host_cuda::g_graph_launches;
        const PassResult graphs = training_pass(*cuda_graphs, c, specs, host, false, pc, 3);
        expect_close(std::string(what) + ", fp32, three passes as graphs", graphs,
                     training_pass(*cpu, c, specs, host, false, pc, 3), c, specs, gpu_tolerance_f32);
        assert_int_equal(host_cuda::g_graph_launches, launches + 3);  // each pass launched as one graph
        assert_true(graphs.captured[0] && graphs.captured[1] && !graphs.captured[2]);
        // bf16 against the CPU's bf16 products where it has them (the same inputs
        // rounded the same way), else against fp32: with attention in fp32
        // (RMKV_CUDA_ATTENTION=fp32), only the order of the sums differs; on the
        // tensor-core kernels, the probabilities and score gradients are rounded too.
        const PassResult want16 = cpu_bf16 ? training_pass(*cpu, c, specs, host, true, pc) : want;
        const std::string against = cpu_bf16 ? " (CPU bf16)" : " (CPU fp32)";
        expect_close(std::string(what) + ", bf16, fp32 attention" + against,
                     training_pass(*cuda_fp32_attention, c, specs, host, true, pc), want16, c, specs,
                     cpu_bf16 ? bf16_against_bf16 : bf16_against_fp32);
        const PassResult bf16 = training_pass(*cuda, c, specs, host, true, pc);
        expect_close(std::string(what) + ", bf16" + against, bf16, want16, c, specs,
                     cpu_bf16 ? gpu_tolerance_bf16 : bf16_against_fp32);
        print_queued(std::string(what) + ", bf16", bf16.queued[0]);
        // The same in bf16, and what the graph holds.
        const int bf16_launches = host_cuda::g_graph_launches;
        const PassResult graphs16 = training_pass(*cuda_graphs, c, specs, host, true, pc, 3);
        expect_close(std::string(what) + ", bf16, three passes as graphs" + against, graphs16,
                     training_pass(*cpu, c, specs, host, cpu_bf16, pc, 3), c, specs,
                     cpu_bf16 ? gpu_tolerance_bf16 : bf16_against_fp32);
        assert_int_equal(host_cuda::g_graph_launches, bf16_launches + 3);
        assert_true(graphs16.captured[0] && graphs16.captured[1] && !graphs16.captured[2]);
        print_queued(std::string(what) + ", bf16, as a graph", graphs16.queued[1]);
    }
}

// ---- decoding ----

// Two sessions' states and scratch on one backend, and its model code.
struct Decoder {
    Backend &be;
    std::unique_ptr<Stream> st;
    Weights w;
    ModelView view;
    SegmentForward fwd;
    Owned mem;
    std::vector<LayerState> layers[2];
    Workspace ws[2];
    RowsWorkspace rows{};
    RewriteRowsWorkspace rewrite{};
    std::vector<CacheRow> cache_rows{2};
    std::vector<real *> row_dst{2}, to{2};
    std::vector<int32_t> places = std::vector<int32_t>(2);  // (not {2}: one element)
    std::vector<int64_t> positions = std::vector<int64_t>(2);
    std::vector<const real *> from{8};
    Decoder(Backend &b, const Config &c, const std::vector<ParamSpec> &specs, const std::vector<std::vector<float>> &host)
        : be(b), st(b.new_stream()), w(b, *st, c, specs, host, false), view{&c, &w.W, &b}, fwd(view, *st), mem(b) {
        const int64_t M = c.memory_slots, D = c.d_model, Dkv = c.d_kv(), F = c.ffn_hidden, V = c.vocab_size;
        for (int i = 0; i < 2; ++i) {
            make_stream_buffers(c, [this](int64_t n) { return mem.get(n); }, layers[i], ws[i]);
            for (size_t l = 0; l < layers[i].size(); ++l)  // as rmkv_session::reset
                be.copy(*st, layers[i][l].memory, w.W.layers[l].init_memory, static_cast<size_t>(M * D));
        }
        rows.x = mem.get(2 * D), rows.xn = mem.get(2 * D), rows.q = mem.get(2 * D), rows.attn = mem.get(2 * D);
        rows.o = mem.get(2 * D), rows.k = mem.get(2 * Dkv), rows.v = mem.get(2 * Dkv);
        rows.h1 = mem.get(2 * std::max<int64_t>(F, 1)), rows.h2 = mem.get(2 * std::max<int64_t>(F, 1));
        rows.logits = mem.get(2 * V);
        rows.cache_rows = cache_rows.data(), rows.row_dst = row_dst.data();
        rows.places = places.data(), rows.positions = positions.data();
        rewrite.mem_attn = mem.get(2 * M * D), rewrite.mem_out = mem.get(2 * M * D), rewrite.pooled = mem.get(2 * M * D);
        rewrite.memory = mem.get(2 * M * D), rewrite.cell = mem.get(2 * M * D);
        rewrite.gates_i = mem.get(2 * M * 4 * D), rewrite.gates_h = mem.get(2 * M * 4 * D);
        rewrite.from = from.data(), rewrite.to = to.data();
    }
    std::vector<float> logits(const real *p, int64_t n) {
        std::vector<float> out(static_cast<size_t>(n));
        be.to_host(*st, out.data(), p, out.size());
        return out;
    }
};

// A session's prompt, then one token at a time across two segment ends
// (SegmentForward::tokens, as rmkv_session::step); then a second session and the
// first stepped together (decode_rows), ending a segment together (rewrite_rows,
// prepare_rows): the logits of every step within 1e-5 of the CPU's.
void check_decoding(const char *name, const std::string &json) {
    std::unique_ptr<Backend> cuda = cuda_backend(), cuda_graphs = cuda_backend("RMKV_CUDA_GRAPHS", "1");
    std::shared_ptr<Backend> cpu = get_backend("cpu");
    const Config c = Config::from_json(json, 0, false);
    const std::vector<ParamSpec> specs = param_specs(c);
    const std::vector<std::vector<float>> host = random_weights(specs);
    Decoder a(*cpu, c, specs, host), b(*cuda, c, specs, host), g(*cuda_graphs, c, specs, host);
    assert_true(cuda_graphs->decodes_by_rows() && !cuda->decodes_by_rows());
    const int launches = host_cuda::g_graph_launches, captures = host_cuda::g_captures;
    const int64_t S = c.segment_len, V = c.vocab_size;
    std::mt19937 rng(21);
    auto token = [&] { return static_cast<int32_t>(rng() % static_cast<unsigned>(V)); };
    double worst = 0;
    int checked = 0;
    auto compare = [&](const std::vector<float> &got, const std::vector<float> &want, const char *what) {
        const double e = relative(got, want, 0.0);
        if (!(e <= gpu_tolerance_f32)) fail_msg("%s: %s, step %d: logits differ by %.3g", name, what, checked, e);
        worst = std::max(worst, e);
        ++checked;
    };
    std::vector<int32_t> prompt(5);
    for (int32_t &t : prompt) t = token();
    for (Decoder *d : {&a, &b, &g}) {
        d->fwd.prepare_memory(d->layers[0], d->ws[0]);
        d->fwd.tokens(d->layers[0], d->ws[0], prompt.data(), 5, 0, 0, d->ws[0].logits, false);
    }
    compare(b.logits(b.ws[0].logits, V), a.logits(a.ws[0].logits, V), "prompt");
    int64_t fill = 5, pos = 5;
    for (int i = 0; i < 2 * S; ++i) {  // one token at a time (g: recorded, as rmkv_session::step records it)
        const int32_t t = token();
        for (Decoder *d : {&a, &b}) d->fwd.tokens(d->layers[0], d->ws[0], &t, 1, fill, pos, d->ws[0].logits, false);
        const DecodeRow r{&g.layers[0], fill, pos};  // a session's step where the backend decodes by rows
        run_recorded(g.be, *g.st, [&] { g.fwd.decode_rows(&r, 1, &t, g.rows, g.rows.logits); });
        const std::vector<float> want = a.logits(a.ws[0].logits, V);
        compare(b.logits(b.ws[0].logits, V), want, "one session");
        compare(g.logits(g.rows.logits, V), want, "one session, each step a graph");
        ++fill, ++pos;
        if (fill == S) {
            for (Decoder *d : {&a, &b, &g}) {
                d->fwd.rewrite_memory(d->layers[0], d->ws[0], S);
                d->fwd.prepare_memory(d->layers[0], d->ws[0]);
            }
            fill = 0;
        }
    }
    // The second session: a prompt as long as the first's segment so far, so that both end it together.
    std::vector<int32_t> second(static_cast<size_t>(std::max<int64_t>(fill, 1)));
    for (int32_t &t : second) t = token();
    for (Decoder *d : {&a, &b, &g}) {
        d->fwd.prepare_memory(d->layers[1], d->ws[1]);
        if (fill) d->fwd.tokens(d->layers[1], d->ws[1], second.data(), fill, 0, 0, nullptr, false);
    }
    int64_t pos2 = fill;
    for (int i = 0; i < S + 2; ++i) {  // both together
        const int32_t t[2] = {token(), token()};
        for (Decoder *d : {&a, &b, &g}) {
            const DecodeRow r[2] = {{&d->layers[0], fill, pos}, {&d->layers[1], fill, pos2}};
            if (d == &g) run_recorded(g.be, *g.st, [&] { g.fwd.decode_rows(r, 2, t, g.rows, g.rows.logits); });
            else d->fwd.decode_rows(r, 2, t, d->rows, d->rows.logits);
        }
        const std::vector<float> want = a.logits(a.rows.logits, 2 * V);
        compare(b.logits(b.rows.logits, 2 * V), want, "two sessions together");
        compare(g.logits(g.rows.logits, 2 * V), want, "two sessions together, each step a graph");
        ++fill, ++pos, ++pos2;
        if (fill == S) {
            for (Decoder *d : {&a, &b, &g}) {
                std::vector<LayerState> *both[2] = {&d->layers[0], &d->layers[1]};
                d->fwd.rewrite_rows(both, 2, d->rewrite, S);
                d->fwd.prepare_rows(both, 2, d->rewrite);
            }
            fill = 0;
        }
    }
    assert_int_equal(host_cuda::g_graph_launches, launches + 2 * S + S + 2);  // every recorded step a graph
    // A step's operations keep their arguments (the positions travel in staged
    // rows): one capture for one session's steps, one for two together, and every
    // other step a replay.
    const int captured = host_cuda::g_captures - captures;
    assert_int_equal(captured, 2);
    print_message("%-34s %d logits compared (one session, two together, with and without graphs): within %.2e; "
                  "%d of %d graphs captured\n",
                  name, checked, worst, captured, 2 * static_cast<int>(S) + static_cast<int>(S) + 2);
}

const char *kBase = "\"vocab_size\":61,\"d_model\":64,\"n_layers\":2,\"memory_slots\":4,\"segment_len\":9,";

void swiglu_gru_rope_gqa(void **) {
    const PassCase one{1, 0.0f, false}, stacked_dropout{3, 0.1f, false}, recompute{2, 0.0f, true};
    const std::string json = std::string("{") + kBase +
                             "\"n_heads\":4,\"n_kv_heads\":2,\"cell\":\"gru\",\"pos\":\"rope\",\"norm\":\"layernorm\","
                             "\"ffn\":\"swiglu\",\"ffn_hidden\":96}";
    check_config("swiglu gru rope layernorm gqa", json, {one, stacked_dropout, recompute});
    check_decoding("swiglu gru rope layernorm gqa", json);
    expect_nothing_left();
}
void gelu_lstm_learned_tied(void **) {
    const std::string json = std::string("{") + kBase +
                             "\"n_heads\":2,\"cell\":\"lstm\",\"pos\":\"learned\",\"norm\":\"rmsnorm\",\"ffn\":\"gelu\","
                             "\"ffn_hidden\":80,\"tie_embeddings\":true}";
    check_config("gelu lstm learned rmsnorm tied", json, {PassCase{2, 0.2f, false}});
    check_decoding("gelu lstm learned rmsnorm tied", json);
    expect_nothing_left();
}
void minimal_sincos_noffn(void **) {
    const std::string json =
        std::string("{") + kBase + "\"n_heads\":4,\"cell\":\"minimal\",\"pos\":\"sincos\",\"ffn\":\"none\"}";
    check_config("minimal sincos no-ffn", json, {PassCase{1, 0.0f, false}});
    check_decoding("minimal sincos no-ffn", json);
    expect_nothing_left();
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(swiglu_gru_rope_gqa),
        cmocka_unit_test(gelu_lstm_learned_tied),
        cmocka_unit_test(minimal_sincos_noffn),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
