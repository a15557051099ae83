# Alpaca in Go: see README.md. Every target works on a fresh Debian machine with Go.
GO      ?= go
BIN     ?= bin
CMDS    := $(notdir $(wildcard cmd/*))

.PHONY: all build demo test bench lint fuzz fixtures clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

# Runs the whole pipeline that exists so far on built-in sample data.
demo: build
	@BIN=$(BIN) bash scripts/demo.sh

# The test suite (what .ci/run calls).
test:
	$(GO) vet ./...
	$(GO) test -count=1 ./...

# Our binaries beside the reference tools, in the same run, with ratios.
bench: build
	@BIN=$(BIN) bash scripts/bench.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Short fuzzing pass over every Fuzz target (FUZZTIME=30s by default).
FUZZTIME ?= 30s
fuzz:
	@bash scripts/fuzz.sh $(FUZZTIME)

# Regenerates the committed test fixtures with the reference tools
# (Debian python3-torch, python3-numpy, python3-sentencepiece, sentencepiece).
fixtures:
	@bash scripts/fixtures/all.sh

clean:
	rm -rf $(BIN)

# The whole recipe end to end under RUN (default out/alpaca): see docs/alpaca.md.
include mk/alpaca.mk
