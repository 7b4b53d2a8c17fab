#!/usr/bin/env bash
# The long fuzz run of RELIABILITY.md, in chunks whose counts add up across runs
# (and sessions): each chunk runs one target for CHUNK executions with a libFuzzer
# seed of its own, through tests/fuzz/run_fuzz.sh (reader targets) or
# tests/tokenizer/fuzz/run_fuzz.sh (tokenizer targets), and appends a line to
# WORK/ledger.tsv: date, commit, target, seed, executions, verdict. The corpora
# in WORK grow from chunk to chunk. Stops at the first failure (its input is kept
# in WORK, see the chunk's log). At the end, and with --totals, prints the total
# executions and failures per target.
#   tests/fuzz/long_run.sh [CHUNK=1000000] [WORK=/work/rmkv-fuzz-long] [TARGET...]
#   tests/fuzz/long_run.sh --totals [WORK...]   (several WORKs: their ledgers summed)
# Two loops on two cores use two WORK directories (each has its own build, corpora
# and ledger) and SEED_BASE values far apart (default 1000; chunk n of a target
# gets seed SEED_BASE + n), so that they never repeat each other's runs.
# Targets: fuzz_model_file fuzz_state_file fuzz_checkpoint fuzz_config
# fuzz_data_file fuzz_tokenizer_json fuzz_tokenizer_encode (default: all, each
# one chunk). Run it under `nice` to leave the machine to other work.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
all="fuzz_model_file fuzz_state_file fuzz_checkpoint fuzz_config fuzz_data_file fuzz_tokenizer_json fuzz_tokenizer_encode"

totals() {
  local ledgers=() d
  for d in "$@"; do
    if [ -f "$d/ledger.tsv" ]; then ledgers+=("$d/ledger.tsv"); else echo "no ledger at $d/ledger.tsv"; fi
  done
  [ ${#ledgers[@]} -gt 0 ] || return 0
  printf "%-24s %14s %7s %9s\n" target executions chunks failures
  awk -F'\t' '{ runs[$3] += $5; chunks[$3]++; if ($6 != "ok") bad[$3]++ }
    END { for (t in runs) printf "%-24s %14d %7d %9d\n", t, runs[t], chunks[t], bad[t] }' "${ledgers[@]}" | sort
}

if [ "${1:-}" = "--totals" ]; then shift; [ $# -gt 0 ] || set -- /work/rmkv-fuzz-long; totals "$@"; exit 0; fi
chunk=${1:-1000000}
work=${2:-/work/rmkv-fuzz-long}
shift $(( $# > 2 ? 2 : $# ))
targets=${*:-$all}
mkdir -p "$work" && touch "$work/ledger.tsv"
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
for t in $targets; do
  n=$(awk -F'\t' -v t="$t" '$3 == t' "$work/ledger.tsv" | wc -l)
  seed=$((${SEED_BASE:-1000} + n))
  log="$work/$t-$seed.log"
  echo "== $t: chunk of $chunk executions, seed $seed (log $log)"
  case $t in
    fuzz_tokenizer_*) cmd=("$root/tests/tokenizer/fuzz/run_fuzz.sh" 0 "$work/tokenizer" "$t") ;;
    *) cmd=("$here/run_fuzz.sh" 0 "$work/readers" "$t") ;;
  esac
  verdict=ok rc=0
  RUNS=$chunk RMKV_FUZZ_SEED=$seed JOBS=${JOBS:-1} "${cmd[@]}" > "$log" 2>&1 || rc=$?
  # Stopped from outside (a signal: the machine going away, a user's kill) is no finding.
  if [ $rc -ge 128 ] || grep -q 'libFuzzer: run interrupted' "$log" "$work/readers/$t.log" 2>/dev/null; then
    echo "   interrupted (exit $rc): not recorded"; exit $rc
  fi
  # Neither is a build (or setup) that failed before the fuzzer started: nothing ran.
  if [ $rc -ne 0 ] && ! grep -q "^== $t: [0-9]" "$log"; then
    echo "   failed before the fuzzer ran (exit $rc, build or setup; see $log): not recorded"; exit $rc
  fi
  [ $rc -eq 0 ] || verdict=FAIL
  # The reader script keeps the fuzzer's own output in its work dir.
  out=$log; [ -f "$work/readers/$t.log" ] && [[ $t != fuzz_tokenizer_* ]] && out="$work/readers/$t.log"
  done_runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out" | tail -1 | grep -o '[0-9]*$' || echo 0)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$commit" "$t" "$seed" "${done_runs:-0}" "$verdict" >> "$work/ledger.tsv"
  echo "   $verdict, ${done_runs:-0} executions"
  if [ "$verdict" != ok ]; then tail -40 "$log"; totals "$work"; exit 1; fi
done
totals "$work"
