package rouge

// Mean is float(np.mean(x)): the generator's avg_similarity_score. See
// meanNumPy.
func Mean(x []float64) float64 { return meanNumPy(x) }

// meanNumPy returns float(np.mean(x)) for a float64 vector bit for bit:
// NumPy sums with its pairwise summation (blocks of up to 128 elements summed
// with 8 interleaved accumulators, larger ranges split in two at a multiple of
// 8) and then divides by the count. Empty input gives 0 (NumPy would warn
// and return nan; the generator never averages an empty pool).
func meanNumPy(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	return float64(0+pairwiseSum(x)) / float64(len(x))
}

func pairwiseSum(a []float64) float64 {
	n := len(a)
	switch {
	case n < 8:
		res := 0.0
		for _, v := range a {
			res += v
		}
		return res
	case n <= 128:
		var r [8]float64
		i := 8
		if useAVX512 {
			// the same eight sums, eight lanes of one register
			sum8x512(&a[0], n-n%8, &r)
			i = n - n%8
		} else {
			copy(r[:], a[:8])
		}
		for ; i < n-n%8; i += 8 {
			r[0] += a[i+0]
			r[1] += a[i+1]
			r[2] += a[i+2]
			r[3] += a[i+3]
			r[4] += a[i+4]
			r[5] += a[i+5]
			r[6] += a[i+6]
			r[7] += a[i+7]
		}
		res := float64(float64(r[0]+r[1])+float64(r[2]+r[3])) + float64(float64(r[4]+r[5])+float64(r[6]+r[7]))
		for ; i < n; i++ {
			res += a[i]
		}
		return res
	default:
		n2 := n / 2
		n2 -= n2 % 8
		return pairwiseSum(a[:n2]) + pairwiseSum(a[n2:])
	}
}

// pairwiseSumSparse is pairwiseSum(a) when a is zero (+0) wherever the
// bitmap nz (bit i of word i/64 for a[i]) is clear: it follows the same
// tree and returns +0 for the subtrees holding no set bit, which is what
// summing their zeros gives (every partial sum of +0 is +0, and x + +0 is x
// for any x that is not -0; a holds no -0 where its bit is clear).
func pairwiseSumSparse(a []float64, nz []uint64) float64 {
	return pairwiseSparse(a, 0, nz)
}

// pairwiseSparse sums a, which starts at index off of the whole vector.
func pairwiseSparse(a []float64, off int, nz []uint64) float64 {
	if !anyBit(nz, off, off+len(a)) {
		return 0
	}
	n := len(a)
	if n <= 128 {
		return pairwiseSum(a)
	}
	n2 := n / 2
	n2 -= n2 % 8
	return pairwiseSparse(a[:n2], off, nz) + pairwiseSparse(a[n2:], off+n2, nz)
}

// anyBit reports whether a bit in [lo, hi) of bm is set.
func anyBit(bm []uint64, lo, hi int) bool {
	if lo >= hi {
		return false
	}
	wl, wh := lo/64, (hi-1)/64
	ml := ^uint64(0) << (uint(lo) % 64)
	mh := ^uint64(0) >> (63 - uint(hi-1)%64)
	if wl == wh {
		return bm[wl]&ml&mh != 0
	}
	if bm[wl]&ml != 0 || bm[wh]&mh != 0 {
		return true
	}
	for _, w := range bm[wl+1 : wh] {
		if w != 0 {
			return true
		}
	}
	return false
}
