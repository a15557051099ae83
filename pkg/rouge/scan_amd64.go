package rouge

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// scanKernel is the scanClass kernel in use: "avx512", "avx2" or "go"
// (tests switch it to cover each one the machine has).
var scanKernel = func() string {
	switch {
	case cpu.X86.HasAVX512F && cpu.X86.HasAVX512VPOPCNTDQ:
		return "avx512"
	case cpu.X86.HasAVX2 && cpu.X86.HasPOPCNT:
		return "avx2"
	}
	return "go"
}()

//go:noescape
func scanClass512(seq *uint8, off *uint32, docs *int32, count, L int, mf, hi unsafe.Pointer, out *uint8)

//go:noescape
func scanClassAVX2(seq *uint8, off *uint32, docs *int32, count, L int, mf, hi unsafe.Pointer, out *uint8)

// scanClass stores in out[lanes*d+r] the LCS of lane r (masks mf[*][r], bits
// hi[r] above its length) with the byte sequence seq[off[d]:off[d]+L] of each
// pool text d in docs.
func scanClass(seq []uint8, off []uint32, docs []int32, L int, mf *[256][lanes]uint64, hi *[lanes]uint64, out []uint8) {
	if len(docs) == 0 {
		return
	}
	// the kernels index without checks: check here what they touch
	last := docs[len(docs)-1] // docs ascend
	_ = out[lanes*int(last)+lanes-1]
	if docs[0] < 0 || int(off[last])+L > len(seq) {
		panic("rouge: scanClass: bad class")
	}
	switch scanKernel {
	case "avx512":
		scanClass512(unsafe.SliceData(seq), &off[0], &docs[0], len(docs), L, unsafe.Pointer(mf), unsafe.Pointer(hi), &out[0])
	case "avx2":
		// lanes 0-3, then 4-7 through pointers advanced by four lanes
		scanClassAVX2(unsafe.SliceData(seq), &off[0], &docs[0], len(docs), L, unsafe.Pointer(mf), unsafe.Pointer(hi), &out[0])
		scanClassAVX2(unsafe.SliceData(seq), &off[0], &docs[0], len(docs), L, unsafe.Add(unsafe.Pointer(mf), 32), unsafe.Add(unsafe.Pointer(hi), 32), &out[4])
	default:
		scanClassGo(seq, off, docs, L, mf, hi, out)
	}
}

// useAVX512 enables emit512 and sum8x512 (tests switch it off to cover the
// Go code).
var useAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ

//go:noescape
func emit512(ls *uint8, lens *int32, chunks int, fm *float64, n1 int, out *float64, kth float64) int

//go:noescape
func sum8x512(a *float64, n int, acc *[8]float64)
