package rouge

import (
	"math"
	"math/bits"
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
//   - positional bound on the shared prefix elements found (PPJoin);
//   - signature: lcs <= the number of the candidate's elements whose bit is
//     set in a 64-bit signature of the pool text's elements (elementSig).
//
// Survivors are scored with a bit-parallel LCS. The global order is derived
// from document frequencies, and the index rebuilt, each time the pool
// doubles until it holds freezeN texts; after that the order stays (tokens
// new since then come first, as the rarest), since re-indexing a large pool
// costs more than a fresher order saves. CheckBatch checks a batch against
// the pool's index in parallel, then in order against an index of the texts
// the batch has kept so far (small enough to stay in the caches), and adds
// the batch's texts to the pool's index at the end.
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
	sig    []uint64          // per pool text: elementSig
	ix     postings          // index of the pool
	batch  postings          // CheckBatch: index of the texts the batch has added
	extra  map[uint64]uint32 // element ids of (token, k > 0): (tok<<16 | k) -> id
	slab   []int32           // storage of toks
	next   int               // pool size at which the order is re-derived (below freezeN)
	orderN int               // pool size at the last rebuild
	indexN int               // pool texts in ix
	seq    *scratch          // scratch of the sequential path
	full   [][]fullPosting   // per token id: every pool text holding it (SimilarAt)
	fullN  int               // pool texts in full
	freq   freqSeqs          // frequent-token byte sequences (SimilarAt)
	fullMu sync.Mutex
	pool   sync.Pool // scratch for SimilarAt and CheckBatch workers
	*bounds
}

// postings is an index of pool texts from..: the prefix elements of the
// texts of single-indexed lengths by token and length, the pairs of those
// of pair-indexed lengths, and the texts too long to index. The Filter
// keeps one over the pool and one over the texts the current batch kept.
type postings struct {
	from  int
	post  [][]bucket // per token id: prefix elements of pool texts not in pairs, by length
	used  []int32    // token ids with buckets
	pairs pairIndex  // pairs of prefix elements of pool texts of pair-indexed lengths
	long  []int32    // pool texts longer than maxLen (never indexed, always verified)
}

// reset empties ix for the pool texts from.. .
func (ix *postings) reset(from int) {
	ix.from = from
	for _, t := range ix.used {
		bs := ix.post[t]
		for j := range bs {
			bs[j].ps = bs[j].ps[:0]
		}
	}
	ix.used = ix.used[:0]
	ix.pairs.reset()
	ix.long = ix.long[:0]
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

// freezeN is the pool size after which the global order is no longer
// re-derived (a variable for tests). On the benchmark's scaling inputs the
// frozen order probed as fast as one re-derived at every doubling (measured
// at 100K-800K records), and those rebuilds had taken a fifth of the time
// at 800K.
var freezeN = 1 << 14

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

// appendText interns the unknown tokens of text and appends it to the pool
// (not indexed).
func (f *Filter) appendText(text string, ids []int32) int {
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
	f.sig = append(f.sig, elementSig(own))
	f.countDF(own, 1)
	return doc
}

// add appends text to the pool and indexes it.
func (f *Filter) add(text string, ids []int32) int {
	doc := f.appendText(text, ids)
	f.indexed(nil)
	return doc
}

// indexed indexes the pool texts added since the last call (or rebuilds
// the index, when the pool has doubled).
func (f *Filter) indexed(buf []elem) {
	if len(f.texts) >= f.next && f.orderN < freezeN {
		f.rebuild()
		return
	}
	for doc := f.indexN; doc < len(f.texts); doc++ {
		buf = f.index(&f.ix, doc, buf)
	}
	f.indexN = len(f.texts)
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

// index adds pool text doc to ix.
func (f *Filter) index(ix *postings, doc int, buf []elem) []elem {
	ids := f.toks[doc]
	if len(ids) > maxLen {
		ix.long = append(ix.long, int32(doc))
		return buf
	}
	p := f.indexPrefix(len(ids))
	if p == 0 {
		return buf
	}
	buf = f.elements(ids, buf)
	p = min(p+ell-1, len(ids))
	if f.pairIndexed(len(ids)) {
		f.addPairs(ix, doc, buf[:p])
		return buf
	}
	if len(ix.post) < len(f.df) {
		ix.post = slices.Grow(ix.post, len(f.df)-len(ix.post))[:len(f.df)]
	}
	m := uint16(len(ids))
	for i, e := range buf[:p] {
		bs := ix.post[e.tok]
		if !slices.ContainsFunc(bs, func(b bucket) bool { return len(b.ps) > 0 }) {
			ix.used = append(ix.used, e.tok)
		}
		j := len(bs)
		for j > 0 && bs[j-1].m > m {
			j--
		}
		if j == 0 || bs[j-1].m != m {
			bs = slices.Insert(bs, j, bucket{m: m})
			ix.post[e.tok] = bs
		} else {
			j--
		}
		bs[j].ps = append(bs[j].ps, posting{doc: int32(doc), k: e.k, pos: uint16(i)})
	}
	return buf
}

// addPairs indexes the pairs of the extended prefix el of pool text doc:
// the first shared element lies at <= m-α, the second at <= m-α+1.
func (f *Filter) addPairs(ix *postings, doc int, el []elem) {
	m := len(f.toks[doc])
	alim := m - f.indexAlpha(m)
	var ids [maxPairPrefix]uint32
	for i, e := range el {
		ids[i] = f.elemID(e, true)
	}
	for b := 1; b < len(el); b++ {
		for a := 0; a < min(b, alim+1); a++ {
			ix.pairs.add(pairKey(ids[a], ids[b]), pairPosting{doc: int32(doc), m: uint16(m), slack: uint8(max(a, b-1))})
		}
	}
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
	f.ix.reset(0)
	var buf []elem
	for doc := range f.texts {
		buf = f.index(&f.ix, doc, buf)
	}
	f.indexN = len(f.texts)
	f.orderN = len(f.texts)
	f.next = 2 * len(f.texts)
}

// scratch is per-worker memory for probing.
type scratch struct {
	acc      touched // pool texts found by pairs,
	pcands   []int32 // in the order found
	arr      []accum // per pool text: prefix elements matched (single-element buckets)
	arrStamp uint32
	m        matcher
	elems    []elem
	cands    []int32
	ids      []int32
	need     []int32
	eid      []uint32  // probePairs: element ids of the candidate's prefix
	sigm     []uint64  // sigMasks
	keys     []uint64  // probePairs: the candidate's pair keys,
	keySc    []uint8   // their slack,
	found    []int32   // and the slots of those found
	sink     uint64    // touchSlots, touchRuns
	lims     [][]uint8 // pairLimits, by candidate slack
	limOK    []uint32  // per slack: lims[sc] is for probe limStamp
	limStamp uint32
	scores   []float64
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

// touched is the set of pool texts a probe has found through pairs: an
// open-addressing table that stays in the L1 cache, where an array over
// the pool would cost a cache miss per posting.
type touched struct {
	e     []touchEntry // power-of-two size; entries of older probes are free
	used  int
	stamp uint32
	shift uint8
}

type touchEntry struct {
	stamp uint32
	doc   int32
}

func (t *touched) reset() {
	if t.e == nil {
		t.e, t.shift = make([]touchEntry, 256), 32-8
	}
	t.used = 0
	t.stamp++
	if t.stamp == 0 {
		clear(t.e)
		t.stamp = 1
	}
}

// add adds doc and reports whether it was new to this probe.
func (t *touched) add(doc int32) bool {
	if 2*(t.used+1) > len(t.e) {
		t.grow()
	}
	mask := len(t.e) - 1
	for i := int(uint32(doc)*0x9E3779B1>>t.shift) & mask; ; i = (i + 1) & mask {
		e := &t.e[i]
		if e.stamp != t.stamp {
			*e = touchEntry{stamp: t.stamp, doc: doc}
			t.used++
			return true
		}
		if e.doc == doc {
			return false
		}
	}
}

func (t *touched) grow() {
	old := t.e
	t.e = make([]touchEntry, 2*len(old))
	t.shift--
	t.used = 0
	for _, e := range old {
		if e.stamp == t.stamp {
			t.add(e.doc)
		}
	}
}

// accum is the probe state of one pool text in the single-element buckets:
// matched prefix elements so far (-1 once pruned).
type accum struct {
	stamp uint32
	cnt   int32
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
func (f *Filter) probe(ix *postings, ids []int32, s *scratch) result {
	res := result{best: -1}
	n := len(ids)
	if ix.from >= len(f.texts) {
		return res
	}
	if f.t < 0 || n > maxLen {
		return f.probeAll(ids, ix.from, s)
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
	q := 0
	for m := mlo; m <= min(mhi, f.maxPairM); m++ {
		if !f.pairIndexed(m) {
			continue
		}
		nd := f.needAt(s, m, n, mlo, row)
		if nd > min(m, n) {
			continue
		}
		q = max(q, n-nd+2)
	}
	q = min(q, n)
	s.acc.reset()
	s.pcands = s.pcands[:0]
	if len(s.arr) < len(f.texts) {
		s.arr = make([]accum, len(f.texts)+len(f.texts)/2+64)
		s.arrStamp = 0
	}
	if s.arrStamp++; s.arrStamp == 0 {
		clear(s.arr)
		s.arrStamp = 1
	}
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
		if int(e.tok) >= len(ix.post) {
			continue
		}
		bs := ix.post[e.tok]
		j, _ := slices.BinarySearchFunc(bs, mlo, func(b bucket, m int) int { return int(b.m) - m })
		for ; j < len(bs) && int(bs[j].m) <= mhi; j++ {
			m := int(bs[j].m)
			nd := f.needAt(s, m, n, mlo, row)
			if i > n-nd+ell-1 {
				continue
			}
			plim := m - nd + ell - 1
			for _, p := range bs[j].ps {
				if int(p.pos) > plim || p.k != e.k {
					continue
				}
				a := &s.arr[p.doc]
				if a.stamp != s.arrStamp {
					a.stamp, a.cnt = s.arrStamp, 0
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
		f.probePairs(ix, s, q, mlo, mhi, n, row)
	}
	// keep the candidates with enough matches
	k := 0
	for _, d := range s.cands {
		c := int(s.arr[d].cnt)
		if c <= 0 {
			continue
		}
		if c < ell {
			m := len(f.toks[d])
			nd := f.needAt(s, m, n, mlo, row)
			if c < min(ell, nd) {
				continue
			}
		}
		s.cands[k] = d
		k++
	}
	s.cands = append(s.cands[:k], s.pcands...)
	for _, d := range ix.long {
		if len(f.toks[d]) <= mhi {
			s.cands = append(s.cands, d)
		}
	}
	if len(s.cands) == 0 {
		return res
	}
	s.sigMasks(s.elems)
	s.m.set(ids, vocab)
	for _, d := range s.cands {
		if m := int(f.lens[d]); n <= sigMaxLen && m <= sigMaxLen {
			if s.sigBound(f.sig[d]) < f.needAt(s, m, n, mlo, row) {
				continue
			}
		}
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

// elementSig is a 64-bit signature of the elements (token, occurrence) of a
// text: the bit sigBit of each. A candidate's elements whose bits are not
// all in a pool text's signature are not all in the pool text, so counting
// those that are bounds the multiset overlap, and with it the LCS, from
// above (see sigBound). Texts of more than sigMaxLen tokens, whose elements
// would set most of the bits, get 0: their signature is never consulted.
func elementSig(ids []int32) uint64 {
	if len(ids) > sigMaxLen {
		return 0
	}
	var sig uint64
	for i, t := range ids {
		k := 0
		for _, u := range ids[:i] {
			if u == t {
				k++
			}
		}
		sig |= sigBit(t, k)
	}
	return sig
}

// sigMaxLen: the signature bound is used when both texts have at most this
// many tokens.
const sigMaxLen = 64

func sigBit(tok int32, k int) uint64 {
	return 1 << ((uint64(uint32(tok))<<16 | uint64(k)) * 0x9E3779B97F4A7C15 >> 58)
}

// sigMasks sets s.sigm[j] to the bits that j+1 or more of the candidate's
// elements el map to.
func (s *scratch) sigMasks(el []elem) {
	s.sigm = s.sigm[:0]
	for _, e := range el {
		if e.tok < 0 {
			continue
		}
		b := sigBit(e.tok, int(e.k))
		j := 0
		for j < len(s.sigm) && s.sigm[j]&b != 0 {
			j++
		}
		if j == len(s.sigm) {
			s.sigm = append(s.sigm, 0)
		}
		s.sigm[j] |= b
	}
}

// sigBound bounds the multiset overlap of the candidate with a pool text of
// signature sig: its elements whose bits sig holds.
func (s *scratch) sigBound(sig uint64) int {
	n := 0
	for _, m := range s.sigm {
		n += bits.OnesCount64(sig & m)
	}
	return n
}

// needAt is need(m, n) for a pool length m the probe's row covers (row:
// s.need holds mlo..mhi).
func (f *Filter) needAt(s *scratch, m, n, mlo int, row bool) int {
	if row {
		return int(s.need[m-mlo])
	}
	return f.need(m, n)
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
	r := f.probe(&f.ix, s.ids, s)
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
			res[i] = f.probe(&f.ix, ids[i], f.seq)
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
						res[i] = f.probe(&f.ix, ids[i], s)
					}
				}
			}()
		}
		wg.Wait()
	}
	// the texts kept earlier in this batch are looked up in an index of
	// their own (small, so it stays in the caches); the pool's index takes
	// them when the batch is decided
	f.batch.reset(start)
	var buf []elem
	for i, t := range texts {
		r := res[i]
		if len(f.texts) > start && (!r.drop || f.ExactBest) {
			// texts kept earlier in this batch; for a drop this finds the
			// exact best, for a pass the greedy decision
			f.resolve(t, ids[i])
			r2 := f.probe(&f.batch, ids[i], f.seq)
			if r2.best >= 0 && (r2.drop && !r.drop || better(r2.sc, r2.best, r.sc, r.best)) {
				r = r2
			}
		}
		out[i] = Result{Keep: !r.drop, Best: f.match(r), Index: -1}
		if !r.drop && add {
			out[i].Index = f.appendText(t, ids[i])
			buf = f.index(&f.batch, out[i].Index, buf)
		}
	}
	f.indexed(buf)
	return out
}

// Similar scores text exactly against every pool text and returns the k best
// (score descending; ties: later pool index first) and the mean score over
// the whole pool computed as NumPy's np.mean does (0 for an empty pool):
// the generator's most_similar_instructions and avg_similarity_score.
func (f *Filter) Similar(text string, k int) (top []Match, avg float64) {
	return f.SimilarAt(text, k, len(f.texts))
}

// probePairs adds to s.cands the pool texts of pair-indexed lengths that
// share a pair of prefix elements with the candidate at positions allowed
// for their first two shared elements; it marks them with cnt = ell.
func (f *Filter) probePairs(ix *postings, s *scratch, q, mlo, mhi, n int, row bool) {
	eid := s.eid[:0]
	for _, e := range s.elems[:q] {
		id := uint32(math.MaxUint32)
		if e.tok >= 0 {
			id = f.elemID(e, false)
		}
		eid = append(eid, id)
	}
	s.eid = eid
	s.limStamp++
	if s.limStamp == 0 {
		clear(s.limOK)
		s.limStamp = 1
	}
	// the lookups miss the caches: all slots are touched first, then all
	// runs, so that the misses overlap instead of following one another
	s.keys, s.keySc = s.keys[:0], s.keySc[:0]
	for b := 1; b < q; b++ {
		if eid[b] == math.MaxUint32 {
			continue
		}
		for a := 0; a < b; a++ {
			if eid[a] != math.MaxUint32 {
				s.keys = append(s.keys, pairKey(eid[a], eid[b]))
				s.keySc = append(s.keySc, uint8(max(a, b-1))) // the candidate's slack for this pair
			}
		}
	}
	x := &ix.pairs
	s.sink += x.touchSlots(s.keys)
	s.found = s.found[:0]
	for i, k := range s.keys {
		if sl := x.find(k); sl >= 0 {
			s.found = append(s.found, int32(sl))
			s.keySc[len(s.found)-1] = s.keySc[i]
		}
	}
	s.sink += x.touchRuns(s.found)
	var one [1]pairPosting
	for i, sl := range s.found {
		s.pairHits(x.postingsOf(int(sl), &one), int(x.slots[sl].sorted), f.pairLimits(s, int(s.keySc[i]), n, mlo, mhi, row), mlo)
	}
}

// pairLimits returns, for the candidate's slack sc, the limit on the
// slack of postings per pool length m = mlo+d: a posting qualifies when its
// slack is < lim[d] (0: no posting of that length does).
func (f *Filter) pairLimits(s *scratch, sc, n, mlo, mhi int, row bool) []uint8 {
	for len(s.lims) <= sc {
		s.lims = append(s.lims, nil)
		s.limOK = append(s.limOK, 0)
	}
	if s.limOK[sc] == s.limStamp {
		return s.lims[sc]
	}
	s.limOK[sc] = s.limStamp
	lim := s.lims[sc][:0]
	for m := mlo; m <= min(mhi, f.maxPairM); m++ {
		nd := f.needAt(s, m, n, mlo, row)
		l := uint8(0)
		if sc <= n-nd && m >= nd {
			l = uint8(min(m-nd, 254) + 1)
		}
		lim = append(lim, l)
	}
	for len(lim) > 0 && lim[len(lim)-1] == 0 {
		lim = lim[:len(lim)-1] // lengths past the last allowed one: none
	}
	s.lims[sc] = lim
	return lim
}

// pairHits marks the pool texts of the postings in run as candidates when
// their length and slack allow them (lim, from mlo on). The first sorted
// postings are in ascending length: the later a pair comes in the
// candidate's order, the shorter the partners it allows, so the scan of
// those stops at the first length past lim.
func (s *scratch) pairHits(run []pairPosting, sorted int, lim []uint8, mlo int) {
	for j := range run[:sorted] {
		p := &run[j]
		d := int(p.m) - mlo
		if d >= len(lim) {
			break
		}
		if d < 0 || p.slack >= lim[d] {
			continue
		}
		if s.acc.add(p.doc) {
			s.pcands = append(s.pcands, p.doc)
		}
	}
	run = run[sorted:]
	for j := range run {
		p := &run[j]
		d := int(p.m) - mlo
		if uint(d) >= uint(len(lim)) || p.slack >= lim[d] {
			continue
		}
		if s.acc.add(p.doc) {
			s.pcands = append(s.pcands, p.doc)
		}
	}
}
