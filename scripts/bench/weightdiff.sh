#!/usr/bin/env bash
# weightdiff recover vs the original's steps in PyTorch (CPU), in one run, on a
# generated LLaMA-shaped float32 model (~2.1 GB with the defaults; in /tmp,
# removed afterwards). Prints wall time, throughput (recovered GB per second)
# and peak RSS of each, and the ratio.
#   WD_BENCH_DIM=2048 WD_BENCH_LAYERS=8 scripts/bench/weightdiff.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
WD=$BIN/weightdiff
if [ ! -x "$WD" ]; then mkdir -p "$BIN" && go build -o "$BIN/" ./cmd/weightdiff || exit 1; fi
DIM=${WD_BENCH_DIM:-2048}
LAYERS=${WD_BENCH_LAYERS:-8}
T=$(mktemp -d "${TMPDIR:-/tmp}/wdbench.XXXXXX")
trap 'rm -rf "$T"' EXIT
go build -o "$T/genmodel" ./scripts/bench/genmodel || exit 1
"$T/genmodel" -out "$T/raw" -dim "$DIM" -layers "$LAYERS" || exit 1
"$T/genmodel" -out "$T/tuned" -dim "$DIM" -layers "$LAYERS" -pad -tweak 2e-4 || exit 1
size=$(du -sb "$T/tuned" | cut -f1)
echo "model: dim $DIM, $LAYERS layers, $(awk -v s="$size" 'BEGIN{printf "%.2f GB", s/1e9}') float32 (vocab 32000 + [PAD]); $(nproc) cores"

have_time=1; [ -x /usr/bin/time ] || have_time=0
# run NAME CMD...: runs CMD, stores wall seconds and peak RSS (MB) in $secs/$rss
run() {
  local name=$1; shift
  if [ $have_time = 1 ]; then
    /usr/bin/time -f "%e %M %U %S" -o "$T/time.$name" "$@" 2>"$T/err.$name" || { echo "$name failed:"; tail -3 "$T/err.$name"; return 1; }
    read -r secs kb usr sys <"$T/time.$name"; rss=$((kb / 1024)); cpu=$(awk -v u="$usr" -v s="$sys" 'BEGIN{printf "%.1f", u+s}')
  else
    local s=$(date +%s.%N); "$@" 2>"$T/err.$name" || return 1
    secs=$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}'); rss="?"; cpu="?"
  fi
}

run make "$WD" make --raw "$T/raw" --tuned "$T/tuned" --out "$T/diff" || exit 1
echo "weightdiff make (diff mode):  ${secs}s, peak RSS ${rss} MB"
run makex "$WD" make --raw "$T/raw" --tuned "$T/tuned" --out "$T/xdiff" --mode xor || exit 1
echo "weightdiff make (xor mode):   ${secs}s, peak RSS ${rss} MB, diff $(du -sh "$T/xdiff/diff.xor" | cut -f1) vs $(du -sh "$T/diff" | cut -f1) in diff mode"

run recx "$WD" recover --raw "$T/raw" --diff "$T/xdiff" --out "$T/recx" || exit 1
echo "weightdiff recover (xor):     ${secs}s, $(awk -v s="$size" -v t="$secs" 'BEGIN{printf "%.2f", s/1e9/t}') GB/s, peak RSS ${rss} MB"
rm -rf "$T/recx" "$T/xdiff"

run ours "$WD" recover --raw "$T/raw" --diff "$T/diff" --out "$T/rec" || exit 1
ours_s=$secs; ours_rss=$rss
echo "weightdiff recover (diff):    ${ours_s}s, $(awk -v s="$size" -v t="$secs" 'BEGIN{printf "%.2f", s/1e9/t}') GB/s, peak RSS ${ours_rss} MB, CPU ${cpu}s  ($(grep -o 'sum [0-9.-]*' "$T/err.ours" | head -1))"
rm -rf "$T/rec"

if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  rm -rf "$T/tuned"   # free page cache for the reference, which holds both models in RAM
  run ref /usr/bin/python3 scripts/bench/weightdiff_ref.py "$T/raw" "$T/diff" "$T/ref" || exit 1
  echo "PyTorch weight_diff.py steps: ${secs}s, $(awk -v s="$size" -v t="$secs" 'BEGIN{printf "%.2f", s/1e9/t}') GB/s, peak RSS ${rss} MB, CPU ${cpu}s  ($(grep -o 'sum [0-9.-]*' "$T/err.ref"))"
  awk -v a="$ours_s" -v b="$secs" -v ra="$ours_rss" -v rb="$rss" 'BEGIN{printf "ratio: weightdiff is %.1fx faster, with %.1fx less peak memory\n", b/a, rb/ra}'
else
  echo "note: /usr/bin/python3 with torch not found; reference skipped"
fi
