#!/usr/bin/env bash
# rougefilter benchmark (make bench), three parts (RF_BENCH_PARTS, default
# "alpaca scale annotate"; e.g. RF_BENCH_PARTS=scale runs the scaling table
# alone):
#
# alpaca: all 52,002 instructions of ../shared/data/alpaca_data.json greedily
#   filtered against the 175 seed tasks, at thresholds 0.7, 0.5 and 0.3; our
#   filter beside the plain exact reference (`rougefilter --reference`: every
#   pair scored with the O(n·m) dynamic-programming LCS, as the original
#   generator does) in the same run. Prints both times, the ratio and whether
#   the kept sets are identical. Without ../shared/data it uses 52,002
#   generated instructions with near-duplicates. RF_BENCH_QUICK=1 uses the
#   first 10,000 records only (the reference at 0.7 takes minutes on 2 cores).
#
# scale: inputs of RF_BENCH_SIZES records (default 100K 200K 400K 800K 1M)
#   written by scripts/bench/rfscale (seed 1: Alpaca instructions with 1-3
#   words replaced and 0-2 appended, shuffled; about a dozen near-duplicates
#   each), filtered at 0.7 without a seed pool. Prints wall and CPU time
#   (medians of RF_BENCH_REPEAT runs, default 3: this machine's memory speed
#   drifts 10-20% between runs), RSS, kept count and the sha256 of the
#   output, the fitted exponent of time vs size, and compares the output
#   with the version before the scaling work (RF_BENCH_BASE, default ced91fe, built from git in a temporary directory)
#   up to RF_BENCH_OLD_MAX records (default 400000; it is quadratic), and
#   with the hashes recorded from that version for the larger sizes.
#
# annotate: the alpaca job at 0.7 with --annotate, ours beside the base
#   version, outputs compared byte for byte.
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
parts=" ${RF_BENCH_PARTS:-alpaca scale annotate} "
status=0
if [[ $parts == *" alpaca "* ]]; then
  echo "rougefilter: $src; $(nproc) cores; -j default (all cores)"
  printf "%-9s %8s %12s %14s %9s %s\n" threshold kept "ours (s)" "reference (s)" ratio "same kept set"
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
fi

# CPU/RSS measurement: GNU time when installed (apt install time)
run_timed() { # run_timed OUT CMD...
  local out=$1; shift
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "%e %U %S %M" -o "$tmp/time" "$@" > "$out" || return 1
    read -r t_wall t_user t_sys t_rss < "$tmp/time"
    t_cpu=$(awk -v u="$t_user" -v s="$t_sys" 'BEGIN { printf "%.2f", u + s }')
    t_rss=$((t_rss / 1024))
  else
    local s e
    s=$(now); "$@" > "$out" || return 1; e=$(now)
    t_wall=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }'); t_cpu=NA; t_rss=NA
  fi
}

# median of the numbers on stdin (space-separated)
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : "NA") }'; }

base=${RF_BENCH_BASE:-ced91fe}
old=""
build_old() {
  [ -n "$old" ] && return 0
  mkdir -p "$tmp/old"
  if git archive "$base" 2>/dev/null | tar -x -C "$tmp/old" 2>/dev/null &&
    (cd "$tmp/old" && ${GO:-go} build -o "$tmp/rougefilter-old" ./cmd/rougefilter); then
    old=$tmp/rougefilter-old
  else
    echo "note: could not build $base from git: no comparison with it"
    old=none
  fi
}

if [[ $parts == *" scale "* ]]; then
  echo
  sizes=${RF_BENCH_SIZES:-100000 200000 400000 800000 1000000}
  oldmax=${RF_BENCH_OLD_MAX:-400000}
  ${GO:-go} build -o "$tmp/rfscale" ./scripts/bench/rfscale || exit 1
  build_old
  if [ -f "$shared/alpaca_data.json" ]; then
    gen=(-alpaca "$shared/alpaca_data.json"); gsrc="alpaca_data.json"
  else
    gen=(); gsrc="generated bases"
  fi
  # sha256 (first 16 hex digits) of the output of ced91fe on these inputs
  # (alpaca_data.json bases, seed 1, threshold 0.7), for the sizes above
  # RF_BENCH_OLD_MAX
  declare -A recorded=(
    [100000]=94d6c7414ae4a998 [200000]=5190de0daff39df6 [400000]=54ddf394217ebdb9
    [800000]=b3752033366f819a [1000000]=06740fc9c1ae4bd9
  )
  echo "rougefilter scaling: rfscale inputs ($gsrc, seed 1), threshold 0.7, no seed pool; $(nproc) cores"
  echo "ours: median of ${RF_BENCH_REPEAT:-3} runs; base = $base, run once up to $oldmax records; 'recorded' = its output hash recorded once (same inputs)"
  printf "%-8s %8s %9s %9s %8s %-16s %10s %10s %s\n" records kept "wall (s)" "cpu (s)" "RSS MB" "sha256[:16]" "base wall" "base cpu" "same as base"
  fit=""
  for n in $sizes; do
    "$tmp/rfscale" "${gen[@]}" -n "$n" > "$tmp/in.jsonl" || { status=1; continue; }
    # RF_BENCH_REPEAT runs (default 3): the median wall and CPU, the largest
    # RSS; every run must write the same output
    walls="" cpus="" orss=0 h=""
    for ((r = 0; r < ${RF_BENCH_REPEAT:-3}; r++)); do
      run_timed "$tmp/ours.jsonl" "$RF" --quiet --threshold 0.7 "$tmp/in.jsonl" || { status=1; continue 2; }
      walls="$walls $t_wall" cpus="$cpus $t_cpu"
      [ "$t_rss" != NA ] && [ "$t_rss" -gt "$orss" ] && orss=$t_rss
      hr=$(sha256sum < "$tmp/ours.jsonl" | cut -c1-16)
      [ -n "$h" ] && [ "$hr" != "$h" ] && { echo "rougefilter bench: $n records: runs wrote different outputs" >&2; status=1; }
      h=$hr
    done
    ow=$(echo "$walls" | median) oc=$(echo "$cpus" | median)
    [ "$orss" = 0 ] && orss=NA
    kept=$(wc -l < "$tmp/ours.jsonl")
    bw=- bc=- same=-
    if [ "$old" != none ] && [ "$n" -le "$oldmax" ]; then
      run_timed "$tmp/old.jsonl" "$old" --quiet --threshold 0.7 "$tmp/in.jsonl" || status=1
      bw=$t_wall bc=$t_cpu
      same=no; cmp -s "$tmp/ours.jsonl" "$tmp/old.jsonl" && same=yes
    elif [ -n "${gen[*]}" ] && [ -n "${recorded[$n]:-}" ]; then
      same="no (recorded)"; [ "$h" = "${recorded[$n]}" ] && same="yes (recorded)"
    fi
    [[ $same == no* ]] && status=1
    printf "%-8s %8d %9s %9s %8s %-16s %10s %10s %s\n" "$n" "$kept" "$ow" "$oc" "$orss" "$h" "$bw" "$bc" "$same"
    fit="$fit $n $ow $oc"
  done
  echo "$fit" | awk '{
    k = 0
    for (i = 1; i + 2 <= NF; i += 3) { n[k] = log($i); w[k] = log($(i+1)); c[k] = ($(i+2) == "NA" ? "" : log($(i+2))); k++ }
    if (k < 2) exit
    for (pass = 0; pass < 2; pass++) {
      sx = sy = sxx = sxy = 0; m = 0
      for (j = 0; j < k; j++) { y = (pass ? c[j] : w[j]); if (y == "") continue; sx += n[j]; sy += y; sxx += n[j]*n[j]; sxy += n[j]*y; m++ }
      if (m >= 2) e[pass] = (m*sxy - sx*sy) / (m*sxx - sx*sx)
    }
    printf "fitted exponent (time ~ records^e, least squares on logs): wall %.2f", e[0]
    if (1 in e) printf ", cpu %.2f", e[1]
    printf "\n"
  }'
fi

if [[ $parts == *" annotate "* ]]; then
  echo
  build_old
  echo "rougefilter --annotate: $src, threshold 0.7"
  printf "%-10s %9s %9s %8s\n" version "wall (s)" "cpu (s)" "RSS MB"
  run_timed "$tmp/ann.jsonl" "$RF" --quiet --against "$seeds" --annotate "$data" || status=1
  printf "%-10s %9s %9s %8s\n" ours "$t_wall" "$t_cpu" "$t_rss"
  if [ "$old" != none ]; then
    run_timed "$tmp/ann-old.jsonl" "$old" --quiet --against "$seeds" --annotate "$data" || status=1
    printf "%-10s %9s %9s %8s\n" "$base" "$t_wall" "$t_cpu" "$t_rss"
    same=no; cmp -s "$tmp/ann.jsonl" "$tmp/ann-old.jsonl" && same=yes
    [ $same = yes ] || status=1
    echo "identical output: $same"
  fi
fi
exit $status
