#!/usr/bin/env bash
# train.sh RUN MODEL TRAINER_FLAGS...: the training stage of `make alpaca`.
# A fresh run trains MODEL on RUN/train.bin into RUN/tuned with metrics in
# RUN/metrics.jsonl. When RUN/tuned holds a checkpoint (an earlier run was
# interrupted), it resumes from the newest one instead (the trainer drops
# the metrics lines written after that checkpoint).
set -euo pipefail
BIN=${BIN:-bin}
run=$1 model=$2
shift 2
newest=$(ls -d "$run"/tuned/checkpoint-* 2>/dev/null | sed 's/.*checkpoint-//' | sort -n | tail -n 1 || true)
if [ -n "$newest" ]; then
  echo "    resuming from $run/tuned/checkpoint-$newest" >&2
  exec "$BIN/trainer" --resume "$run/tuned" --data "$run/train.bin" --metrics "$run/metrics.jsonl" "$@"
fi
rm -rf "$run/tuned" "$run/metrics.jsonl"
exec "$BIN/trainer" --model "$model" --data "$run/train.bin" --out "$run/tuned" --metrics "$run/metrics.jsonl" "$@"
