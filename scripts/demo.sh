#!/usr/bin/env bash
# make demo: the pipeline end to end on built-in sample data (testdata/), with
# no network and no downloads. Each stage is a script in scripts/demo.d/, run in
# order; outputs go to out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
export BIN=${BIN:-bin}
export OUT=${OUT:-out/demo}
rm -rf "$OUT"
mkdir -p "$OUT"
start=$(date +%s)
for s in scripts/demo.d/*.sh; do
  [ -e "$s" ] || continue
  name=$(basename "$s" .sh)
  echo "==> ${name#*-}" >&2
  bash "$s"
done
echo "demo finished in $(( $(date +%s) - start ))s; outputs in $OUT/" >&2
ls -la "$OUT" >&2
