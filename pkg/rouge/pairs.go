package rouge

import "slices"

// pairIndex maps ordered pairs of prefix elements of pool texts to the pool
// texts holding them (the ℓ = 2 prefix scheme): two texts whose overlap is
// >= α >= 2 share their first two shared elements (a, b), a before b in the
// global order, and both lie among the first len-α+2 elements of each text.
// So a candidate looks up every pair of its own prefix elements and finds
// each qualifying pool text through at least one of them, while a pool text
// sharing only one frequent token with it is never touched.
//
// It is an open-addressing hash table from pair keys to postings. The
// postings present at the last rebuild (pool texts < baseN) lie
// contiguously per pair, ordered by slack = max(pa, pb-1) (base), so a probe
// stops at the first posting whose slack no partner length allows; later
// ones are linked newest first (overflow), so a probe restricted to pool
// texts >= from stops at the first older one.
type pairIndex struct {
	keys  []uint64 // 0 = empty slot
	off   []int32  // per slot: start of its base postings
	cnt   []int32  // per slot: number of base postings
	heads []int32  // per slot: newest overflow posting, -1 none
	used  int
	baseN int // pool texts indexed in base
	base  []pairPosting
	ps    []pairPosting // overflow
	next  []int32       // per overflow posting: the older one of the same pair, -1 none
	mode  int
}

const (
	pairAppend = iota // add to the overflow lists
	pairCount         // rebuild, first pass: count postings per pair
	pairFill          // rebuild, second pass: write the base postings
)

type pairPosting struct {
	doc int32
	m   uint16
	pa  uint8 // positions of the pair's elements in the doc's ordered elements
	pb  uint8
}

// maxPairPrefix bounds the extended prefix of pair-indexed texts (so at most
// maxPairPrefix·(maxPairPrefix-1)/2 pairs per text, positions fit a uint8);
// longer prefixes go to the single-element index.
const maxPairPrefix = 24

func pairKey(a, b uint32) uint64 { return (uint64(a)<<32 | uint64(b)) + 1 }

// startRebuild empties the index for the counting pass.
func (x *pairIndex) startRebuild() {
	clear(x.keys)
	x.used = 0
	x.base = x.base[:0]
	x.ps = x.ps[:0]
	x.next = x.next[:0]
	x.mode = pairCount
}

// layout ends the counting pass: it places the base postings of each pair.
func (x *pairIndex) layout() {
	total := 0
	for i, k := range x.keys {
		if k != 0 {
			x.off[i] = int32(total)
			total += int(x.cnt[i])
			x.cnt[i] = 0
		}
	}
	if cap(x.base) < total {
		x.base = make([]pairPosting, total)
	}
	x.base = x.base[:total]
	x.mode = pairFill
}

// endRebuild ends the filling pass: it orders each pair's base postings by
// slack (stable: pool order within one slack).
func (x *pairIndex) endRebuild(pool int) {
	for i, k := range x.keys {
		if k != 0 && x.cnt[i] > 1 {
			slices.SortStableFunc(x.base[x.off[i]:x.off[i]+x.cnt[i]], func(a, b pairPosting) int {
				return int(a.slack()) - int(b.slack())
			})
		}
	}
	x.baseN = pool
	x.mode = pairAppend
}

// compact moves the overflow postings into the base runs (the global order
// is unchanged, so the pairs are), keeping each run ordered by slack and, within one
// slack, by pool text.
func (x *pairIndex) compact(pool int) {
	nb := make([]pairPosting, 0, len(x.base)+len(x.ps))
	for i, k := range x.keys {
		if k == 0 {
			continue
		}
		start := len(nb)
		nb = append(nb, x.base[x.off[i]:x.off[i]+x.cnt[i]]...)
		j := len(nb)
		for h := x.heads[i]; h >= 0; h = x.next[h] {
			nb = append(nb, x.ps[h])
		}
		if j == len(nb) {
			x.off[i] = int32(start)
			continue
		}
		slices.Reverse(nb[j:]) // newer pool texts than every base one
		run := nb[start:]
		slices.SortStableFunc(run, func(a, b pairPosting) int { return int(a.slack()) - int(b.slack()) })
		x.off[i], x.cnt[i], x.heads[i] = int32(start), int32(len(run)), -1
	}
	x.base = nb
	x.ps = x.ps[:0]
	x.next = x.next[:0]
	x.baseN = pool
}

// slack is the least m-α a partner must allow for this pair to be its first
// two shared elements.
func (p pairPosting) slack() uint8 { return max(p.pa, p.pb-1) }

func (x *pairIndex) slot(key uint64) int {
	mask := len(x.keys) - 1
	i := int((key*0x9E3779B97F4A7C15)>>32) & mask
	for {
		k := x.keys[i]
		if k == key || k == 0 {
			return i
		}
		i = (i + 1) & mask
	}
}

// find returns the slot of key, or -1.
func (x *pairIndex) find(key uint64) int {
	if len(x.keys) == 0 {
		return -1
	}
	i := x.slot(key)
	if x.keys[i] == 0 {
		return -1
	}
	return i
}

func (x *pairIndex) add(key uint64, p pairPosting) {
	if 4*(x.used+1) > 3*len(x.keys) { // load <= 3/4
		x.grow()
	}
	i := x.slot(key)
	if x.keys[i] == 0 {
		x.keys[i] = key
		x.off[i], x.cnt[i], x.heads[i] = 0, 0, -1
		x.used++
	}
	switch x.mode {
	case pairCount:
		x.cnt[i]++
	case pairFill:
		x.base[x.off[i]+x.cnt[i]] = p
		x.cnt[i]++
	default:
		x.next = append(x.next, x.heads[i])
		x.heads[i] = int32(len(x.ps))
		x.ps = append(x.ps, p)
	}
}

func (x *pairIndex) grow() {
	oldKeys, oldOff, oldCnt, oldHeads := x.keys, x.off, x.cnt, x.heads
	n := max(1<<12, 2*len(oldKeys))
	x.keys = make([]uint64, n)
	x.off = make([]int32, n)
	x.cnt = make([]int32, n)
	x.heads = make([]int32, n)
	for j, k := range oldKeys {
		if k != 0 {
			i := x.slot(k)
			x.keys[i] = k
			x.off[i], x.cnt[i], x.heads[i] = oldOff[j], oldCnt[j], oldHeads[j]
		}
	}
}
