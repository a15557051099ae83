package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alpaca-go/alpaca/internal/testutil"
	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/alpaca-go/alpaca/pkg/backend/cpu"
	"github.com/alpaca-go/alpaca/pkg/llama"
)

// packedBatch is B rows of T positions packed with examples of the given
// lengths (then padding), the first quarter of each example a masked prompt.
func packedBatch(r *rand.Rand, B, T, vocab int, lens ...int) *llama.Batch {
	b := &llama.Batch{B: B, T: T}
	N := B * T
	b.Tokens, b.Pos, b.Seg, b.Target = make([]int32, N), make([]int32, N), make([]int32, N), make([]int32, N)
	for row := 0; row < B; row++ {
		i := 0
		for id, L := range lens {
			for j := 0; j < L && i < T; j++ {
				o := row*T + i
				b.Tokens[o] = int32(r.IntN(vocab))
				b.Pos[o], b.Seg[o] = int32(j), int32(id)
				b.Target[o] = -1
				if j >= L/4 && j+1 < L {
					b.Target[o] = int32(r.IntN(vocab))
				}
				i++
			}
		}
		for ; i < T; i++ {
			o := row*T + i
			b.Seg[o], b.Target[o] = -1, -1
		}
	}
	return b
}

// TestStepMatchesCPU: a whole forward+backward of tiny models (MHA and GQA)
// on the GPU gives the CPU's loss and every parameter's gradient; then one
// clip + AdamW step over the arenas gives the CPU's weights.
func TestStepMatchesCPU(t *testing.T) {
	g := gpu(t)
	c := cpu.New(2)
	for _, gqa := range []bool{false, true} {
		cfg, err := llama.Preset("tiny", 300)
		if err != nil {
			t.Fatal(err)
		}
		if gqa {
			cfg.NumAttentionHeads, cfg.NumKeyValueHeads = 4, 2
		}
		cfg.InitializerRange = 0.1
		mc := llama.NewOn(cfg, 7, c)
		mg := llama.NewOn(cfg, 7, g)
		b := packedBatch(rand.New(rand.NewPCG(3, 4)), 2, 96, cfg.VocabSize, 40, 33, 50)
		scale := float32(1.0 / 100)
		lc, nc, err := mc.ForwardBackward(b, scale)
		if err != nil {
			t.Fatal(err)
		}
		lg, ng, err := mg.ForwardBackward(b, scale)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("gqa=%v", gqa)
		if nc != ng {
			t.Errorf("%s: %d targets, CPU %d", name, ng, nc)
		}
		tolLoss, tolGrad := 1e-5, 1e-4
		if g.fast() { // TF32 / bf16 MatMul inputs
			tolLoss, tolGrad = 1e-2, 5e-2
		}
		testutil.CloseScalar(t, name+" loss", lg, lc, 1, tolLoss)
		t.Logf("%s: loss sum GPU %.9g CPU %.9g over %d targets", name, lg, lc, nc)
		for _, p := range mc.Params() {
			want := mc.ReadGrad(p)
			got := mg.ReadGrad(mg.Param(p.Name))
			// normwise: the gradient's error relative to its largest entry
			testutil.CloseRel(t, name+" grad "+p.Name, got, want, tolGrad)
		}
		// one optimizer step over the arenas, as the trainer does
		var spans []backend.Span
		for _, p := range mc.Params() {
			spans = append(spans, p.Span(len(p.Shape) == 2))
		}
		nC, nG := c.SumSquares(mc.Grads(), spans), g.SumSquares(mg.Grads(), spans)
		testutil.CloseScalar(t, name+" grad norm²", nG, nC, 0, tolGrad)
		n := mc.ArenaLen()
		// AdamW's first step is about lr*sign(g): gradients that differ in
		// rounding could flip the sign of tiny entries, so the update runs
		// on the CPU's gradients on both sides (the optimizer is compared,
		// not the gradients again).
		gh := make([]float32, n)
		c.Download(gh, mc.Grads())
		g.Upload(mg.Grads(), gh)
		mC, vC, _ := allocMV(t, c, n)
		mG, vG, _ := allocMV(t, g, n)
		p := backend.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, Step: 1}
		c.AdamW(mc.Weights(), mc.Grads(), mC, vC, spans, p)
		g.AdamW(mg.Weights(), mg.Grads(), mG, vG, spans, p)
		for _, p := range mc.Params() {
			testutil.CloseRel(t, name+" updated "+p.Name, mg.ReadWeights(mg.Param(p.Name)), mc.ReadWeights(p), 1e-6)
		}
	}
}

func allocMV(t testing.TB, be backend.Backend, n int) (m, v backend.Buffer, err error) {
	if m, err = be.Alloc(backend.F32, n); err != nil {
		t.Fatal(err)
	}
	if v, err = be.Alloc(backend.F32, n); err != nil {
		t.Fatal(err)
	}
	return m, v, nil
}

// TestBenchStep (ALPACA_CUDA_BENCH=name,...) times training steps on the GPU
// and prints tokens/s and MFU. Configs:
//
//	7b-L<n>  LLaMA-7B layers (hidden 4096, MLP 11008, 32 heads, vocab 32000), n of them
//	1b       TinyLlama-1.1B shapes (hidden 2048, MLP 5632, 22 layers, 32/4 heads)
//
// ALPACA_CUDA_BENCH_TOKENS sets B×T (default 8×512), ALPACA_CUDA_PEAK_TFLOPS
// the peak for MFU (default 989, H100/H200 dense bf16). FLOPs per token are
// 6×(matmul weights) + 12×layers×T×hidden/2 (causal attention), the usual
// MFU accounting (PaLM appendix B), counting only causal half of attention.
func TestBenchStep(t *testing.T) {
	spec := os.Getenv("ALPACA_CUDA_BENCH")
	if spec == "" {
		t.Skip("set ALPACA_CUDA_BENCH=7b-L8,1b to run the GPU step benchmark")
	}
	g := gpu(t)
	B, T := 8, 512
	if s := os.Getenv("ALPACA_CUDA_BENCH_TOKENS"); s != "" {
		fmt.Sscanf(s, "%dx%d", &B, &T)
	}
	peak := 989.0
	if s := os.Getenv("ALPACA_CUDA_PEAK_TFLOPS"); s != "" {
		peak, _ = strconv.ParseFloat(s, 64)
	}
	steps := 5
	fmt.Printf("%-10s %-28s %8s %10s %9s %7s %9s\n", "config", "backend", "params", "ms/step", "tok/s", "MFU%", "GiB used")
	for _, name := range strings.Split(spec, ",") {
		cfg := llama.DefaultConfig()
		switch {
		case strings.HasPrefix(name, "7b-L"):
			L, err := strconv.Atoi(strings.TrimPrefix(name, "7b-L"))
			if err != nil {
				t.Fatalf("bench config %q", name)
			}
			cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers = 4096, 11008, L
			cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.VocabSize = 32, 32, 32000
		case name == "1b":
			cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers = 2048, 5632, 22
			cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.VocabSize = 32, 4, 32000
		default:
			t.Fatalf("bench config %q (want 7b-L<n> or 1b)", name)
		}
		cfg.MaxPositionEmbeddings = max(T, 2048)
		m := llama.NewOn(cfg, 1, g)
		b := packedBatch(rand.New(rand.NewPCG(1, 1)), B, T, cfg.VocabSize, T/4, T/4, T/4, T/4)
		for i := range b.Target { // all positions predict (like HF's full-sequence loss)
			if b.Seg[i] >= 0 && b.Target[i] < 0 {
				b.Target[i] = b.Tokens[i]
			}
		}
		var spans []backend.Span
		for _, p := range m.Params() {
			spans = append(spans, p.Span(len(p.Shape) == 2))
		}
		mm, vv, _ := allocMV(t, g, m.ArenaLen())
		step := func(k int64) {
			m.ZeroGrad()
			if _, _, err := m.ForwardBackward(b, 1/float32(B*T)); err != nil {
				t.Fatal(err)
			}
			n2 := g.SumSquares(m.Grads(), spans)
			if s := 1 / math.Sqrt(n2); s < 1 {
				g.Scale(m.Grads(), float32(s))
			}
			g.AdamW(m.Weights(), m.Grads(), mm, vv, spans, backend.AdamW{LR: 1e-5, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: k})
		}
		step(1) // warm-up: allocates activations
		g.Sync()
		t0 := time.Now()
		for k := 0; k < steps; k++ {
			step(int64(k + 2))
		}
		g.Sync()
		dt := time.Since(t0).Seconds() / float64(steps)
		P := float64(m.NumParams())
		matP := P - float64(cfg.VocabSize*cfg.HiddenSize) // embedding lookup is not a matmul
		if cfg.TieWordEmbeddings {
			matP += float64(cfg.VocabSize * cfg.HiddenSize)
		}
		flopsTok := 6*matP + 6*float64(cfg.NumHiddenLayers)*float64(T)*float64(cfg.HiddenSize)
		tok := float64(B * T)
		mfu := flopsTok * tok / dt / (peak * 1e12) * 100
		free, total, _ := g.MemInfo()
		fmt.Printf("%-10s %-28s %7.0fM %10.1f %9.0f %7.2f %9.1f\n", name, shortName(g.Name()), P/1e6, dt*1e3, tok/dt, mfu, float64(total-free)/(1<<30))
		m.ReleaseBuffers()
		g.Free(mm)
		g.Free(vv)
		g.Free(m.Weights())
		g.Free(m.Grads())
	}
}

func shortName(s string) string {
	if i := strings.Index(s, "cuBLAS"); i >= 0 {
		return "go+cuda " + strings.TrimSuffix(s[i+len("cuBLAS"):], ")")
	}
	return s
}

// TestDumpLogits (ALPACA_CUDA_LOGITS_DIR=model dir, ALPACA_CUDA_LOGITS_OUT=
// file) loads a model directory on the GPU and on the CPU, runs a fixed
// token sequence and writes the GPU logits (little-endian float32, [T, V])
// with the token ids beside them (OUT.tokens, one per line), for
// scripts/device/hf_logits.py to compare with transformers.
func TestDumpLogits(t *testing.T) {
	dir, out := os.Getenv("ALPACA_CUDA_LOGITS_DIR"), os.Getenv("ALPACA_CUDA_LOGITS_OUT")
	if dir == "" || out == "" {
		t.Skip("set ALPACA_CUDA_LOGITS_DIR and ALPACA_CUDA_LOGITS_OUT to dump logits")
	}
	g := gpu(t)
	mg, err := llama.LoadOn(dir, g)
	if err != nil {
		t.Fatal(err)
	}
	mc, err := llama.LoadOn(dir, cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	T := 24
	b := &llama.Batch{B: 1, T: T, Tokens: make([]int32, T), Pos: make([]int32, T), Seg: make([]int32, T)}
	for i := range b.Tokens {
		b.Tokens[i] = int32((i*7919 + 1) % mg.Config.VocabSize)
		b.Pos[i] = int32(i)
	}
	lg, lc := mg.Forward(b), mc.Forward(b)
	testutil.CloseRel(t, "GPU vs CPU logits", lg, lc, 1e-4)
	buf := make([]byte, 4*len(lg))
	for i, v := range lg {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	if err := os.WriteFile(out, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, tk := range b.Tokens {
		fmt.Fprintln(&sb, tk)
	}
	if err := os.WriteFile(out+".tokens", []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
