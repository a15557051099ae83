#!/usr/bin/env bash
# make bench: runs every scripts/bench/*.sh (one per stage). Each prints our
# time beside the reference tool's in the same run and the ratio.
set -uo pipefail
cd "$(dirname "$0")/.."
export BIN=${BIN:-bin}
status=0
for s in scripts/bench/*.sh; do
  [ -e "$s" ] || continue
  echo "=== $(basename "$s" .sh)"
  bash "$s" || status=1
  echo
done
exit $status
