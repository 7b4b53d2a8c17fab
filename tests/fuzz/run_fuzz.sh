#!/usr/bin/env bash
# Builds the reader fuzz targets with clang (tests/fuzz/CMakeLists.txt, a project
# of its own: the library compiled again with ASan + UBSan + fuzzer coverage),
# writes the seed corpora (fuzz_seeds, real files made through the ABI) and runs
# each target for a bounded time. Exits non-zero on the first crash, leak,
# sanitizer report, timeout or failed check.
#   tests/fuzz/run_fuzz.sh [SECONDS_EACH=60] [WORK_DIR=/tmp/rmkv-fuzz] [TARGET...]
#   RUNS=N instead of a time: -runs=N executions per target (the long run of RELIABILITY.md).
# RMKV_FUZZ_SEED (default 1) fixes libFuzzer's seed. regressions/<target>/ holds
# every input that once failed; they run first, every time.
# Needs the Debian packages clang and libclang-rt-dev, plus the library's build
# dependencies.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-60}
work=${2:-/tmp/rmkv-fuzz}
shift $(( $# > 2 ? 2 : $# ))
targets=${*:-fuzz_model_file fuzz_state_file fuzz_checkpoint fuzz_config fuzz_data_file}
mkdir -p "$work"
echo "== build (clang, ASan + UBSan + libFuzzer)"
cmake -S "$here" -B "$work/build" -DCMAKE_C_COMPILER="${CC_FUZZ:-clang}" -DCMAKE_CXX_COMPILER="${CXX_FUZZ:-clang++}" \
      -DCMAKE_BUILD_TYPE=None -DCMAKE_C_FLAGS="-O1 -g" -DCMAKE_CXX_FLAGS="-O1 -g" >/dev/null
cmake --build "$work/build" -j"${JOBS:-$(nproc)}" >/dev/null
rm -rf "$work/seeds"
"$work/build/fuzz_seeds" "$work/seeds"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
export OMP_NUM_THREADS=1
for name in $targets; do
  mkdir -p "$work/corpus/$name"
  dirs=("$work/corpus/$name" "$work/seeds/$name")
  [ -d "$here/regressions/$name" ] && dirs+=("$here/regressions/$name")
  if [ -n "${RUNS:-}" ]; then limit=(-runs="$RUNS"); echo "== $name: $RUNS executions"
  else limit=(-max_total_time="$seconds"); echo "== $name: ${seconds}s"; fi
  rm -rf "$work/artifacts/$name" && mkdir -p "$work/artifacts/$name"
  if ! "$work/build/$name" "${limit[@]}" -seed="${RMKV_FUZZ_SEED:-1}" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$work/artifacts/$name/" -print_final_stats=1 "${dirs[@]}" > "$work/$name.log" 2>&1; then
    tail -60 "$work/$name.log"
    echo "$name: failure; the input is in $work/artifacts/$name"
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|INFO: seed corpus)' "$work/$name.log" || true
done
echo "reader fuzzing: no failure"
