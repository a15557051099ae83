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
		copy(r[:], a[:8])
		i := 8
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
