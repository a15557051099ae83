package rouge

import "slices"

// SimilarAt is Similar against the first upto pool texts only (the pool as
// it was when text upto was added). It only reads the filter, so calls may
// run concurrently with each other (not with Add or Check).
//
// A pool text sharing no token with text scores exactly 0, so only the pool
// texts an inverted index of every token finds are scored: those sharing one
// distinct token t have LCS min(count in text, count in pool text) without
// any LCS computation, the others get the bit-parallel LCS. The mean sums
// the whole pool with NumPy's pairwise tree, skipping the all-zero subtrees
// (exact: their sum is +0). The index covers the pool lazily, from the first
// call on.
func (f *Filter) SimilarAt(text string, k, upto int) (top []Match, avg float64) {
	upto = min(upto, len(f.texts))
	f.catchUpFull()
	s, _ := f.pool.Get().(*scratch)
	if s == nil {
		s = &scratch{}
	}
	defer f.pool.Put(s)
	s.ids = f.lookup(text, s.ids)
	ids := s.ids
	n := len(ids)
	// distinct known tokens of text with their counts
	s.tc = s.tc[:0]
	for _, t := range ids {
		if t >= 0 {
			s.tc = append(s.tc, tokCount{t, 1})
		}
	}
	slices.SortFunc(s.tc, func(a, b tokCount) int { return int(a.tok - b.tok) })
	tc := s.tc[:0]
	for _, x := range s.tc {
		if len(tc) > 0 && tc[len(tc)-1].tok == x.tok {
			tc[len(tc)-1].n++
		} else {
			tc = append(tc, x)
		}
	}
	if len(s.sim) < upto {
		s.sim = make([]simAcc, upto+upto/2+64)
		s.simStamp = 0
	}
	s.simStamp++
	if s.simStamp == 0 {
		clear(s.sim)
		s.simStamp = 1
	}
	st := s.simStamp
	s.cands = s.cands[:0]
	for _, x := range tc {
		for _, p := range f.full[x.tok] {
			if int(p.doc) >= upto {
				break
			}
			a := &s.sim[p.doc]
			if a.stamp != st {
				a.stamp, a.types = st, 0
				s.cands = append(s.cands, p.doc)
			}
			a.types++
			a.lcs = min(x.n, p.n)
		}
	}
	words := (upto + 63) / 64
	if cap(s.bits) < words {
		s.bits = make([]uint64, words+words/2)
	}
	bits := s.bits[:words] // zero outside s.cands
	for _, d := range s.cands {
		bits[d/64] |= 1 << (uint(d) % 64)
	}
	if cap(s.scores) < upto {
		s.scores = make([]float64, upto+upto/4)
	}
	scores := s.scores[:upto] // zero outside s.cands
	set := false
	// FMeasure(l, m, n) memoized for short pool texts
	const fmM = 128
	fmL := min(n, fmM-1) + 1
	if cap(s.fm) < fmM*fmL {
		s.fm = make([]float64, fmM*fmL)
	}
	fm := s.fm[:fmM*fmL]
	for i := range fm {
		fm[i] = -1
	}
	lens := f.lens
	for _, d := range s.cands {
		a := &s.sim[d]
		l := int(a.lcs)
		if a.types > 1 {
			if !set {
				s.m.set(ids, len(f.df))
				set = true
			}
			l = s.m.lcs(f.toks[d])
		}
		m := int(lens[d])
		if m < fmM && l < fmL {
			v := &fm[m*fmL+l]
			if *v < 0 {
				*v = FMeasure(l, m, n)
			}
			scores[d] = *v
		} else {
			scores[d] = FMeasure(l, m, n)
		}
	}
	if k > 0 {
		type cand struct {
			sc float64
			i  int32
		}
		best := make([]cand, 0, k+1)
		push := func(sc float64, d int32) {
			if len(best) == k && !better(sc, d, best[k-1].sc, best[k-1].i) {
				return
			}
			j := len(best)
			if j < k {
				best = append(best, cand{})
			} else {
				j = k - 1
			}
			for j > 0 && better(sc, d, best[j-1].sc, best[j-1].i) {
				best[j] = best[j-1]
				j--
			}
			best[j] = cand{sc, d}
		}
		for _, d := range s.cands {
			push(scores[d], d)
		}
		// then the texts scoring 0, later ones first
		for d := upto - 1; d >= 0 && len(best) < k; d-- {
			if s.sim[d].stamp != st {
				best = append(best, cand{0, int32(d)})
			}
		}
		for _, c := range best {
			top = append(top, Match{Text: f.texts[c.i], Score: c.sc, Index: int(c.i)})
		}
	}
	if upto > 0 {
		avg = pairwiseSumSparse(scores, bits) / float64(upto)
	}
	for _, d := range s.cands {
		scores[d] = 0
		bits[d/64] = 0
	}
	return top, avg
}

type tokCount struct {
	tok int32
	n   int32
}

// simAcc is the state of one pool text in SimilarAt.
type simAcc struct {
	stamp uint32
	types int32 // distinct tokens shared with the text
	lcs   int32 // with types == 1: the LCS
}

type fullPosting struct {
	doc int32
	n   int32 // occurrences of the token in doc
}

// catchUpFull extends the inverted index of every token to the whole pool.
func (f *Filter) catchUpFull() {
	f.fullMu.Lock()
	defer f.fullMu.Unlock()
	for len(f.full) < len(f.df) {
		f.full = append(f.full, nil)
	}
	var buf []int32
	for ; f.fullN < len(f.texts); f.fullN++ {
		buf = append(buf[:0], f.toks[f.fullN]...)
		slices.Sort(buf)
		for i := 0; i < len(buf); {
			j := i + 1
			for j < len(buf) && buf[j] == buf[i] {
				j++
			}
			f.full[buf[i]] = append(f.full[buf[i]], fullPosting{doc: int32(f.fullN), n: int32(j - i)})
			i = j
		}
	}
}
