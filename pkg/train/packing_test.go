package train

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/llama"
)

// gradsAndLoss runs the model over batches with scale 1 and returns the
// summed loss, the target count and a copy of the gradients.
func gradsAndLoss(t *testing.T, m *llama.Model, bs []*llama.Batch) (float64, int, [][]float32) {
	t.Helper()
	m.ZeroGrad()
	var sum float64
	n := 0
	for _, b := range bs {
		s, k, err := m.ForwardBackward(b, 1)
		if err != nil {
			t.Fatal(err)
		}
		sum += s
		n += k
	}
	var g [][]float32
	for _, p := range m.Params() {
		g = append(g, m.ReadGrad(p))
	}
	return sum, n, g
}

// TestPackedLossEqualsPerExampleLoss: with the real model, packing examples
// into shared rows (and padding them with --no-packing) gives the same loss
// and gradients as running each example alone: no attention crosses
// examples and positions restart per example.
func TestPackedLossEqualsPerExampleLoss(t *testing.T) {
	dir := t.TempDir()
	fp := makeModel(t, filepath.Join(dir, "base"), testVocab)
	writeStream(t, filepath.Join(dir, "t.bin"), testVocab, fp, 9, 5)
	d, err := OpenDataset(filepath.Join(dir, "t.bin"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := llama.Load(filepath.Join(dir, "base"))
	if err != nil {
		t.Fatal(err)
	}
	idx := []int{0, 1, 2, 3, 4, 5, 6, 7, 8}
	var alone []*llama.Batch
	for _, e := range idx {
		alone = append(alone, BatchConfig{SeqLen: 64, MicroBatch: 1}.MicroBatches(d.Examples, []int{e})...)
	}
	refSum, refN, refG := gradsAndLoss(t, m, alone)
	for _, c := range []BatchConfig{
		{SeqLen: 24, Packing: true, MicroBatch: 2},
		{SeqLen: 64, Packing: true, MicroBatch: 8},
		{SeqLen: 64, Packing: false, MicroBatch: 4},
	} {
		bs := c.MicroBatches(d.Examples, idx)
		if c.Packing {
			rowsWithTwo := 0
			for _, r := range c.Rows(d.Examples, idx) {
				if len(r) > 1 {
					rowsWithTwo++
				}
			}
			if rowsWithTwo == 0 {
				t.Fatalf("%+v: no row holds two examples; the test would not test packing", c)
			}
		}
		sum, n, g := gradsAndLoss(t, m, bs)
		if n != refN || !(math.Abs(sum-refSum) <= 1e-5*refSum) {
			t.Errorf("%+v: loss sum %v over %d targets, per example %v over %d", c, sum, n, refSum, refN)
		}
		for i, p := range m.Params() {
			scale := maxAbs(refG[i])
			for j := range g[i] {
				if !(math.Abs(float64(g[i][j]-refG[i][j])) <= 1e-4*scale) {
					t.Fatalf("%+v: grad %s[%d] = %v, per example %v", c, p.Name, j, g[i][j], refG[i][j])
				}
			}
		}
	}
}
