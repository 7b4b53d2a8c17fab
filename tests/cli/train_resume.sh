#!/usr/bin/env bash
# A training run killed with SIGKILL (at a random moment, possibly inside a
# checkpoint write) and resumed with --resume reaches bitwise the same weights as
# an uninterrupted run: same model_id. Segment lengths are random (segment_len_min). Usage: train_resume.sh RMKV_BINARY WORKDIR
set -euo pipefail
RMKV=$1
W=$2
rm -rf "$W" && mkdir -p "$W"
cat /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0 > "$W/corpus.txt"
"$RMKV" tokenizer train -o "$W/tokenizer.json" --vocab-size 512 --quiet "$W/corpus.txt"
config() {  # $1 = out dir
  cat <<JSON
{"tokenizer": "$W/tokenizer.json",
 "model": {"d_model": 32, "n_layers": 2, "n_heads": 2, "memory_slots": 4, "segment_len": 16, "cell": "lstm"},
 "segments": 3, "segment_len_min": 5,
 "data": {"sources": [{"path": "$W/corpus.txt", "kind": "text", "separator": "\n\n"}],
          "batch_size": 4, "validation_fraction": 0.05, "seed": 3},
 "optim": {"learning_rate": 3e-3, "warmup_steps": 5, "precision": "fp32"},
 "max_steps": 200, "checkpoint_every": 3, "eval_every": 0, "log_every": 5, "seed": 5, "out": "$1"}
JSON
}
config "$W/a" > "$W/a.json"
config "$W/b" > "$W/b.json"
"$RMKV" train --config "$W/a.json" --quiet
# Run b: killed at random moments, resumed each time, until it finishes.
kills=0
"$RMKV" train --config "$W/b.json" --quiet & pid=$!
while kill -0 $pid 2>/dev/null; do
  sleep 0.$((RANDOM % 9 + 1))
  if [ -f "$W/b/checkpoint-latest.ckpt" ] && kill -9 $pid 2>/dev/null; then
    wait $pid 2>/dev/null || true
    kills=$((kills + 1))
    if [ $kills -ge 3 ]; then break; fi
    "$RMKV" train --config "$W/b.json" --quiet --resume & pid=$!
  fi
done
wait $pid 2>/dev/null || true
[ -f "$W/b/model.safetensors" ] && [ "$kills" -lt 3 ] || "$RMKV" train --config "$W/b.json" --quiet --resume
a=$("$RMKV" info "$W/a/model.safetensors" | awk '/model_id/ {print $2}')
b=$("$RMKV" info "$W/b/model.safetensors" | awk '/model_id/ {print $2}')
echo "killed $kills times; uninterrupted $a; resumed $b"
if [ "$a" = "$b" ] && [ -n "$a" ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; exit 1; fi
