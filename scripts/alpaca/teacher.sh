#!/usr/bin/env bash
# teacher.sh RUN SEEDS BASE_URL MODEL POOL N OUT: the data stage of
# `make alpaca` when no DATA is given. With BASE_URL empty it starts a
# teachersim on 127.0.0.1 (a free port) answering from POOL and stops it at
# the end. seedgen keeps its progress in RUN/generated.jsonl (--resume) and
# its request cache in RUN/seedgen-cache, so an interrupted stage continues.
set -euo pipefail
BIN=${BIN:-bin}
run=$1 seeds=$2 url=$3 model=$4 pool=$5 n=$6 out=$7
sim=
cleanup() { [ -n "$sim" ] && kill "$sim" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
if [ -z "$url" ]; then
  rm -f "$run/teachersim.addr"
  "$BIN/teachersim" --pool "$pool" --addr 127.0.0.1:0 --addr-file "$run/teachersim.addr" --quiet &
  sim=$!
  for _ in $(seq 200); do [ -s "$run/teachersim.addr" ] && break; sleep 0.05; done
  [ -s "$run/teachersim.addr" ] || { echo "teacher.sh: teachersim did not start" >&2; exit 1; }
  url="http://$(cat "$run/teachersim.addr")/v1"
  export OPENAI_API_KEY=${OPENAI_API_KEY:-teachersim}
fi
"$BIN/seedgen" --base-url "$url" --model "$model" --seeds "$seeds" --num-instructions "$n" \
  --cache "$run/seedgen-cache" --resume "$run/generated.jsonl"
cp "$run/generated.jsonl" "$out.tmp"
mv "$out.tmp" "$out"
