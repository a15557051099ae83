#!/usr/bin/env bash
# Prepares what scripts/device/cuda.sh needs on the GPU machine, which has
# nvcc, PyTorch and transformers but no Go and no network, and receives only
# the working tree (plus up to 64 MiB of carried ignored paths):
#
#   .device/cuda.test        the GPU tests + step benchmark + logits dump (go test -c ./pkg/backend/cuda)
#   .device/bin/trainer      the trainer (cgo: it dlopens libalpaca_cuda.so)
#   .device/data/tokenizer.model, tokens.bin
#                            the LLaMA tokenizer and the first $N Alpaca examples
#                            (promptfmt | tokenize) for the short fine-tune
#
# Run here, then hand the device tool carry: [".device"]. The CUDA sources
# travel with the tree and are compiled there (nvcc), not here.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-2000}
SHARED=${SHARED:-../shared/data}
D=.device
rm -rf "$D"
mkdir -p "$D/bin" "$D/data"
export CGO_ENABLED=1 # the loader needs cgo (dlopen)
go build -trimpath -ldflags=-s -o "$D/bin/" ./cmd/trainer ./cmd/promptfmt ./cmd/tokenize
go test -c -trimpath -ldflags=-s -o "$D/cuda.test" ./pkg/backend/cuda
if [ -s "$SHARED/alpaca_data.json" ] && [ -s "$SHARED/llama-tokenizer.model" ]; then
  cp "$SHARED/llama-tokenizer.model" "$D/data/tokenizer.model"
  /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))[:int(sys.argv[2])]; [print(json.dumps(r)) for r in d]' \
    "$SHARED/alpaca_data.json" "$N" > "$D/data/alpaca.jsonl"
  "$D/bin/promptfmt" --quiet "$D/data/alpaca.jsonl" |
    "$D/bin/tokenize" --quiet --model "$D/data/tokenizer.model" --max-len 512 -o "$D/data/tokens.bin"
  rm "$D/data/alpaca.jsonl"
else
  echo "build-carry: $SHARED/alpaca_data.json or llama-tokenizer.model absent: no fine-tune data" >&2
fi
rm -f "$D/bin/promptfmt" "$D/bin/tokenize"
du -sh "$D" "$D"/* "$D"/*/* >&2
total=$(du -sb "$D" | cut -f1)
if [ "$total" -gt $((60 << 20)) ]; then
  echo "build-carry: $D is $total bytes, over the 64 MiB the device tool carries" >&2
  exit 1
fi
