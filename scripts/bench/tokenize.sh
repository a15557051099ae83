#!/usr/bin/env bash
# Encode throughput of `tokenize encode` beside spm_encode (the reference) on
# the same corpus in the same run, outputs compared byte for byte, ratio
# printed. Corpus: ../shared/data/alpaca_data.json read as text lines with the
# LLaMA tokenizer; without ../shared, a generated corpus and a tokenizer
# trained on it by `tokenize train`. Also times the whole stage
# (prompt/completion JSONL -> token stream). Best of several runs each.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
[ -x "$BIN/tokenize" ] || { mkdir -p "$BIN"; go build -o "$BIN/" ./cmd/tokenize; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

model=../shared/data/llama-tokenizer.model
corpus=../shared/data/alpaca_data.json
if [ ! -f "$model" ] || [ ! -f "$corpus" ]; then
  echo "note: ../shared data absent: using a generated corpus and a tokenizer trained on it"
  awk 'BEGIN { srand(7); split("the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were her she there one all we their been has when who will more if no out so said what up its about than into them can only other new some could time these two may then do first any my now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three", w, " ");
  n = length(w); for (i = 0; i < 200000; i++) { k = 5 + int(rand()*20); s = ""; for (j = 0; j < k; j++) s = s (j ? " " : "") w[1 + int(rand()*n)]; if (rand() < 0.1) s = s " " int(rand()*10000); print s "." } }' > "$tmp/corpus.txt"
  "$BIN/tokenize" train --quiet --vocab-size 4000 --input "$tmp/corpus.txt" -o "$tmp/tok.model"
  model=$tmp/tok.model
  corpus=$tmp/corpus.txt
fi
bytes=$(wc -c < "$corpus")
lines=$(wc -l < "$corpus")
echo "corpus: $corpus ($lines lines, $bytes bytes); tokenizer: $model; $(nproc) cores"

# best_ms N CMD...: runs CMD N times (stdout to $tmp/out), prints the best wall time in ms.
best_ms() {
  local n=$1; shift
  local best=
  for _ in $(seq "$n"); do
    local s e
    s=$(date +%s%N)
    "$@" > "$tmp/out"
    e=$(date +%s%N)
    local ms=$(( (e - s) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
  done
  echo "$best"
}

ours_ms=$(best_ms 3 "$BIN/tokenize" encode --model "$model" "$corpus")
cp "$tmp/out" "$tmp/ours.ids"
mbps() { awk -v b="$bytes" -v ms="$1" 'BEGIN { printf "%.1f", b / 1e6 / (ms / 1000) }'; }
echo "tokenize encode : ${ours_ms} ms ($(mbps "$ours_ms") MB/s)"

if command -v spm_encode >/dev/null; then
  spm_ms=$(best_ms 2 spm_encode --model "$model" --output_format=id "$corpus")
  echo "spm_encode      : ${spm_ms} ms ($(mbps "$spm_ms") MB/s)"
  if cmp -s "$tmp/out" "$tmp/ours.ids"; then
    echo "output          : identical ($(wc -w < "$tmp/ours.ids") ids)"
  else
    echo "output          : DIFFERENT from spm_encode"
    exit 1
  fi
  awk -v a="$spm_ms" -v b="$ours_ms" 'BEGIN { printf "ratio           : %.1fx spm_encode speed (goal >= 3x)\n", a / b }'
else
  echo "note: spm_encode not installed (apt-get install sentencepiece): no reference timing"
fi

# The stage: prompt/completion records -> token stream.
if [ "$corpus" = ../shared/data/alpaca_data.json ]; then
  # instruction as the prompt, output as the completion (no promptfmt needed).
  sed -e 's/"instruction"/"prompt"/; s/"output"/"completion"/' "$corpus" > "$tmp/prompts.json"
else
  awk '{ gsub(/"/, ""); printf "{\"prompt\":\"Question: %s\\n\\nAnswer:\",\"completion\":\" %s\"}\n", $0, $0 }' "$corpus" > "$tmp/prompts.json"
fi
stage_ms=$(best_ms 3 "$BIN/tokenize" --quiet --model "$model" "$tmp/prompts.json")
echo "tokenize (stage): ${stage_ms} ms for $(wc -c < "$tmp/prompts.json") bytes of records ($("$BIN/tokenize" stats --json "$tmp/out" | sed 's/.*"tokens":\([0-9]*\).*/\1/') tokens)"
