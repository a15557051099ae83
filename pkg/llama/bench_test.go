package llama

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/backend"
)

// benchConfigs are the shapes scripts/bench/trainer.sh compares with
// PyTorch (scripts/bench/llama_step_torch.py uses the same).
var benchConfigs = []struct {
	name    string
	cfg     Config
	B, T    int
	example int // packed example length
}{
	{"s1-d256-l4-v8k", benchCfg(256, 688, 4, 8, 8, 8000), 4, 128, 64},
	{"s2-d512-l4-gqa-v32k", benchCfg(512, 1376, 4, 8, 4, 32000), 2, 256, 128},
	{"m19-d256-l4-gqa-v32k", benchCfg(256, 688, 4, 8, 4, 32000), 8, 256, 128},
	{"m110-d768-l12-gqa-v32k", benchCfg(768, 1536, 12, 12, 4, 32000), 4, 512, 256},
}

func benchCfg(d, i, l, h, kv, v int) Config {
	c := DefaultConfig()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = d, i, l
	c.NumAttentionHeads, c.NumKeyValueHeads, c.VocabSize = h, kv, v
	return c
}

// benchBatch packs examples of length ex into B rows of T, with the first
// quarter of each example masked as "prompt" (deterministic).
func benchBatch(V, B, T, ex int) *Batch {
	r := rand.New(rand.NewPCG(1, 2))
	b := &Batch{B: B, T: T}
	N := B * T
	b.Tokens, b.Pos, b.Seg, b.Target = make([]int32, N), make([]int32, N), make([]int32, N), make([]int32, N)
	for i := 0; i < N; i++ {
		t := i % T
		b.Tokens[i] = int32(r.IntN(V))
		b.Pos[i] = int32(t % ex)
		b.Seg[i] = int32(t / ex)
	}
	for i := 0; i < N; i++ {
		t := i % T
		if t%ex >= ex/4 && t%ex < ex-1 {
			b.Target[i] = b.Tokens[i+1]
		} else {
			b.Target[i] = -1
		}
	}
	return b
}

// BenchmarkStep times one ForwardBackward (+ZeroGrad) per op; with
// BENCH_OPT=1 the whole trainer step: also the global gradient norm,
// clipping to 1 and an AdamW update over the arenas (what pkg/train runs).
// BENCH_CONFIG=name limits it to one config.
func BenchmarkStep(b *testing.B) {
	for _, bc := range benchConfigs {
		if s := os.Getenv("BENCH_CONFIG"); s != "" && s != bc.name {
			continue
		}
		b.Run(bc.name, func(b *testing.B) {
			m := New(bc.cfg, 1)
			batch := benchBatch(bc.cfg.VocabSize, bc.B, bc.T, bc.example)
			opt := os.Getenv("BENCH_OPT") == "1"
			be := m.Backend()
			var spans []backend.Span
			var mom, vel backend.Buffer
			if opt {
				for _, p := range m.Params() {
					spans = append(spans, p.Span(len(p.Shape) > 1))
				}
				mom, _ = be.Alloc(backend.F32, m.ArenaLen())
				vel, _ = be.Alloc(backend.F32, m.ArenaLen())
			}
			step := int64(0)
			run := func() {
				m.ZeroGrad()
				if _, _, err := m.ForwardBackward(batch, 1); err != nil { // summed loss, like the torch script
					b.Fatal(err)
				}
				if opt {
					norm := math.Sqrt(be.SumSquares(m.Grads(), spans))
					if c := 1 / (norm + 1e-6); c < 1 {
						be.Scale(m.Grads(), float32(c))
					}
					step++
					be.AdamW(m.Weights(), m.Grads(), mom, vel, spans, backend.AdamW{LR: 1e-5, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: step})
				}
			}
			run()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run()
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(float64(bc.B*bc.T)/sec, "tok/s")
			b.ReportMetric(sec*1000, "ms/step")
		})
	}
}

// BenchmarkDecode times the inference path on the m19 shapes: a 128-token
// prefill (Feed), one decoding step of one sequence, and one FeedBatch step
// of 8 sequences, per op.
func BenchmarkDecode(b *testing.B) {
	cfg := benchCfg(256, 688, 4, 8, 4, 32000)
	m := New(cfg, 1)
	toks := make([]int32, 128)
	for i := range toks {
		toks[i] = int32((i*131 + 7) % cfg.VocabSize)
	}
	caches := make([]*KVCache, 8)
	for i := range caches {
		caches[i], _ = m.NewKVCache(cfg.MaxPositionEmbeddings)
	}
	step := make([]int32, len(caches))
	b.Run("prefill128", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			caches[0].Truncate(0)
			if _, err := m.Feed(caches[0], toks); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(toks))/b.Elapsed().Seconds(), "tok/s")
	})
	b.Run("single", func(b *testing.B) {
		c := caches[0]
		c.Truncate(0)
		m.Feed(c, toks[:64])
		for i := 0; i < b.N; i++ {
			if c.Len() == c.Cap() {
				c.Truncate(64)
			}
			if _, err := m.FeedBatch(caches[:1], step[:1]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
	})
	b.Run("batch8", func(b *testing.B) {
		for _, c := range caches {
			c.Truncate(0)
			m.Feed(c, toks[:64])
		}
		for i := 0; i < b.N; i++ {
			if caches[0].Len() == caches[0].Cap() {
				for _, c := range caches {
					c.Truncate(64)
				}
			}
			if _, err := m.FeedBatch(caches, step); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(caches))/b.Elapsed().Seconds(), "tok/s")
	})
}

// BenchmarkLoRAStep is BenchmarkStep's whole trainer step (BENCH_OPT=1)
// with a LoRA adapter (r 8, alpha 16, dropout 0.05 on q_proj and v_proj,
// alpaca-lora's defaults): a frozen fp32 base without a gradient arena,
// clipping and AdamW over the adapter's arenas only. BENCH_CONFIG=name
// limits it to one config.
func BenchmarkLoRAStep(b *testing.B) {
	for _, bc := range benchConfigs {
		if s := os.Getenv("BENCH_CONFIG"); s != "" && s != bc.name {
			continue
		}
		b.Run(bc.name, func(b *testing.B) {
			m := newInit(bc.cfg, 1, nil, false)
			l, err := m.AddLoRA(DefaultLoRAConfig(), 1)
			if err != nil {
				b.Fatal(err)
			}
			batch := benchBatch(bc.cfg.VocabSize, bc.B, bc.T, bc.example)
			be := m.Backend()
			var spans []backend.Span
			for _, p := range l.Params() {
				spans = append(spans, p.Span(true))
			}
			mom, _ := be.Alloc(backend.F32, l.ArenaLen())
			vel, _ := be.Alloc(backend.F32, l.ArenaLen())
			step := int64(0)
			run := func() {
				l.ZeroGrad()
				if _, _, err := m.ForwardBackward(batch, 1/float32(bc.B*bc.T)); err != nil {
					b.Fatal(err)
				}
				norm := math.Sqrt(be.SumSquares(l.Grads(), spans))
				if c := 1 / (norm + 1e-6); c < 1 {
					be.Scale(l.Grads(), float32(c))
				}
				step++
				be.AdamW(l.Weights(), l.Grads(), mom, vel, spans, backend.AdamW{LR: 3e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: step})
			}
			run()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run()
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(float64(bc.B*bc.T)/sec, "tok/s")
			b.ReportMetric(sec*1000, "ms/step")
		})
	}
}
