package rouge

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"
)

// similarConfigs runs fn under every scan configuration this machine can
// run: each LCS kernel (AVX-512, AVX2, Go), the AVX-512 score and sum code
// on and off, and 256 or only 3 byte-coded frequent tokens (so most shared
// tokens go through the inverted index and the whole-text LCS).
func similarConfigs(t *testing.T, fn func(t *testing.T)) {
	kernels := []string{"go"}
	switch scanKernel {
	case "avx512":
		kernels = append(kernels, "avx2", "avx512")
	case "avx2":
		kernels = append(kernels, "avx2")
	}
	if scanKernel != "avx512" || !useAVX512 {
		t.Logf("this CPU has no AVX-512: the AVX-512 kernels are not tested here")
	}
	k0, a0, f0 := scanKernel, useAVX512, freqCodes
	defer func() { scanKernel, useAVX512, freqCodes = k0, a0, f0 }()
	for _, k := range kernels {
		for _, avx := range []bool{false, a0} {
			for _, fc := range []int{256, 3} {
				if avx && !a0 {
					continue
				}
				scanKernel, useAVX512, freqCodes = k, avx, fc
				t.Run(fmt.Sprintf("%s/avx512=%v/codes=%d", k, avx, fc), fn)
			}
		}
	}
}

// refSimilar is SimilarAt computed the plain way: every pool text scored
// with the dynamic-programming LCS, NumPy's mean of the dense scores, the k
// best by score (ties: the later text).
func refSimilar(pool []string, text string, k int) ([]Match, float64) {
	toks := make([][]string, len(pool))
	for j, p := range pool {
		toks[j] = Tokenize(p)
	}
	return refSimilarToks(toks, pool, text, k)
}

// refSimilarToks is refSimilar with the pool texts already tokenized.
func refSimilarToks(toks [][]string, pool []string, text string, k int) ([]Match, float64) {
	c := Tokenize(text)
	scores := make([]float64, len(pool))
	for j, p := range toks {
		scores[j] = refScore(p, c)
	}
	var top []Match
	used := make([]bool, len(scores))
	for len(top) < min(k, len(scores)) {
		bi := -1
		for j := len(scores) - 1; j >= 0; j-- {
			if !used[j] && (bi < 0 || scores[j] > scores[bi]) {
				bi = j
			}
		}
		used[bi] = true
		top = append(top, Match{Text: pool[bi], Score: scores[bi], Index: bi})
	}
	return top, Mean(scores)
}

// TestSimilarBatchExact checks SimilarBatch (groups of 1 to 11 texts, uptos
// far apart or equal, texts from the pool or new, some longer than 64
// tokens, pool texts of 128 tokens and more) against refSimilar bit for bit,
// under every scan configuration.
func TestSimilarBatchExact(t *testing.T) {
	type query struct {
		batch   []string
		uptos   []int
		k       int
		wantTop [][]Match
		wantAvg []float64
	}
	type pool struct {
		texts   []string
		queries []query
	}
	rng := rand.New(rand.NewSource(11))
	var pools []pool
	for it := 0; it < 3; it++ {
		var p pool
		switch it {
		case 0:
			p.texts = shortRepetitive(rng, 400)
		case 1:
			p.texts = nearDupStream(rng, 400, 300+rng.Intn(1500), 14)
		default:
			p.texts = nearDupStream(rng, 300, 50, 140) // long texts over a small vocabulary
		}
		n := len(p.texts)
		for q := 0; q < 24; q++ {
			var x query
			g := 1 + rng.Intn(11)
			base := rng.Intn(n + 1)
			for j := 0; j < g; j++ {
				if rng.Intn(3) == 0 {
					x.batch = append(x.batch, strings.Join(soup(rng, 1+rng.Intn(20), 30), " "))
				} else {
					x.batch = append(x.batch, p.texts[rng.Intn(n)])
				}
				u := base + j
				if rng.Intn(4) == 0 {
					u = rng.Intn(n + 1)
				}
				x.uptos = append(x.uptos, min(u, n))
			}
			x.k = []int{0, 1, 10, 600}[q%4]
			for j := range x.batch {
				top, avg := refSimilar(p.texts[:x.uptos[j]], x.batch[j], x.k)
				x.wantTop = append(x.wantTop, top)
				x.wantAvg = append(x.wantAvg, avg)
			}
			p.queries = append(p.queries, x)
		}
		pools = append(pools, p)
	}
	similarConfigs(t, func(t *testing.T) {
		for it, p := range pools {
			f := NewFilter(0.7)
			for _, s := range p.texts {
				f.Add(s)
			}
			for q, x := range p.queries {
				tops, avgs := f.SimilarBatch(x.batch, x.k, x.uptos)
				for j := range x.batch {
					if math.Float64bits(avgs[j]) != math.Float64bits(x.wantAvg[j]) {
						t.Fatalf("pool %d query %d text %d (upto %d): avg %v want %v", it, q, j, x.uptos[j], avgs[j], x.wantAvg[j])
					}
					if fmt.Sprint(tops[j]) != fmt.Sprint(x.wantTop[j]) {
						t.Fatalf("pool %d query %d text %d (upto %d): top %v want %v", it, q, j, x.uptos[j], tops[j], x.wantTop[j])
					}
				}
			}
		}
	})
}
