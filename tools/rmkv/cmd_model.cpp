// rmkv create | info | convert
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "commands.h"
#include "rmkv.h"

namespace {

int report(const char *what) {
    std::fprintf(stderr, "rmkv: %s: %s\n", what, rmkv_last_error());
    return 1;
}

}  // namespace

int cmd_create(int argc, char **argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: rmkv create CONFIG_JSON OUT.safetensors [--seed N] [--tokenizer tokenizer.json]\n"
                             "  CONFIG_JSON: JSON text or @file, keys of SPEC section 2\n");
        return 2;
    }
    std::string config = argv[1];
    if (!config.empty() && config[0] == '@') {
        FILE *f = std::fopen(config.c_str() + 1, "rb");
        if (!f) {
            std::perror(config.c_str() + 1);
            return 1;
        }
        config.clear();
        char buf[4096];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) config.append(buf, n);
        std::fclose(f);
    }
    uint64_t seed = 1;
    const char *tok_path = nullptr;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--seed")) seed = std::strtoull(argv[i + 1], nullptr, 10);
        else if (!std::strcmp(argv[i], "--tokenizer")) tok_path = argv[i + 1];
    }
    rmkv_tokenizer *tok = nullptr;
    if (tok_path && rmkv_tokenizer_load(tok_path, &tok) != RMKV_OK) return report(tok_path);
    rmkv_model *m = nullptr;
    rmkv_status st = rmkv_model_create(config.c_str(), tok, seed, nullptr, &m);
    rmkv_tokenizer_free(tok);
    if (st != RMKV_OK) return report("create");
    if (rmkv_model_save(m, argv[2]) != RMKV_OK) {
        rmkv_model_free(m);
        return report(argv[2]);
    }
    std::printf("%s: %zu parameters, model_id %s\n", argv[2], rmkv_model_n_params(m), rmkv_model_id(m));
    rmkv_model_free(m);
    return 0;
}

int cmd_info(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: rmkv info MODEL.safetensors\n");
        return 2;
    }
    rmkv_model *m = nullptr;
    if (rmkv_model_load(argv[1], nullptr, &m) != RMKV_OK) return report(argv[1]);
    size_t need = 0;
    rmkv_model_config_json(m, nullptr, 0, &need);
    std::string cfg(need, '\0');
    rmkv_model_config_json(m, cfg.data(), need, &need);
    std::printf("model:      %s\nparameters: %zu\nmodel_id:   %s\nconfig:     %s\ntokenizer:  %s\n", argv[1],
                rmkv_model_n_params(m), rmkv_model_id(m), cfg.c_str(),
                rmkv_model_tokenizer(m) ? "embedded" : "none");
    rmkv_model_free(m);
    return 0;
}

int cmd_convert(int argc, char **argv) {
    if (argc < 5 || std::strcmp(argv[3], "--dtype") != 0) {
        std::fprintf(stderr, "usage: rmkv convert IN.safetensors OUT.safetensors --dtype f32|bf16|f16\n");
        return 2;
    }
    rmkv_dtype dt;
    if (!std::strcmp(argv[4], "f32")) dt = RMKV_DTYPE_F32;
    else if (!std::strcmp(argv[4], "bf16")) dt = RMKV_DTYPE_BF16;
    else if (!std::strcmp(argv[4], "f16")) dt = RMKV_DTYPE_F16;
    else {
        std::fprintf(stderr, "rmkv convert: --dtype must be f32, bf16 or f16, not '%s'\n", argv[4]);
        return 2;
    }
    rmkv_model *m = nullptr;
    if (rmkv_model_load(argv[1], nullptr, &m) != RMKV_OK) return report(argv[1]);
    rmkv_status st = rmkv_model_save_as(m, argv[2], dt);
    rmkv_model_free(m);
    if (st != RMKV_OK) return report(argv[2]);
    return 0;
}
