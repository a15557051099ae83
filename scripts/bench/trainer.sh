#!/usr/bin/env bash
# Trainer step benchmark: one whole step (forward+backward through pkg/llama
# ForwardBackward, global gradient norm, clipping, AdamW over the arenas) on
# small and medium LLaMA configs (m19: the 19.3M config, hidden 256, 4
# layers, 8/4 heads, vocab 32000, batch 8x256; m110: ~110M, hidden 768, 12
# layers, 12/4 heads, vocab 32000, batch 4x512), ours beside PyTorch CPU
# (backward, clip_grad_norm_, torch.optim.AdamW) with the same thread count,
# shapes and packed batch, in one run. Prints ms/step, tokens/s, peak RSS
# and the time ratio ours/torch (the goal: 0.5, twice torch's tokens/s).
# CONFIGS (space-separated names) limits the configs run; VARIANTS (e.g.
# "default") limits our builds.
#
# Our side is pkg/llama's BenchmarkStep built as a test binary three ways:
# go-default: the default CGO_ENABLED=0 build (pure-Go blocked SGEMM with the
# AVX2/FMA Go-assembly micro-kernel; gonum on CPUs without AVX2), go-gonum:
# -tags purego (gonum's Sgemm, no assembly of ours), go-openblas: -tags
# openblas (cgo, libopenblas), when it builds. Each is run REPEAT times
# (default 3), alternating, and the best round is shown. PyTorch side: scripts/bench/llama_step_torch.py (/usr/bin/python3
# with torch). Env: THREADS (default 2), STEPS (default 5), REPEAT (default
# 3), GO (default go).
# The full-training benchmark (pkg/train) is a separate script.
set -uo pipefail
cd "$(dirname "$0")/../.."
THREADS=${THREADS:-2}
STEPS=${STEPS:-5}
REPEAT=${REPEAT:-3}
GO=${GO:-go}
PY=${PY:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# name D I L H KV V B T EX  (must match benchConfigs in pkg/llama/bench_test.go)
configs=(
  "s1-d256-l4-v8k 256 688 4 8 8 8000 4 128 64"
  "s2-d512-l4-gqa-v32k 512 1376 4 8 4 32000 2 256 128"
  "m19-d256-l4-gqa-v32k 256 688 4 8 4 32000 8 256 128"
  "m110-d768-l12-gqa-v32k 768 1536 12 12 4 32000 4 512 256"
)

timev() { # timev OUTFILE cmd... ; stdout to OUTFILE, peak RSS (KiB) on stdout
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -v -o "$1.time" "${@:2}" >"$1" 2>&1 || { cat "$1" >&2; return 1; }
    awk -F: '/Maximum resident set size/{gsub(/ /,"",$2); print $2}' "$1.time"
  else
    "${@:2}" >"$1" 2>&1 || { cat "$1" >&2; return 1; }
    echo 0
  fi
}

variants=(${VARIANTS:-default gonum})
if ! "$GO" version >/dev/null 2>&1; then echo "trainer bench: no Go toolchain ($GO); skipped"; exit 0; fi
CGO_ENABLED=0 "$GO" test -c -o "$tmp/llama-default.test" ./pkg/llama || exit 1
CGO_ENABLED=0 "$GO" test -tags purego -c -o "$tmp/llama-gonum.test" ./pkg/llama || exit 1
if [ -n "${VARIANTS:-}" ]; then
  :
elif CGO_ENABLED=1 "$GO" test -tags openblas -c -o "$tmp/llama-openblas.test" ./pkg/llama 2>"$tmp/cgo.err"; then
  variants+=("openblas")
else
  echo "note: OpenBLAS build failed (no cgo or libopenblas-dev?); pure Go only"
fi
have_torch=1
if ! "$PY" -c 'import torch' 2>/dev/null; then
  have_torch=0
  echo "note: $PY has no torch; PyTorch reference skipped"
fi

printf '%-22s %-16s %10s %10s %10s %8s\n' config impl ms/step tok/s peakMiB ratio
minf() { awk -v a="$1" -v b="$2" 'BEGIN{if (a == "" || b+0 < a+0) print b; else print a}'; }
for c in "${configs[@]}"; do
  set -- $c
  name=$1
  if [ -n "${CONFIGS:-}" ] && [[ " $CONFIGS " != *" $name "* ]]; then continue; fi
  declare -A ms=() tok=() rssk=()
  declare -gA tlabel
  # REPEAT rounds, alternating the implementations; keep each one's best
  # round (the machine is shared: the minimum is the least disturbed run).
  for ((r = 0; r < REPEAT; r++)); do
    if [ $have_torch = 1 ]; then
      # Debian's torch calls OpenBLAS, which starts its own threads: torch's
      # intra-op threads times OpenBLAS's oversubscribe the cores. Torch is
      # timed both ways (THREADS intra-op threads with a one-thread BLAS, and
      # one intra-op thread with a THREADS-thread BLAS) and its faster way is
      # the reference, so the ratio never flatters us.
      for tcfg in "$THREADS 1" "1 $THREADS"; do
        read -r tin tblas <<<"$tcfg"
        if rss=$(OPENBLAS_NUM_THREADS=$tblas timev "$tmp/torch.out" "$PY" scripts/bench/llama_step_torch.py "$tin" "$STEPS" "$@" 1); then
          read -r _ t _ _ < <(tail -1 "$tmp/torch.out")
          if [ -z "${ms[torch]:-}" ] || awk -v a="$t" -v b="${ms[torch]}" 'BEGIN{exit !(a < b)}'; then
            ms[torch]=$t; rssk[torch]=$rss; tlabel[$name]="torch ${tin}x${tblas}"
          fi
        fi
      done
    fi
    for v in "${variants[@]}"; do
      if rss=$(GOMAXPROCS=$THREADS BENCH_OPT=1 BENCH_CONFIG=$name timev "$tmp/go.out" "$tmp/llama-$v.test" \
        -test.run '^$' -test.bench '^BenchmarkStep$' -test.benchtime "${STEPS}x"); then
        t=$(awk '/ms\/step/{for(i=1;i<=NF;i++) if($(i+1)=="ms/step") print $i}' "$tmp/go.out")
        ms[$v]=$(minf "${ms[$v]:-}" "$t"); rssk[$v]=$rss
      fi
    done
  done
  ntok=$(( $8 * $9 ))
  for impl in torch "${variants[@]}"; do
    [ -n "${ms[$impl]:-}" ] || continue
    label="go-$impl"; [ $impl = torch ] && label="${tlabel[$name]}"
    ratio="-"
    [ -n "${ms[torch]:-}" ] && ratio=$(awk -v a="${ms[$impl]}" -v b="${ms[torch]}" 'BEGIN{printf "%.2f", a/b}')
    printf '%-22s %-16s %10.1f %10.0f %10.0f %8s\n' "$name" "$label" "${ms[$impl]}" \
      "$(awk -v n=$ntok -v m="${ms[$impl]}" 'BEGIN{print n/(m/1000)}')" "$((rssk[$impl] / 1024))" "$ratio"
  done
  unset ms tok rssk
done
echo "(threads=$THREADS, steps=$STEPS, best of $REPEAT alternating rounds; torch AxB = A intra-op threads x B OpenBLAS threads, its faster setting; ratio = our ms/step / torch ms/step; goal <= 0.5. A step = forward, backward, clipping, AdamW. Peak RSS of the whole process.)"
