#!/usr/bin/env bash
# 50-trainer: a tiny LLaMA initialised from scratch with the demo tokenizer,
# then fine-tuned for a few steps on the demo token stream (seconds on a
# laptop). Writes $OUT/base (init), $OUT/tuned (final model + checkpoints),
# $OUT/metrics.jsonl and $OUT/loss.png.
set -euo pipefail
BIN=${BIN:-bin}
OUT=${OUT:-out/demo}
if [ ! -s "$OUT/tokenizer.model" ] || [ ! -s "$OUT/tokens.bin" ]; then
  echo "50-trainer: skipped: $OUT/tokenizer.model and $OUT/tokens.bin come from 40-tokenize" >&2
  exit 0
fi
"$BIN/trainer" init --preset tiny --tokenizer "$OUT/tokenizer.model" --out "$OUT/base" --seed 1
rm -rf "$OUT/tuned"
"$BIN/trainer" --model "$OUT/base" --data "$OUT/tokens.bin" --out "$OUT/tuned" \
  --max-steps 12 --batch-size 16 --micro-batch 4 --seq-len 256 --lr 1e-3 --warmup-steps 2 \
  --save-every 6 --save-limit 1 --metrics "$OUT/metrics.jsonl" --seed 1
"$BIN/trainer" plot --metrics "$OUT/metrics.jsonl" -o "$OUT/loss.png"
# the loss went down: first vs last step of the metrics
awk -F'"loss":' 'NR==1{split($2,a,",");f=a[1]} {split($2,a,",");l=a[1]} END{printf "50-trainer: loss %.3f -> %.3f over %d steps; model in '"$OUT"'/tuned, curve in '"$OUT"'/loss.png\n", f, l, NR; if (l >= f) exit 1}' "$OUT/metrics.jsonl" >&2
