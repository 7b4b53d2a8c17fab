#!/usr/bin/env bash
# A training run killed with SIGKILL many times at random moments (delays drawn
# from a fixed seed; a checkpoint is written after every step, so many kills land
# inside a checkpoint write) always resumes from an intact checkpoint, and ends
# with bitwise the same weights (model_id) as an uninterrupted run.
#   train_kill_random.sh RMKV_BINARY WORKDIR [KILLS=12] [SEED=1]
# After every kill: checkpoint-latest.ckpt (when there is one) loads (`rmkv info`)
# and no temporary file is left. A kill counts as inside a write when the process
# had a temporary file open in the run's directory just before it (/proc/PID/fd).
set -euo pipefail
RMKV=$1
W=$2
KILLS=${3:-12}
RANDOM=${4:-1}
rm -rf "$W" && mkdir -p "$W"
cat /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0 > "$W/corpus.txt"
"$RMKV" tokenizer train -o "$W/tokenizer.json" --vocab-size 400 --quiet "$W/corpus.txt"
config() {  # $1 = out dir
  cat <<JSON
{"tokenizer": "$W/tokenizer.json",
 "model": {"d_model": 32, "n_layers": 2, "n_heads": 2, "memory_slots": 4, "segment_len": 16, "cell": "gru"},
 "segments": 2,
 "data": {"sources": [{"path": "$W/corpus.txt", "kind": "text", "separator": "\n\n"}],
          "batch_size": 2, "seed": 7},
 "optim": {"learning_rate": 3e-3, "warmup_steps": 3, "precision": "fp32"},
 "max_steps": 60, "checkpoint_every": 1, "eval_every": 0, "log_every": 10, "seed": 9, "out": "$1"}
JSON
}
config "$W/a" > "$W/a.json"
config "$W/b" > "$W/b.json"
"$RMKV" train --config "$W/a.json" --quiet

kills=0 inside_write=0 fresh_starts=0
start() {
  if [ -f "$W/b/checkpoint-latest.ckpt" ]; then
    "$RMKV" train --config "$W/b.json" --quiet --resume & pid=$!
  else
    fresh_starts=$((fresh_starts + 1))
    "$RMKV" train --config "$W/b.json" --quiet & pid=$!
  fi
}
start
stamp() { stat -c %y "$W/b/checkpoint-latest.ckpt" 2>/dev/null || echo none; }
while [ $kills -lt "$KILLS" ] && kill -0 $pid 2>/dev/null; do
  # Every other kill waits until the run has written a new checkpoint (so that
  # kills land while training and checkpointing, not only while starting up);
  # then a random delay of 0 to 0.2 s.
  if [ $((kills % 2)) -eq 1 ]; then
    before=$(stamp)
    for _ in $(seq 3000); do
      [ "$(stamp)" != "$before" ] && break
      kill -0 $pid 2>/dev/null || break
      sleep 0.01
    done
  fi
  sleep "0.$(printf '%03d' $((RANDOM % 200)))"
  open=$( (ls -l /proc/$pid/fd 2>/dev/null || true) | grep -cE -- "-> $W/b/.*(\(deleted\)|\.tmp-)" || true)
  if kill -9 $pid 2>/dev/null; then
    wait $pid 2>/dev/null || true
    kills=$((kills + 1))
    [ "$open" -gt 0 ] && inside_write=$((inside_write + 1))
    tmps=$(find "$W/b" -name '*.tmp-*' 2>/dev/null | wc -l)
    [ "$tmps" -eq 0 ] || { echo "kill $kills: $tmps temporary file(s) left in $W/b"; exit 1; }
    if [ -f "$W/b/checkpoint-latest.ckpt" ]; then
      "$RMKV" info "$W/b/checkpoint-latest.ckpt" > /dev/null || { echo "kill $kills: checkpoint-latest.ckpt is damaged"; exit 1; }
    fi
    start
  fi
done
wait $pid
[ -f "$W/b/model.safetensors" ] || "$RMKV" train --config "$W/b.json" --quiet --resume
a=$("$RMKV" info "$W/a/model.safetensors" | awk '/model_id/ {print $2}')
b=$("$RMKV" info "$W/b/model.safetensors" | awk '/model_id/ {print $2}')
echo "killed $kills times ($inside_write inside a checkpoint write, $fresh_starts starts before any checkpoint)"
echo "uninterrupted $a; killed and resumed $b"
if [ "$a" = "$b" ] && [ -n "$a" ] && [ "$kills" -gt 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; exit 1; fi
