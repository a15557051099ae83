package cpu

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/backend"
)

// The blocked assembly SGEMM against a float64 triple loop, over shapes
// that exercise partial micro-tiles, several kc/mc/nc blocks, transposes,
// alpha/beta and padded leading dimensions.
func TestGemmAsm(t *testing.T) {
	if !haveKernel {
		t.Skip("no AVX2/FMA kernel on this CPU/build")
	}
	r := rand.New(rand.NewPCG(9, 9))
	shapes := [][3]int{{1, 1, 1}, {6, 16, 1}, {7, 17, 3}, {13, 40, 300}, {150, 33, 20}, {5, 3100, 7}, {80, 50, 520}, {3, 2, 0}}
	for _, c := range []*CPU{New(1), New(4)} {
		for _, sh := range shapes {
			for _, ta := range []bool{false, true} {
				for _, tb := range []bool{false, true} {
					m, n, k := sh[0], sh[1], sh[2]
					ra, ca := m, k
					if ta {
						ra, ca = k, m
					}
					rb, cb := k, n
					if tb {
						rb, cb = n, k
					}
					lda, ldb, ldc := ca+1, cb+2, n+3
					a, b, cc := rnd(r, max(ra, 1)*lda, 1), rnd(r, max(rb, 1)*ldb, 1), rnd(r, m*ldc, 1)
					want := f64(cc)
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							s := 0.0
							for p := 0; p < k; p++ {
								var x, y float64
								if ta {
									x = float64(a[p*lda+i])
								} else {
									x = float64(a[i*lda+p])
								}
								if tb {
									y = float64(b[j*ldb+p])
								} else {
									y = float64(b[p*ldb+j])
								}
								s += x * y
							}
							want[i*ldc+j] = 1.5*s - 0.5*want[i*ldc+j]
						}
					}
					c.gemmAsm(ta, tb, m, n, k, 1.5, a, lda, b, ldb, -0.5, cc, ldc)
					check(t, fmt.Sprintf("threads %d %v ta=%v tb=%v", c.threads, sh, ta, tb), cc, want, 2e-6)
					// padding columns of C are untouched
					for i := 0; i < m; i++ {
						for j := n; j < ldc; j++ {
							if float64(cc[i*ldc+j]) != want[i*ldc+j] {
								t.Fatalf("%v: wrote outside C at (%d,%d)", sh, i, j)
							}
						}
					}
				}
			}
		}
	}
}

func BenchmarkSgemm512(b *testing.B) {
	n := 512
	r := rand.New(rand.NewPCG(1, 1))
	x, y, z := rnd(r, n*n, 1), rnd(r, n*n, 1), make([]float32, n*n)
	c := New(0)
	b.Logf("%s", c.Name())
	for i := 0; i < b.N; i++ {
		c.matMul(false, true, n, n, n, 1, x, n, y, n, 0, z, n)
	}
	b.ReportMetric(float64(2*n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkMatMulFewRows is a decoding step's product for m sequences at
// once (the server batches active requests): [m, 2048] x [4096, 2048]^T with
// f16 or f32 weights (32 or 64 MB, beyond the caches), through the dot-product path
// (rows <= gemvRows) or the packed GEMM.
func BenchmarkMatMulFewRows(b *testing.B) {
	const n, k = 4096, 2048
	c := New(0)
	r := rand.New(rand.NewPCG(1, 2))
	defer func(g int, h bool) { gemvRows, have512 = g, h }(gemvRows, have512)
	if os.Getenv("CPU_BENCH_AVX2") != "" {
		have512 = false // the AVX2 kernels on an AVX-512 machine
	}
	for _, dt := range []backend.DType{backend.F16, backend.F32} {
		w, _ := c.Alloc(dt, n*k)
		c.Upload(w, rnd(r, n*k, 0.1))
		for _, m := range []int{1, 2, 4, 8, 16, 32, 64} {
			a := rnd(r, m*k, 1)
			out := make([]float32, m*n)
			for _, path := range []string{"dot", "gemm"} {
				gemvRows = 0
				if path == "dot" {
					gemvRows = m
				}
				b.Run(fmt.Sprintf("%s/m=%d/%s", dt, m, path), func(b *testing.B) {
					b.SetBytes(int64(n * k * dt.Size()))
					for i := 0; i < b.N; i++ {
						c.MatMul(false, true, m, n, k, 1, Wrap(a), k, w, k, 0, Wrap(out), n)
					}
				})
			}
		}
	}
}
