#!/usr/bin/env bash
# trainer-loop: whole training steps of `trainer` (token stream -> packed
# batches -> forward/backward -> clip -> AdamW, metrics) on the tiny and
# small presets with LLaMA's 32000-token vocabulary, beside the same step in
# PyTorch CPU (plain-torch LlamaForCausalLM, same shapes, same threads) in
# the same run. Prints seconds per step, tokens/s, peak RSS and the ratio.
# Env: BIN (binaries), THREADS (default: all cores), STEPS (default 4; the
# first step of each side is not timed), SHAPES (default "tiny 4 128;small 2 128": preset rows seq-len; ...).
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
THREADS=${THREADS:-$(nproc)}
STEPS=${STEPS:-4}
PY=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ ! -x "$BIN/trainer" ]; then
  echo "trainer-loop: $BIN/trainer not built (make build)" >&2
  exit 1
fi
have_torch=0
if "$PY" -c 'import torch' 2>/dev/null; then have_torch=1; fi

printf '%-6s %4s %4s %8s | %10s %10s %8s | %10s %10s %8s | %s\n' config B T threads "ours s/st" "ours tok/s" "RSS MB" "torch s/st" "torch tok/s" "RSS MB" "ours/torch time"
IFS=';' read -ra specs <<<"${SHAPES:-tiny 4 128;small 2 128}"
for spec in "${specs[@]}"; do
  set -- $spec
  name=$1 B=$2 T=$3
  "$BIN/trainer" init --preset "$name" --vocab 32000 --out "$tmp/$name" --quiet || exit 1
  "$PY" scripts/bench/trainer-loop-torch.py --write-stream "$tmp/$name.bin" 32000 $((B * STEPS)) "$T" 2>/dev/null ||
    { echo "trainer-loop: cannot write the token stream (needs $PY)" >&2; exit 1; }
  /usr/bin/time -f '%M' -o "$tmp/rss" "$BIN/trainer" --model "$tmp/$name" --data "$tmp/$name.bin" --out "$tmp/out-$name" \
    --batch-size "$B" --micro-batch "$B" --seq-len "$T" --max-steps "$STEPS" --no-shuffle \
    --metrics "$tmp/$name.jsonl" -j "$THREADS" --quiet || exit 1
  ours=$(awk -F'[:,}]' '{for(i=1;i<NF;i++){if($i=="\"tokens\"")tk=$(i+1); if($i=="\"tokens_per_s\"")r=$(i+1)} if(NR>1){s+=tk/r; n++; t+=tk}} END{printf "%.4f %.0f", s/n, t/s}' "$tmp/$name.jsonl")
  set -- $ours
  os=$1 ot=$2
  orss=$(( $(tail -1 "$tmp/rss") / 1024 ))
  ts="-" tt="-" trss="-" ratio="(no torch)"
  if [ $have_torch = 1 ]; then
    "$PY" -c "import json,sys; c=json.load(open('$tmp/$name/config.json')); json.dump(c, open('$tmp/$name.cfg.json','w'))"
    # Debian's torch calls a threaded OpenBLAS: torch is timed with THREADS
    # intra-op threads x 1 BLAS thread and with 1 x THREADS, and its faster
    # setting is the reference (oversubscribed, it is 3x slower here).
    ts=""
    for tcfg in "$THREADS 1" "1 $THREADS"; do
      read -r tin tblas <<<"$tcfg"
      line=$(OPENBLAS_NUM_THREADS=$tblas "$PY" scripts/bench/trainer-loop-torch.py "$tmp/$name.cfg.json" "$B" "$T" "$STEPS" "$tin")
      s1=$(sed 's/.*step_s=\([^ ]*\).*/\1/' <<<"$line")
      if [ -z "$ts" ] || awk -v a="$s1" -v b="$ts" 'BEGIN{exit !(a < b)}'; then
        ts=$s1
        tt=$(sed 's/.*tok_s=\([^ ]*\).*/\1/' <<<"$line")
        trss=$(sed 's/.*rss_mb=\([^ ]*\).*/\1/' <<<"$line")
      fi
    done
    ratio=$(awk -v a="$os" -v b="$ts" 'BEGIN{printf "%.2fx", a/b}')
  fi
  printf '%-6s %4s %4s %8s | %10s %10s %8s | %10s %10s %8s | %s\n' "$name" "$B" "$T" "$THREADS" "$os" "$ot" "$orss" "$ts" "$tt" "$trss" "$ratio"
done
echo "(timings on a shared machine are noisy; ratio < 1 means trainer is faster)"
