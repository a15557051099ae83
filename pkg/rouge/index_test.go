package rouge

import (
	"math/rand"
	"slices"
	"strings"
	"testing"
)

// indexKnobs sets the index's test variables for run i (i%3 == 0: the
// defaults; else the order is re-derived up to a pool of 128 texts, or
// never, runs of more than 64 postings get chunks of their own, the chunks
// are rewritten as soon as room was vacated and runs of 2 or more are kept
// sorted) and returns a function that restores the values they had.
func indexKnobs(i int) (restore func()) {
	f0, o0, g0, s0 := freezeN, ownChunk, gcMin, sortMin
	restore = func() { freezeN, ownChunk, gcMin, sortMin = f0, o0, g0, s0 }
	freezeN, ownChunk, gcMin, sortMin = defaultFreezeN, defaultOwnChunk, defaultGCMin, defaultSortMin
	switch i % 3 {
	case 1:
		freezeN, ownChunk, gcMin, sortMin = 128, 64, 0, 2
	case 2:
		freezeN, ownChunk, gcMin, sortMin = 0, 64, 0, 3
	}
	return restore
}

var defaultFreezeN, defaultOwnChunk, defaultGCMin, defaultSortMin = freezeN, ownChunk, gcMin, sortMin

// TestPairIndexModel adds postings under a few hot and many cold keys,
// with chunk rewrites forced and long runs in chunks of their own, and
// compares every key's postings with a map.
func TestPairIndexModel(t *testing.T) {
	defer indexKnobs(1)()
	sortMin = 8
	rng := rand.New(rand.NewSource(5))
	for it := 0; it < 20; it++ {
		var x pairIndex
		model := map[uint64][]pairPosting{}
		var keys []uint64
		for i := 0; i < 5000; i++ {
			var k uint64
			switch r := rng.Intn(10); {
			case r < 3 || len(keys) == 0:
				k = rng.Uint64() | 1
				keys = append(keys, k)
			case r < 6:
				k = keys[rng.Intn(min(4, len(keys)))] // hot: long runs
			default:
				k = keys[rng.Intn(len(keys))]
			}
			p := pairPosting{doc: int32(i), m: uint16(rng.Intn(1024)), slack: uint8(rng.Intn(25))}
			x.add(k, p)
			model[k] = append(model[k], p)
			if rng.Intn(1000) == 0 {
				x.reset()
				clear(model)
				keys = keys[:0]
			}
		}
		var one [1]pairPosting
		for k, want := range model {
			sl := x.find(k)
			if sl < 0 {
				t.Fatalf("it %d: key %x lost", it, k)
			}
			got := x.postingsOf(sl, &one)
			srt := int(x.slots[sl].sorted)
			if !slices.IsSortedFunc(got[:srt], func(a, b pairPosting) int { return int(a.m) - int(b.m) }) {
				t.Fatalf("it %d: key %x: the first %d postings are not in ascending length", it, k, srt)
			}
			if len(got) >= sortMin && len(got)-srt > srt/4 {
				t.Fatalf("it %d: key %x: %d postings, %d sorted", it, k, len(got), srt)
			}
			// the same postings; each length's in the order added
			byLen := func(ps []pairPosting) []pairPosting {
				return slices.SortedStableFunc(slices.Values(ps), func(a, b pairPosting) int { return int(a.m) - int(b.m) })
			}
			if !slices.Equal(byLen(got), byLen(want)) {
				t.Fatalf("it %d: key %x: %d postings, want %d (first %v, want %v)", it, k, len(got), len(want), got[:min(3, len(got))], want[:min(3, len(want))])
			}
		}
		if x.find(2) >= 0 && model[2] == nil {
			t.Fatal("found a key never added")
		}
	}
}

// TestSigBound checks the signature bound against the multiset overlap of
// random texts with repeated tokens (up to 30 tokens): it may exceed the
// overlap, never fall below it, and it equals it for a good share of the
// pairs (a bound that is always the candidate's length would pass the
// first check).
func TestSigBound(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	f := NewFilter(0.5)
	var s scratch
	tight := 0
	for it := 0; it < 20000; it++ {
		vocab := 2 + rng.Intn(40)
		text := func() string {
			w := make([]string, rng.Intn(30))
			for i := range w {
				w[i] = string(rune('a' + rng.Intn(vocab)))
			}
			return strings.Join(w, " ")
		}
		a, b := text(), text()
		f.Add(a)
		f.Add(b)
		ia, ib := f.lookup(a, nil), f.lookup(b, nil)
		s.sigMasks(f.elements(ia, nil))
		bound := s.sigBound(elementSig(ib))
		ov := overlap(ia, ib)
		if bound < ov {
			t.Fatalf("%q vs %q: bound %d < overlap %d", a, b, bound, ov)
		}
		if bound == ov {
			tight++
		}
	}
	if tight < 20000*4/10 { // 9798 with this seed
		t.Fatalf("the bound equals the overlap in %d of 20000 pairs only", tight)
	}
	// the longest texts that have a signature, with many repeats
	long := strings.Repeat("x y z ", 21) + "w" // sigMaxLen tokens
	ids := f.lookup(long, nil)
	f.Add(long)
	if len(ids) != sigMaxLen {
		t.Fatalf("%d tokens, want %d", len(ids), sigMaxLen)
	}
	s.sigMasks(f.elements(ids, nil))
	if got := s.sigBound(elementSig(ids)); got != len(ids) {
		t.Fatalf("a text against itself: bound %d, want %d", got, len(ids))
	}
}

// overlap is the multiset intersection size of two token sequences.
func overlap(a, b []int32) int {
	c := map[int32]int{}
	for _, t := range a {
		c[t]++
	}
	n := 0
	for _, t := range b {
		if c[t] > 0 {
			c[t]--
			n++
		}
	}
	return n
}
