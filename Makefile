# Alpaca in Go: see README.md. Every target works on a fresh Debian machine with Go.
GO      ?= go
BIN     ?= bin
CMDS    := $(notdir $(wildcard cmd/*))

.PHONY: all build demo test bench lint fuzz fixtures clean cuda cuda-check cuda-emu

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

# The CUDA backend's library (pkg/backend/cuda/csrc -> $(BIN)/libalpaca_cuda.so,
# beside the binaries, where `trainer --device cuda` looks first). Needs nvcc
# (CUDA 11.8 or newer) and cuBLAS; Go builds never need either.
NVCC      ?= nvcc
CUDA_ARCH ?= 80 90
CUDA_SRC  := pkg/backend/cuda/csrc
CUDA_CU   := $(wildcard $(CUDA_SRC)/*.cu)
CUDA_DEPS := $(CUDA_CU) $(wildcard $(CUDA_SRC)/*.h $(CUDA_SRC)/*.cuh)
CUDA_GENCODE := $(foreach a,$(CUDA_ARCH),-gencode arch=compute_$(a),code=sm_$(a)) \
	-gencode arch=compute_$(lastword $(CUDA_ARCH)),code=compute_$(lastword $(CUDA_ARCH))
NVCCFLAGS ?= -O3 -std=c++17 -lineinfo
CUDA_FLAGS := $(NVCCFLAGS) $(CUDA_GENCODE) -Xcompiler -fPIC -shared -lcublas

cuda: $(BIN)/libalpaca_cuda.so

$(BIN)/libalpaca_cuda.so: $(CUDA_DEPS)
	@mkdir -p $(BIN)
	$(NVCC) $(CUDA_FLAGS) -o $@.tmp $(CUDA_CU) && mv $@.tmp $@

# Compiles and links the CUDA sources for every CUDA_ARCH into a temporary
# directory (no GPU needed, nothing is run), and checks that the C header is
# plain C.
cuda-check:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(CC) -fsyntax-only -Wall -Werror -x c $(CUDA_SRC)/alpaca_cuda.h && \
	$(NVCC) $(CUDA_FLAGS) -Werror all-warnings -o $$tmp/libalpaca_cuda.so $(CUDA_CU) && \
	echo "cuda-check: $(CUDA_CU) compiled and linked for sm_$(CUDA_ARCH) ($$($(NVCC) --version | tail -1))"

# The same CUDA sources built for the host by $(CXX) against a CPU emulation
# of the CUDA subset they use (csrc/emu/emulate.h: kernels run as threads,
# cuBLAS as loops), then the GPU tests of pkg/backend/cuda run through it
# against the CPU backend. No GPU or nvcc needed; slow (minutes), and it
# checks the kernels' logic, not their speed or nvcc's code.
CXX_EMU ?= $(CXX)
cuda-emu:
	@mkdir -p $(BIN)
	$(CXX_EMU) -std=c++20 -O1 -ffp-contract=off -fPIC -shared -pthread -DAC_EMULATE -I$(CUDA_SRC) \
		-x c++ $(CUDA_CU) -o $(BIN)/libalpaca_cuda_emu.so
	ALPACA_CUDA_LIB=$(abspath $(BIN))/libalpaca_cuda_emu.so CGO_ENABLED=1 $(GO) test -count=1 -timeout 30m ./pkg/backend/cuda

clean:
	rm -rf $(BIN)

# The whole recipe end to end under RUN (default out/alpaca): see docs/alpaca.md.
include mk/alpaca.mk
