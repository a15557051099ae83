#!/usr/bin/env bash
# stage.sh RUN NAME CMD...: runs one stage of `make alpaca`, timing it.
# Prints "==> NAME" before and the elapsed seconds after on stderr, and
# records them in RUN/.times/NAME (read by summary.sh). A failing stage
# leaves no time file, so make runs it again next time.
set -uo pipefail
run=$1 name=$2
shift 2
mkdir -p "$run/.times"
rm -f "$run/.times/$name"
echo "==> $name" >&2
start=$(date +%s.%N)
"$@"
rc=$?
end=$(date +%s.%N)
if [ $rc -ne 0 ]; then
  echo "alpaca: stage $name failed (exit $rc); fix it and run make alpaca again: finished stages are kept" >&2
  exit $rc
fi
secs=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')
echo "$secs" > "$run/.times/$name"
echo "    $name: ${secs}s" >&2
