//go:build !amd64

package rouge

var scanKernel = "go"

func scanClass(seq []uint8, off []uint32, docs []int32, L int, mf *[256][lanes]uint64, hi *[lanes]uint64, out []uint8) {
	scanClassGo(seq, off, docs, L, mf, hi, out)
}

var useAVX512 = false

func emit512(ls *uint8, lens *int32, chunks int, fm *float64, n1 int, out *float64, kth float64) int {
	panic("unreachable")
}

func sum8x512(a *float64, n int, acc *[8]float64) { panic("unreachable") }
