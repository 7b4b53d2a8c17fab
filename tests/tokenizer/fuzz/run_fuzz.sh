#!/usr/bin/env bash
# Builds the tokenizer libFuzzer targets with clang (independently of the main
# build, which may use gcc) and runs each for a bounded time. Exits non-zero on
# the first crash, leak, sanitizer report or failed check.
#   tests/tokenizer/fuzz/run_fuzz.sh [SECONDS_EACH=60] [WORK_DIR=/tmp/rmkv-tokenizer-fuzz] [TARGET...]
#   RUNS=N instead of a time: -runs=N executions per target (tests/fuzz/long_run.sh).
# RMKV_FUZZ_SEED (default 1) fixes libFuzzer's seed, so that a run is repeatable;
# seeds/ holds the starting inputs and every input that once failed (regressions).
# Needs the Debian packages clang and libclang-rt-dev (libFuzzer), plus the
# library's own build dependencies (libutf8proc-dev, nlohmann-json3-dev).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
seconds=${1:-60}
work=${2:-/tmp/rmkv-tokenizer-fuzz}
shift $(( $# > 2 ? 2 : $# ))
targets=${*:-fuzz_tokenizer_json fuzz_tokenizer_encode}
mkdir -p "$work"
cxx=${CXX_FUZZ:-clang++}
sources=$(sed -n 's#^ *\(tokenizer/[a-z_]*\.cpp\)#'"$root"'/src/\1#p' "$root/src/tokenizer/sources.cmake")
for name in $targets; do
  # Built again unless the binary is newer than every source it is made of.
  if [ ! -x "$work/$name" ] || [ -n "$(find "$root/src/tokenizer" "$root/src/core" "$here/$name.cpp" -newer "$work/$name" -print -quit)" ]; then
    echo "== $name: build"
    $cxx -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
      -I"$root/include" -I"$root/src" "$here/$name.cpp" $sources "$root/src/core/error.cpp" "$root/src/core/log.cpp" \
      $(pkg-config --cflags --libs libutf8proc) -lpthread -o "$work/$name"
  fi
  mkdir -p "$work/${name}_corpus"
  if [ -n "${RUNS:-}" ]; then limit=-runs="$RUNS"; echo "== $name: $RUNS executions"
  else limit=-max_total_time="$seconds"; echo "== $name: ${seconds}s"; fi
  (cd "$work" && "./$name" "$limit" -seed="${RMKV_FUZZ_SEED:-1}" -max_len=4096 -timeout=10 -print_final_stats=1 \
      "${name}_corpus" "$here/seeds")
done
echo "tokenizer fuzzing: no failure"
