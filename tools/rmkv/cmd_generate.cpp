// rmkv generate: a continuation of a prompt, streamed as it is sampled.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "commands.h"
#include "rmkv.h"

namespace {

int report(const char *what) {
    std::fprintf(stderr, "rmkv generate: %s: %s\n", what, rmkv_last_error());
    return 1;
}

const char *kUsage =
    "usage: rmkv generate MODEL.safetensors [--prompt TEXT] [--max-tokens N] [--temperature T]\n"
    "                     [--top-k K] [--top-p P] [--min-p P] [--repetition-penalty R]\n"
    "                     [--penalty-window N] [--presence-penalty X] [--frequency-penalty X]\n"
    "                     [--seed S] [--stop-token TOKEN] [--stop TEXT]... [--state FILE]\n"
    "                     [--precision auto|fp32|bf16] [--threads N]\n"
    "  --stop TEXT   end the continuation where the text reaches TEXT (repeatable)\n"
    "  --state FILE  start from a saved session state, and save the session there at the end\n"
    "  --precision   of products with BF16 weights (a BF16 model file; rmkv_session_params; default auto)\n"
    "  --threads N   CPU threads (0 = OpenMP's setting, the default)\n";

}  // namespace

int cmd_generate(int argc, char **argv) {
    if (argc < 2) {
        std::fputs(kUsage, stderr);
        return 2;
    }
    const char *model_path = argv[1];
    std::string prompt, stop = "<end>", state_path;
    std::vector<std::string> stop_strings;
    long max_tokens = 200;
    rmkv_sampler_params sp = rmkv_sampler_default_params();
    rmkv_session_params ssp = rmkv_session_default_params();
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        if (i + 1 >= argc) {
            std::fprintf(stderr, "rmkv generate: %s needs a value\n%s", a.c_str(), kUsage);
            return 2;
        }
        const char *v = argv[++i];
        if (a == "--prompt") prompt = v;
        else if (a == "--max-tokens") max_tokens = std::atol(v);
        else if (a == "--temperature") sp.temperature = std::strtof(v, nullptr);
        else if (a == "--top-k") sp.top_k = std::atoi(v);
        else if (a == "--top-p") sp.top_p = std::strtof(v, nullptr);
        else if (a == "--min-p") sp.min_p = std::strtof(v, nullptr);
        else if (a == "--repetition-penalty") sp.repetition_penalty = std::strtof(v, nullptr);
        else if (a == "--penalty-window") sp.penalty_window = std::atoi(v);
        else if (a == "--presence-penalty") sp.presence_penalty = std::strtof(v, nullptr);
        else if (a == "--frequency-penalty") sp.frequency_penalty = std::strtof(v, nullptr);
        else if (a == "--seed") sp.seed = std::strtoull(v, nullptr, 10);
        else if (a == "--stop-token") stop = v;
        else if (a == "--state") state_path = v;
        else if (a == "--stop") stop_strings.push_back(v);
        else if (a == "--threads") ssp.n_threads = std::atoi(v);
        else if (a == "--precision") {
            rmkv_precision precision;
            if (!parse_precision(v, &precision)) {
                std::fprintf(stderr, "rmkv generate: precision '%s' is not auto, fp32 or bf16\n", v);
                return 2;
            }
            ssp.precision = precision;
        } else {
            std::fprintf(stderr, "rmkv generate: unknown option %s\n%s", a.c_str(), kUsage);
            return 2;
        }
    }
    rmkv_model *model = nullptr;
    if (rmkv_model_load(model_path, nullptr, &model) != RMKV_OK) return report(model_path);
    const rmkv_tokenizer *tok = rmkv_model_tokenizer(model);
    if (!tok) {
        std::fprintf(stderr, "rmkv generate: %s has no tokenizer\n", model_path);
        return 1;
    }
    rmkv_session *s = nullptr;
    if (rmkv_session_new(model, &ssp, &s) != RMKV_OK) return report("session");
    if (!state_path.empty()) {
        FILE *f = std::fopen(state_path.c_str(), "rb");
        if (f) {
            std::fclose(f);
            if (rmkv_session_state_load_file(s, state_path.c_str()) != RMKV_OK) return report(state_path.c_str());
        }
    }
    size_t n = 0;
    rmkv_tokenizer_encode(tok, prompt.data(), prompt.size(), nullptr, 0, &n);
    std::vector<int32_t> ids(n);
    if (n && rmkv_tokenizer_encode(tok, prompt.data(), prompt.size(), ids.data(), n, &n) != RMKV_OK) return report("encode");
    if (ids.empty()) {
        // Nothing to condition on: start from the end-of-turn token when there is one.
        int32_t start = rmkv_tokenizer_token_id(tok, stop.c_str());
        ids.push_back(start >= 0 ? start : 0);
    }
    const int32_t stop_id = rmkv_tokenizer_token_id(tok, stop.c_str());
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    rmkv_generate_params gp = rmkv_generate_default_params();
    gp.sampler = &sp;
    gp.max_tokens = static_cast<int32_t>(max_tokens);
    gp.stop_tokens = &stop_id;
    gp.n_stop_tokens = stop_id >= 0 ? 1 : 0;
    std::vector<const char *> stops;
    for (auto &x : stop_strings) stops.push_back(x.c_str());
    gp.stop_strings = stops.data();
    gp.n_stop_strings = stops.size();
    gp.on_piece = [](const char *text, size_t size, void *) {
        std::fwrite(text, 1, size, stdout);
        std::fflush(stdout);
        return 0;
    };
    if (rmkv_session_generate(s, tok, ids.data(), ids.size(), &gp, nullptr) != RMKV_OK) return report("generate");
    std::fputc('\n', stdout);
    if (!state_path.empty()) {
        if (rmkv_session_flush(s) != RMKV_OK || rmkv_session_state_save_file(s, state_path.c_str()) != RMKV_OK)
            return report(state_path.c_str());
    }
    rmkv_session_free(s);
    rmkv_model_free(model);
    return 0;
}
