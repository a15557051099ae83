package rouge

import (
	"math"
	"runtime"
	"slices"
	"sync"
)

// Match is one pool text and its ROUGE-L F-measure against a candidate.
type Match struct {
	Text  string
	Score float64
	Index int // position in the pool (insertion order); -1 when there is none
}

// Filter is a growing pool of texts for greedy ROUGE-L deduplication: a
// candidate is kept when its F-measure against every pool text is <= the
// threshold (dropped when > threshold), and a kept candidate joins the pool.
//
// The decision is exact. Pool texts are interned to token ids; pairs that
// cannot exceed the threshold are pruned by exact bounds before any LCS is
// computed:
//   - length: F <= F(min(m,n), m, n), so only pool lengths in an interval
//     around the candidate's length can qualify;
//   - prefix filtering: lcs <= multiset overlap, and a pair with overlap >= α
//     must share an element among the first len-α+1 elements of both texts
//     when elements (token, occurrence) are ordered rare-first by one global
//     order; only those prefixes are indexed;
//   - ℓ = 2: the first two shared elements lie among the first len-α+2
//     elements of both texts, at positions bounded by each pair's α; pool
//     texts of the usual lengths are indexed by pairs of prefix elements
//     (pairIndex), so one shared frequent token finds nothing; other lengths
//     by single elements in per-length buckets, verified only when two
//     elements (or α, when α < 2) were found;
//   - positional bound on the shared prefix elements found (PPJoin).
//
// Survivors are scored with a bit-parallel LCS. The global order is re-derived
// from document frequencies, and the index rebuilt with each pair's postings
// contiguous, when the pool has doubled; in between, when it has grown by
// half, the pair postings added since are moved into those runs.
//
// A Filter is not safe for concurrent use; CheckBatch parallelises internally.
type Filter struct {
	// ExactBest makes Check and CheckBatch return, for a dropped candidate,
	// the pool text with the highest score (ties: the later one) instead of
	// the first one found above the threshold. It costs some speed.
	ExactBest bool

	t      float64
	vocab  map[string]int32
	df     []int32 // per token id: pool texts containing it
	rank   []int32 // per token id: global order key (smaller = checked first)
	low    int32   // next rank for tokens new since the last rebuild (counts down)
	texts  []string
	toks   [][]int32
	lens   []int32           // per pool text: len(toks[i])
	post   [][]bucket        // per token id: prefix elements of pool texts not in pairs, by length
	pairs  pairIndex         // pairs of prefix elements of pool texts of pair-indexed lengths
	extra  map[uint64]uint32 // element ids of (token, k > 0): (tok<<16 | k) -> id
	slab   []int32           // storage of toks
	long   []int32           // pool texts longer than maxLen (never indexed, always verified)
	next   int               // pool size at which the index is rebuilt or compacted
	orderN int               // pool size at the last rebuild
	seq    *scratch          // scratch of the sequential path
	full   [][]fullPosting   // per token id: every pool text holding it (SimilarAt)
	fullN  int               // pool texts in full
	freq   freqSeqs          // frequent-token byte sequences (SimilarAt)
	fullMu sync.Mutex
	pool   sync.Pool // scratch for SimilarAt and CheckBatch workers
	*bounds
}

// bucket holds the postings of one token in the pool texts of one length,
// in pool order.
type bucket struct {
	m  uint16 // the docs' length in tokens
	ps []posting
}

type posting struct {
	doc int32
	k   uint16 // occurrence number of the token in the doc (0-based)
	pos uint16 // position of the element in the doc's ordered elements
}

// ell is the ℓ of the ℓ-prefix scheme: when two texts share >= α elements
// (α >= ℓ), their first ℓ shared elements (in the global order) lie among
// the first len-α+ℓ elements of each text. Indexed and probed prefixes are
// ℓ-1 elements longer than plain prefix filtering needs, and a pool text is
// verified only when ℓ of its prefix elements (min(ℓ, α) when α < ℓ) were
// found. This prunes most pairs that share one frequent token only.
const ell = 2

const rankBase = 1 << 30

// NewFilter returns an empty filter that drops candidates whose F-measure
// against some pool text is > threshold.
func NewFilter(threshold float64) *Filter {
	f := &Filter{t: threshold, vocab: map[string]int32{}, extra: map[uint64]uint32{}, low: rankBase - 1, next: 64}
	f.bounds = boundsFor(threshold)
	f.seq = &scratch{}
	return f
}

// Threshold is the filter's threshold.
func (f *Filter) Threshold() float64 { return f.t }

// Len is the number of pool texts.
func (f *Filter) Len() int { return len(f.texts) }

// Text is pool text i.
func (f *Filter) Text(i int) string { return f.texts[i] }

// Tokens is the number of tokens of pool text i.
func (f *Filter) Tokens(i int) int { return len(f.toks[i]) }

// Add appends text to the pool unconditionally (seed tasks, records kept by
// an earlier run) and returns its index.
func (f *Filter) Add(text string) int {
	ids := f.lookup(text, nil)
	return f.add(text, ids)
}

// lookup tokenizes text into ids (appended to buf[:0]) without changing the
// vocabulary, so it may run concurrently; unknown tokens get -1.
func (f *Filter) lookup(text string, buf []int32) []int32 {
	ids := buf[:0]
	scan(text, func(tok []byte) {
		id, ok := f.vocab[string(tok)]
		if !ok {
			id = -1
		}
		ids = append(ids, id)
	})
	return ids
}

// resolve replaces -1 ids by ids the vocabulary learned since lookup.
func (f *Filter) resolve(text string, ids []int32) {
	if !slices.Contains(ids, -1) {
		return
	}
	i := 0
	scan(text, func(tok []byte) {
		if ids[i] < 0 {
			if id, ok := f.vocab[string(tok)]; ok {
				ids[i] = id
			}
		}
		i++
	})
}

// add interns the unknown tokens of text and appends it to the pool.
func (f *Filter) add(text string, ids []int32) int {
	// pool token sequences are carved out of large slabs: neighbours in the
	// pool are neighbours in memory
	if cap(f.slab)-len(f.slab) < len(ids) {
		f.slab = make([]int32, 0, max(1<<16, len(ids)))
	}
	n0 := len(f.slab)
	f.slab = append(f.slab, ids...)
	own := f.slab[n0:len(f.slab):len(f.slab)]
	if slices.Contains(own, -1) {
		i := 0
		scan(text, func(tok []byte) {
			if own[i] < 0 {
				id, ok := f.vocab[string(tok)]
				if !ok {
					id = int32(len(f.df))
					f.vocab[string(tok)] = id
					f.df = append(f.df, 0)
					f.rank = append(f.rank, f.low)
					f.low--
					f.post = append(f.post, nil)
				}
				own[i] = id
			}
			i++
		})
	}
	doc := len(f.texts)
	f.texts = append(f.texts, text)
	f.toks = append(f.toks, own)
	f.lens = append(f.lens, int32(len(own)))
	f.countDF(own, 1)
	if len(f.texts) >= f.next && len(f.texts) < 2*f.orderN {
		// grown by half since the last rebuild: gather each pair's
		// postings again, in the same order
		f.pairs.compact(len(f.texts) - 1)
		f.next = len(f.texts) + len(f.texts)/2
		f.index(doc, nil)
	} else if len(f.texts) >= f.next {
		f.rebuild()
	} else {
		f.index(doc, nil)
	}
	return doc
}

func (f *Filter) countDF(ids []int32, d int32) {
	var seen [16]int32
	for i, t := range ids {
		dup := false
		if i < 16 {
			for _, s := range seen[:i] {
				if s == t {
					dup = true
					break
				}
			}
			seen[i] = t
		} else {
			dup = slices.Contains(ids[:i], t)
		}
		if !dup {
			f.df[t] += d
		}
	}
}

// elem is one (token, occurrence) element of a text in the global order.
type elem struct {
	rank int32
	tok  int32
	k    uint16
}

// elements writes the ordered elements of ids into buf.
func (f *Filter) elements(ids []int32, buf []elem) []elem {
	buf = buf[:0]
	for _, t := range ids {
		r := int32(math.MinInt32)
		if t >= 0 {
			r = f.rank[t]
		}
		buf = append(buf, elem{rank: r, tok: t})
	}
	slices.SortFunc(buf, func(a, b elem) int {
		if a.rank != b.rank {
			if a.rank < b.rank {
				return -1
			}
			return 1
		}
		if a.tok != b.tok {
			if a.tok < b.tok {
				return -1
			}
			return 1
		}
		return 0
	})
	for i := 1; i < len(buf); i++ {
		if buf[i].tok == buf[i-1].tok {
			buf[i].k = buf[i-1].k + 1
		}
	}
	return buf
}

// index adds the prefix elements of pool text doc to the postings.
func (f *Filter) index(doc int, buf []elem) []elem {
	ids := f.toks[doc]
	if len(ids) > maxLen {
		f.long = append(f.long, int32(doc))
		return buf
	}
	p := f.indexPrefix(len(ids))
	if p == 0 {
		return buf
	}
	p = min(p+ell-1, len(ids))
	buf = f.elements(ids, buf)
	if f.pairIndexed(len(ids)) {
		f.addPairs(doc, buf[:p])
		return buf
	}
	m := uint16(len(ids))
	for i, e := range buf[:p] {
		bs := f.post[e.tok]
		j := len(bs)
		for j > 0 && bs[j-1].m > m {
			j--
		}
		if j == 0 || bs[j-1].m != m {
			bs = slices.Insert(bs, j, bucket{m: m})
			f.post[e.tok] = bs
		} else {
			j--
		}
		bs[j].ps = append(bs[j].ps, posting{doc: int32(doc), k: e.k, pos: uint16(i)})
	}
	return buf
}

// addPairs indexes the pairs of the extended prefix el of pool text doc: the
// first shared element lies at <= m-α, the second at <= m-α+1.
func (f *Filter) addPairs(doc int, el []elem) {
	m := len(f.toks[doc])
	alim := m - f.indexAlpha(m)
	for b := 1; b < len(el); b++ {
		eb := f.elemID(el[b], true)
		for a := 0; a < min(b, alim+1); a++ {
			f.pairs.add(pairKey(f.elemID(el[a], true), eb), pairPosting{doc: int32(doc), m: uint16(m), pa: uint8(a), pb: uint8(b)})
		}
	}
}

// indexPairs is index for the counting pass of a rebuild: pairs only.
func (f *Filter) indexPairs(doc int, buf []elem) []elem {
	ids := f.toks[doc]
	if len(ids) > maxLen || !f.pairIndexed(len(ids)) {
		return buf
	}
	p := min(f.indexPrefix(len(ids))+ell-1, len(ids))
	buf = f.elements(ids, buf)
	f.addPairs(doc, buf[:p])
	return buf
}

// elemID is the id of element e in pair keys; with add, (token, k > 0)
// elements new to the filter get one. ok is false for elements no pool text
// holds.
func (f *Filter) elemID(e elem, add bool) uint32 {
	if e.k == 0 {
		return uint32(e.tok)
	}
	key := uint64(e.tok)<<16 | uint64(e.k)
	id, ok := f.extra[key]
	if !ok && add {
		id = 1<<31 | uint32(len(f.extra))
		f.extra[key] = id
	}
	if !ok && !add {
		return math.MaxUint32
	}
	return id
}

// rebuild re-derives the global order from document frequencies (rare
// first) and re-indexes every pool text.
func (f *Filter) rebuild() {
	order := make([]int32, len(f.df))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		if f.df[a] != f.df[b] {
			return int(f.df[a] - f.df[b])
		}
		return int(a - b)
	})
	for r, t := range order {
		f.rank[t] = rankBase + int32(r)
	}
	f.low = rankBase - 1
	for i, bs := range f.post {
		for j := range bs {
			bs[j].ps = bs[j].ps[:0]
		}
		f.post[i] = bs
	}
	f.long = f.long[:0]
	// two passes, so that the postings of each pair lie contiguously
	f.pairs.startRebuild()
	var buf []elem
	for doc := range f.texts {
		buf = f.indexPairs(doc, buf)
	}
	f.pairs.layout()
	for doc := range f.texts {
		buf = f.index(doc, buf)
	}
	f.pairs.endRebuild(len(f.texts))
	f.next = len(f.texts) + len(f.texts)/2
	f.orderN = len(f.texts)
}

// scratch is per-worker memory for probing.
type scratch struct {
	acc    []accum // per pool text
	stamp  uint32
	m      matcher
	elems  []elem
	cands  []int32
	ids    []int32
	need   []int32
	slack  []int32
	scores []float64
	// SimilarAt
	sim      []simAcc
	simStamp uint32
	tc       []tokCount
	bits     []uint64
	fm       []float64
	lanes    [lanes]lane // similarScan
	mf       [256][lanes]uint64
	ls       []uint8     // similarScan: LCS per (pool text, lane)
	fmn      [][]float64 // per text length: F-measure by (pool length, LCS)
}

// accum is the probe state of one pool text: matched prefix elements so far
// (-1 once pruned).
type accum struct {
	stamp uint32
	cnt   int32
}

func (s *scratch) reset(pool int) {
	if len(s.acc) < pool {
		n := pool + pool/2 + 64
		s.acc = make([]accum, n)
		s.stamp = 0
	}
	s.stamp++
	if s.stamp == 0 {
		clear(s.acc)
		s.stamp = 1
	}
}

// result of probing a candidate against part of the pool.
type result struct {
	drop bool
	best int32 // pool index of the best match found, -1 none
	lcs  int32
	sc   float64
}

func better(sc float64, i int32, bsc float64, bi int32) bool {
	return bi < 0 || sc > bsc || (sc == bsc && i > bi)
}

// probe checks the candidate ids (n tokens) against pool texts with index
// >= from. The result's best is the highest-scoring pool text among those
// not pruned; when some score exceeds the threshold it is the exact best of
// the whole probed range with ExactBest, else the first such text found.
func (f *Filter) probe(ids []int32, from int, s *scratch) result {
	res := result{best: -1}
	n := len(ids)
	pool := len(f.texts)
	if from >= pool {
		return res
	}
	if f.t < 0 || n > maxLen {
		return f.probeAll(ids, from, s)
	}
	if n == 0 {
		return res // every score is 0 <= t
	}
	pp := f.probePrefix(n)
	if pp == 0 {
		return res
	}
	mlo, mhi := f.lengthRange(n)
	if mlo > mhi {
		return res
	}
	// the least lcs that exceeds t, per pool length
	row := mhi-mlo < 512
	if row {
		s.need = s.need[:0]
		for m := mlo; m <= mhi; m++ {
			s.need = append(s.need, int32(f.need(m, n)))
		}
	}
	// candidate elements worth pairing: the second shared element lies at
	// <= n-α+1 for some pair-indexed pool length
	// s.slack[sc]: the largest pool-side slack m-α over the pair-indexed
	// lengths m whose α allows the candidate-side slack sc <= n-α (-1: none)
	q := 0
	s.slack = s.slack[:0]
	for m := mlo; m <= min(mhi, f.maxPairM); m++ {
		if !f.pairIndexed(m) {
			continue
		}
		var nd int
		if row {
			nd = int(s.need[m-mlo])
		} else {
			nd = f.need(m, n)
		}
		if nd > min(m, n) {
			continue
		}
		q = max(q, n-nd+2)
		for len(s.slack) <= n-nd {
			s.slack = append(s.slack, -1)
		}
		for sc := 0; sc <= n-nd; sc++ {
			s.slack[sc] = max(s.slack[sc], int32(m-nd))
		}
	}
	q = min(q, n)
	s.reset(pool)
	s.elems = f.elements(ids, s.elems)
	s.cands = s.cands[:0]
	vocab := len(f.df)
	pp = min(pp+ell-1, n)
	// A shared element found at positions (i, p) as the cnt-th match bounds
	// overlap <= cnt + min(n-1-i, m-1-p) (PPJoin's positional filter): the
	// elements of both texts are in one global order, so the shared ones
	// come in the same order in both, and the matches found are exactly the
	// first shared ones. The first ℓ shared elements of a pair with overlap
	// >= α lie at i <= n-α+ℓ-1 and p <= m-α+ℓ-1, so elements and postings
	// beyond those positions are not looked at (nor, then, any later one).
	for i, e := range s.elems[:pp] {
		if e.tok < 0 {
			continue
		}
		bs := f.post[e.tok]
		j, _ := slices.BinarySearchFunc(bs, mlo, func(b bucket, m int) int { return int(b.m) - m })
		for ; j < len(bs) && int(bs[j].m) <= mhi; j++ {
			m := int(bs[j].m)
			var nd int
			if row {
				nd = int(s.need[m-mlo])
			} else {
				nd = f.need(m, n)
			}
			if i > n-nd+ell-1 {
				continue
			}
			plim := m - nd + ell - 1
			ps := bs[j].ps
			// postings are in pool order: skip those before from
			if from > 0 {
				lo, _ := slices.BinarySearchFunc(ps, int32(from), func(p posting, d int32) int { return int(p.doc - d) })
				ps = ps[lo:]
			}
			for _, p := range ps {
				if int(p.pos) > plim || p.k != e.k {
					continue
				}
				a := &s.acc[p.doc]
				if a.stamp != s.stamp {
					a.stamp, a.cnt = s.stamp, 0
					s.cands = append(s.cands, p.doc)
				} else if a.cnt < 0 {
					continue
				}
				a.cnt++
				if int(a.cnt)+min(n-1-i, m-1-int(p.pos)) < nd {
					a.cnt = -1
				}
			}
		}
	}
	if q >= 2 {
		f.probePairs(s, ids, from, q, mlo, mhi, row)
	}
	// keep the candidates with enough matches
	k := 0
	for _, d := range s.cands {
		c := int(s.acc[d].cnt)
		if c <= 0 {
			continue
		}
		if c < ell {
			m := len(f.toks[d])
			var nd int
			if row {
				nd = int(s.need[m-mlo])
			} else {
				nd = f.need(m, n)
			}
			if c < min(ell, nd) {
				continue
			}
		}
		s.cands[k] = d
		k++
	}
	s.cands = s.cands[:k]
	for _, d := range f.long {
		if int(d) >= from && len(f.toks[d]) <= mhi {
			s.cands = append(s.cands, d)
		}
	}
	if len(s.cands) == 0 {
		return res
	}
	s.m.set(ids, vocab)
	for _, d := range s.cands {
		l := s.m.lcs(f.toks[d])
		sc := FMeasure(l, len(f.toks[d]), n)
		if better(sc, d, res.sc, res.best) {
			res.best, res.lcs, res.sc = d, int32(l), sc
			if sc > f.t && !f.ExactBest {
				break
			}
		}
	}
	res.drop = res.best >= 0 && res.sc > f.t
	return res
}

// probeAll scores every pool text from from on (no pruning).
func (f *Filter) probeAll(ids []int32, from int, s *scratch) result {
	res := result{best: -1}
	s.m.set(ids, len(f.df))
	for d := from; d < len(f.texts); d++ {
		l := s.m.lcs(f.toks[d])
		sc := FMeasure(l, len(f.toks[d]), len(ids))
		if better(sc, int32(d), res.sc, res.best) {
			res.best, res.lcs, res.sc = int32(d), int32(l), sc
		}
	}
	res.drop = res.best >= 0 && res.sc > f.t
	return res
}

func (f *Filter) match(r result) Match {
	if r.best < 0 {
		return Match{Index: -1}
	}
	return Match{Text: f.texts[r.best], Score: r.sc, Index: int(r.best)}
}

// Check decides a candidate: keep reports whether its F-measure against
// every pool text is <= the threshold. When keep is false, best is a pool
// text scoring > threshold, with its exact score (the highest-scoring one,
// ties to the later, when ExactBest is set); when keep is
// true, best is the highest-scoring pool text among those the bounds did not
// prune (Index -1 when all were pruned), which is not necessarily the overall
// best (use Similar for that). If keep && add, text joins the pool.
func (f *Filter) Check(text string, add bool) (keep bool, best Match) {
	s := f.seq
	s.ids = f.lookup(text, s.ids)
	r := f.probe(s.ids, 0, s)
	if !r.drop && add {
		f.add(text, s.ids)
	}
	return !r.drop, f.match(r)
}

// Result is the decision about one candidate of CheckBatch.
type Result struct {
	Keep  bool
	Best  Match // as in Check
	Index int   // pool index when the candidate was added, else -1
}

// CheckBatch decides the candidates in order, exactly as calling Check on
// each in turn would, using up to workers goroutines (<= 0: all CPUs). Each
// candidate is first checked in parallel against the pool as it was when the
// batch started; the survivors are then checked in order against the texts
// kept earlier in the same batch.
func (f *Filter) CheckBatch(texts []string, add bool, workers int) []Result {
	out := make([]Result, len(texts))
	if len(texts) == 0 {
		return out
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if len(texts) < 32 {
		workers = 1 // not worth the goroutines
	}
	start := len(f.texts)
	ids := make([][]int32, len(texts))
	res := make([]result, len(texts))
	if workers == 1 {
		for i, t := range texts {
			ids[i] = f.lookup(t, nil)
			res[i] = f.probe(ids[i], 0, f.seq)
		}
	} else {
		var wg sync.WaitGroup
		var mu sync.Mutex
		nextI := 0
		const chunk = 16
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, _ := f.pool.Get().(*scratch)
				if s == nil {
					s = &scratch{}
				}
				defer f.pool.Put(s)
				for {
					mu.Lock()
					lo := nextI
					nextI += chunk
					mu.Unlock()
					if lo >= len(texts) {
						return
					}
					hi := min(lo+chunk, len(texts))
					for i := lo; i < hi; i++ {
						ids[i] = f.lookup(texts[i], nil)
						res[i] = f.probe(ids[i], 0, s)
					}
				}
			}()
		}
		wg.Wait()
	}
	for i, t := range texts {
		r := res[i]
		if len(f.texts) > start && (!r.drop || f.ExactBest) {
			// texts kept earlier in this batch; for a drop this finds the
			// exact best, for a pass the greedy decision
			f.resolve(t, ids[i])
			r2 := f.probe(ids[i], start, f.seq)
			if r2.best >= 0 && (r2.drop && !r.drop || better(r2.sc, r2.best, r.sc, r.best)) {
				r = r2
			}
		}
		out[i] = Result{Keep: !r.drop, Best: f.match(r), Index: -1}
		if !r.drop && add {
			out[i].Index = f.add(t, ids[i])
		}
	}
	return out
}

// Similar scores text exactly against every pool text and returns the k best
// (score descending; ties: later pool index first) and the mean score over
// the whole pool computed as NumPy's np.mean does (0 for an empty pool):
// the generator's most_similar_instructions and avg_similarity_score.
func (f *Filter) Similar(text string, k int) (top []Match, avg float64) {
	return f.SimilarAt(text, k, len(f.texts))
}

// probePairs adds to s.cands the pool texts (>= from) of pair-indexed
// lengths that share a pair of prefix elements with the candidate at
// positions allowed for their first two shared elements; it marks them with
// cnt = ell.
func (f *Filter) probePairs(s *scratch, ids []int32, from, q, mlo, mhi int, row bool) {
	n := len(ids)
	el := s.elems
	x := &f.pairs
	for b := 1; b < q; b++ {
		if el[b].tok < 0 {
			continue
		}
		eb := f.elemID(el[b], false)
		if eb == math.MaxUint32 {
			continue
		}
		for a := 0; a < b; a++ {
			if el[a].tok < 0 {
				continue
			}
			ea := f.elemID(el[a], false)
			if ea == math.MaxUint32 {
				continue
			}
			sl := x.find(pairKey(ea, eb))
			if sl < 0 {
				continue
			}
			sc := max(a, b-1) // the candidate's slack for this pair
			lim := int(s.slack[sc])
			// newest first: the overflow list
			for h := x.heads[sl]; h >= 0; h = x.next[h] {
				p := &x.ps[h]
				if int(p.doc) < from {
					break
				}
				f.pairHit(s, p, n, sc, mlo, mhi, row)
			}
			if from >= x.baseN || lim < 0 {
				continue
			}
			for _, p := range x.base[x.off[sl] : x.off[sl]+x.cnt[sl]] {
				if int(p.slack()) > lim {
					break
				}
				if int(p.doc) >= from {
					f.pairHit(s, &p, n, sc, mlo, mhi, row)
				}
			}
		}
	}
}

// pairHit marks the pool text of posting p as a candidate when its length
// and the positions of the pair (candidate slack sc) allow it.
func (f *Filter) pairHit(s *scratch, p *pairPosting, n, sc, mlo, mhi int, row bool) {
	m := int(p.m)
	if m < mlo || m > mhi {
		return
	}
	var nd int
	if row {
		nd = int(s.need[m-mlo])
	} else {
		nd = f.need(m, n)
	}
	if sc > n-nd || int(p.slack()) > m-nd {
		return
	}
	acc := &s.acc[p.doc]
	if acc.stamp == s.stamp {
		return
	}
	acc.stamp, acc.cnt = s.stamp, ell
	s.cands = append(s.cands, p.doc)

}
