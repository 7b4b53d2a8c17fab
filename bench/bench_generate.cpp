// rmkv-bench-generate: what a game or chat pays besides the model itself.
//  - save and restore of a session state of the `small` config (a character's
//    memory), and its size: flushed (the memories alone), and in the middle of a
//    segment (its caches too: exact continuation without a flush), to memory
//    and to a file (written atomically and fsynced);
//  - the per-token cost of sampling with every filter on against greedy, for
//    V = 32000, next to the decode time of one token of `small` at that V.
// Usage: rmkv-bench-generate [--reps N]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

#include "rmkv.h"

namespace {

double now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void ok(rmkv_status st, const char *what) {
    if (st != RMKV_OK) {
        std::fprintf(stderr, "rmkv-bench-generate: %s: %s\n", what, rmkv_last_error());
        std::exit(1);
    }
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char **argv) {
    int reps = 200;
    for (int i = 1; i + 1 < argc; i += 2)
        if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    std::printf("rmkv %s generation benchmark, %d threads\n\n", rmkv_version(), omp_get_max_threads());
    // The `small` config of rmkv-bench, with V = 32000 for the sampling figures.
    const char *small =
        "{\"vocab_size\":32000,\"d_model\":512,\"n_layers\":8,\"n_heads\":8,\"memory_slots\":32,\"segment_len\":256}";
    rmkv_model *m = nullptr;
    ok(rmkv_model_create(small, nullptr, 1, nullptr, &m), "model");
    const int V = 32000;
    rmkv_session *s = nullptr;
    ok(rmkv_session_new(m, nullptr, &s), "session");
    std::vector<int32_t> prompt(300);
    for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7919) % V);
    ok(rmkv_session_step(s, prompt.data(), prompt.size(), nullptr), "prompt");
    ok(rmkv_session_flush(s), "flush");

    // Save and restore of the state: to memory (reps times) and to a file (reps / 10).
    rmkv_session *t = nullptr;
    ok(rmkv_session_new(m, nullptr, &t), "session");
    const char *tmp = std::getenv("TMPDIR");
    const std::string file = std::string(tmp && *tmp ? tmp : "/tmp") + "/rmkv-bench-state-" + std::to_string(getpid());
    auto time_state = [&](const char *what) {
        size_t size = 0;
        ok(rmkv_session_state_size(s, &size), "size");
        std::vector<uint8_t> buf(size);
        std::vector<double> size_ms, save_ms, load_ms, fsave_ms, fload_ms;
        for (int r = 0; r < reps; ++r) {
            double t0 = now_ms();
            ok(rmkv_session_state_size(s, &size), "size");
            double t1 = now_ms();
            ok(rmkv_session_state_save(s, buf.data(), buf.size(), &size), "save");
            double t2 = now_ms();
            ok(rmkv_session_state_load(t, buf.data(), size), "load");
            double t3 = now_ms();
            size_ms.push_back(t1 - t0);
            save_ms.push_back(t2 - t1);
            load_ms.push_back(t3 - t2);
        }
        for (int r = 0; r < std::max(1, reps / 10); ++r) {
            double t0 = now_ms();
            ok(rmkv_session_state_save_file(s, file.c_str()), "save file");
            double t1 = now_ms();
            ok(rmkv_session_state_load_file(t, file.c_str()), "load file");
            double t2 = now_ms();
            fsave_ms.push_back(t1 - t0);
            fload_ms.push_back(t2 - t1);
        }
        std::remove(file.c_str());
        std::printf("%s state of `small` (D512, 8 layers, 32 slots): %zu bytes (%.1f KiB)\n", what, size, size / 1024.0);
        std::printf("  size query       %8.4f ms (median of %d)\n", median(size_ms), reps);
        std::printf("  save to memory   %8.4f ms\n", median(save_ms));
        std::printf("  restore (load)   %8.4f ms\n", median(load_ms));
        std::printf("  save to a file   %8.4f ms (median of %d)\n", median(fsave_ms), std::max(1, reps / 10));
        std::printf("  load from a file %8.4f ms\n\n", median(fload_ms));
    };
    time_state("flushed");
    ok(rmkv_session_step(s, prompt.data(), 128, nullptr), "half a segment");
    time_state("mid-segment (128 of 256 tokens cached)");

    // Decode time of one token (mean over a whole segment cycle).
    int32_t tok = 17;
    const int steps = 256;
    double t0 = now_ms();
    for (int i = 0; i < steps; ++i) {
        ok(rmkv_session_step(s, &tok, 1, nullptr), "step");
        tok = (tok * 31 + 7) % V;
    }
    const double decode = (now_ms() - t0) / steps;

    // Sampling: greedy against every filter on.
    rmkv_sampler_params greedy = rmkv_sampler_default_params();
    greedy.temperature = 0;
    rmkv_sampler_params all = rmkv_sampler_default_params();
    all.temperature = 0.8f;
    all.top_k = 40;
    all.top_p = 0.95f;
    all.min_p = 0.05f;
    all.repetition_penalty = 1.1f;
    all.penalty_window = 64;
    all.presence_penalty = 0.2f;
    all.frequency_penalty = 0.1f;
    all.seed = 42;
    int32_t bias_tokens[16];
    float bias_values[16];
    for (int i = 0; i < 16; ++i) {
        bias_tokens[i] = i * 101;
        bias_values[i] = (i % 2) ? 1.5f : -2.0f;
    }
    int32_t banned[4] = {0, 1, 2, 3};
    all.bias_tokens = bias_tokens;
    all.bias_values = bias_values;
    all.n_bias = 16;
    all.banned_tokens = banned;
    all.n_banned = 4;
    auto time_sampling = [&](const rmkv_sampler_params &p) {
        int32_t out = 0;
        for (int i = 0; i < 50; ++i) ok(rmkv_session_sample(s, &p, &out), "sample");  // warm-up
        const int n = 2000;
        double a = now_ms();
        for (int i = 0; i < n; ++i) ok(rmkv_session_sample(s, &p, &out), "sample");
        return (now_ms() - a) / n;
    };
    const double g = time_sampling(greedy), f = time_sampling(all);
    std::printf("sampling, V = 32000 (mean of 2000 draws)\n");
    std::printf("  greedy                       %8.4f ms/token\n", g);
    std::printf("  every filter on              %8.4f ms/token (temperature, top_k 40, top_p 0.95, min_p 0.05,\n"
                "                                                 penalties over 64 tokens, 16 biases, 4 bans)\n", f);
    std::printf("  decode of `small`, V = 32000 %8.4f ms/token\n", decode);
    std::printf("  overhead of the filters      %8.4f ms/token = %.2f%% of decode\n", f - g, 100.0 * (f - g) / decode);
    rmkv_session_free(t);
    rmkv_session_free(s);
    rmkv_model_free(m);
    return 0;
}
