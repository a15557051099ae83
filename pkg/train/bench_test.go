package train

import (
	"testing"

	"github.com/alpaca-go/alpaca/pkg/backend/cpu"
	"github.com/alpaca-go/alpaca/pkg/llama"
	"github.com/alpaca-go/alpaca/pkg/tokstream"
)

// BenchmarkAdamW: one AdamW update + clipping of 4M parameters (the loop's
// own cost per step for the tiny preset with a 32000 vocabulary).
func BenchmarkAdamW(b *testing.B) {
	n := 4 << 20
	be := cpu.New(0)
	w, g := make([]float32, n), make([]float32, n)
	for i := range g {
		g[i] = float32(i%7) * 1e-3
	}
	ps := []*llama.Param{{Name: "w", Shape: []int{n}, N: n}}
	o, err := NewAdamW(be, ps, n, 0.9, 0.999, 1e-8, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(n) * 4)
	for i := 0; i < b.N; i++ {
		ClipGrads(be, cpu.Wrap(g), o.Spans, 1)
		o.Update(cpu.Wrap(w), cpu.Wrap(g), 1e-5)
	}
}

// BenchmarkTrainStepTiny: a whole step (batching, forward/backward, clip,
// AdamW) of the tiny preset, vocabulary 32000, 4 packed rows of 128 tokens.
func BenchmarkTrainStepTiny(b *testing.B) {
	cfg, err := llama.Preset("tiny", 32000)
	if err != nil {
		b.Fatal(err)
	}
	m := llama.New(cfg, 1)
	d := &Dataset{Name: "bench", Header: tokstream.Header{VocabSize: 32000}, Hash: "x"}
	for i := 0; i < 64; i++ {
		ex := tokstream.Example{}
		for j := 0; j < 128; j++ {
			ex.IDs = append(ex.IDs, int32((i*131+j*17)%32000))
			ex.Mask = append(ex.Mask, true)
		}
		d.Examples = append(d.Examples, ex)
	}
	c := DefaultConfig()
	c.Batch = BatchConfig{SeqLen: 128, Packing: true, BatchSize: 4, MicroBatch: 4, Shuffle: true}
	c.Epochs = 1000
	tr, err := New(c, m, d)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tr.TrainStep(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*512)/b.Elapsed().Seconds(), "tokens/s")
}
