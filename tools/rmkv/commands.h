// Subcommands of the `rmkv` command-line tool. Each takes the arguments after its
// name (argv[0] is the subcommand name) and returns the process exit code.
#pragma once

int cmd_tokenizer(int argc, char **argv);  // cmd_tokenizer.cpp
int cmd_create(int argc, char **argv);     // cmd_model.cpp
int cmd_info(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_train(int argc, char **argv);     // cmd_train.cpp
int cmd_state_tune(int argc, char **argv);
int cmd_generate(int argc, char **argv);  // cmd_generate.cpp
