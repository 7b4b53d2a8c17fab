// Writes the seed corpora of the fuzz targets from real files made through the
// public ABI: model files (three configurations, F32 / BF16 / F16), session
// states (fresh, mid-segment, flushed), checkpoints, model and data configs, and
// JSONL / text data files. Usage: fuzz_seeds OUT_DIR (makes OUT_DIR/<target>/).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "fuzz_common.h"

namespace {
std::string g_out;

#define OK(call)                                                                          \
    do {                                                                                  \
        rmkv_status st_ = (call);                                                         \
        if (st_ != RMKV_OK) {                                                             \
            std::fprintf(stderr, "fuzz_seeds: %s: %s\n", #call, rmkv_last_error());      \
            std::exit(1);                                                                 \
        }                                                                                 \
    } while (0)

void put(const std::string &target, const std::string &name, const std::string &prefix, const std::vector<uint8_t> &bytes) {
    ::mkdir((g_out + "/" + target).c_str(), 0755);
    std::string path = g_out + "/" + target + "/" + name;
    FILE *f = std::fopen(path.c_str(), "wb");
    if (!f) std::exit(1);
    std::fwrite(prefix.data(), 1, prefix.size(), f);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
}
void put_text(const std::string &target, const std::string &name, const std::string &prefix, const std::string &text) {
    put(target, name, prefix, std::vector<uint8_t>(text.begin(), text.end()));
}
std::vector<uint8_t> read_file(const std::string &path) {
    std::vector<uint8_t> out;
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) std::exit(1);
    int c;
    while ((c = std::fgetc(f)) != EOF) out.push_back(static_cast<uint8_t>(c));
    std::fclose(f);
    return out;
}
std::vector<uint8_t> state_of(rmkv_session *s) {
    size_t n = 0;
    OK(rmkv_session_state_size(s, &n));
    std::vector<uint8_t> out(n);
    OK(rmkv_session_state_save(s, out.data(), n, &n));
    return out;
}
}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: fuzz_seeds OUT_DIR\n");
        return 2;
    }
    g_out = argv[1];
    ::mkdir(g_out.c_str(), 0755);
    const std::string tmp = g_out + "/tmp.bin";
    const char *dtypes[3] = {"f32", "bf16", "f16"};
    // model files and states
    for (int c = 0; c < 3; ++c) {
        rmkv_model *m = nullptr;
        OK(rmkv_model_create(kStateConfigs[c], nullptr, 1 + c, nullptr, &m));
        for (int d = 0; d < 3; ++d) {
            OK(rmkv_model_save_as(m, tmp.c_str(), static_cast<rmkv_dtype>(d)));
            put("fuzz_model_file", "model-" + std::to_string(c) + "-" + dtypes[d], "", read_file(tmp));
        }
        rmkv_session *s = nullptr;
        OK(rmkv_session_new(m, nullptr, &s));
        std::string sel(1, static_cast<char>(c));
        put("fuzz_state_file", "state-" + std::to_string(c) + "-fresh", sel, state_of(s));
        int32_t toks[5] = {1, 2, 3, 4, 5};
        OK(rmkv_session_step(s, toks, 1, nullptr));
        put("fuzz_state_file", "state-" + std::to_string(c) + "-mid", sel, state_of(s));
        OK(rmkv_session_step(s, toks, 5, nullptr));
        rmkv_sampler_params sp = rmkv_sampler_default_params();
        int32_t next;
        OK(rmkv_session_sample(s, &sp, &next));
        put("fuzz_state_file", "state-" + std::to_string(c) + "-sampled", sel, state_of(s));
        OK(rmkv_session_flush(s));
        put("fuzz_state_file", "state-" + std::to_string(c) + "-flushed", sel, state_of(s));
        rmkv_session_free(s);
        // its config, both as given and as read from a file
        put_text("fuzz_config", "model-config-" + std::to_string(c), std::string(1, '\0'), kStateConfigs[c]);
        char cfg[2048];
        size_t needed;
        OK(rmkv_model_config_json(m, cfg, sizeof cfg, &needed));
        put_text("fuzz_config", "model-config-full-" + std::to_string(c), std::string(1, '\1'), cfg);
        rmkv_model_free(m);
    }
    // checkpoints (also model files)
    {
        rmkv_model *m = nullptr;
        OK(rmkv_model_create(kCheckpointConfig, nullptr, 9, nullptr, &m));
        rmkv_trainer *t = nullptr;
        OK(rmkv_trainer_new(m, nullptr, &t));
        OK(rmkv_trainer_save_checkpoint(t, tmp.c_str(), nullptr));
        put("fuzz_checkpoint", "checkpoint-step0", "", read_file(tmp));
        int32_t toks[6] = {1, 2, 3, 4, 5, 6}, tgts[6] = {2, 3, 4, 5, 6, -1};
        rmkv_batch b{};
        b.struct_size = sizeof b;
        b.batch_size = 1;
        b.n_tokens = 6;
        b.tokens = toks;
        b.targets = tgts;
        OK(rmkv_train_step(t, &b, nullptr));
        OK(rmkv_trainer_save_checkpoint(t, tmp.c_str(), "{\"epoch\":1,\"data\":\"abc\"}"));
        put("fuzz_checkpoint", "checkpoint-step1", "", read_file(tmp));
        put("fuzz_model_file", "checkpoint-step1", "", read_file(tmp));
        rmkv_trainer_free(t);
        rmkv_model_free(m);
    }
    ::remove(tmp.c_str());
    // data configs (the path need not exist: parsing only)
    const char *data_cfgs[] = {
        "{\"sources\":[{\"path\":\"a.txt\",\"kind\":\"text\",\"separator\":\"\\n\\n\"}],\"batch_size\":4,\"n_tokens\":64}",
        "{\"sources\":[{\"path\":\"chat.jsonl\",\"format\":\"chat\",\"weight\":2},{\"path\":\"b\",\"kind\":\"text\",\"extensions\":[\".txt\"]}],"
        "\"walk\":\"random\",\"seed\":3,\"validation_fraction\":0.1,\"eod_token\":\"<end>\",\"pad_token\":0,"
        "\"max_prompt_tokens\":8,\"max_completion_tokens\":8,\"queue_size\":0,\"chunk_bytes\":256,\"on_error\":\"skip\"}",
        "{\"sources\":[{\"path\":\"x.jsonl\",\"input_field\":\"prompt\",\"output_field\":\"response\","
        "\"prompt_template\":\"Q: {input}<start>\",\"response_template\":\"{output}<end>\",\"mask_prompt\":false,\"walk\":\"sequential\"}],"
        "\"validation_count\":2}",
    };
    for (size_t i = 0; i < sizeof data_cfgs / sizeof data_cfgs[0]; ++i)
        put_text("fuzz_config", "data-config-" + std::to_string(i), std::string(1, '\2'), data_cfgs[i]);
    // data files
    put_text("fuzz_data_file", "jsonl-default", std::string(1, '\1'),
             "{\"input\":\"hello\",\"output\":\"hi there\"}\n\n{\"input\":\"how are you?\",\"output\":\"fine, 123\"}\n");
    put_text("fuzz_data_file", "jsonl-chat-fields", std::string(1, '\7'),
             "{\"prompt\":\"hello\",\"response\":\"hi <end> there\"}\n{\"prompt\":\"\\u00e9t\\u00e9\",\"response\":\"\\ud83d\\ude00\"}\n");
    put_text("fuzz_data_file", "jsonl-skip-validation", std::string(1, static_cast<char>(1 | 8 | 16)),
             "{\"input\":\"a\",\"output\":\"b\"}\nnot json\n{\"input\":1}\n{\"input\":\"c\",\"output\":\"d\"}\n");
    put_text("fuzz_data_file", "text-separated", std::string(1, static_cast<char>(2 | 32)),
             "user: hello\n\nassistant: hi there\n\n\n\nsecond document, how are you? 123\n");
    put_text("fuzz_data_file", "text-whole", std::string(1, static_cast<char>(64 | 16)),
             "one document without separators \xc3\xa9\xe2\x82\xac \xff\xfe invalid bytes\n");
    std::printf("fuzz_seeds: corpora written to %s\n", g_out.c_str());
    return 0;
}
