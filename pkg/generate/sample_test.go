package generate

import (
	"math"
	"slices"
	"testing"
)

func softmax(x []float64, T float64) []float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, v)
	}
	p := make([]float64, len(x))
	s := 0.0
	for i, v := range x {
		p[i] = math.Exp((v - mx) / T)
		s += p[i]
	}
	for i := range p {
		p[i] /= s
	}
	return p
}

// freqs draws n tokens and returns their frequencies.
func freqs(p SampleParams, logits []float32, n int) []float64 {
	s := NewSampler(p, nil)
	f := make([]float64, len(logits))
	buf := make([]float32, len(logits))
	for i := 0; i < n; i++ {
		copy(buf, logits)
		f[s.Sample(buf)]++
	}
	for i := range f {
		f[i] /= float64(n)
	}
	return f
}

func checkFreqs(t *testing.T, name string, got, want []float64) {
	t.Helper()
	for i := range want {
		if d := math.Abs(got[i] - want[i]); !(d <= 0.015) {
			t.Errorf("%s: token %d frequency %.4f, want %.4f", name, i, got[i], want[i])
		}
	}
}

func TestSamplerDistributions(t *testing.T) {
	logits := []float32{0, 1, 2, -1, 0.5}
	l64 := []float64{0, 1, 2, -1, 0.5}
	const n = 40000
	base := SampleParams{Temperature: 1, TopP: 1, RepetitionPenalty: 1, Seed: 9}
	checkFreqs(t, "T=1", freqs(base, logits, n), softmax(l64, 1))
	p := base
	p.Temperature = 0.5
	checkFreqs(t, "T=0.5", freqs(p, logits, n), softmax(l64, 0.5))
	// top-k 2: tokens 2 and 1 only, renormalised
	p = base
	p.TopK = 2
	e1, e2 := math.Exp(1), math.Exp(2)
	checkFreqs(t, "top-k 2", freqs(p, logits, n), []float64{0, e1 / (e1 + e2), e2 / (e1 + e2), 0, 0})
	// top-p: sorted probs; keep the smallest prefix reaching P
	sm := softmax(l64, 1) // order: 2, 1, 4, 0, 3
	p = base
	p.TopP = sm[2] + sm[1] - 1e-9
	checkFreqs(t, "top-p", freqs(p, logits, n), []float64{0, sm[1] / (sm[1] + sm[2]), sm[2] / (sm[1] + sm[2]), 0, 0})
}

func TestSamplerGreedyAndSeed(t *testing.T) {
	logits := []float32{0.1, 3, 3, -2}
	g := NewSampler(DefaultSampleParams(), nil)
	if tok := g.Sample(append([]float32(nil), logits...)); tok != 1 {
		t.Errorf("greedy picked %d, want the first maximum 1", tok)
	}
	if tok := Argmax([]float32{float32(math.NaN()), 1, 2}); tok != 2 {
		t.Errorf("argmax with NaN picked %d", tok)
	}
	draw := func(seed uint64) []int32 {
		s := NewSampler(SampleParams{Temperature: 1, TopP: 1, RepetitionPenalty: 1, Seed: seed}, nil)
		var out []int32
		for i := 0; i < 50; i++ {
			out = append(out, s.Sample([]float32{0, 0, 0, 0, 0, 0, 0, 0}))
		}
		return out
	}
	a, b, c := draw(1), draw(1), draw(2)
	if !slices.Equal(a, b) {
		t.Error("same seed, different draws")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds, same 50 draws")
	}
}

// TestRepetitionPenalty follows Hugging Face's rule: a seen token's logit
// is divided by the penalty when positive, multiplied when negative.
func TestRepetitionPenalty(t *testing.T) {
	p := DefaultSampleParams()
	p.RepetitionPenalty = 2
	s := NewSampler(p, []int32{0, 1})
	l := []float32{2, -1, 0.5}
	if tok := s.Sample(l); tok != 0 || l[0] != 1 || l[1] != -2 || l[2] != 0.5 {
		t.Errorf("penalty 2: token %d logits %v", tok, l)
	}
	p.RepetitionPenalty = 5
	s = NewSampler(p, []int32{0, 1})
	if tok := s.Sample([]float32{2, -1, 0.5}); tok != 2 {
		t.Errorf("penalty 5: token %d, want 2", tok)
	}
	// the sampled token counts as seen from then on
	if tok := s.Sample([]float32{0.5, -1, 0.45}); tok != 0 { // 0.1 vs 0.09
		t.Errorf("after sampling 2, token %d, want 0", tok)
	}
	if err := (SampleParams{Temperature: -1, TopP: 1, RepetitionPenalty: 1}).Check(); err == nil {
		t.Error("negative temperature accepted")
	}
	if err := (SampleParams{Temperature: 1, TopP: math.NaN(), RepetitionPenalty: 1}).Check(); err == nil {
		t.Error("NaN top_p accepted")
	}
}
