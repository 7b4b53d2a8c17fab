#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine: install, build, train a byte-level
# BPE tokenizer and a small RMKV model on English text from a Debian package (the
# fortune cookie database, package `fortunes`), then generate a continuation.
# Training stops after 150 s (examples/fortunes/train.json: max_time).
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES="build-essential cmake pkg-config libdnnl-dev nlohmann-json3-dev libutf8proc-dev libcmocka-dev fortunes"
missing=""
for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DRMKV_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target rmkv-cli
RMKV=build/tools/rmkv

mkdir -p run
# The cookie files (the ones without an extension), documents separated by "%" lines.
find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.*' | sort | xargs cat > run/corpus.txt
echo "corpus: $(wc -c < run/corpus.txt) bytes of text from the fortunes package"

$RMKV tokenizer train -o run/tokenizer.json --vocab-size 4096 run/corpus.txt
rm -f run/checkpoint-latest.ckpt run/metrics.jsonl
$RMKV train --config examples/fortunes/train.json
$RMKV generate run/model.safetensors --prompt "A wise man once said" --max-tokens 60 \
      --temperature 0.8 --top-p 0.9 --seed 7
