// Subcommands of the `rmkv` command-line tool. Each takes the arguments after its
// name (argv[0] is the subcommand name) and returns the process exit code.
#pragma once

#include <string>

#include "rmkv.h"

// "auto", "fp32" or "bf16" as an rmkv_precision; false for anything else.
inline bool parse_precision(const std::string &name, rmkv_precision *out) {
    if (name == "auto") *out = RMKV_PRECISION_AUTO;
    else if (name == "fp32") *out = RMKV_PRECISION_FP32;
    else if (name == "bf16") *out = RMKV_PRECISION_BF16;
    else return false;
    return true;
}

int cmd_tokenizer(int argc, char **argv);  // cmd_tokenizer.cpp
int cmd_create(int argc, char **argv);     // cmd_model.cpp
int cmd_info(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_train(int argc, char **argv);     // cmd_train.cpp
int cmd_state_tune(int argc, char **argv);
int cmd_generate(int argc, char **argv);  // cmd_generate.cpp
