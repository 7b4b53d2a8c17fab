// rmkv: the command-line tool. Every subcommand goes through the public C ABI.
#include <cstdio>
#include <cstring>

#include "commands.h"
#include "rmkv.h"

namespace {

void print_log(rmkv_log_level level, const char *line, void *) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    std::fprintf(stderr, "rmkv %s: %s\n", names[level & 3], line);
}

int usage() {
    std::fprintf(stderr,
                 "usage: rmkv <command> [args]\n"
                 "commands:\n"
                 "  create CONFIG_JSON OUT.safetensors [--seed N] [--tokenizer tokenizer.json]\n"
                 "                               a randomly initialised model\n"
                 "  info MODEL.safetensors       configuration, size and fingerprint\n"
                 "  convert IN OUT --dtype f32|bf16|f16\n"
                 "                               rewrite a model file with other weight types\n"
#if RMKV_TOOL_HAS_TOKENIZER
                 "  tokenizer train|encode|decode|info ...\n"
#endif
                 "  train --config train.json [--out DIR] [--resume] ...   (rmkv train --help)\n"
                 "  state-tune --model MODEL --config tune.json [--out DIR] ...\n"
                 "                               train a starting state (rmkv state-tune --help)\n"
                 "  generate MODEL [--prompt TEXT] [--max-tokens N] [--temperature T] ...\n"
                 "  version\n");
    return 2;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2) return usage();
    rmkv_set_log_callback(print_log, nullptr, RMKV_LOG_WARN);
    const char *cmd = argv[1];
    if (!std::strcmp(cmd, "version")) {
        std::printf("rmkv %s\n", rmkv_version());
        return 0;
    }
    if (!std::strcmp(cmd, "create")) return cmd_create(argc - 1, argv + 1);
    if (!std::strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    if (!std::strcmp(cmd, "convert")) return cmd_convert(argc - 1, argv + 1);
    if (!std::strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
    if (!std::strcmp(cmd, "state-tune")) return cmd_state_tune(argc - 1, argv + 1);
    if (!std::strcmp(cmd, "generate")) return cmd_generate(argc - 1, argv + 1);
#if RMKV_TOOL_HAS_TOKENIZER
    if (!std::strcmp(cmd, "tokenizer")) return cmd_tokenizer(argc - 1, argv + 1);
#endif
    return usage();
}
