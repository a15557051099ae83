#!/usr/bin/env bash
# Benchmark of `generate`: prefill and greedy-decode tokens/s and peak RSS of
# our model code beside llama.cpp (the same weights exported to GGUF by
# `trainer export`, 2 threads, through node-llama-cpp's prebuilt CPU build)
# and beside PyTorch CPU (scripts/bench/generate_torch.py, KV cache, 2
# threads), in the same run, on random-weight LLaMA shapes:
#   110m: hidden 768, 12 layers, 12 heads, ffn 2048, vocab 32000, tied (109.5M)
#   1b:   hidden 2048, 22 layers, 32 heads / 4 kv, ffn 5632, vocab 32000 (TinyLlama-1.1B's shape)
# Precisions: f32 (all three), and 16-bit: ours on bf16 and on f16
# safetensors, llama.cpp on the f16 GGUF, torch in bf16.
#
# Knobs: GEN_BENCH_SHAPES ("110m 1b"), GEN_BENCH_PREC ("f32 16"),
# GEN_BENCH_THREADS (2), GEN_BENCH_REPEAT (3 rounds of ours and llama.cpp
# alternating; medians reported, torch runs once), GEN_BENCH_TAGS (extra build tags), GEN_BENCH_7B=1 adds a 7B-shaped bf16 model (13.5 GB
# written to GEN_BENCH_DIR) run by ours only, to show its RSS and speed;
# NODE_LLAMA_CPP_DIR (default .cache/llamacpp: `npm i -E node-llama-cpp@3.21.1`
# there). llama.cpp or torch absent: their rows are skipped with a message.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
TH=${GEN_BENCH_THREADS:-2}
SHAPES=${GEN_BENCH_SHAPES:-110m 1b}
PRECS=${GEN_BENCH_PREC:-f32 16}
REPEAT=${GEN_BENCH_REPEAT:-3}
DIR=${GEN_BENCH_DIR:-$(mktemp -d /tmp/genbench.XXXXXX)}
KEEP=${GEN_BENCH_DIR:+1}
PY=/usr/bin/python3
TOK=../shared/data/llama-tokenizer.model
export NODE_LLAMA_CPP_DIR=${NODE_LLAMA_CPP_DIR:-$PWD/.cache/llamacpp}
export OPENBLAS_NUM_THREADS=$TH OMP_NUM_THREADS=$TH
cleanup() { [ -n "$KEEP" ] || rm -rf "$DIR"; }
trap cleanup EXIT
[ -f "$TOK" ] || { echo "generate bench: $TOK is absent (shared data): skipping"; exit 0; }
go build -tags "${GEN_BENCH_TAGS:-}" -o "$BIN/" ./cmd/generate ./cmd/trainer || exit 1
go build -o "$DIR/genllama" ./scripts/bench/genllama || exit 1
have_cpp=1
if ! command -v node >/dev/null || [ ! -f "$NODE_LLAMA_CPP_DIR/node_modules/node-llama-cpp/package.json" ]; then
  echo "llama.cpp reference absent (npm i -E node-llama-cpp@3.21.1 in $NODE_LLAMA_CPP_DIR): its rows are skipped"
  have_cpp=0
fi
have_torch=1
$PY -c 'import torch' 2>/dev/null || { echo "python3-torch absent: torch rows skipped"; have_torch=0; }

# run LABEL CMD...: runs CMD under /usr/bin/time -v, prints its JSON line
# with the peak RSS added (or nothing when it failed).
run() {
  local label=$1; shift
  local out err
  out=$(/usr/bin/time -v -o "$DIR/time.txt" "$@" 2>"$DIR/err.txt") || { echo "  $label: failed: $(tail -2 "$DIR/err.txt" | tr '\n' ' ')" >&2; return 1; }
  local rss
  rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$DIR/time.txt")
  echo "$out" | tail -1 | $PY -c "import json,sys; d=json.loads(sys.stdin.read()); d['rss_mb']=$rss/1024; d['label']='$label'; print(json.dumps(d))"
}

results=$DIR/results.jsonl
: > "$results"
for shape in $SHAPES; do
  case $shape in
    110m) geo="-dim 768 -ffn 2048 -layers 12 -heads 12 -kv 12 -tied"; NP=64; NN=64 ;;
    1b)   geo="-dim 2048 -ffn 5632 -layers 22 -heads 32 -kv 4"; NP=32; NN=32 ;;
    *) echo "unknown shape $shape"; continue ;;
  esac
  echo "--- $shape (prompt $NP tokens, $NN decoded, $TH threads)"
  $PY - "$NP" > "$DIR/prompt.json" <<'PYEOF'
import json, random, sys
random.seed(1)
n = int(sys.argv[1])
print(json.dumps([1] + [random.randrange(3, 32000) for _ in range(n - 1)]))
PYEOF
  for prec in $PRECS; do
    if [ "$prec" = f32 ]; then
      "$DIR/genllama" -out "$DIR/$shape-f32" $geo -dtype float32 -tokenizer "$TOK" || exit 1
      ours=("f32 $DIR/$shape-f32")
      ggufs="f32"; src=$DIR/$shape-f32
      torch_dt=float32
    else
      "$DIR/genllama" -out "$DIR/$shape-bf16" $geo -dtype bfloat16 -tokenizer "$TOK" || exit 1
      "$DIR/genllama" -out "$DIR/$shape-f16" $geo -dtype float16 -tokenizer "$TOK" || exit 1
      ours=("bf16 $DIR/$shape-bf16" "f16 $DIR/$shape-f16")
      ggufs="f16"; src=$DIR/$shape-f16
      torch_dt=bfloat16
    fi
    if [ $have_cpp = 1 ]; then
      "$BIN/trainer" export --quiet --type "$ggufs" --model "$src" -o "$DIR/$shape.gguf" || exit 1
      printf '{"threads": %s, "context": %s, "jobs": [{"ids": %s, "new": %s}]}' "$TH" $((NP + NN + 8)) "$(cat "$DIR/prompt.json")" $((NN + 1)) > "$DIR/jobs.json"
    fi
    # ours and llama.cpp alternate, REPEAT rounds; the summary takes medians
    # (this machine's memory bandwidth drifts by 10-20% between runs)
    for ((rep = 1; rep <= REPEAT; rep++)); do
      for o in "${ours[@]}"; do
        set -- $o
        run "$shape $1 ours" "$BIN/generate" bench --model "$2" --threads "$TH" --prompt-tokens "$NP" --new-tokens "$NN" >> "$results"
      done
      if [ $have_cpp = 1 ]; then
        # prefill_s includes sampling the first token; decode_s covers NN tokens
        run "$shape $ggufs llama.cpp" node scripts/llamacpp/run.mjs "$DIR/$shape.gguf" "$DIR/jobs.json" \
          | $PY -c "import json,sys; d=json.loads(sys.stdin.read()); d['prefill_tok_s']=$NP/d['prefill_s']; d['decode_tok_s']=$NN/d['decode_s']; del d['ids']; del d['greedy']; print(json.dumps(d))" >> "$results"
      fi
    done
    rm -f "$DIR/$shape.gguf"
    if [ $have_torch = 1 ]; then
      tsrc=$DIR/$shape-f32; [ "$prec" = f32 ] || tsrc=$DIR/$shape-bf16
      run "$shape $torch_dt torch" $PY scripts/bench/generate_torch.py "$tsrc" --threads "$TH" --prompt "$NP" --new "$NN" --dtype "$torch_dt" >> "$results"
    fi
    rm -rf "$DIR/$shape-f32" "$DIR/$shape-bf16" "$DIR/$shape-f16"
  done
done
if [ "${GEN_BENCH_7B:-0}" = 1 ]; then
  echo "--- 7b bf16 (ours only; needs 13.5 GB of disk in $DIR)"
  "$DIR/genllama" -out "$DIR/7b-bf16" -dim 4096 -ffn 11008 -layers 32 -heads 32 -kv 32 -dtype bfloat16 -tokenizer "$TOK" || exit 1
  run "7b bf16 ours" "$BIN/generate" bench --model "$DIR/7b-bf16" --threads "$TH" --prompt-tokens 32 --new-tokens 8 >> "$results"
  rm -rf "$DIR/7b-bf16"
fi
$PY - "$results" "$REPEAT" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r["label"], []).append(r)
print("%-22s %12s %12s %10s %s" % ("model / impl", "prefill t/s", "decode t/s", "peak RSS", "decode t/s of each round"))
med = {}
for label, rs in by.items():
    d = statistics.median(r["decode_tok_s"] for r in rs)
    p = statistics.median(r["prefill_tok_s"] for r in rs)
    med[label] = d
    print("%-22s %12.1f %12.2f %8.0f MB %s" % (label, p, d, max(r["rss_mb"] for r in rs), " ".join("%.2f" % r["decode_tok_s"] for r in rs)))
for label, d in med.items():
    shape, prec = label.split()[:2]
    if label.endswith("ours"):
        ref = med.get("%s %s llama.cpp" % (shape, "f32" if prec == "f32" else "f16"))
        if ref:
            print("decode ours/llama.cpp %s %s: %.2fx (medians of %s rounds)" % (shape, prec, d / ref, sys.argv[2]))
PYEOF
