// rmkv-bench-train: training speed of the `small` config (D512 L8 H8 M32 S256
// V16384) with K=2 segments (--segments K) and B=4 sequences (--batch B), in fp32 and bf16, next to a PyTorch
// implementation of the same architecture training on batches of the same shape
// (bench/train_pytorch.py, run in the same invocation), and model FLOPs utilisation
// against this machine's gemm peak measured in the same run (f32 for the fp32
// rows; bf16 products for the bf16 rows, on CPUs that have them).
// A third rmkv row trains with activation recomputation (rmkv_train_params.recompute);
// on the CPU every rmkv row also gives the memory the trainer added (resident set
// growth from before the trainer to after its first step, large blocks mapped so
// that freed ones leave it).
// Usage: rmkv-bench-train [--steps N] [--threads T] [--no-pytorch] [--script PATH] [--python PATH]
//                         [--config small|base] [--ffn swiglu|gelu] [--device cpu|cuda|cuda:N] [--peak-tflops X]
//                         [--segments K] [--batch B] [--parallel N] [--stack N]
//                         [--rows fp32,bf16,recompute,unstacked,torch-fp32,torch-bf16,torch-compile]
//                         [--pairs N]
// --pairs N: after the table, N more runs of rmkv bf16 and PyTorch bf16 in turn,
// each pair's ratio and their median (a noisy machine moves between two runs).
// --parallel N: rmkv_train_params.parallel_sequences (0, the default: the device's choice).
// --ffn gelu: the config with a GELU feed-forward block of the same width (two
// matrices instead of SwiGLU's three); PyTorch's baseline gets the same config.
// --stack N: rmkv_train_params.stacked_sequences (0, the default: the device's choice);
// the `unstacked` row is the bf16 row with stacked_sequences 1 (each sequence alone).
// On a GPU (--device cuda) MFU is against --peak-tflops, the device's dense
// bf16 tensor peak (H100 SXM: 989), and train_pytorch.py runs on the same GPU,
// eager and with torch.compile (PyTorch >= 2.0; the row is left out when it fails).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <malloc.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.hpp>

#include "machine.h"
#include "rmkv.h"

namespace {

using bench::now;
using bench::gemm_peak_gflops;
using bench::sgemm_peak_gflops;

using bench::check;


std::string kConfig =
    "{\"vocab_size\":16384,\"d_model\":512,\"n_layers\":8,\"n_heads\":8,\"memory_slots\":32,\"segment_len\":256}";
const char *kBase =
    "{\"vocab_size\":32000,\"d_model\":768,\"n_layers\":12,\"n_heads\":12,\"memory_slots\":32,\"segment_len\":256}";
std::string g_device = "cpu";
std::string g_python = "/usr/bin/python3";  // --python: the interpreter that has torch
int g_segments = 2, g_batch = 4, g_parallel = 0, g_stack = 0;
double g_D = 512, g_L = 8, g_F = 1344, g_V = 16384, g_ffn_mats = 3;  // swiglu: gate, up, down

// Model FLOPs of one training token: 6 x (matrix parameters on the token path)
// + attention (QK^T and PV, forward 4 S D... halved by the causal mask) x 3.
double flops_per_token() {
    const double D = g_D, L = g_L, F = g_F, V = g_V, M = 32, S = 256;
    double matmul = L * (4 * D * D + g_ffn_mats * D * F) + V * D;
    double attn = L * 2 * 2 * D * (M + S / 2);
    return 6 * matmul + 3 * attn;
}

// Resident set size of this process in MiB (0 when unknown).
double rss_mib() {
    long pages = 0, resident = 0;
    FILE *f = std::fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
    return static_cast<double>(resident) * 4096.0 / (1 << 20);
}

struct Run {
    double tokens_per_s, loss, trainer_mib;
};

// stack: rmkv_train_params.stacked_sequences (-1: --stack).
Run rmkv_run(int precision, bool recompute, int steps, int stack = -1) {
    rmkv_model *m = nullptr;
    rmkv_model_params mp = rmkv_model_default_params();
    mp.device = g_device.c_str();
    check(rmkv_model_create(kConfig.c_str(), nullptr, 1, &mp, &m), "create");
    rmkv_train_params tp = rmkv_train_default_params();
    tp.precision = precision;
    tp.recompute = recompute ? 1 : 0;
    tp.parallel_sequences = g_parallel;
    tp.stacked_sequences = stack >= 0 ? stack : g_stack;
    rmkv_trainer *t = nullptr;
    const double rss0 = rss_mib();
    check(rmkv_trainer_new(m, &tp, &t), "trainer");
    const int B = g_batch, N = 256 * g_segments;
    std::vector<int32_t> tok(B * N), tg(B * N);
    for (int i = 0; i < B * N; ++i) tok[i] = static_cast<int32_t>((i * 7919) % static_cast<int>(g_V));
    for (int i = 0; i < B * N; ++i) tg[i] = i % N == N - 1 ? -1 : tok[i + 1];
    rmkv_batch b{};
    b.struct_size = sizeof b;
    b.batch_size = B;
    b.n_tokens = N;
    b.tokens = tok.data();
    b.targets = tg.data();
    rmkv_train_stats st{};
    st.struct_size = sizeof st;
    const double tw = now();
    check(rmkv_train_step(t, &b, &st), "warm-up step");
    Run r{};
    r.trainer_mib = rss_mib() - rss0;
    double t0 = now();
    for (int i = 0; i < steps; ++i) check(rmkv_train_step(t, &b, &st), "step");
    r.tokens_per_s = steps * B * N / (now() - t0);
    r.loss = st.loss;
    std::fprintf(stderr, "  [%s%s%s: %.0f tokens/s, warm-up step included in %.1f s]\n",
                 precision == RMKV_PRECISION_FP32 ? "fp32" : "auto", recompute ? " recompute" : "",
                 stack == 1 ? " unstacked" : "", r.tokens_per_s, now() - tw);
    rmkv_trainer_free(t);
    rmkv_model_free(m);
    return r;
}

double pytorch_tokens_per_s(const std::string &script, const char *dtype, int steps, int threads,
                            const std::string &extra = "") {
    std::string cmd = g_python + " " + script + " --config '" + kConfig + "' --batch 4 --segments " +
                      std::to_string(g_segments) + " --steps " + std::to_string(steps) + " --warmup 2 --threads " +
                      std::to_string(threads) + " --dtype " + dtype + extra + " 2>/dev/null";
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) return -1;
    char line[4096] = {0};
    std::string out;
    while (std::fgets(line, sizeof line, p)) out += line;
    if (pclose(p) != 0) return -1;
    auto k = out.find("\"tokens_per_s\":");
    return k == std::string::npos ? -1 : std::atof(out.c_str() + k + 15);
}

}  // namespace

int main(int argc, char **argv) {
    mallopt(M_MMAP_THRESHOLD, 1 << 16);  // fixed: freed large blocks return to the system
    int steps = 3, threads = omp_get_max_threads(), pairs = 0;
    double peak_tflops = 0;
    std::string config_name = "small", ffn = "swiglu";
    bool pytorch = true;
    std::string script = "bench/train_pytorch.py";
    // --rows: which rows run (rmkv: fp32, bf16, recompute, unstacked = bf16 with stacked_sequences 1;
    // PyTorch: torch-fp32, torch-bf16, torch-compile)
    std::string rows = ",fp32,bf16,recompute,unstacked,torch-fp32,torch-bf16,torch-compile,";
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--no-pytorch")) pytorch = false;
        else if (!std::strcmp(argv[i], "--pairs") && i + 1 < argc) pairs = std::max(0, std::atoi(argv[++i]));
        else if (!std::strcmp(argv[i], "--script") && i + 1 < argc) script = argv[++i];
        else if (!std::strcmp(argv[i], "--python") && i + 1 < argc) g_python = argv[++i];
        else if (!std::strcmp(argv[i], "--rows") && i + 1 < argc) rows = std::string(",") + argv[++i] + ",";
        else if (!std::strcmp(argv[i], "--device") && i + 1 < argc) g_device = argv[++i];
        else if (!std::strcmp(argv[i], "--peak-tflops") && i + 1 < argc) peak_tflops = std::atof(argv[++i]);
        else if (!std::strcmp(argv[i], "--segments") && i + 1 < argc) g_segments = std::max(1, std::atoi(argv[++i]));
        else if (!std::strcmp(argv[i], "--batch") && i + 1 < argc) g_batch = std::max(1, std::atoi(argv[++i]));
        else if (!std::strcmp(argv[i], "--parallel") && i + 1 < argc) g_parallel = std::max(0, std::atoi(argv[++i]));
        else if (!std::strcmp(argv[i], "--stack") && i + 1 < argc) g_stack = std::max(0, std::atoi(argv[++i]));
        else if (!std::strcmp(argv[i], "--config") && i + 1 < argc) {
            std::string c = argv[++i];
            if (c == "base") kConfig = kBase, config_name = "base", g_D = 768, g_L = 12, g_F = 2048, g_V = 32000;
            else if (c != "small") return std::fprintf(stderr, "--config: small or base\n"), 2;
        } else if (!std::strcmp(argv[i], "--ffn") && i + 1 < argc) {
            ffn = argv[++i];
            if (ffn != "swiglu" && ffn != "gelu") return std::fprintf(stderr, "--ffn: swiglu or gelu\n"), 2;
        }
    }
    if (ffn == "gelu") {  // the same width, two matrices instead of three
        kConfig.insert(kConfig.size() - 1, ",\"ffn\":\"gelu\"");
        g_ffn_mats = 2;
        config_name += " (gelu)";
    }
    const bool on_cpu = g_device == "cpu";
    omp_set_num_threads(threads);
    std::printf("rmkv %s training benchmark: %s config, K=%d segments x 256, B=%d (%d tokens/step), device %s, %d threads\n",
                rmkv_version(), config_name.c_str(), g_segments, g_batch, 256 * g_batch * g_segments, g_device.c_str(),
                threads);
    const double peak = on_cpu ? sgemm_peak_gflops() : peak_tflops * 1e3, fpt = flops_per_token();
    // The bf16 rows' MFU is against the bf16 products' peak where the CPU has them.
    const double bf16_peak = on_cpu ? gemm_peak_gflops(dnnl::memory::data_type::bf16) : 0;
    const double peak16 = bf16_peak > 0 ? bf16_peak : peak;
    if (on_cpu && bf16_peak > 0)
        std::printf("machine: gemm peak f32 %.1f, bf16 %.1f GFLOP/s (oneDNN 2048^3); model FLOPs %.1f M/token\n\n",
                    peak, bf16_peak, fpt / 1e6);
    else if (on_cpu)
        std::printf("machine: sgemm peak %.1f GFLOP/s (oneDNN f32 2048^3); model FLOPs %.1f M/token\n\n", peak, fpt / 1e6);
    else
        std::printf("device peak (given): %.1f TFLOP/s; model FLOPs %.1f M/token\n\n", peak_tflops, fpt / 1e6);
    std::printf("%-24s %10s %8s %10s %12s\n", "implementation", "tokens/s", "MFU", "vs torch", "trainer MiB");
    auto want = [&](const char *r) { return rows.find(std::string(",") + r + ",") != std::string::npos; };
    const Run none{-1, 0, 0};
    const Run f32 = want("fp32") ? rmkv_run(RMKV_PRECISION_FP32, false, steps) : none;
    const Run f16 = want("bf16") ? rmkv_run(RMKV_PRECISION_AUTO, false, steps) : none;
    const Run re16 = want("recompute") ? rmkv_run(RMKV_PRECISION_AUTO, true, steps) : none;
    const Run un16 = want("unstacked") ? rmkv_run(RMKV_PRECISION_AUTO, false, steps, 1) : none;
    const double r32 = f32.tokens_per_s, r16 = f16.tokens_per_s;
    const std::string dev = on_cpu ? "" : " --device " + g_device;
    double t32 = pytorch && want("torch-fp32") ? pytorch_tokens_per_s(script, "float32", steps, threads, dev) : -1;
    double t16 = pytorch && want("torch-bf16") ? pytorch_tokens_per_s(script, "bfloat16", steps, threads, dev) : -1;
    double c16 = pytorch && !on_cpu && want("torch-compile")
                     ? pytorch_tokens_per_s(script, "bfloat16", steps, threads, dev + " --compile")
                     : -1;
    auto row = [&](const char *name, double tps, double ref, double mib, double peak) {
        if (peak > 0) std::printf("%-24s %10.0f %7.1f%% ", name, tps, 100 * tps * fpt / 1e9 / peak);
        else std::printf("%-24s %10.0f %8s ", name, tps, "-");
        if (ref > 0) std::printf("%9.2fx ", tps / ref);
        else std::printf("%10s ", "-");
        if (on_cpu && mib > 0) std::printf("%12.0f\n", mib);
        else std::printf("%12s\n", "-");
    };
    if (r32 > 0) row("rmkv fp32", r32, t32, f32.trainer_mib, peak);
    if (r16 > 0) row("rmkv bf16 (auto)", r16, t16, f16.trainer_mib, peak16);
    if (re16.tokens_per_s > 0) row("rmkv bf16 recompute", re16.tokens_per_s, t16, re16.trainer_mib, peak16);
    if (un16.tokens_per_s > 0) row("rmkv bf16 unstacked", un16.tokens_per_s, t16, un16.trainer_mib, peak16);
    if (t32 > 0) row("pytorch fp32", t32, -1, 0, peak);
    if (t16 > 0) row("pytorch bf16 autocast", t16, -1, 0, peak16);
    if (c16 > 0) row("pytorch bf16 compile", c16, -1, 0, peak16);
    if (c16 > 0 && r16 > 0) std::printf("rmkv bf16 vs torch.compile bf16: %.2fx\n", r16 / c16);
    if (pytorch && ((want("torch-fp32") && t32 < 0) || (want("torch-bf16") && t16 < 0))) std::printf("(pytorch run failed: is %s there and python3-torch installed?)\n", script.c_str());
    std::printf("\nMFU = tokens/s x model FLOPs per token / %s\n(recomputation's extra forward not "
                "counted); vs torch = same precision ratio.\nLoss after the last step: bf16 %.6f, recompute %.6f.\n",
                !on_cpu ? "the given device peak" : bf16_peak > 0 ? "the gemm peak of the row's precision" : "sgemm peak",
                f16.loss, re16.loss);
    if (pytorch && pairs > 0) {
        std::vector<double> ratios;
        std::printf("\npairs of rmkv bf16 (auto) and pytorch bf16 autocast, run in turn:\n");
        for (int i = 0; i < pairs; ++i) {
            const double r = rmkv_run(RMKV_PRECISION_AUTO, false, steps).tokens_per_s;
            const double t = pytorch_tokens_per_s(script, "bfloat16", steps, threads, dev);
            if (t <= 0) {
                std::printf("(pytorch run failed)\n");
                break;
            }
            ratios.push_back(r / t);
            std::printf("  pair %d: %6.0f / %6.0f tokens/s = %.2fx\n", i + 1, r, t, r / t);
        }
        if (!ratios.empty()) {
            std::sort(ratios.begin(), ratios.end());
            const size_t n = ratios.size();
            const double median = n % 2 ? ratios[n / 2] : (ratios[n / 2 - 1] + ratios[n / 2]) / 2;
            std::printf("median of %zu pairs: %.2fx (from %.2fx to %.2fx)\n", n, median, ratios.front(), ratios.back());
        }
    }
    return 0;
}
