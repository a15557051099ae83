package rougefilter

import (
	"sync"

	"github.com/alpaca-go/alpaca/pkg/rouge"
)

// reference is the plain exact filter (--reference): every candidate is
// scored against every pool text with the O(n·m) dynamic-programming LCS,
// as the original generator does, only in Go and spread over the workers.
type reference struct {
	t     float64
	vocab map[string]int32
	texts []string
	toks  [][]int32
}

func newReference(t float64) *reference {
	return &reference{t: t, vocab: map[string]int32{}}
}

func (r *reference) ids(text string, add bool) []int32 {
	toks := rouge.Tokenize(text)
	out := make([]int32, len(toks))
	for i, t := range toks {
		id, ok := r.vocab[t]
		if !ok {
			id = -1 - int32(i) // unknown: matches nothing in the pool
			if add {
				id = int32(len(r.vocab))
				r.vocab[t] = id
			}
		}
		out[i] = id
	}
	return out
}

func (r *reference) Add(text string) int {
	r.texts = append(r.texts, text)
	r.toks = append(r.toks, r.ids(text, true))
	return len(r.texts) - 1
}

func (r *reference) Len() int { return len(r.texts) }

// dpLCS is the textbook LCS table, one row at a time.
func dpLCS(a, b []int32, row []int32) int {
	for j := range row[:len(b)+1] {
		row[j] = 0
	}
	for i := 1; i <= len(a); i++ {
		diag := int32(0)
		for j := 1; j <= len(b); j++ {
			up := row[j]
			if a[i-1] == b[j-1] {
				row[j] = diag + 1
			} else if row[j-1] > up {
				row[j] = row[j-1]
			}
			diag = up
		}
	}
	return int(row[len(b)])
}

// scores computes the F-measure of cand against pool texts [0, upto).
func (r *reference) scores(cand []int32, upto, workers int) []float64 {
	sc := make([]float64, upto)
	if workers < 1 {
		workers = 1
	}
	per := (upto + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < upto; lo += per {
		hi := min(lo+per, upto)
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			var row []int32
			for d := lo; d < hi; d++ {
				p := r.toks[d]
				if cap(row) < len(p)+1 {
					row = make([]int32, len(p)+1)
				}
				l := 0
				if len(cand) > 0 && len(p) > 0 {
					l = dpLCS(cand, p, row)
				}
				sc[d] = rouge.FMeasure(l, len(p), len(cand))
			}
		}(lo, hi)
	}
	wg.Wait()
	return sc
}

func (r *reference) CheckBatch(texts []string, add bool, workers int) []rouge.Result {
	out := make([]rouge.Result, len(texts))
	for i, text := range texts {
		cand := r.ids(text, false)
		sc := r.scores(cand, len(r.texts), workers)
		best := rouge.Match{Index: -1}
		for d, s := range sc {
			if best.Index < 0 || s >= best.Score {
				best = rouge.Match{Text: r.texts[d], Score: s, Index: d}
			}
		}
		keep := best.Index < 0 || best.Score <= r.t
		out[i] = rouge.Result{Keep: keep, Best: best, Index: -1}
		if keep && add {
			out[i].Index = r.Add(text)
		}
	}
	return out
}

func (r *reference) SimilarAt(text string, k, upto int) ([]rouge.Match, float64) {
	sc := r.scores(r.ids(text, false), upto, 1)
	var top []rouge.Match
	used := make([]bool, len(sc))
	for len(top) < k && len(top) < len(sc) {
		b := -1
		for d := len(sc) - 1; d >= 0; d-- {
			if !used[d] && (b < 0 || sc[d] > sc[b]) {
				b = d
			}
		}
		used[b] = true
		top = append(top, rouge.Match{Text: r.texts[b], Score: sc[b], Index: b})
	}
	return top, rouge.Mean(sc)
}
