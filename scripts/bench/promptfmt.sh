#!/usr/bin/env bash
# promptfmt throughput beside the Python reference, in the same run.
#   BIN=bin bash scripts/bench/promptfmt.sh        (make bench runs it after make build)
# Input: ../shared/data/alpaca_data.json when present, else 52,002 generated
# Alpaca-like records. Reference: scripts/fixtures/promptfmt_ref.py under
# /usr/bin/python3 (json module; the str.format_map templating of Alpaca's
# train.py). Each command runs RUNS times (default 3); the best wall time is
# reported, as records/s and MB/s of input (for --extract: of the prompts
# file it reads). Output goes to files on /tmp
# (tmpfs or disk), and the two outputs are compared record by record.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
RUNS=${RUNS:-3}
PY=/usr/bin/python3
REF=scripts/fixtures/promptfmt_ref.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -x "$BIN/promptfmt" ]; then
  echo "promptfmt: $BIN/promptfmt not built (run make build)" >&2
  exit 1
fi
data=${DATA:-../shared/data/alpaca_data.json}
if [ ! -f "$data" ]; then
  echo "note: $data absent; using 52,002 generated records"
  data=$tmp/generated.json
  awk 'BEGIN {
    print "[";
    for (i = 0; i < 52002; i++) {
      inp = (i % 5 < 2) ? sprintf("The input of example %d, with \\\"quotes\\\" and a tab\\t.", i) : "";
      printf "    {\n        \"instruction\": \"Write a short answer to question %d about the world.\",\n        \"input\": \"%s\",\n        \"output\": \"Answer %d: the world is large.\\nIt has many parts, some of which are described here at some length so that the output is about as long as a typical Alpaca output.\"\n    }%s\n", i, inp, i, (i < 52001) ? "," : "";
    }
    print "]";
  }' > "$data"
fi
mb=$(awk -v b="$(wc -c < "$data")" 'BEGIN { printf "%.1f", b / 1e6 }')
nproc=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)

# best "WALL CPU" seconds of RUNS runs of "$@" (stdout to $out); CPU is
# user+sys of the best run, less sensitive to other jobs than wall time.
best() {
  local b="" r
  for _ in $(seq "$RUNS"); do
    if ! { TIMEFORMAT='%R %U %S'; time "$@" > "$out" 2> "$tmp/err"; } 2> "$tmp/time"; then
      echo "promptfmt bench: failed: $*" >&2
      cat "$tmp/err" >&2
      return 1
    fi
    r=$(awk '{ printf "%.3f %.3f", $1, $2 + $3 }' "$tmp/time")
    if [ -z "$b" ] || awk -v a="${r%% *}" -v c="${b%% *}" 'BEGIN { exit !(a < c) }'; then b=$r; fi
  done
  echo "$b"
}
line() { # label "wall cpu" records [input MB]
  awk -v l="$1" -v s="${2%% *}" -v c="${2##* }" -v n="$3" -v mb="${4:-$mb}" 'BEGIN {
    printf "  %-30s %6.3f s (cpu %6.3f s) %9.0f records/s %6.1f MB/s\n", l, s, c, n / s, mb / s }'
}

out=$tmp/ours.1.jsonl;  t1=$(best "$BIN/promptfmt" --quiet -j 1 "$data")
out=$tmp/ours.N.jsonl;  tN=$(best "$BIN/promptfmt" --quiet -j "$nproc" "$data")
n=$(wc -l < "$tmp/ours.1.jsonl")
out=$tmp/ours.x.jsonl;  tx=$(best "$BIN/promptfmt" --quiet --extract -j "$nproc" "$tmp/ours.N.jsonl")
echo "promptfmt on $(basename "$data"): $mb MB, $n records; best of $RUNS runs; $nproc cores$( [ "$(cat /proc/loadavg 2>/dev/null | cut -d' ' -f1 | cut -d. -f1)" -ge "$nproc" ] 2>/dev/null && echo ', machine busy: numbers noisy')"
line "promptfmt -j 1" "$t1" "$n"
line "promptfmt -j $nproc" "$tN" "$n"
xmb=$(awk -v b="$(wc -c < "$tmp/ours.N.jsonl")" 'BEGIN { printf "%.1f", b / 1e6 }')
line "promptfmt --extract -j $nproc" "$tx" "$n" "$xmb"
cmp -s "$tmp/ours.1.jsonl" "$tmp/ours.N.jsonl" || { echo "promptfmt: -j 1 and -j $nproc outputs differ" >&2; exit 1; }

if [ ! -x "$PY" ]; then
  echo "  reference: $PY absent, not run"
  exit 0
fi
out=$tmp/ref.jsonl;   tr=$(best "$PY" "$REF" "$data")
out=$tmp/ref.x.jsonl; trx=$(best "$PY" "$REF" --extract "$tmp/ref.jsonl")
line "python3 reference" "$tr" "$n"
line "python3 reference --extract" "$trx" "$n" "$xmb"
awk -v r="${tr%% *}" -v a="${t1%% *}" -v b="${tN%% *}" -v rx="${trx%% *}" -v x="${tx%% *}" \
    -v rc="${tr##* }" -v ac="${t1##* }" 'BEGIN {
  printf "  ratio reference/promptfmt (wall): %.1fx (-j 1), %.1fx (all cores); --extract %.1fx; cpu time -j 1: %.1fx\n", r / a, r / b, rx / x, rc / ac }'
"$PY" - "$tmp/ours.1.jsonl" "$tmp/ref.jsonl" <<'PYEOF'
import json, sys
a, b = open(sys.argv[1], encoding="utf-8"), open(sys.argv[2], encoding="utf-8")
n = 0
for x, y in zip(a, b):
    n += 1
    if json.loads(x) != json.loads(y):
        sys.exit("  outputs DIFFER at record %d" % n)
if a.readline() or b.readline():
    sys.exit("  outputs differ in length")
print("  outputs identical record by record (%d records, compared as parsed JSON)" % n)
PYEOF
