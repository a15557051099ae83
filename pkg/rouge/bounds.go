package rouge

import (
	"math"
	"sync"
)

// maxLen is the longest text (in tokens) handled by the prefix index; longer
// pool texts are always verified and longer candidates scanned in full.
const maxLen = math.MaxUint16

// bounds answers, for a threshold t, the least LCS lengths that can give an
// F-measure > t. Every answer evaluates FMeasure itself (binary search over a
// monotone predicate), so the float64 rounding of the bound is exactly the
// rounding of the score: a pair is pruned only when its exact score is <= t.
//
// Monotonicity: for fixed lengths, FMeasure is strictly increasing in lcs, and
// for fixed lcs it is strictly decreasing in either length, because distinct
// real values 2l/(m+n) differ by far more than the few ulps of rounding (for
// texts shorter than maxLen tokens).
type bounds struct {
	bt       float64
	aProbe   []int32 // per candidate length n: least lcs reaching > t with any pool length
	aIndex   []int32 // per pool length m: least lcs reaching > t with any candidate length
	hiLen    []int32 // per n: largest pool length m that can reach > t
	needTab  []uint16
	pairTab  []bool // per pool length m < tabN: indexed by pairs of prefix elements
	maxPairM int    // the largest such m
}

const (
	tabN    = 1024
	needDim = 128
)

var boundsCache struct {
	sync.Mutex
	m map[uint64]*bounds
}

// boundsFor returns the (immutable, shared) bounds of threshold t.
func boundsFor(t float64) *bounds {
	c := &boundsCache
	c.Lock()
	defer c.Unlock()
	key := math.Float64bits(t)
	if b, ok := c.m[key]; ok {
		return b
	}
	if c.m == nil || len(c.m) > 64 {
		c.m = map[uint64]*bounds{}
	}
	b := &bounds{}
	b.init(t)
	c.m[key] = b
	return b
}

func (b *bounds) init(t float64) {
	b.bt = t
	b.aProbe = make([]int32, tabN)
	b.aIndex = make([]int32, tabN)
	b.hiLen = make([]int32, tabN)
	for n := 1; n < tabN; n++ {
		b.aProbe[n] = int32(b.calcProbe(n))
		b.aIndex[n] = int32(b.calcIndex(n))
		b.hiLen[n] = int32(b.calcHi(n))
	}
	b.pairTab = make([]bool, tabN)
	for m := 1; m < tabN; m++ {
		a := int(b.aIndex[m])
		if b.bt >= 0 && a >= 2 && a <= m && min(m, m-a+2) <= maxPairPrefix {
			b.pairTab[m] = true
			b.maxPairM = m
		}
	}
	b.needTab = make([]uint16, needDim*needDim)
	for m := 1; m < needDim; m++ {
		for n := 1; n < needDim; n++ {
			b.needTab[m*needDim+n] = uint16(b.calcNeed(m, n))
		}
	}
}

// least returns the least l in [lo, hi] with ok(l), or hi+1; ok must be
// monotone (false ... false true ... true).
func least(lo, hi int, ok func(int) bool) int {
	h := hi + 1
	for lo < h {
		mid := int(uint(lo+h) >> 1)
		if ok(mid) {
			h = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// calcNeed is the least lcs with F(lcs, m, n) > t, or min(m,n)+1.
func (b *bounds) calcNeed(m, n int) int {
	return least(1, min(m, n), func(l int) bool { return FMeasure(l, m, n) > b.bt })
}

// calcProbe: the best pool length for a given lcs l is m = l.
func (b *bounds) calcProbe(n int) int {
	return least(1, n, func(l int) bool { return FMeasure(l, l, n) > b.bt })
}

// calcIndex: the best candidate length for a given lcs l is n = l.
func (b *bounds) calcIndex(m int) int {
	return least(1, m, func(l int) bool { return FMeasure(l, m, l) > b.bt })
}

// calcHi is the largest pool length m >= n with F(n, m, n) > t (n-1 if none).
func (b *bounds) calcHi(n int) int {
	if b.bt <= 0 {
		return math.MaxInt32
	}
	top := int(math.Min(2*float64(n)/b.bt+2, math.MaxInt32-1))
	return least(n, top, func(m int) bool { return !(FMeasure(n, m, n) > b.bt) }) - 1
}

func (b *bounds) need(m, n int) int {
	if m < needDim && n < needDim {
		return int(b.needTab[m*needDim+n])
	}
	return b.calcNeed(m, n)
}

// pairIndexed reports whether pool texts of m tokens are indexed by pairs
// of prefix elements: every partner needs an LCS >= 2 and the extended
// prefix is at most maxPairPrefix elements.
func (b *bounds) pairIndexed(m int) bool {
	return m < tabN && b.pairTab[m]
}

// indexAlpha is the least LCS any candidate needs with a pool text of m
// tokens (m+1 when none can exceed the threshold).
func (b *bounds) indexAlpha(m int) int {
	if m < tabN {
		return int(b.aIndex[m])
	}
	return b.calcIndex(m)
}

// probePrefix is how many of a candidate's ordered elements must be probed.
func (b *bounds) probePrefix(n int) int {
	if n == 0 {
		return 0
	}
	a := 0
	if n < tabN {
		a = int(b.aProbe[n])
	} else {
		a = b.calcProbe(n)
	}
	return n - a + 1
}

// indexPrefix is how many of a pool text's ordered elements are indexed.
func (b *bounds) indexPrefix(m int) int {
	if m == 0 || b.bt < 0 {
		return 0
	}
	a := 0
	if m < tabN {
		a = int(b.aIndex[m])
	} else {
		a = b.calcIndex(m)
	}
	return m - a + 1
}

// lengthRange is the interval of pool lengths that can reach > t against a
// candidate of n tokens (empty when lo > hi).
func (b *bounds) lengthRange(n int) (lo, hi int) {
	if n < tabN {
		return int(b.aProbe[n]), int(b.hiLen[n])
	}
	return b.calcProbe(n), b.calcHi(n)
}
