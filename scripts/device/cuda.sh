#!/usr/bin/env bash
# The CUDA backend's device check, in one run on the GPU machine (nvcc,
# cuBLAS, PyTorch, transformers; no Go, no network). Prepare here with
# scripts/device/build-carry.sh, then through the device tool:
#
#   run(command="bash scripts/device/cuda.sh", carry=[".device"], timeout_s=590)
#
# Steps (each under its own timeout, all within BUDGET=550 seconds):
#   1. build libalpaca_cuda.so with nvcc for this GPU's architecture;
#   2. the GPU tests (.device/cuda.test: every op against the CPU backend,
#      a full training step against the CPU path);
#   3. a short fine-tune of a small random-init model on Alpaca data with
#      `trainer --device cuda` (falling loss), then the saved directory
#      loaded by transformers gives our logits (scripts/device/hf_logits.py);
#   4. the step benchmark: ours (fp32, TF32 and bf16-GEMM MatMul) beside
#      transformers + PyTorch bf16 training of the same shapes
#      (scripts/device/hf_train_bench.py): tokens/s and MFU.
# Everything it reports goes under $OUT (summary.txt first).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-out/device}
D=.device
BENCH=${BENCH:-7b-L8,1b}
TOKENS=${TOKENS:-8x512}
mkdir -p "$OUT"
W=$(mktemp -d)
START=$(date +%s)
END=$((START + ${BUDGET:-550})) # the whole script stays under the device tool's 10 minutes
S=$OUT/summary.txt
: > "$S"
say() { echo "[$(($(date +%s) - START))s] $*" | tee -a "$S" >&2; }
# lim N: N seconds, or what is left of the budget (at least 1)
lim() { local left=$((END - $(date +%s) - 5)); [ "$left" -lt "$1" ] && echo $((left > 1 ? left : 1)) || echo "$1"; }
fail=0

if [ ! -x "$D/cuda.test" ] || [ ! -x "$D/bin/trainer" ]; then
  say "missing $D/cuda.test or $D/bin/trainer: run scripts/device/build-carry.sh and carry .device"
  exit 1
fi
# The Go binaries were built on Debian 12 with cgo: they need glibc >= 2.34.
if ! "$D/cuda.test" -test.list . > /dev/null 2> "$OUT/preflight.txt"; then
  say "the prebuilt $D/cuda.test does not start here: $(head -c 300 "$OUT/preflight.txt"); $(ldd --version 2>&1 | head -n 1)"
  exit 1
fi
nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
say "GPU: $(tail -n 1 "$OUT/gpu.txt")"
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
ARCH=${CUDA_ARCH:-${cap:-90}}

# 1. build
nvcc --version > "$OUT/nvcc.txt" 2>&1
say "nvcc: $(tail -n 1 "$OUT/nvcc.txt"); building for sm_$ARCH"
if ! timeout "$(lim 180)" nvcc -O3 -std=c++17 -lineinfo -gencode "arch=compute_$ARCH,code=sm_$ARCH" -Xptxas -v \
  -Xcompiler -fPIC -shared -o "$D/bin/libalpaca_cuda.so" pkg/backend/cuda/csrc/*.cu -lcublas > "$OUT/build.txt" 2>&1; then
  say "BUILD FAILED (see build.txt)"
  tail -n 30 "$OUT/build.txt" >&2
  exit 1
fi
say "built $D/bin/libalpaca_cuda.so ($(grep -cE '[1-9][0-9]* bytes spill' "$OUT/build.txt") kernels spill registers)"
export ALPACA_CUDA_LIB=$PWD/$D/bin/libalpaca_cuda.so

# 2. GPU tests
timeout "$(lim 150)" "$D/cuda.test" -test.v -test.count=1 > "$OUT/gpu-tests.txt" 2>&1
rc=$?
say "GPU tests: rc=$rc, $(grep -c -- '^--- PASS' "$OUT/gpu-tests.txt") passed, $(grep -c -- '^--- FAIL' "$OUT/gpu-tests.txt") failed, $(grep -c -- '^--- SKIP' "$OUT/gpu-tests.txt") skipped"
grep -E -- '^(--- FAIL|    .*(error|want|outside))' "$OUT/gpu-tests.txt" | head -n 20 | tee -a "$S" >&2
[ $rc = 0 ] || fail=1

# 3. fine-tune with trainer --device cuda, then transformers loads it
if [ -s "$D/data/tokens.bin" ]; then
  "$D/bin/trainer" init --preset small --tokenizer "$D/data/tokenizer.model" --out "$W/base" --seed 1 2> "$OUT/ft-init.txt"
  timeout "$(lim 90)" "$D/bin/trainer" --device cuda --model "$W/base" --data "$D/data/tokens.bin" --out "$W/ft" \
    --max-steps 40 --batch-size 32 --micro-batch 8 --seq-len 512 --lr 1e-3 --warmup-steps 4 \
    --save-every 0 --metrics "$OUT/ft-metrics.jsonl" --seed 1 2> "$OUT/ft-log.txt"
  rc=$?
  grep -m1 'memory plan' "$OUT/ft-log.txt" | tee -a "$S" >&2
  [ -s "$OUT/ft-metrics.jsonl" ] || tail -n 3 "$OUT/ft-log.txt" | tee -a "$S" >&2
  loss=$(awk -F'"loss":' 'NR==1{split($2,a,",");f=a[1]} {split($2,a,",");l=a[1]} END{printf "%.4f -> %.4f over %d steps", f, l, NR; if (!(l < f)) exit 1}' "$OUT/ft-metrics.jsonl")
  lrc=$?
  say "fine-tune rc=$rc: loss $loss (falling: $([ $lrc = 0 ] && echo yes || echo NO))"
  [ $rc = 0 ] && [ $lrc = 0 ] || fail=1
  ALPACA_CUDA_LOGITS_DIR=$W/ft ALPACA_CUDA_LOGITS_OUT=$W/logits.bin \
    timeout "$(lim 60)" "$D/cuda.test" -test.run '^TestDumpLogits$' -test.v > "$OUT/logits-go.txt" 2>&1
  say "logits dump rc=$?: $(grep -E 'GPU vs CPU|skipped|^--- |panic' "$OUT/logits-go.txt" | head -n 3 | tr '\n' ' ')"
  timeout "$(lim 120)" python3 scripts/device/hf_logits.py --model "$W/ft" --logits "$W/logits.bin" > "$OUT/hf-logits.txt" 2>&1
  rc=$?
  say "transformers logits rc=$rc: $(tail -n 1 "$OUT/hf-logits.txt")"
  [ $rc = 0 ] || fail=1
  ls -la "$W/ft" > "$OUT/ft-dir.txt" 2>&1
else
  say "no $D/data/tokens.bin: fine-tune skipped"
  fail=1
fi
# 4. benchmark: ours in three MatMul modes, then transformers
for mode in fp32 tf32 bf16gemm; do
  envs=()
  case $mode in
    tf32) envs=(ALPACA_CUDA_TF32=1) ;;
    bf16gemm) envs=(ALPACA_CUDA_BF16_GEMM=1) ;;
  esac
  env "${envs[@]}" ALPACA_CUDA_BENCH="$BENCH" ALPACA_CUDA_BENCH_TOKENS="$TOKENS" \
    timeout "$(lim 90)" "$D/cuda.test" -test.run '^TestBenchStep$' -test.v > "$OUT/bench-go-$mode.txt" 2>&1
  say "bench go ($mode), rc=$?:"
  grep -E '^(config|7b|1b)|skipped|FAIL|panic|Error' "$OUT/bench-go-$mode.txt" | tee -a "$S" >&2
done
timeout "$(lim 150)" python3 scripts/device/hf_train_bench.py --configs "$BENCH" --tokens "$TOKENS" > "$OUT/bench-hf.txt" 2>&1
say "bench transformers, rc=$?:"
grep -E '^(config|7b|1b)|Error' "$OUT/bench-hf.txt" | tee -a "$S" >&2

rm -rf "$W"
say "done (fail=$fail)"
exit $fail
