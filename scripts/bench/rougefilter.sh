#!/usr/bin/env bash
# rougefilter benchmark (make bench): the Alpaca job, all 52,002 instructions
# of ../shared/data/alpaca_data.json greedily filtered against the 175 seed
# tasks, at thresholds 0.7, 0.5 and 0.3; our filter beside the plain exact
# reference (`rougefilter --reference`: every pair scored with the O(n·m)
# dynamic-programming LCS, as the original generator does) in the same run.
# Prints both times, the ratio and whether the kept sets are identical.
#
# Without ../shared/data it uses 52,002 generated instructions with
# near-duplicates. RF_BENCH_QUICK=1 uses the first 10,000 records only
# (the reference at 0.7 takes minutes on 2 cores).
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
RF=$BIN/rougefilter
if [ ! -x "$RF" ]; then
  echo "rougefilter bench: $RF not found (run make build)" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

shared=${RF_BENCH_SHARED:-../shared/data}  # override to test the generated-data path
seeds=$shared/seed_tasks.jsonl
data=$shared/alpaca_data.json
if [ -f "$seeds" ] && [ -f "$data" ]; then
  src="alpaca_data.json (52,002 records) vs seed_tasks.jsonl (175)"
else
  echo "note: ../shared/data absent: generated data (52,002 records, 175 seeds)"
  src="generated data"
  awk 'BEGIN {
    srand(42)
    split("write describe explain list give generate create summarize translate classify name find suggest compose identify compare rewrite calculate outline design", verbs, " ")
    for (i = 0; i < 4000; i++) words[i] = sprintf("w%x", i * 2654435761 % 1000003)
    for (r = 0; r < 52177; r++) {
      if (r > 10 && rand() < 0.3) { line = prev[int(rand() * 10)]; sub(/ [^ ]+$/, " " words[int(rand() * 4000)], line) }
      else {
        n = 4 + int(rand() * 14); line = verbs[1 + int(rand() * 20)]
        for (j = 0; j < n; j++) { x = rand(); line = line " " words[int(x * x * x * 4000)] }
      }
      prev[r % 10] = line
      printf "{\"instruction\": \"%s.\"}\n", line > (r < 175 ? "'"$tmp"'/seeds.jsonl" : "'"$tmp"'/data.jsonl")
    }
  }'
  seeds=$tmp/seeds.jsonl
  data=$tmp/data.jsonl
fi
if [ "${RF_BENCH_QUICK:-0}" = 1 ]; then
  "$RF" --threshold 1 --limit 10000 "$data" > "$tmp/quick.jsonl"
  data=$tmp/quick.jsonl
  src="$src, first 10,000 records (RF_BENCH_QUICK=1)"
fi

now() { date +%s.%N; }
echo "rougefilter: $src; $(nproc) cores; -j default (all cores)"
printf "%-9s %8s %12s %14s %9s %s\n" threshold kept "ours (s)" "reference (s)" ratio "same kept set"
status=0
for t in 0.7 0.5 0.3; do
  s=$(now)
  "$RF" --against "$seeds" --threshold "$t" "$data" > "$tmp/ours.jsonl" || { status=1; continue; }
  e=$(now)
  "$RF" --reference --against "$seeds" --threshold "$t" "$data" > "$tmp/ref.jsonl" || { status=1; continue; }
  r=$(now)
  kept=$(wc -l < "$tmp/ours.jsonl")
  same=no
  cmp -s "$tmp/ours.jsonl" "$tmp/ref.jsonl" && same=yes
  [ $same = yes ] || status=1
  awk -v t="$t" -v k="$kept" -v s="$s" -v e="$e" -v r="$r" -v same="$same" 'BEGIN {
    o = e - s; f = r - e
    printf "%-9s %8d %12.3f %14.3f %8.0fx %s\n", t, k, o, f, (o > 0 ? f / o : 0), same
  }'
done
exit $status
