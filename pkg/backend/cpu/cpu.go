// Package cpu is the pure-Go reference implementation of backend.Backend.
// Everything runs in float32 (float64 only for loss sums) and is spread
// over GOMAXPROCS goroutines. Matrix products go to gonum's pure-Go BLAS by
// default, or to OpenBLAS through cgo when built with -tags openblas.
package cpu

import (
	"math"
	"runtime"
	"sync"

	"github.com/alpaca-go/alpaca/pkg/backend"
)

// CPU implements backend.Backend.
type CPU struct {
	threads int
	pool    *workers  // persistent helpers of parallel
	scratch sync.Pool // *[]float32 attention score buffers
}

// New returns a CPU backend using threads goroutines (<= 0: GOMAXPROCS).
func New(threads int) *CPU {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	setBLASThreads(threads)
	return &CPU{threads: threads, pool: workersFor(threads)}
}

var _ backend.Backend = (*CPU)(nil)

// Name says which matmul path runs.
func (c *CPU) Name() string { return "cpu (" + blasName() + ")" }

// Threads is the number of goroutines used.
func (c *CPU) Threads() int { return c.threads }

// parallel calls f over [0,n) split into at most c.threads contiguous
// chunks of at least minChunk items. The split only depends on n and the
// thread count, so results are deterministic for a given thread count. The
// chunks run on persistent workers that spin briefly between calls (see
// workers): decoding one token makes hundreds of short calls, and waking a
// parked thread for each cost a third of the 110M model's decode time.
func (c *CPU) parallel(n, minChunk int, f func(lo, hi int)) {
	if n <= 0 {
		return
	}
	k := c.threads
	if minChunk < 1 {
		minChunk = 1
	}
	if m := (n + minChunk - 1) / minChunk; m < k {
		k = m
	}
	if k <= 1 {
		f(0, n)
		return
	}
	part := func(i int) {
		if i < k {
			f(i*n/k, (i+1)*n/k)
		}
	}
	if c.pool != nil && c.pool.run(part) {
		return
	}
	var wg sync.WaitGroup
	wg.Add(k - 1)
	for i := 1; i < k; i++ {
		go func() { part(i); wg.Done() }()
	}
	part(0)
	wg.Wait()
}

// MatMul: C = alpha*op(A)*op(B) + beta*C (row-major).
func (c *CPU) matMul(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, cc []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	c.sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, cc, ldc)
}

// RMSNorm: y = w * x * rstd, rstd = 1/sqrt(mean(x^2)+eps).
func (c *CPU) rmsNorm(y, rstd, x, w []float32, rows, dim int, eps float32) {
	c.parallel(rows, 16, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*dim : (r+1)*dim]
			yr := y[r*dim : (r+1)*dim]
			var ss float32
			for _, v := range xr {
				ss += v * v
			}
			rs := float32(1 / math.Sqrt(float64(ss/float32(dim)+eps)))
			rstd[r] = rs
			for i, v := range xr {
				yr[i] = w[i] * (v * rs)
			}
		}
	})
}

// RMSNormBackward: dx += dL/dx, dw += dL/dw.
func (c *CPU) rmsNormBackward(dx, dw, dy, x, w, rstd []float32, rows, dim int) {
	// dw is reduced over rows: each chunk accumulates privately, then the
	// chunks are added in a fixed order.
	nch := c.threads
	if rows < nch {
		nch = max(rows, 1)
	}
	pp := getBuf(nch * dim)
	defer packPool.Put(pp)
	part := *pp
	clear(part)
	c.parallel(nch, 1, func(clo, chi int) {
		for ch := clo; ch < chi; ch++ {
			pw := part[ch*dim : (ch+1)*dim]
			for r := ch * rows / nch; r < (ch+1)*rows/nch; r++ {
				xr := x[r*dim : (r+1)*dim]
				dyr := dy[r*dim : (r+1)*dim]
				dxr := dx[r*dim : (r+1)*dim]
				rs := rstd[r]
				var dot float32
				for i, v := range xr {
					g := w[i] * dyr[i]
					dot += g * v
					pw[i] += dyr[i] * v * rs
				}
				k := rs * rs * rs * dot / float32(dim)
				for i, v := range xr {
					dxr[i] += rs*w[i]*dyr[i] - k*v
				}
			}
		}
	})
	for ch := 0; ch < nch; ch++ {
		pw := part[ch*dim : (ch+1)*dim]
		for i, v := range pw {
			dw[i] += v
		}
	}
}

// RoPE rotates x in place (HF rotate-half); inverse = transposed rotation.
func (c *CPU) rope(x []float32, pos []int32, rows, heads, headDim int, cos, sin []float32, inverse bool) {
	half := headDim / 2
	c.parallel(rows, 32, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			p := int(pos[r])
			cr := cos[p*half : (p+1)*half]
			sr := sin[p*half : (p+1)*half]
			for h := 0; h < heads; h++ {
				v := x[(r*heads+h)*headDim : (r*heads+h+1)*headDim]
				x1, x2 := v[:half], v[half:headDim]
				if inverse {
					for i := range x1 {
						a, b := x1[i], x2[i]
						x1[i] = a*cr[i] + b*sr[i]
						x2[i] = b*cr[i] - a*sr[i]
					}
				} else {
					for i := range x1 {
						a, b := x1[i], x2[i]
						x1[i] = a*cr[i] - b*sr[i]
						x2[i] = b*cr[i] + a*sr[i]
					}
				}
			}
		}
	})
}

// sigmoids sets s[i] = sigmoid(x[i]) through the vectorised exp (its clamp
// to [-87.3, 88] only changes results below 1e-38).
func sigmoids(s, x []float32) {
	for i, v := range x {
		s[i] = -v
	}
	expSub(s, 0)
	for i, e := range s {
		s[i] = 1 / (1 + e)
	}
}

// SwiGLU: y = silu(gate)*up.
func (c *CPU) swiGLU(y, gate, up []float32) {
	c.parallel(len(y), 4096, func(lo, hi int) {
		var buf [256]float32
		for i0 := lo; i0 < hi; i0 += len(buf) {
			n := min(len(buf), hi-i0)
			sg := buf[:n]
			sigmoids(sg, gate[i0:i0+n])
			for i, s := range sg {
				y[i0+i] = gate[i0+i] * s * up[i0+i]
			}
		}
	})
}

// SwiGLUBackward writes dgate and dup.
func (c *CPU) swiGLUBackward(dgate, dup, dy, gate, up []float32) {
	c.parallel(len(dy), 4096, func(lo, hi int) {
		var buf [256]float32
		for i0 := lo; i0 < hi; i0 += len(buf) {
			n := min(len(buf), hi-i0)
			sg := buf[:n]
			sigmoids(sg, gate[i0:i0+n])
			for k, s := range sg {
				i := i0 + k
				g, d := gate[i], dy[i]
				dup[i] = d * g * s
				dgate[i] = d * up[i] * s * (1 + g*(1-s))
			}
		}
	})
}

// CrossEntropy: see backend.Backend.
func (c *CPU) crossEntropy(dlogits, logits []float32, targets []int32, rows, vocab int, scale float32) (float64, int) {
	nch := min(c.threads, max(rows, 1))
	sums := make([]float64, nch)
	cnts := make([]int, nch)
	c.parallel(nch, 1, func(clo, chi int) {
		for ch := clo; ch < chi; ch++ {
			for r := ch * rows / nch; r < (ch+1)*rows/nch; r++ {
				l := logits[r*vocab : (r+1)*vocab]
				d := dlogits[r*vocab : (r+1)*vocab]
				t := targets[r]
				if t < 0 {
					clear(d)
					continue
				}
				mx := l[0]
				for _, v := range l {
					mx = max(mx, v)
				}
				lt := l[t]
				if &d[0] != &l[0] {
					copy(d, l)
				}
				expSub(d, mx)
				var sum float64
				for _, e := range d {
					sum += float64(e)
				}
				lse := float64(mx) + math.Log(sum)
				sums[ch] += lse - float64(lt)
				cnts[ch]++
				k := scale * float32(1/sum)
				for i, e := range d {
					d[i] = k * e
				}
				d[t] -= scale
			}
		}
	})
	var s float64
	n := 0
	for i := range sums {
		s += sums[i]
		n += cnts[i]
	}
	return s, n
}

// checkGemm panics (like gonum does) when a slice is too short for the
// shapes, before any assembly or C code touches memory.
func checkGemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	checkGemmLen(transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
}

func checkGemmLen(transA, transB bool, m, n, k int, la, lda, lb, ldb, lc, ldc int) {
	if e := backend.GemmShapeError(transA, transB, m, n, k, la, lda, lb, ldb, lc, ldc); e != "" {
		panic("cpu: sgemm: " + e)
	}
}
