package rouge

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"
)

// shortRepetitive makes streams dominated by very short texts over a tiny
// vocabulary and by very repetitive texts (one or two tokens repeated many
// times), with near-duplicates: the cases where prefixes hold only common
// tokens, elements (token, k > 0) abound and lengths straddle the pair
// index and the single-element buckets.
func shortRepetitive(rng *rand.Rand, count int) []string {
	vocab := 2 + rng.Intn(8)
	w := func() string { return fmt.Sprintf("t%d", rng.Intn(vocab)) }
	var out []string
	for len(out) < count {
		var toks []string
		switch r := rng.Intn(10); {
		case r < 5: // very short
			for n := rng.Intn(5); n >= 0; n-- {
				toks = append(toks, w())
			}
		case r < 7: // repetitive, any length up to 80
			a, b := w(), w()
			for n := rng.Intn(80); n >= 0; n-- {
				if rng.Intn(6) == 0 {
					toks = append(toks, b)
				} else {
					toks = append(toks, a)
				}
			}
		case len(out) > 0: // near-duplicate of an earlier text
			toks = strings.Fields(out[rng.Intn(len(out))])
			for e := rng.Intn(3); e > 0; e-- {
				if len(toks) > 0 && rng.Intn(2) == 0 {
					toks[rng.Intn(len(toks))] = w()
				} else {
					toks = append(toks, w())
				}
			}
		default:
			toks = []string{w()}
		}
		out = append(out, strings.Join(toks, " "))
	}
	return out
}

// TestFilterShortRepetitive compares the filter (sequential and batched)
// with the brute-force reference on short and repetitive texts, at
// thresholds where α is 1 for some length pairs and at the usual ones.
func TestFilterShortRepetitive(t *testing.T) {
	defer indexKnobs(0)() // restores the defaults, also after a failure
	rng := rand.New(rand.NewSource(11))
	iters := 40
	if testing.Short() {
		iters = 12
	}
	for it := 0; it < iters; it++ {
		indexKnobs(it / 8)
		th := []float64{0.7, 0.5, 0.3, 0.1, 0, 0.9, 0.66, 0.8}[it%8]
		texts := shortRepetitive(rng, 100+rng.Intn(400))
		seeds := texts[:rng.Intn(10)]
		stream := texts[len(seeds):]
		ref := &refFilter{t: th}
		fast, batch := NewFilter(th), NewFilter(th)
		fast.ExactBest, batch.ExactBest = true, true
		for _, s := range seeds {
			ref.add(s)
			fast.Add(s)
			batch.Add(s)
		}
		var bres []Result
		step := 1 + rng.Intn(60)
		for lo := 0; lo < len(stream); lo += step {
			bres = append(bres, batch.CheckBatch(stream[lo:min(lo+step, len(stream))], true, 1+it%2)...)
		}
		for i, s := range stream {
			rk, rb := ref.check(s, true)
			fk, fb := fast.Check(s, true)
			if rk != fk || rk != bres[i].Keep {
				t.Fatalf("it %d t=%v record %d %q: reference keep %v (best %+v), filter %v, batch %v", it, th, i, s, rk, rb, fk, bres[i].Keep)
			}
			if !rk && (fb != rb || bres[i].Best != rb) {
				t.Fatalf("it %d record %d: best %+v / %+v, want %+v", it, i, fb, bres[i].Best, rb)
			}
		}
	}
}

// TestSimilarExact checks SimilarAt (index-found texts only, zero subtrees
// skipped) against scoring every pool text and NumPy's mean of the dense
// scores, bit for bit, on pools where many or few texts share a token, at
// every prefix of the pool.
func TestSimilarExact(t *testing.T) {
	// the pool grows between calls: the byte codes are extended and
	// re-chosen as it doubles; with 3 codes most tokens are infrequent
	defer func(fc int) { freqCodes = fc }(freqCodes)
	for _, fc := range []int{256, 3} {
		freqCodes = fc
		t.Run(fmt.Sprint("codes=", fc), testSimilarExact)
	}
}

func testSimilarExact(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for it := 0; it < 6; it++ {
		var texts []string
		if it%2 == 0 {
			texts = shortRepetitive(rng, 700)
		} else {
			texts = nearDupStream(rng, 700, 400+rng.Intn(2000), 12)
		}
		f := NewFilter(0.7)
		var pool [][]string
		for i, q := range texts {
			k := []int{0, 1, 10, 1000}[i%4]
			top, avg := f.SimilarAt(q, k, i)
			want, wantAvg := refSimilarToks(pool, texts[:i], q, k)
			if math.Float64bits(avg) != math.Float64bits(wantAvg) {
				t.Fatalf("it %d text %d: avg %v want %v", it, i, avg, wantAvg)
			}
			if fmt.Sprint(top) != fmt.Sprint(want) {
				t.Fatalf("it %d text %d %q: top %v want %v", it, i, q, top, want)
			}
			f.Add(q)
			pool = append(pool, Tokenize(q))
		}
	}
}

// TestPairwiseSumSparse: skipping the all-zero subtrees of NumPy's pairwise
// tree gives pairwiseSum bit for bit, at sizes around the 8-element
// unrolling and the 128-element blocks and for any density of non-zeros.
func TestPairwiseSumSparse(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	var sizes []int
	for n := 0; n <= 300; n++ {
		sizes = append(sizes, n)
	}
	for _, b := range []int{512, 1024, 2048, 4096, 65536} {
		for d := -9; d <= 9; d++ {
			sizes = append(sizes, b+d)
		}
	}
	for _, n := range sizes {
		for _, density := range []float64{0, 0.001, 0.01, 0.1, 0.5, 0.9, 1} {
			a := make([]float64, n)
			bm := make([]uint64, (n+63)/64)
			for i := range a {
				if rng.Float64() < density {
					// scores in [0, 1]: some tiny, some exact binary fractions
					switch rng.Intn(3) {
					case 0:
						a[i] = rng.Float64()
					case 1:
						a[i] = rng.Float64() * 1e-9
					default:
						a[i] = float64(1+rng.Intn(7)) / 8
					}
					bm[i/64] |= 1 << (uint(i) % 64)
				}
			}
			got, want := pairwiseSumSparse(a, bm), pairwiseSum(a)
			if math.Float64bits(got) != math.Float64bits(want) {
				t.Fatalf("n=%d density %v: sparse %v, dense %v", n, density, got, want)
			}
		}
	}
}
