#!/usr/bin/env bash
# seedgen benchmark: generate ~52K instructions from teachersim (127.0.0.1
# only) and report wall and CPU time per kept record, and the time per 1K
# kept records as the pool grows (the original generator slowed to a crawl
# there). Pool: ../shared/data/alpaca_data.json when present (every record
# served once, --sequential), else a synthetic one.
#   N=51500 ANNOTATE=1 BIN=bin bash scripts/bench/seedgen.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
N=${N:-51500}          # alpaca_data.json has 52,002 records; a few are unparseable or near-duplicates
ANNOTATE=${ANNOTATE:-1} # also time the run with most_similar_instructions/avg_similarity_score
[ -x "$BIN/seedgen" ] && [ -x "$BIN/teachersim" ] || { echo "seedgen bench: build first (make build)"; exit 1; }
tmp=$(mktemp -d)
sim_pid=
cleanup() { [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

pool=../shared/data/alpaca_data.json
seeds=../shared/data/seed_tasks.jsonl
if [ ! -r "$pool" ]; then
  echo "note: $pool absent; using a synthetic pool of 60,000 random sentences"
  pool=$tmp/pool.jsonl
  awk 'BEGIN{srand(1); for(i=0;i<60000;i++){n=6+int(rand()*10); s="Explain"; for(j=1;j<n;j++) s=s" w"int(rand()*3000); printf "{\"instruction\":\"%s.\",\"input\":\"\",\"output\":\"ok\"}\n", s}}' > "$pool"
fi
[ -r "$seeds" ] || seeds=testdata/seedgen/seeds.jsonl

run() { # name, extra flags...
  local name=$1; shift
  # restart the simulator so that every run sees the pool from the start
  if [ -n "$sim_pid" ]; then kill "$sim_pid"; wait "$sim_pid" 2>/dev/null || true; fi
  rm -f "$tmp/addr"
  "$BIN/teachersim" --pool "$pool" --sequential --addr 127.0.0.1:0 --addr-file "$tmp/addr" --quiet &
  sim_pid=$!
  for _ in $(seq 100); do [ -s "$tmp/addr" ] && break; sleep 0.1; done
  url="http://$(cat "$tmp/addr")/v1"
  rm -f "$tmp/t.jsonl" "$tmp/out.jsonl" "$tmp/out.jsonl.state.json"
  local TIMEFORMAT='%R %U %S'
  { time "$BIN/seedgen" --base-url "$url" --model sim --seeds "$seeds" \
    -n "$N" --concurrency 4 --timings "$tmp/t.jsonl" -o "$tmp/out.jsonl" "$@" 2> "$tmp/err" || { cat "$tmp/err" >&2; return 1; } ; } 2> "$tmp/time"
  read -r wall user sys < "$tmp/time"
  kept=$(wc -l < "$tmp/out.jsonl")
  awk -v name="$name" -v wall="$wall" -v cpu="$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')" -v kept="$kept" 'BEGIN{
      printf "%-22s kept %d: %.1f s wall, %.1f s CPU (seedgen; the simulator runs beside it): %.3f ms wall, %.3f ms CPU per kept record\n",
        name, kept, wall, cpu, wall*1000/kept, cpu*1000/kept }'
  echo "   kept so far -> CPU s per 1K kept over the last 5K (wall s)"
  awk -F'[:,}]' '{k=$2; w=$6; c=$8; if (NR>1 && k%5000 < 1000) printf "   %6d  %.3f (%.3f)\n", k, (c-pc)/((k-pk)/1000), (w-pw)/((k-pk)/1000); if (NR==1 || k%5000 < 1000) {pk=k; pw=w; pc=c}}' "$tmp/t.jsonl"
}

echo "seedgen: $N records from teachersim, pool $(basename "$pool"), concurrency 4, 5 prompts per request, $(nproc) cores"
run "dedup only" --no-annotate
if [ "$ANNOTATE" = 1 ]; then
  run "dedup + annotations"
fi
# Reference: the original's inline dedup + annotation loop in plain Python
# (scripts/bench/seedgen_ref.py), on the first NREF records we kept, beside
# our CPU time to the same point (which also includes HTTP and parsing).
NREF=${NREF:-1000}
py=$(command -v python3 || true)
if [ -z "$py" ]; then
  echo "reference: python3 not found; skipped"
elif [ "$ANNOTATE" = 1 ] && [ -s "$tmp/t.jsonl" ]; then
  read -r ref_cpu ref_kept < <("$py" scripts/bench/seedgen_ref.py "$seeds" "$tmp/out.jsonl" "$NREF")
  ours=$(awk -F'[:,}]' -v n="$NREF" '$2 >= n {print $8; exit}' "$tmp/t.jsonl")
  awk -v r="$ref_cpu" -v o="$ours" -v n="$NREF" 'BEGIN{printf "reference (original dedup+annotation loop, pure Python, 1 process) on the first %d kept: %.2f s CPU; seedgen to the same point: %.2f s CPU (whole pipeline); ratio %.0fx\n", n, r, o, r/o}'
  echo "  (the reference's cost per record grows with the pool like our annotations do, but ~O(pool) for every candidate, dropped or kept)"
else
  echo "reference: needs ANNOTATE=1; skipped"
fi
