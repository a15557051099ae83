package sentencepiece

import (
	"sort"
	"unicode/utf8"
)

// learnMerges runs BPE training: start from characters (those not in
// allowed never merge), repeatedly merge the most frequent adjacent pair
// (ties: the pair of earlier-created symbols) inside each word, weighting
// by word frequency, until nMerges pieces exist or no pair is left. Pieces
// longer than maxLen characters are not made. It returns the merged pieces
// in order of creation.
func learnMerges(words map[string]int64, allowed map[string]bool, nMerges, maxLen int) []string {
	keys := make([]string, 0, len(words))
	for w := range words {
		keys = append(keys, w)
	}
	sort.Strings(keys)

	var symStr []string
	var symLen []int
	symIdx := map[string]int32{}
	intern := func(s string) int32 {
		if id, ok := symIdx[s]; ok {
			return id
		}
		id := int32(len(symStr))
		symIdx[s] = id
		symStr = append(symStr, s)
		symLen = append(symLen, utf8.RuneCountInString(s))
		return id
	}
	// Characters first, in a fixed order, so that ties are deterministic.
	var chars []string
	for c := range allowed {
		chars = append(chars, c)
	}
	sort.Strings(chars)
	for _, c := range chars {
		intern(c)
	}

	seqs := make([][]int32, len(keys))
	freq := make([]int64, len(keys))
	for i, w := range keys {
		freq[i] = words[w]
		seq := make([]int32, 0, len(w))
		for _, r := range w {
			if id, ok := symIdx[string(r)]; ok {
				seq = append(seq, id)
			} else {
				seq = append(seq, -1)
			}
		}
		seqs[i] = seq
	}

	key := func(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }
	count := map[uint64]int64{}
	where := map[uint64][]int32{}
	addWhere := func(k uint64, wi int32) {
		l := where[k]
		if len(l) == 0 || l[len(l)-1] != wi {
			where[k] = append(l, wi)
		}
	}
	for wi, seq := range seqs {
		for j := 0; j+1 < len(seq); j++ {
			if seq[j] >= 0 && seq[j+1] >= 0 {
				k := key(seq[j], seq[j+1])
				count[k] += freq[wi]
				addWhere(k, int32(wi))
			}
		}
	}
	h := &countHeap{}
	for k, n := range count {
		h.push(countEntry{n, int32(k >> 32), int32(uint32(k))})
	}

	var merges []string
	lastSeen := make([]int, len(seqs))
	changed := map[uint64]bool{}
	for iter := 1; len(merges) < nMerges && len(h.a) > 0; {
		e := h.pop()
		k := key(e.a, e.b)
		cur := count[k]
		if cur != e.n {
			if cur > 0 {
				h.push(countEntry{cur, e.a, e.b})
			}
			continue
		}
		if cur <= 0 {
			continue
		}
		if symLen[e.a]+symLen[e.b] > maxLen {
			delete(count, k)
			delete(where, k)
			continue
		}
		a, b := e.a, e.b
		c := intern(symStr[a] + symStr[b])
		merges = append(merges, symStr[c])
		ws := where[k]
		delete(where, k)
		clear(changed)
		for _, wi := range ws {
			if lastSeen[wi] == iter {
				continue
			}
			lastSeen[wi] = iter
			seq := seqs[wi]
			found := false
			for j := 0; j+1 < len(seq); j++ {
				if seq[j] == a && seq[j+1] == b {
					found = true
					break
				}
			}
			if !found {
				continue
			}
			f := freq[wi]
			for j := 0; j+1 < len(seq); j++ {
				if seq[j] >= 0 && seq[j+1] >= 0 {
					pk := key(seq[j], seq[j+1])
					if n := count[pk] - f; n > 0 {
						count[pk] = n
					} else {
						delete(count, pk)
					}
				}
			}
			out := seq[:0]
			for j := 0; j < len(seq); {
				if j+1 < len(seq) && seq[j] == a && seq[j+1] == b {
					out = append(out, c)
					j += 2
				} else {
					out = append(out, seq[j])
					j++
				}
			}
			seqs[wi] = out
			for j := 0; j+1 < len(out); j++ {
				if out[j] >= 0 && out[j+1] >= 0 {
					pk := key(out[j], out[j+1])
					count[pk] += f
					if out[j] == c || out[j+1] == c {
						addWhere(pk, wi)
						changed[pk] = true
					}
				}
			}
		}
		for pk := range changed {
			if n := count[pk]; n > 0 {
				h.push(countEntry{n, int32(pk >> 32), int32(uint32(pk))})
			}
		}
		iter++
	}
	return merges
}

type countEntry struct {
	n    int64
	a, b int32
}

func (x countEntry) before(y countEntry) bool {
	if x.n != y.n {
		return x.n > y.n
	}
	if x.a != y.a {
		return x.a < y.a
	}
	return x.b < y.b
}

type countHeap struct{ a []countEntry }

func (h *countHeap) push(e countEntry) {
	h.a = append(h.a, e)
	i := len(h.a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.a[i].before(h.a[p]) {
			break
		}
		h.a[i], h.a[p] = h.a[p], h.a[i]
		i = p
	}
}

func (h *countHeap) pop() countEntry {
	a := h.a
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		best := l
		if r := l + 1; r < n && a[r].before(a[l]) {
			best = r
		}
		if !a[best].before(a[i]) {
			break
		}
		a[i], a[best] = a[best], a[i]
		i = best
	}
	h.a = a
	return top
}
