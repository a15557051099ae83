// Package torchmath reproduces, bit for bit, the float32 arithmetic of the
// few PyTorch CPU reductions whose exact results users compare against (the
// Alpaca [PAD] row, for one).
package torchmath

// MeanRows returns the per-column mean of a rows×cols float32 matrix as
// torch (CPU, float32) computes x.mean(dim=0): per column a float32 cascade
// sum over the rows (ATen's multi_row_sum: blocks of 2^p rows folded into 4
// accumulator levels), then a float32 division by the row count. row(r, dst)
// fills dst with row r, so the matrix can be streamed. The cascade matches
// torch when cols is a multiple of its vector width (32 floats on AVX2),
// which every LLaMA hidden size is.
func MeanRows(rows, cols int64, row func(r int64, dst []float32)) []float32 {
	buf := make([]float32, cols)
	var acc [4][]float32
	for j := range acc {
		acc[j] = make([]float32, cols)
	}
	add := func(r int64) {
		row(r, buf)
		for c, v := range buf {
			acc[0][c] += v
		}
	}
	const levels = 4
	power := max(4, ceilLog2(rows)/levels)
	step := int64(1) << power
	mask := step - 1
	i := int64(0)
	for i+step <= rows {
		for j := int64(0); j < step; j++ {
			add(i)
			i++
		}
		for j := 1; j < levels; j++ {
			for c := range acc[j] {
				acc[j][c] += acc[j-1][c]
				acc[j-1][c] = 0
			}
			if i&(mask<<(int64(j)*power)) != 0 {
				break
			}
		}
	}
	for ; i < rows; i++ {
		add(i)
	}
	for j := 1; j < levels; j++ {
		for c := range acc[0] {
			acc[0][c] += acc[j][c]
		}
	}
	out := acc[0]
	if rows > 0 {
		for c := range out {
			out[c] /= float32(rows)
		}
	}
	return out
}

// ceilLog2 is ⌈log2 n⌉ (0 for n ≤ 1).
func ceilLog2(n int64) int64 {
	var k int64
	for int64(1)<<k < n {
		k++
	}
	return k
}
