#!/usr/bin/env bash
# 60-weightdiff: the diff between $OUT/base and $OUT/tuned (from 50-trainer) in
# both modes, recovered from base + diff and verified against the manifest.
# Without the trainer's models it generates two tiny LLaMA-shaped ones.
set -euo pipefail
BIN=${BIN:-bin}
OUT=${OUT:-out/demo}
base=$OUT/base
tuned=$OUT/tuned
if [ ! -d "$base" ] || [ ! -d "$tuned" ]; then
  echo "60-weightdiff: no $base and $tuned from 50-trainer; generating tiny LLaMA-shaped models" >&2
  go build -o "$OUT/.genmodel" ./scripts/bench/genmodel
  "$OUT/.genmodel" -out "$OUT/wd-base" -dim 64 -layers 2 -vocab 1000
  "$OUT/.genmodel" -out "$OUT/wd-tuned" -dim 64 -layers 2 -vocab 1000 -pad -tweak 1e-3
  rm -f "$OUT/.genmodel"
  base=$OUT/wd-base
  tuned=$OUT/wd-tuned
fi
"$BIN/weightdiff" make --raw "$base" --tuned "$tuned" --out "$OUT/diff" --force
"$BIN/weightdiff" recover --raw "$base" --diff "$OUT/diff" --out "$OUT/recovered" --force
"$BIN/weightdiff" verify --model "$OUT/recovered" --diff "$OUT/diff"
"$BIN/weightdiff" make --raw "$base" --tuned "$tuned" --out "$OUT/diff-xor" --mode xor --force
"$BIN/weightdiff" recover --raw "$base" --diff "$OUT/diff-xor" --out "$OUT/recovered-xor" --force
"$BIN/weightdiff" verify --model "$OUT/recovered-xor" --diff "$OUT/diff-xor"
# the tuned model itself passes too: xor recovery is bit-exact
"$BIN/weightdiff" verify --model "$tuned" --diff "$OUT/diff-xor"
echo "60-weightdiff: diff $(du -sh "$OUT/diff" | cut -f1), xor diff $(du -sh "$OUT/diff-xor" | cut -f1), recovered in $OUT/recovered" >&2
