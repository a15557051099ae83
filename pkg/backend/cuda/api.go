package cuda

import "unsafe"

// apiVersion is the C API version (AC_API_VERSION in csrc/alpaca_cuda.h)
// this package speaks.
const apiVersion = 2

// api is the C API of libalpaca_cuda.so as the Go side calls it (dl_cgo.go
// implements it through dlopen/dlsym; without cgo there is none). Every
// call returns the library's status code (0 = ok).
type api interface {
	lastError() string
	init(dev, flags int) int
	shutdown() int
	deviceInfo() (name string, major, minor, rc int)
	memInfo() (free, total uint64, rc int)
	alloc(bytes uint64) (uint64, int)
	free(p uint64) int
	upload(dst uint64, src unsafe.Pointer, bytes uint64) int
	download(dst unsafe.Pointer, src uint64, bytes uint64) int
	sync() int
	zero(x, bytes uint64) int
	copy(dst, src uint64, n int64) int
	add(dst, src uint64, n int64) int
	scale(x uint64, n int64, s float32) int
	mul(dst, a, b uint64, n int64) int
	sumSquares(x uint64, off, ln []int64) (float64, int)
	adamw(w, g, m, v uint64, off, ln []int64, decay []int32, c [8]float32, useDecay bool) int
	embedding(out, table uint64, dt int, tokens uint64, n, dim int64) int
	embeddingBackward(dtable, dout, tokens uint64, n, dim int64) int
	gatherRows(dst, src, rows uint64, n, dim int64) int
	scatterRows(dst, src, rows uint64, n, dim int64) int
	matmul(ta, tb bool, m, n, k int64, alpha float32, a uint64, lda int64, b uint64, bdt int, ldb int64, beta float32, c uint64, ldc int64) int
	rmsnorm(y, rstd, x, w uint64, rows, dim int64, eps float32) int
	rmsnormBackward(dx, dw, dy, x, w, rstd uint64, rows, dim int64) int
	rope(x, pos uint64, rows, heads, hd int64, cos, sin uint64, inverse bool) int
	attention(out, lse, q, k, v, seg uint64, s [5]int64) int
	attentionBackward(dq, dk, dv, dout, out, lse, q, k, v, seg uint64, s [5]int64) int
	attentionCached(out, q, k, v uint64, s [5]int64) int
	swiglu(y, gate, up uint64, n int64) int
	swigluBackward(dgate, dup, dy, gate, up uint64, n int64) int
	crossEntropy(dlogits, logits, targets uint64, rows, vocab int64, scale float32) (float64, int64, int)
}
