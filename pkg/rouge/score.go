package rouge

import "math/bits"

// Score is the ROUGE-L F-measure between a pool text and a candidate, both
// already tokenized, exactly as rouge_score's _score_lcs(target=cand,
// prediction=pool) computes it in the Alpaca generator: precision =
// lcs/len(pool), recall = lcs/len(cand), F = 2*P*R/(P+R) in float64 in that
// order of operations, 0 when either side is empty or the LCS is 0.
func Score(pool, cand []string) float64 {
	ids := map[string]int32{}
	a := intern(ids, cand)
	b := intern(ids, pool)
	return FMeasure(lcsIDs(a, b), len(pool), len(cand))
}

// ScoreText tokenizes both texts and returns Score.
func ScoreText(pool, cand string) float64 {
	return Score(Tokenize(pool), Tokenize(cand))
}

// LCS is the length of the longest common subsequence of two token
// sequences.
func LCS(a, b []string) int {
	ids := map[string]int32{}
	return lcsIDs(intern(ids, a), intern(ids, b))
}

func intern(ids map[string]int32, toks []string) []int32 {
	out := make([]int32, len(toks))
	for i, t := range toks {
		id, ok := ids[t]
		if !ok {
			id = int32(len(ids))
			ids[t] = id
		}
		out[i] = id
	}
	return out
}

// FMeasure computes the ROUGE-L F-measure from an LCS length and the token
// counts of the pool text (precision's denominator) and the candidate
// (recall's denominator), with Python's float64 operations in Python's
// order. The explicit conversions forbid fused multiply-adds.
func FMeasure(lcs, poolLen, candLen int) float64 {
	if poolLen == 0 || candLen == 0 {
		return 0
	}
	p := float64(lcs) / float64(poolLen)
	r := float64(lcs) / float64(candLen)
	s := float64(p + r)
	if s > 0 {
		return float64(float64(float64(2*p)*r) / s)
	}
	return 0
}

// lcsIDs computes the LCS length of two id sequences with the bit-parallel
// algorithm of Allison and Dix / Hyyrö, one machine word per 64 tokens of a.
func lcsIDs(a, b []int32) int {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	var m matcher
	m.set(a, 0)
	return m.lcs(b)
}

// matcher holds the match masks of one sequence (the candidate) for
// bit-parallel LCS against many others. Negative ids (tokens unknown to the
// pool) never match.
type matcher struct {
	n     int
	words int
	syms  []int32
	masks []uint64 // len(syms)*words
	dense []int32  // optional: token id -> 1+index into syms, 0 = absent
	dmask []uint64 // optional, one-word sequences: token id -> match mask
	v     []uint64 // scratch
}

// set prepares the masks of a. With vocab > 0 lookups use a dense table of
// that many ids (ids must be < vocab), otherwise a linear scan.
func (m *matcher) set(a []int32, vocab int) {
	for _, s := range m.syms {
		if int(s) < len(m.dense) {
			m.dense[s] = 0
		}
		if int(s) < len(m.dmask) {
			m.dmask[s] = 0
		}
	}
	if vocab > 0 && len(m.dense) < vocab {
		m.dense = make([]int32, vocab+vocab/4+64)
	} else if vocab == 0 {
		m.dense = nil
	}
	m.n = len(a)
	m.words = (len(a) + 63) / 64
	m.syms = m.syms[:0]
	m.masks = m.masks[:0]
	for i, t := range a {
		if t < 0 {
			continue
		}
		j := m.find(t)
		if j < 0 {
			j = len(m.syms)
			m.syms = append(m.syms, t)
			if m.dense != nil {
				m.dense[t] = int32(j + 1)
			}
			for w := 0; w < m.words; w++ {
				m.masks = append(m.masks, 0)
			}
		}
		m.masks[j*m.words+i/64] |= 1 << uint(i%64)
	}
	if cap(m.v) < m.words {
		m.v = make([]uint64, m.words)
	}
	m.v = m.v[:m.words]
	if m.dense != nil && m.words == 1 {
		if len(m.dmask) < len(m.dense) {
			m.dmask = make([]uint64, len(m.dense))
		}
		for k, s := range m.syms {
			m.dmask[s] = m.masks[k]
		}
	}
}

func (m *matcher) find(t int32) int {
	if m.dense != nil {
		if t >= 0 && int(t) < len(m.dense) {
			return int(m.dense[t]) - 1
		}
		return -1
	}
	for k, s := range m.syms {
		if s == t {
			return k
		}
	}
	return -1
}

// lcs returns the LCS length of the matcher's sequence and b.
func (m *matcher) lcs(b []int32) int {
	if m.n == 0 || len(b) == 0 {
		return 0
	}
	if m.words == 1 && m.dense != nil {
		v := ^uint64(0)
		d := m.dmask
		for _, t := range b {
			if uint(t) < uint(len(d)) {
				u := v & d[t]
				v = (v + u) | (v - u)
			}
		}
		if m.n < 64 {
			v |= ^uint64(0) << uint(m.n)
		}
		return 64 - bits.OnesCount64(v)
	}
	if m.words == 1 {
		v := ^uint64(0)
		for _, t := range b {
			k := m.find(t)
			if k < 0 {
				continue
			}
			u := v & m.masks[k]
			v = (v + u) | (v - u)
		}
		if m.n < 64 {
			v |= ^uint64(0) << uint(m.n)
		}
		return 64 - bits.OnesCount64(v)
	}
	v := m.v
	for i := range v {
		v[i] = ^uint64(0)
	}
	for _, t := range b {
		k := m.find(t)
		if k < 0 {
			continue
		}
		pm := m.masks[k*m.words : (k+1)*m.words]
		var carry uint64
		for w := range v {
			u := v[w] & pm[w]
			sum, c := bits.Add64(v[w], u, carry)
			carry = c
			v[w] = sum | (v[w] &^ u)
		}
	}
	zeros := 0
	for w, x := range v {
		valid := 64
		if w == len(v)-1 && m.n%64 != 0 {
			valid = m.n % 64
			x |= ^uint64(0) << uint(valid)
		}
		zeros += 64 - bits.OnesCount64(x)
	}
	return zeros
}
