//go:build openblas && cgo

package cpu

import "github.com/alpaca-go/alpaca/pkg/backend/cpu/internal/cblas"

func blasName() string { return "OpenBLAS sgemm via cgo" }

func setBLASThreads(n int) { cblas.SetThreads(n) }

func (c *CPU) sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, cc []float32, ldc int) {
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, cc, ldc)
	cblas.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, cc, ldc)
}

// ownGemm is false: OpenBLAS runs every product (half-precision B
// operands are widened first).
func ownGemm() bool { return false }
