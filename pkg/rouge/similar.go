package rouge

import (
	"math"
	bits64 "math/bits"
	"slices"
	"sort"
)

// SimilarAt is Similar against the first upto pool texts only (the pool as
// it was when text upto was added). It only reads the filter, so calls may
// run concurrently with each other (not with Add or Check).
//
// Every pool text is scored and the mean sums the scores with NumPy's
// pairwise tree, bit for bit. For texts of 1 to 64 tokens (similarScan):
//   - each pool text is also kept as the sequence of its frequent tokens
//     only (the freqCodes tokens in most pool texts, one byte each); a pool
//     text sharing none of text's other (infrequent) tokens has the same LCS
//     with text as that sequence, since the tokens left out match nothing.
//     Those LCSs are bit-parallel over a few bytes with the match masks in
//     a 16 KiB table, eight texts of a batch at once (one 64-bit lane each:
//     AVX-512, or AVX2 twice), pool texts grouped by sequence length so the
//     loop's branch is predicted;
//   - the pool texts sharing an infrequent token, found through an
//     inverted index, get the LCS over all their tokens;
//   - scores come from a table by (pool length, LCS), computed block by
//     block of the pairwise tree and summed there, so no score vector is
//     stored; the top k are picked on the way (AVX-512: eight at a time,
//     with a gather).
//
// Longer texts go through the inverted index of every token (similarSparse).
// The index and the byte sequences cover the pool lazily, from the first
// call on.
func (f *Filter) SimilarAt(text string, k, upto int) (top []Match, avg float64) {
	tops, avgs := f.SimilarBatch([]string{text}, k, []int{upto})
	return tops[0], avgs[0]
}

// SimilarBatch is SimilarAt for each text i against the first uptos[i] pool
// texts. Up to four texts of 1 to 64 tokens are scanned against the pool
// together, which is about three times faster than one by one; pass texts
// whose uptos are close (consecutive records) for the full benefit.
func (f *Filter) SimilarBatch(texts []string, k int, uptos []int) (tops [][]Match, avgs []float64) {
	f.catchUpFull()
	s, _ := f.pool.Get().(*scratch)
	if s == nil {
		s = &scratch{}
	}
	defer f.pool.Put(s)
	tops, avgs = make([][]Match, len(texts)), make([]float64, len(texts))
	var group []int
	flush := func() {
		if len(group) > 0 {
			f.similarScan(s, texts, uptos, group, k, tops, avgs)
			group = group[:0]
		}
	}
	for i, text := range texts {
		upto := min(uptos[i], len(f.texts))
		s.ids = f.lookup(text, s.ids)
		if n := len(s.ids); n == 0 || n > 64 || upto == 0 {
			tops[i], avgs[i] = f.similarSparse(s, k, upto)
			continue
		}
		group = append(group, i)
		if len(group) == lanes {
			flush()
		}
	}
	flush()
	return tops, avgs
}

// similarSparse is SimilarAt through the inverted index of every token: only
// the pool texts sharing a token are visited, and the sum skips the all-zero
// subtrees. It serves texts of more than 64 tokens (and empty ones).
func (f *Filter) similarSparse(s *scratch, k, upto int) (top []Match, avg float64) {
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
	// FMeasure(l, m, n) memoized for pool texts shorter than fmM
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
	f.codeFreq()
}

// freqCodes is the number of frequent tokens coded as bytes for
// similarScan (tests lower it to exercise both paths on tiny vocabularies).
var freqCodes = 256

// freqSeqs holds each pool text's frequent tokens (code = index in the
// frequency order), in text order, one byte each.
type freqSeqs struct {
	code  []int16   // per token id: its byte code, or -1 when not frequent
	seq   []uint8   // the sequences, back to back
	off   []uint32  // pool text d: seq[off[d]:off[d+1]]
	class [][]int32 // by sequence length: the pool texts, ascending
	built int       // pool size when the codes were chosen
}

// codeFreq extends the byte sequences to the first fullN pool texts; when
// the pool has doubled since the frequent tokens were chosen they are chosen
// again (by document frequency) and every sequence recoded. Called with
// fullMu held.
func (f *Filter) codeFreq() {
	q := &f.freq
	if len(q.off) == 0 || f.fullN >= 2*q.built {
		q.built = f.fullN
		order := make([]int32, 0, len(f.full))
		for t := range f.full {
			if len(f.full[t]) > 0 {
				order = append(order, int32(t))
			}
		}
		// most frequent first; ties by id, so the codes are reproducible
		slices.SortFunc(order, func(a, b int32) int {
			if la, lb := len(f.full[a]), len(f.full[b]); la != lb {
				return lb - la
			}
			return int(a - b)
		})
		q.code = q.code[:0]
		for range f.full {
			q.code = append(q.code, -1)
		}
		for i, t := range order[:min(len(order), freqCodes)] {
			q.code[t] = int16(i)
		}
		q.seq = q.seq[:0]
		q.off = append(q.off[:0], 0)
		for i := range q.class {
			q.class[i] = q.class[i][:0]
		}
	}
	for len(q.code) < len(f.full) {
		q.code = append(q.code, -1)
	}
	for d := len(q.off) - 1; d < f.fullN; d++ {
		for _, t := range f.toks[d] {
			if c := q.code[t]; c >= 0 {
				q.seq = append(q.seq, uint8(c))
			}
		}
		q.off = append(q.off, uint32(len(q.seq)))
		L := int(q.off[d+1] - q.off[d])
		for len(q.class) <= L {
			q.class = append(q.class, nil)
		}
		q.class[L] = append(q.class[L], int32(d))
	}
}

// lanes is the number of texts similarScan scores in one pass over the pool.
const lanes = 8

// SimilarBatchSize is how many texts SimilarBatch scores in one pass over
// the pool: batches of this size (consecutive records) get the full speed.
const SimilarBatchSize = lanes

// lane is the state of one text in similarScan.
type lane struct {
	ids   []int32
	n     int
	upto  int
	hi    uint64    // bits above the text's n positions
	fm    []float64 // F-measure by (pool length < fmM, LCS)
	bits  []uint64  // pool texts sharing an infrequent token with the text
	words []int32   // non-zero words of bits
}

// similarScan scores the texts[group[*]] (1 to lanes of them, 1 to 64
// tokens each) against every pool text below their uptos and stores their
// top k and mean in tops and avgs.
func (f *Filter) similarScan(s *scratch, texts []string, uptos, group []int, k int, tops [][]Match, avgs []float64) {
	q := &f.freq
	if s.fmn == nil {
		s.fmn = make([][]float64, 65)
	}
	// frequent tokens: masks by code, one per lane (absent lanes match
	// nothing); other known tokens: the pool texts holding them
	mf := &s.mf
	*mf = [256][lanes]uint64{}
	common := len(f.texts)
	for r, i := range group {
		ln := &s.lanes[r]
		ln.ids = f.lookup(texts[i], ln.ids)
		ln.n = len(ln.ids)
		ln.upto = min(uptos[i], len(f.texts))
		common = min(common, ln.upto)
		ln.hi = 0
		if ln.n < 64 {
			ln.hi = ^uint64(0) << uint(ln.n)
		}
		if ln.fm = s.fmn[ln.n]; ln.fm == nil {
			ln.fm = make([]float64, fmM*(ln.n+1))
			for m := 0; m < fmM; m++ {
				for l := 0; l <= ln.n; l++ {
					ln.fm[m*(ln.n+1)+l] = FMeasure(l, m, ln.n)
				}
			}
			s.fmn[ln.n] = ln.fm
		}
		if w := (ln.upto + 63) / 64; cap(ln.bits) < w {
			ln.bits = make([]uint64, w+w/2)
		}
		ln.bits = ln.bits[:(ln.upto+63)/64] // zero outside ln.words
		s.tc = s.tc[:0]
		for j, t := range ln.ids {
			switch {
			case t < 0:
			case q.code[t] >= 0:
				mf[q.code[t]][r] |= 1 << uint(j)
			default:
				s.tc = append(s.tc, tokCount{t, 0})
			}
		}
		slices.SortFunc(s.tc, func(a, b tokCount) int { return int(a.tok - b.tok) })
		ln.words = ln.words[:0]
		for j, x := range s.tc {
			if j > 0 && s.tc[j-1].tok == x.tok {
				continue
			}
			for _, p := range f.full[x.tok] {
				if int(p.doc) >= ln.upto {
					break
				}
				w := &ln.bits[p.doc/64]
				if *w == 0 {
					ln.words = append(ln.words, p.doc/64)
				}
				*w |= 1 << (uint(p.doc) % 64)
			}
		}
	}
	// the pool texts below every upto: all lanes at once
	var hi [lanes]uint64
	most := 0
	for r := range group {
		hi[r] = s.lanes[r].hi
		most = max(most, s.lanes[r].upto)
	}
	if cap(s.ls) < lanes*most+64 {
		s.ls = make([]uint8, lanes*most+lanes*most/4+64)
	}
	ls := s.ls[:lanes*most+64] // 64 bytes of slack for emit512
	for L, docs := range q.class {
		// pool texts whose sequences have L bytes, below common
		docs = docs[:sort.Search(len(docs), func(i int) bool { return int(docs[i]) >= common })]
		scanClass(q.seq, q.off, docs, L, mf, &hi, ls)
	}
	for r, i := range group {
		ln := &s.lanes[r]
		f.scanLane(ln, mf, ls, r, common)
		// pool texts sharing an infrequent token: the LCS over all tokens
		if len(ln.words) > 0 {
			s.m.set(ln.ids, len(f.df))
			for _, w := range ln.words {
				for b := ln.bits[w]; b != 0; b &= b - 1 {
					d := int(w)*64 + bits64.TrailingZeros64(b)
					ls[lanes*d+r] = uint8(s.m.lcs(f.toks[d]))
				}
				ln.bits[w] = 0
			}
		}
		e := emitter{ls: ls[r:], lens: f.lens, fm: ln.fm, n: ln.n, k: k, kth: math.Inf(1)}
		if k > 0 {
			e.best = make([]Match, 0, k+1)
			e.kth = math.Inf(-1)
		}
		avgs[i] = e.sum(0, ln.upto) / float64(ln.upto)
		for j := range e.best {
			e.best[j].Text = f.texts[e.best[j].Index]
		}
		tops[i] = e.best
	}
}

// emitter turns one lane's LCS values into scores, block by block in the
// order of NumPy's pairwise summation, keeping the k best on the way.
type emitter struct {
	ls   []uint8 // LCS of pool text d at ls[lanes*d]
	lens []int32
	fm   []float64
	n, k int
	best []Match // Text filled in by the caller
	kth  float64 // score a text needs to enter best (ties: later wins); +Inf when k = 0
}

// sum is pairwiseSum of the scores of pool texts lo..lo+n-1: the same tree,
// with each leaf block's scores computed into buf.
func (e *emitter) sum(lo, n int) float64 {
	if n > 128 {
		n2 := n / 2
		n2 -= n2 % 8
		return e.sum(lo, n2) + e.sum(lo+n2, n-n2)
	}
	var buf [128]float64
	b := buf[:n]
	lens := e.lens[lo : lo+n]
	ls := e.ls[lanes*lo:] // emit512 reads up to 63 bytes past the last text's
	fm, n1 := e.fm, e.n+1
	scalar := func(j int) {
		l, m := int(ls[lanes*j]), int(lens[j])
		var sc float64
		if m < fmM {
			sc = fm[m*n1+l]
		} else {
			sc = FMeasure(l, m, e.n)
		}
		b[j] = sc
		if sc >= e.kth {
			e.push(sc, lo+j)
		}
	}
	j := 0
	if useAVX512 {
		// eight at a time; a chunk with a long pool text or a top-k
		// candidate is scored here
		for j+8 <= n {
			j += 8 * emit512(&ls[lanes*j], &lens[j], (n-j)/8, &fm[0], n1, &b[j], e.kth)
			if j+8 <= n {
				for t := j; t < j+8; t++ {
					scalar(t)
				}
				j += 8
			}
		}
	}
	for ; j < n; j++ {
		scalar(j)
	}
	return pairwiseSum(b)
}

// push enters pool text d (a score >= kth, and d later than every text in
// best) into the k best.
func (e *emitter) push(sc float64, d int) {
	j := len(e.best)
	if j < e.k {
		e.best = append(e.best, Match{})
	} else {
		j = e.k - 1
	}
	for j > 0 && better(sc, int32(d), e.best[j-1].Score, int32(e.best[j-1].Index)) {
		e.best[j] = e.best[j-1]
		j--
	}
	e.best[j] = Match{Score: sc, Index: d}
	if len(e.best) == e.k {
		e.kth = e.best[e.k-1].Score
	}
}

const fmM = 128 // pool lengths whose F-measures are memoized

// scanClassGo is scanClass in Go.
func scanClassGo(seq []uint8, off []uint32, docs []int32, L int, mf *[256][lanes]uint64, hi *[lanes]uint64, out []uint8) {
	for _, d := range docs {
		b := seq[off[d] : int(off[d])+L]
		for r := 0; r < lanes; r++ {
			out[lanes*int(d)+r] = laneLCS(b, mf, r, hi[r])
		}
	}
}

// laneLCS is the bit-parallel LCS (Hyyrö) of lane r's text (masks
// mf[*][r], bits hi above its length) with the byte sequence b.
func laneLCS(b []uint8, mf *[256][lanes]uint64, r int, hi uint64) uint8 {
	v := ^uint64(0)
	for _, c := range b {
		u := v & mf[c][r]
		v = (v + u) | (v - u)
	}
	return uint8(64 - bits64.OnesCount64(v|hi))
}

// scanLane stores lane r's LCS with pool texts from..upto-1 in ls (as
// scanClass does), for that lane alone.
func (f *Filter) scanLane(ln *lane, mf *[256][lanes]uint64, ls []uint8, r, from int) {
	q := &f.freq
	for d := from; d < ln.upto; d++ {
		ls[lanes*d+r] = laneLCS(q.seq[q.off[d]:q.off[d+1]], mf, r, ln.hi)
	}
}
