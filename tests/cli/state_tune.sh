#!/usr/bin/env bash
# rmkv state-tune end to end on an untrained model: JSONL prompt/response data
# (prompts masked, cut-offs, shuffled walk) trains a starting state; the model file
# stays byte for byte unchanged, the state file is small and rmkv generate loads it.
# (That the tuned state really learns is shown on a pretrained model by
# tests/unit/test_state_tune.c: an untrained model barely reads its memory.)
# Usage: state_tune.sh RMKV_BINARY WORKDIR
set -euo pipefail
RMKV=$1
W=$2
rm -rf "$W" && mkdir -p "$W"
cat /usr/share/common-licenses/GPL-3 > "$W/corpus.txt"
"$RMKV" tokenizer train -o "$W/tokenizer.json" --vocab-size 400 --quiet "$W/corpus.txt"
"$RMKV" create '{"d_model": 32, "n_layers": 2, "n_heads": 2, "memory_slots": 4, "segment_len": 16, "cell": "gru"}' \
  "$W/model.safetensors" --tokenizer "$W/tokenizer.json" --seed 2
for i in $(seq 1 40); do
  echo "{\"input\": \"question number $i about the weather\", \"output\": \"I am the keeper of the lighthouse.\"}"
done > "$W/persona.jsonl"
sha_before=$(sha256sum "$W/model.safetensors" | cut -d' ' -f1)
cat > "$W/tune.json" <<JSON
{"data": {"sources": [{"path": "$W/persona.jsonl"}], "batch_size": 8, "validation_count": 4,
          "max_prompt_tokens": 12, "max_completion_tokens": 16, "walk": "shuffled"},
 "segments": 2, "optim": {"learning_rate": 3e-2, "precision": "fp32"},
 "max_epochs": 30, "eval_every": 0, "log_every": 5, "checkpoint_every": 20, "seed": 1, "out": "$W/out"}
JSON
"$RMKV" state-tune --model "$W/model.safetensors" --config "$W/tune.json" --quiet
sha_after=$(sha256sum "$W/model.safetensors" | cut -d' ' -f1)
[ "$sha_before" = "$sha_after" ] || { echo "FAIL: state-tune changed the model file"; exit 1; }
size=$(stat -c %s "$W/out/state.rmkvs")
echo "state file: $size bytes"
[ "$size" -lt 16384 ] || { echo "FAIL: state file of $size bytes"; exit 1; }
grep -q '"val_loss"' "$W/out/metrics.jsonl" || { echo "FAIL: no validation in metrics.jsonl"; exit 1; }
"$RMKV" generate "$W/model.safetensors" --state "$W/out/state.rmkvs" --prompt "user: hello" --max-tokens 8 \
  --temperature 0 > "$W/gen.txt"
echo "generated with the state: $(cat "$W/gen.txt")"
"$RMKV" generate "$W/model.safetensors" --prompt "user: hello" --max-tokens 4 --temperature 0 --precision fp32 \
  --threads 1 > "$W/gen32.txt"
grep -q '^user: hello' "$W/gen32.txt" || { echo "FAIL: generate --precision fp32 printed no continuation"; exit 1; }
rc=0; "$RMKV" generate "$W/model.safetensors" --precision half 2> "$W/err.txt" || rc=$?
[ $rc -eq 2 ] && grep -q "not auto, fp32 or bf16" "$W/err.txt" || { echo "FAIL: --precision half: exit $rc"; exit 1; }
echo "PASS"
