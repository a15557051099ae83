#!/usr/bin/env bash
# 70-generate: talk to the tuned model. Asks the model recovered by
# 60-weightdiff (or $OUT/tuned from 50-trainer) a few instructions that are
# not in its training data, greedily, in batch mode; then asks one through the
# OpenAI-compatible server and exports the model to GGUF (f16) for llama.cpp.
# The demo model is tiny and trained for a few steps: expect Alpaca-shaped
# babble, not answers.
set -euo pipefail
BIN=${BIN:-bin}
OUT=${OUT:-out/demo}
model=$OUT/recovered
[ -f "$model/tokenizer.model" ] || model=$OUT/tuned
if [ ! -f "$model/config.json" ] || [ ! -f "$model/tokenizer.model" ]; then
  echo "70-generate: skipped: no tuned model with a tokenizer from 50-trainer/60-weightdiff" >&2
  exit 0
fi
cat > "$OUT/heldout.jsonl" <<'JSONL'
{"id": "h1", "instruction": "Give three tips for keeping a houseplant alive."}
{"id": "h2", "instruction": "Translate the sentence into French.", "input": "The cat is sleeping on the sofa."}
{"id": "h3", "instruction": "Write a haiku about autumn rain."}
JSONL
# held out: none of them is in the training prompts
if [ -s "$OUT/prompts.jsonl" ]; then
  for q in "houseplant alive" "cat is sleeping on the sofa" "haiku about autumn rain"; do
    if grep -qF "$q" "$OUT/prompts.jsonl"; then
      echo "70-generate: '$q' is in the training data; pick another held-out instruction" >&2
      exit 1
    fi
  done
fi
"$BIN/generate" --model "$model" --max-new-tokens 48 --repetition-penalty 1.1 --quiet "$OUT/heldout.jsonl" -o "$OUT/answers.jsonl"
n=$(wc -l < "$OUT/answers.jsonl")
[ "$n" = 3 ] || { echo "70-generate: $n answers for 3 instructions" >&2; exit 1; }
while IFS= read -r line; do
  printf '%s\n' "$line" | sed -e 's/.*"instruction": *"\([^"]*\)".*"completion":"\(.*\)","finish_reason".*/  Q: \1\n  A: \2/' >&2
done < "$OUT/answers.jsonl"
# the same model behind the OpenAI API, one chat request
port_file=$OUT/.serve.addr
rm -f "$port_file"
"$BIN/generate" serve --model "$model" --addr 127.0.0.1:0 --addr-file "$port_file" --quiet &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  [ -s "$port_file" ] && break
  sleep 0.1
done
addr=$(cat "$port_file" 2>/dev/null || true)
if [ -n "$addr" ] && command -v curl >/dev/null; then
  curl -s "http://$addr/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"messages":[{"role":"user","content":"Name three primary colors."}],"max_tokens":24,"temperature":0}' > "$OUT/serve-answer.json"
  grep -q '"finish_reason"' "$OUT/serve-answer.json" || { echo "70-generate: bad server answer: $(cat "$OUT/serve-answer.json")" >&2; exit 1; }
  echo "70-generate: server answered: $(cut -c1-160 "$OUT/serve-answer.json")" >&2
else
  echo "70-generate: server check skipped (no address or no curl)" >&2
fi
kill $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
trap - EXIT
rm -f "$port_file"
"$BIN/trainer" export --format gguf --type f16 --model "$model" -o "$OUT/tuned.gguf" --quiet
echo "70-generate: answers in $OUT/answers.jsonl, GGUF in $OUT/tuned.gguf ($(du -h "$OUT/tuned.gguf" | cut -f1))" >&2
