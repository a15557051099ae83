#!/usr/bin/env bash
# demo stage 20: ROUGE-L dedup of the generated instructions (or, before
# seedgen exists, of the built-in sample) against the seed tasks.
# Env: BIN (binaries), OUT (demo output dir). Writes $OUT/filtered.jsonl.
set -euo pipefail
BIN=${BIN:-bin}
OUT=${OUT:-out/demo}
mkdir -p "$OUT"
in=$OUT/generated.jsonl
seeds=testdata/rougefilter/seeds.jsonl
[ -s "$in" ] || in=testdata/rougefilter/sample.jsonl
# the seed tasks seedgen used, when it left them in $OUT
[ -s "$OUT/seeds.jsonl" ] && seeds=$OUT/seeds.jsonl
"$BIN/rougefilter" --against "$seeds" --threshold 0.7 --annotate --top-k 3 \
  --rejected "$OUT/rejected.jsonl" --stats "$in" > "$OUT/filtered.jsonl"
echo "rougefilter: $(wc -l < "$OUT/filtered.jsonl") kept in $OUT/filtered.jsonl, $(wc -l < "$OUT/rejected.jsonl") near-duplicates in $OUT/rejected.jsonl" >&2
# the metric itself: each dropped record vs the pool text that knocked it out
"$BIN/rougefilter" score --fields instruction,rouge_best --stats "$OUT/rejected.jsonl" > "$OUT/rejected_scores.jsonl"
