#!/usr/bin/env bash
# 30-promptfmt: instruction records -> the exact Alpaca training text.
# Run by scripts/demo.sh with BIN (binaries) and OUT (out/demo) set.
# Reads $OUT/filtered.jsonl (from 20-rougefilter), or the built-in sample when
# it is absent; writes $OUT/prompts.jsonl and checks the round trip
# promptfmt | promptfmt --extract.
set -euo pipefail
pf_in=$OUT/filtered.jsonl
if [ ! -s "$pf_in" ]; then
  echo "30-promptfmt: $pf_in absent; using pkg/promptfmt/testdata/sample.jsonl" >&2
  pf_in=pkg/promptfmt/testdata/sample.jsonl
fi
"$BIN/promptfmt" "$pf_in" -o "$OUT/prompts.jsonl"
"$BIN/promptfmt" --quiet --extract "$OUT/prompts.jsonl" -o "$OUT/prompts.extracted.jsonl"
pf_n=$(wc -l < "$OUT/prompts.jsonl")
pf_m=$(wc -l < "$OUT/prompts.extracted.jsonl")
if [ "$pf_n" != "$pf_m" ]; then
  echo "30-promptfmt: round trip gave $pf_m records for $pf_n" >&2
  exit 1
fi
echo "30-promptfmt: $pf_n prompts in $OUT/prompts.jsonl (round trip through --extract: $pf_m records); the first one:" >&2
head -n 1 "$OUT/prompts.jsonl" | cut -c 1-400 >&2
"$BIN/promptfmt" --quiet --infer --template vicuna "$pf_in" | head -n 1 | cut -c 1-300 >&2
