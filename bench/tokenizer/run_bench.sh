#!/usr/bin/env bash
# Tokenizer benchmark, rmkv and Hugging Face tokenizers side by side in one run:
# training time and peak memory on a ~100 MB English corpus built from Debian
# packages' text (make_corpus.py), and encoding throughput with 1 and 2 threads.
#
#   bench/tokenizer/run_bench.sh BUILD_DIR [WORK_DIR=/tmp/rmkv-tokenizer-bench]
#
# Needs: the target rmkv-bench-tokenizer built in BUILD_DIR, node, python3, and
# `npm ci` run in tests/tokenizer/hf. Training uses Hugging Face's default
# BpeTrainer on both sides (vocabulary 30000, no special tokens, only the bytes
# seen) so that the merges can be compared; rmkv's own defaults are timed too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: run_bench.sh BUILD_DIR [WORK_DIR]}" && pwd)
work=${2:-/tmp/rmkv-tokenizer-bench}
mkdir -p "$work"
bench=$(find "$build" -type f -name rmkv-bench-tokenizer -perm -u+x | head -1)
[ -n "$bench" ] || { echo "rmkv-bench-tokenizer not found under $build" >&2; exit 1; }
hf="node $root/tests/tokenizer/hf/hf_tool.js"
field() { python3 -c "import json,sys; print(round(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'], 2))"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
python3 "$here/make_corpus.py" "$work/corpus.txt" 100
head -c 20000000 "$work/corpus.txt" > "$work/encode.txt"

echo "== training (30000 ids) =="
hf_train=$($hf train "$work/hf.json" "$work/corpus.txt" 2>/dev/null | tail -1)
rm_train=$("$bench" train "$work/corpus.txt" "$work/rmkv.json" --hf-defaults)
rm_train_def=$("$bench" train "$work/corpus.txt" "$work/rmkv_defaults.json")
same=$($hf compare-models "$work/hf.json" "$work/rmkv.json" || true)

echo "== encoding (20 MB, documents of 100 lines, HF-trained tokenizer.json) =="
hf_e1=$(RAYON_NUM_THREADS=1 $hf bench-encode "$work/hf.json" "$work/encode.txt")
hf_e2=$(RAYON_NUM_THREADS=2 $hf bench-encode "$work/hf.json" "$work/encode.txt")
rm_e1=$("$bench" encode "$work/hf.json" "$work/encode.txt" 1)
rm_e2=$("$bench" encode "$work/hf.json" "$work/encode.txt" 2)

cat <<TABLE

| | Hugging Face tokenizers (node) | rmkv |
|---|---|---|
| train 100 MB -> 30000 ids, HF default trainer settings | $(echo "$hf_train" | field train_seconds) s, peak RSS $(( $(echo "$hf_train" | field peak_rss_kb | cut -d. -f1) / 1024 )) MiB | $(echo "$rm_train" | field train_seconds) s, peak RSS $(( $(echo "$rm_train" | field peak_rss_kb | cut -d. -f1) / 1024 )) MiB |
| train, rmkv defaults (6 special tokens, 256 byte tokens) | | $(echo "$rm_train_def" | field train_seconds) s, peak RSS $(( $(echo "$rm_train_def" | field peak_rss_kb | cut -d. -f1) / 1024 )) MiB |
| merges | $same | |
| encode, 1 thread | $(echo "$hf_e1" | field mb_per_s) MB/s | $(echo "$rm_e1" | field mb_per_s) MB/s |
| encode, 2 threads | $(echo "$hf_e2" | field mb_per_s) MB/s | $(echo "$rm_e2" | field mb_per_s) MB/s |
| tokens of the 20 MB | $(echo "$hf_e1" | field tokens) | $(echo "$rm_e1" | field tokens) |

(peak RSS of the whole process; node's own runtime accounts for about 40 MiB of HF's)
TABLE
