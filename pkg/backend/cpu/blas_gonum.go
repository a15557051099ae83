//go:build !openblas || !cgo

package cpu

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// forceGonum makes MatMul use gonum's Sgemm even where the assembly kernel
// is available (tests compare the two).
var forceGonum = false

func blasName() string {
	if haveKernel && !forceGonum {
		return "pure-Go blocked sgemm, AVX2/FMA assembly micro-kernel"
	}
	return "gonum pure-Go sgemm"
}

func setBLASThreads(int) {}

func tr(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

func (c *CPU) sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, cc []float32, ldc int) {
	if haveKernel && !forceGonum {
		checkGemm(transA, transB, m, n, k, a, lda, b, ldb, cc, ldc)
		c.gemmAsm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, cc, ldc)
		return
	}
	gonum.Implementation{}.Sgemm(tr(transA), tr(transB), m, n, k, alpha, a, lda, b, ldb, beta, cc, ldc)
}

// ownGemm reports whether the blocked SGEMM with the assembly kernel runs.
func ownGemm() bool { return haveKernel && !forceGonum }
