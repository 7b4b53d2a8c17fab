// rmkv-bench: inference speed of the tiny, small and base configs on this
// machine, with the machine's own limits measured in the same run:
//   - read bandwidth (a parallel sum over 1 GiB) -> decode roofline
//   - sgemm peak (oneDNN f32 matmul, 2048^3)      -> prefill efficiency
// Usage: rmkv-bench [--configs tiny,small,base] [--far 100000] [--decode 256]
//                   [--device cpu|cuda|cuda:N] [--sessions N] [--weights f32,bf16,f16]
//                   [--precision auto,fp32,bf16] [--together N,N,...]
// --weights: one row per config and weight file dtype: f32 (the created model),
// bf16 and f16 (the same model saved as BF16 / F16 and loaded back, mapped: on the
// CPU its matrices stay 16-bit), measured one after the other in the same run.
// --precision: rmkv_session_params.precision of every session (default auto); with
// more than one, the bf16 rows are repeated for each ("small/bf16@fp32"); it does
// not change products with F32 or F16 weights. --device other than cpu: the machine limits above (CPU ones) are not
// measured and the percentages are left out. --sessions N (> 1): N sessions
// decoding, one thread each and then stepped together by one thread
// (rmkv_sessions_step), their total tokens/s. --together N,N,...: after the machine's
// limits, only sessions stepped together, for each count in turn (decode/4 steps
// each, from position 4: --decode 1024 spans a 256-token segment's end): a sweep
// over the row counts of the products, with each count's median and two slowest steps.
// --profile-step K: under `perf record --control=fifo:CTL,ACK -D -1` with
// RMKV_PERF_CTL=CTL RMKV_PERF_ACK=ACK, perf records only step K of the sessions
// stepped together (counted from their first token) of every --together count.
// Any other option, or an option without its value, is refused (exit 2).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <omp.h>
#include <unistd.h>
#include <oneapi/dnnl/dnnl.hpp>

#include "machine.h"
#include "rmkv.h"

namespace {

using bench::now;
using bench::sgemm_peak_gflops;

using bench::check;

rmkv_session_params g_session = rmkv_session_default_params();  // of every session (--precision)
int g_profile_step = -1;  // --profile-step

// perf's control fifos (perf record --control=fifo:CTL,ACK -D -1), named by
// RMKV_PERF_CTL and RMKV_PERF_ACK: "enable" or "disable", answered by perf.
void perf_control(const char *command) {
    static FILE *ctl = nullptr, *ack = nullptr;
    if (!ctl) {
        const char *c = std::getenv("RMKV_PERF_CTL"), *a = std::getenv("RMKV_PERF_ACK");
        if (!c || !a || !(ctl = std::fopen(c, "w")) || !(ack = std::fopen(a, "r"))) {
            std::fprintf(stderr, "--profile-step: set RMKV_PERF_CTL and RMKV_PERF_ACK to perf's control fifos\n");
            std::exit(2);
        }
    }
    std::fputs(command, ctl);
    std::fflush(ctl);
    char answer[16];
    if (!std::fgets(answer, sizeof answer, ack)) std::exit(2);
}

// Sums a[0, n) in explicit 16-float vectors, four independent chains: limited by
// memory, not by the latency of one chain of additions.
typedef float v16f __attribute__((vector_size(64)));
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) double sum_block(const float *a, size_t n) {
    v16f acc[4] = {};
    for (size_t i = 0; i + 64 <= n; i += 64)
        for (int j = 0; j < 4; ++j) {
            v16f x;
            std::memcpy(&x, a + i + 16 * j, 64);
            acc[j] += x;
        }
    double s = 0;
    for (int j = 0; j < 4; ++j)
        for (int k = 0; k < 16; ++k) s += acc[j][k];
    return s;
}

double read_bandwidth_gbs() {
    const size_t n = (size_t(1) << 30) / sizeof(float);
    std::vector<float> a(n, 1.0f);
    double best = 0;
    const size_t block = size_t(1) << 16;
    for (int rep = 0; rep < 5; ++rep) {
        double t0 = now(), sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
        for (size_t i = 0; i < n; i += block) sum += sum_block(a.data() + i, block);
        double t = now() - t0;
        if (sum != static_cast<double>(n)) std::fprintf(stderr, "bandwidth check failed\n");
        best = std::max(best, n * sizeof(float) / t / 1e9);
    }
    return best;
}


struct Cfg {
    const char *name;
    int D, L, H, M, S, V;
};

std::string json_of(const Cfg &c) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "{\"vocab_size\":%d,\"d_model\":%d,\"n_layers\":%d,\"n_heads\":%d,\"memory_slots\":%d,\"segment_len\":%d}",
                  c.V, c.D, c.L, c.H, c.M, c.S);
    return buf;
}

// Bytes of weights one decoded token reads: every matrix of every layer on the
// token path, the head, one embedding row (rewrite-only weights amortised over S);
// matrices of w bytes a weight, norms and biases of 4.
double decode_bytes(const Cfg &c, int F, double w) {
    double D = c.D, L = c.L, M = c.M, S = c.S, V = c.V;
    double per_layer = w * (4 * D * D + 3 * D * F) + 4 * 8 * D;
    double rewrite = (w * (2 * 3 * D * D + D * D) + 4 * 2 * M * D) / S;  // cell, Wo (M rows) and pool, once per segment
    return L * (per_layer + rewrite) + w * (V * D + D) + 4 * 2 * D;
}

// Model FLOPs per prefilled token (matmuls + attention), logits for one token per chunk.
double prefill_flops(const Cfg &c, int F, int chunk) {
    double D = c.D, L = c.L, M = c.M, S = c.S;
    double mm = 2 * (4 * D * D + 3 * D * F);
    double attn = 2 * 2 * D * (M + S / 2.0);
    double mem = (2 * 3 * D * D * M * 2 + 2 * 3 * D * D * M) / S;  // memory rows' q/k/v + rewrite per segment
    return L * (mm + attn + mem) + 2.0 * D * c.V / chunk;
}

double decode_ms(rmkv_session *s, int n, int V) {
    std::vector<float> logits(V);
    int32_t tok = 7;
    double t0 = now();
    for (int i = 0; i < n; ++i) {
        check(rmkv_session_step(s, &tok, 1, logits.data()), "decode");
        tok = static_cast<int32_t>((tok * 31 + 11) % V);
    }
    return (now() - t0) * 1000.0 / n;
}

void advance_to(rmkv_session *s, uint64_t target, const Cfg &c) {
    uint64_t pos;
    check(rmkv_session_position(s, &pos, nullptr), "position");
    std::vector<int32_t> toks(c.S);
    for (int i = 0; i < c.S; ++i) toks[i] = (i * 7919) % c.V;
    while (pos < target) {
        size_t n = std::min<uint64_t>(target - pos, c.S);
        check(rmkv_session_step(s, toks.data(), n, nullptr), "advance");
        pos += n;
    }
}

// n sessions of m decoding `steps` tokens each on their own threads, each
// session computing on n_threads (rmkv_session_params; 0 = OpenMP's setting):
// tokens/s of all.
double decode_threads(rmkv_model *m, int n, int steps, int V, int n_threads) {
    std::vector<rmkv_session *> ss(static_cast<size_t>(n));
    rmkv_session_params sp = g_session;
    sp.n_threads = n_threads;
    for (auto &s : ss) check(rmkv_session_new(m, &sp, &s), "session");
    for (auto *s : ss) decode_ms(s, 4, V);  // warm
    std::vector<std::thread> th;
    double t0 = now();
    for (auto *s : ss) th.emplace_back([s, steps, V] { decode_ms(s, steps, V); });
    for (auto &t : th) t.join();
    double tps = static_cast<double>(n) * steps / (now() - t0);
    for (auto *s : ss) rmkv_session_free(s);
    return tps;
}

// The same n sessions stepped together by one thread (rmkv_sessions_step, every
// session's logits fetched), from position 4 after 4 warm-up steps: tokens/s of
// all, and the median and the two slowest steps (a step where the sessions end a
// segment also rewrites their memories, and the next prepares their memory rows:
// 256 steps of a 256-token segment hold one of each).
struct Together {
    double tokens_per_s, median_ms, slowest_ms, second_ms;
};
Together decode_stepped_together(rmkv_model *m, int n, int steps, int V) {
    std::vector<rmkv_session *> ss(static_cast<size_t>(n));
    for (auto &s : ss) check(rmkv_session_new(m, &g_session, &s), "session");
    std::vector<int32_t> toks(ss.size());
    std::vector<float> logits(ss.size() * static_cast<size_t>(V));
    std::vector<double> step_ms;
    step_ms.reserve(static_cast<size_t>(steps));
    int step = 0;  // from the sessions' first token: the segment end of 256-token segments is step 255
    auto run = [&](int k, bool timed) {
        for (int i = 0; i < k; ++i, ++step) {
            if (step == g_profile_step) perf_control("enable\n");
            const double t = now();
            check(rmkv_sessions_step(ss.data(), ss.size(), toks.data(), logits.data()), "sessions_step");
            if (timed) step_ms.push_back((now() - t) * 1e3);
            if (step == g_profile_step) perf_control("disable\n");
            for (size_t j = 0; j < toks.size(); ++j) toks[j] = static_cast<int32_t>((toks[j] * 31 + 11 + j) % V);
        }
    };
    for (size_t j = 0; j < toks.size(); ++j) toks[j] = static_cast<int32_t>((7 + j) % V);
    run(4, false);  // warm
    double t0 = now();
    run(steps, true);
    Together r{static_cast<double>(n) * steps / (now() - t0), 0, 0, 0};
    std::sort(step_ms.begin(), step_ms.end());
    r.median_ms = step_ms[step_ms.size() / 2];
    r.slowest_ms = step_ms.back();
    r.second_ms = step_ms[step_ms.size() > 1 ? step_ms.size() - 2 : 0];
    for (auto *s : ss) rmkv_session_free(s);
    return r;
}

}  // namespace

int main(int argc, char **argv) {
    std::string which = "tiny,small,base";
    uint64_t far = 100000;
    int n_decode = 512, n_sessions = 1;
    std::string device = "cpu", weights = "f32", precisions = "auto";
    std::vector<int> together_counts;
    const char *kUsage =
        "usage: rmkv-bench [--device D] [--configs tiny,small,base] [--far N] [--decode N] [--sessions N]\n"
        "                  [--weights f32,bf16,f16] [--precision auto,fp32,bf16] [--together N,N,..] [--profile-step N]\n";
    if (argc % 2 == 0) {
        std::fprintf(stderr, "%s: every option takes a value\n%s", argv[argc - 1], kUsage);
        return 2;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--device")) device = argv[i + 1];
        else if (!std::strcmp(argv[i], "--sessions")) n_sessions = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--configs")) which = argv[i + 1];
        else if (!std::strcmp(argv[i], "--far")) far = std::strtoull(argv[i + 1], nullptr, 10);
        else if (!std::strcmp(argv[i], "--decode")) n_decode = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--weights")) weights = argv[i + 1];
        else if (!std::strcmp(argv[i], "--precision")) precisions = argv[i + 1];
        else if (!std::strcmp(argv[i], "--profile-step")) g_profile_step = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--together"))
            for (const char *p = argv[i + 1]; *p;) {
                char *end = nullptr;
                const long n = std::strtol(p, &end, 10);
                if (end == p || n < 1 || n > 4096) {
                    std::fprintf(stderr, "--together %s: give session counts from 1 to 4096, comma-separated\n", argv[i + 1]);
                    return 2;
                }
                together_counts.push_back(static_cast<int>(n));
                p = *end == ',' ? end + 1 : end;
            }
        else {
            std::fprintf(stderr, "unknown option %s\n%s", argv[i], kUsage);
            return 2;
        }
    }
    std::vector<std::pair<std::string, int32_t>> precs;  // name, rmkv_precision
    for (const char *p : {"auto", "fp32", "bf16"})
        if (("," + precisions + ",").find(std::string(",") + p + ",") != std::string::npos)
            precs.emplace_back(p, p[0] == 'a' ? RMKV_PRECISION_AUTO : p[0] == 'f' ? RMKV_PRECISION_FP32 : RMKV_PRECISION_BF16);
    if (precs.empty()) {
        std::fprintf(stderr, "--precision %s: give auto, fp32 and/or bf16\n", precisions.c_str());
        return 2;
    }
    const Cfg cfgs[] = {{"tiny", 256, 4, 4, 16, 128, 4096}, {"small", 512, 8, 8, 32, 256, 16384}, {"base", 768, 12, 12, 32, 256, 32000}};

    const bool on_cpu = device == "cpu";
    std::printf("rmkv %s inference benchmark, device %s, %d threads\n", rmkv_version(), device.c_str(), omp_get_max_threads());
    double bw = on_cpu ? read_bandwidth_gbs() : 0;
    double peak = on_cpu ? sgemm_peak_gflops() : 0;
    if (on_cpu) std::printf("machine: read bandwidth %.1f GB/s, sgemm peak %.1f GFLOP/s (oneDNN f32 2048^3)\n\n", bw, peak);
    else std::printf("(percentages of CPU limits left out on %s)\n\n", device.c_str());
    rmkv_model_params mp = rmkv_model_default_params();
    mp.device = device.c_str();
    if (together_counts.empty()) {
        std::printf("%-16s %10s %8s %12s %10s %10s %10s %9s %9s\n", "config", "params", "prefill", "prefill", "decode", "decode@1k",
                    "decode@far", "far/1k", "roofline");
        std::printf("%-16s %10s %8s %12s %10s %10s %10s %9s %9s\n", "", "", "tok/s", "%sgemm peak", "ms/tok", "ms/tok", "ms/tok", "", "% of bw");
    }

    for (const Cfg &c : cfgs) {
      for (const rmkv_dtype dtype : {RMKV_DTYPE_F32, RMKV_DTYPE_BF16, RMKV_DTYPE_F16})
      for (size_t pi = 0; pi < precs.size(); ++pi) {
        if (pi > 0 && dtype != RMKV_DTYPE_BF16) continue;  // precision changes bf16 rows only
        g_session.precision = precs[pi].second;
        const char *dname = dtype == RMKV_DTYPE_F32 ? "f32" : dtype == RMKV_DTYPE_BF16 ? "bf16" : "f16";
        const bool half = dtype != RMKV_DTYPE_F32;
        if (which.find(c.name) == std::string::npos) continue;
        if (("," + weights + ",").find(std::string(",") + dname + ",") == std::string::npos) continue;
        rmkv_model *m = nullptr;
        check(rmkv_model_create(json_of(c).c_str(), nullptr, 1, &mp, &m), "create");
        if (half) {
            const std::string path = "/tmp/rmkv-bench-" + std::to_string(static_cast<long>(getpid())) + ".safetensors";
            check(rmkv_model_save_as(m, path.c_str(), dtype), "save_as");
            rmkv_model_free(m);
            m = nullptr;
            check(rmkv_model_load(path.c_str(), &mp, &m), "load");
            std::remove(path.c_str());  // stays mapped
        }
        const std::string label = std::string(c.name) + (half ? std::string("/") + dname : "") +
                                  (precs.size() > 1 && dtype == RMKV_DTYPE_BF16 ? "@" + precs[pi].first : "");
        if (!together_counts.empty()) {
            for (const int n : together_counts) {
                const int steps = std::max(n_decode / 4, 1);
                const Together t = decode_stepped_together(m, n, steps, c.V);
                std::printf("%-16s %d sessions stepped together (rmkv_sessions_step): %.0f tokens/s in all; "
                            "step median %.1f ms, slowest %.1f and %.1f ms (of %d)\n",
                            label.c_str(), n, t.tokens_per_s, t.median_ms, t.slowest_ms, t.second_ms, steps);
            }
            std::fflush(stdout);
            rmkv_model_free(m);
            continue;
        }
        size_t need = 0;
        rmkv_model_config_json(m, nullptr, 0, &need);
        std::string cj(need, '\0');
        check(rmkv_model_config_json(m, cj.data(), need, &need), "config");
        int F = std::atoi(cj.c_str() + cj.find("\"ffn_hidden\":") + 13);
        rmkv_session *s = nullptr;
        check(rmkv_session_new(m, &g_session, &s), "session");

        // Prefill: whole segments, logits of the last token of each.
        std::vector<int32_t> toks(c.S);
        for (int i = 0; i < c.S; ++i) toks[i] = (i * 131) % c.V;
        std::vector<float> logits(c.V);
        check(rmkv_session_step(s, toks.data(), c.S, logits.data()), "warmup");
        int segs = std::max(2, 8192 / c.S / (c.D / 256));
        double t0 = now();
        for (int i = 0; i < segs; ++i) check(rmkv_session_step(s, toks.data(), c.S, logits.data()), "prefill");
        double prefill_tps = segs * c.S / (now() - t0);
        double prefill_frac = on_cpu ? prefill_tps * prefill_flops(c, F, c.S) / 1e9 / peak : 0;

        check(rmkv_session_reset(s), "reset");
        decode_ms(s, 8, c.V);  // warm the one-row kernels
        check(rmkv_session_reset(s), "reset");
        double dec0 = decode_ms(s, n_decode, c.V);
        // Position 1,000 against position `far`, interleaved in rounds so that both
        // see the same machine noise.
        rmkv_session *near_s = nullptr, *far_s = nullptr;
        check(rmkv_session_new(m, &g_session, &near_s), "session");
        check(rmkv_session_new(m, &g_session, &far_s), "session");
        advance_to(near_s, 1000, c);
        advance_to(far_s, far, c);
        double dec1k = 0, decfar = 0;
        const int rounds = 8;
        for (int r = 0; r < rounds; ++r) {
            dec1k += decode_ms(near_s, n_decode / rounds, c.V) / rounds;
            decfar += decode_ms(far_s, n_decode / rounds, c.V) / rounds;
        }
        rmkv_session_free(near_s);
        rmkv_session_free(far_s);
        double roof_ms = on_cpu ? decode_bytes(c, F, half ? 2 : 4) / (bw * 1e9) * 1000.0 : 0;

        std::printf("%-16s %9.1fM %8.0f %11.1f%% %10.3f %10.3f %10.3f %8.3fx %8.1f%%\n", label.c_str(),
                    rmkv_model_n_params(m) / 1e6, prefill_tps, 100 * prefill_frac, dec0, dec1k, decfar, decfar / dec1k,
                    100 * roof_ms / dec1k);
        if (n_sessions > 1) {
            const double threads = decode_threads(m, n_sessions, n_decode / 4, c.V, 0);
            const double single = decode_threads(m, n_sessions, n_decode / 4, c.V, 1);
            const double together = decode_stepped_together(m, n_sessions, n_decode / 4, c.V).tokens_per_s;
            std::printf("%-10s %d sessions, one thread each (rmkv_session_step): %.0f tokens/s in all\n", label.c_str(),
                        n_sessions, threads);
            std::printf("%-10s %d sessions, one thread each, n_threads 1 (no OpenMP team each): %.0f tokens/s in all "
                        "(%.2fx)\n", label.c_str(), n_sessions, single, single / threads);
            std::printf("%-10s %d sessions stepped together (rmkv_sessions_step): %.0f tokens/s in all (%.2fx; %.2fx the n_threads 1 row)\n",
                        label.c_str(), n_sessions, together, together / threads, together / single);
        }
        std::fflush(stdout);
        rmkv_session_free(s);
        rmkv_model_free(m);
      }
    }
    if (!together_counts.empty()) return 0;
    std::printf("\ndecode = mean over %d one-token steps (a full segment cycle with its memory rewrite);\n"
                "decode@1k and decode@far are measured interleaved, in 8 rounds;\n"
                "roofline = weight bytes read per token / read bandwidth; far = position %llu.\n",
                n_decode, static_cast<unsigned long long>(far));
    return 0;
}
