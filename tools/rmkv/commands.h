// Subcommands of the `rmkv` command-line tool. Each takes the arguments after its
// name (argv[0] is the subcommand name) and returns the process exit code.
#pragma once

int cmd_tokenizer(int argc, char **argv);
