#!/usr/bin/env bash
# summary.sh RUN TOKENIZER: writes the markdown summary of `make alpaca` on
# stdout (scripts/alpaca/summary).
set -euo pipefail
exec ${GO:-go} run ./scripts/alpaca/summary "$1"
