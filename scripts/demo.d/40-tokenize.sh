#!/usr/bin/env bash
# 40-tokenize (run by scripts/demo.sh with BIN and OUT set): trains a
# small BPE tokenizer on the prompt/completion text of $OUT/prompts.jsonl
# (from 30-promptfmt; the built-in sample when absent) into
# $OUT/tokenizer.model, tokenizes the records into $OUT/tokens.bin, and shows
# the stream's stats and its first example decoded back to text.
set -euo pipefail
tok_in=$OUT/prompts.jsonl
if [ ! -s "$tok_in" ]; then
  tok_in=pkg/tokenize/testdata/prompts.jsonl
  echo "40-tokenize: $OUT/prompts.jsonl absent, using the sample $tok_in" >&2
fi
"$BIN/tokenize" train --vocab-size 1000 --input "$tok_in" -o "$OUT/tokenizer.model"
"$BIN/tokenize" --model "$OUT/tokenizer.model" --max-len 512 "$tok_in" -o "$OUT/tokens.bin"
"$BIN/tokenize" stats "$OUT/tokens.bin" >&2
"$BIN/tokenize" --decode --model "$OUT/tokenizer.model" "$OUT/tokens.bin" | head -n 1 >&2
if command -v spm_encode >/dev/null; then
  # The reference tokenizer loads our model and agrees with us.
  printf 'Give three tips for staying healthy.\nThe  sea, 2023 — café 中文\n' > "$OUT/tokenize-check.txt"
  if cmp -s <(spm_encode --model "$OUT/tokenizer.model" --output_format=id < "$OUT/tokenize-check.txt") \
            <("$BIN/tokenize" encode --model "$OUT/tokenizer.model" "$OUT/tokenize-check.txt"); then
    echo "40-tokenize: spm_encode gives the same ids with $OUT/tokenizer.model" >&2
  else
    echo "40-tokenize: spm_encode DISAGREES with tokenize" >&2
    exit 1
  fi
fi
