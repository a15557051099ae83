#!/usr/bin/env bash
# LoRA step benchmark: on the ~110M config (hidden 768, 12 layers, 12/4
# heads, vocab 32000, batch 4x512, packed examples of 256) one whole
# training step of
#   full    ours, full fine-tuning (pkg/llama BenchmarkStep, BENCH_OPT=1:
#           forward, backward, clipping, AdamW over every weight)
#   lora    ours, LoRA r 8 / alpha 16 / dropout 0.05 on q_proj,v_proj
#           (BenchmarkLoRAStep: frozen fp32 base without gradients,
#           clipping and AdamW over the adapter only)
#   torch   PyTorch CPU fp32 with the same LoRA (scripts/bench/lora_step_torch.py:
#           PEFT's formula, base without gradients, AdamW over the adapter),
#           timed as THREADS intra-op x 1 BLAS and 1 x THREADS; its faster
#           setting is the reference (as scripts/bench/trainer.sh does)
# in one run. Prints ms/step, tokens/s, peak RSS and the ratio to torch.
# Env: THREADS (default 2), STEPS (default 2), CONFIGS (default the m110
# config; a name from pkg/llama/bench_test.go), GO, PY.
set -uo pipefail
cd "$(dirname "$0")/../.."
THREADS=${THREADS:-2}
STEPS=${STEPS:-2}
GO=${GO:-go}
PY=${PY:-/usr/bin/python3}
CONFIGS=${CONFIGS:-m110-d768-l12-gqa-v32k}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# name D I L H KV V B T EX  (must match benchConfigs in pkg/llama/bench_test.go)
configs=(
  "s1-d256-l4-v8k 256 688 4 8 8 8000 4 128 64"
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
if ! "$GO" version >/dev/null 2>&1; then echo "lora bench: no Go toolchain ($GO); skipped"; exit 0; fi
CGO_ENABLED=0 "$GO" test -c -o "$tmp/llama.test" ./pkg/llama || exit 1
have_torch=1
"$PY" -c 'import torch' 2>/dev/null || { have_torch=0; echo "note: $PY has no torch; PyTorch reference skipped"; }
printf '%-24s %-14s %10s %10s %10s %8s\n' config impl ms/step tok/s peakMiB ratio
for c in "${configs[@]}"; do
  set -- $c
  name=$1
  [[ " $CONFIGS " == *" $name "* ]] || continue
  declare -A ms=() rssk=()
  tl=""
  if [ $have_torch = 1 ]; then
    for tcfg in "$THREADS 1" "1 $THREADS"; do
      read -r tin tblas <<<"$tcfg"
      if rss=$(OPENBLAS_NUM_THREADS=$tblas timev "$tmp/torch.out" "$PY" scripts/bench/lora_step_torch.py "$tin" "$STEPS" "$@"); then
        read -r _ t _ _ < <(tail -1 "$tmp/torch.out")
        if [ -z "${ms[torch]:-}" ] || awk -v a="$t" -v b="${ms[torch]}" 'BEGIN{exit !(a < b)}'; then
          ms[torch]=$t; rssk[torch]=$rss; tl="torch-lora ${tin}x${tblas}"
        fi
      fi
    done
  fi
  for v in full lora; do
    bench=BenchmarkStep; [ $v = lora ] && bench=BenchmarkLoRAStep
    if rss=$(GOMAXPROCS=$THREADS BENCH_OPT=1 BENCH_CONFIG=$name timev "$tmp/go.out" "$tmp/llama.test" \
      -test.run '^$' -test.bench "^$bench\$" -test.benchtime "${STEPS}x"); then
      ms[$v]=$(awk '/ms\/step/{for(i=1;i<=NF;i++) if($(i+1)=="ms/step") print $i}' "$tmp/go.out"); rssk[$v]=$rss
    fi
  done
  ntok=$(( $8 * $9 ))
  for impl in full lora torch; do
    [ -n "${ms[$impl]:-}" ] || continue
    label="go-$impl"; [ $impl = torch ] && label="$tl"
    ratio="-"
    [ -n "${ms[torch]:-}" ] && ratio=$(awk -v a="${ms[$impl]}" -v b="${ms[torch]}" 'BEGIN{printf "%.2f", a/b}')
    printf '%-24s %-14s %10.1f %10.0f %10.0f %8s\n' "$name" "$label" "${ms[$impl]}" \
      "$(awk -v n=$ntok -v m="${ms[$impl]}" 'BEGIN{print n/(m/1000)}')" "$((rssk[$impl] / 1024))" "$ratio"
  done
  unset ms rssk
done
echo "(threads=$THREADS, steps=$STEPS after one warm-up step; ratio = ms/step / torch-lora ms/step. full = our full fine-tuning step for scale; lora/torch-lora = LoRA r8 q,v dropout 0.05. Peak RSS of the whole process: full holds weights, gradients and two AdamW moments for every weight; lora only the fp32 base and the adapter's four arenas.)"
