package cpu

import (
	"sync"

	"github.com/alpaca-go/alpaca/pkg/backend"
)

// Pure-Go (plus Go assembly) blocked SGEMM: B is packed in kc×16 panels, A
// in kc×6 panels (alpha folded in), and an AVX2/FMA 6×16 micro-kernel does
// the multiply-adds (the BLIS/GotoBLAS scheme). Used on amd64 CPUs with
// AVX2+FMA; elsewhere gonum's Sgemm runs.

const (
	mr = 6
	nr = 16
	kc = 256 // depth of one packed block
	mc = 72  // rows of A per job (12 micro-panels)
	nc = 3072
)

var packPool = sync.Pool{New: func() any { s := make([]float32, 0, mc*kc); return &s }}

func getBuf(n int) *[]float32 {
	p := packPool.Get().(*[]float32)
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return p
}

// bmat is the B operand: float32, or half precision (BF16/F16 weights as
// stored) widened to float32 exactly while its panels are packed.
type bmat struct {
	f  []float32
	h  []uint16
	dt backend.DType
}

func (b bmat) len() int {
	if b.h != nil {
		return len(b.h)
	}
	return len(b.f)
}

func (c *CPU) gemmAsm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, cc []float32, ldc int) {
	gemmBlocked(c.parallel, c.threads, transA, transB, m, n, k, alpha, a, lda, bmat{f: b}, ldb, beta, cc, ldc)
}

// matMulHalf is MatMul with a BF16/F16 B operand: the blocked SGEMM packs
// it (converting) when the assembly kernel runs; other builds widen B into
// a temporary first.
func (c *CPU) matMulHalf(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b bmat, ldb int, beta float32, cc []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if ownGemm() {
		checkGemmLen(transA, transB, m, n, k, len(a), lda, b.len(), ldb, len(cc), ldc)
		gemmBlocked(c.parallel, c.threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, cc, ldc)
		return
	}
	tmp := make([]float32, len(b.h))
	widen(b.dt, tmp, b.h)
	c.sgemm(transA, transB, m, n, k, alpha, a, lda, tmp, ldb, beta, cc, ldc)
}

// serial runs f over [0,n) on the calling goroutine.
func serial(n, _ int, f func(lo, hi int)) {
	if n > 0 {
		f(0, n)
	}
}

// gemmBlocked is the blocked SGEMM; par spreads work over threads
// goroutines (serial for calls made from inside parallel tasks).
func gemmBlocked(par func(n, minChunk int, f func(lo, hi int)), threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b bmat, ldb int, beta float32, cc []float32, ldc int) {
	if beta != 1 {
		par(m, 8, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				row := cc[i*ldc : i*ldc+n]
				if beta == 0 {
					clear(row)
				} else {
					for j := range row {
						row[j] *= beta
					}
				}
			}
		})
	}
	if k == 0 || alpha == 0 {
		return
	}
	rowBlocks := (m + mc - 1) / mc
	for jc := 0; jc < n; jc += nc {
		ncb := min(nc, n-jc)
		panels := (ncb + nr - 1) / nr
		for pc := 0; pc < k; pc += kc {
			kcb := min(kc, k-pc)
			bp := getBuf(panels * kcb * nr)
			// pack B[pc:pc+kcb, jc:jc+ncb] into 16-wide panels, in parallel
			par(panels, 4, func(lo, hi int) {
				for jp := lo; jp < hi; jp++ {
					packB(transB, b, ldb, pc, kcb, jc+jp*nr, min(nr, ncb-jp*nr), (*bp)[jp*kcb*nr:(jp+1)*kcb*nr])
				}
			})
			// split the column panels when there are too few row blocks
			colChunks := 1
			if threads > 1 && rowBlocks < 2*threads {
				colChunks = min(panels, (2*threads+rowBlocks-1)/rowBlocks)
			}
			par(rowBlocks*colChunks, 1, func(lo, hi int) {
				ap := getBuf(mc * kcb)
				var tmp [mr * nr]float32
				for job := lo; job < hi; job++ {
					rb, cch := job/colChunks, job%colChunks
					i0 := rb * mc
					mcb := min(mc, m-i0)
					mps := (mcb + mr - 1) / mr
					for ip := 0; ip < mps; ip++ {
						packA(transA, alpha, a, lda, i0+ip*mr, min(mr, mcb-ip*mr), pc, kcb, (*ap)[ip*kcb*mr:(ip+1)*kcb*mr])
					}
					p0, p1 := cch*panels/colChunks, (cch+1)*panels/colChunks
					for jp := p0; jp < p1; jp++ {
						j := jc + jp*nr
						nrb := min(nr, n-j)
						bpan := &(*bp)[jp*kcb*nr]
						for ip := 0; ip < mps; ip++ {
							i := i0 + ip*mr
							mrb := min(mr, m-i)
							apan := &(*ap)[ip*kcb*mr]
							if mrb == mr && nrb == nr {
								kern6x16(kcb, apan, bpan, &cc[i*ldc+j], ldc)
								continue
							}
							tmp = [mr * nr]float32{}
							kern6x16(kcb, apan, bpan, &tmp[0], nr)
							for r := 0; r < mrb; r++ {
								row := cc[(i+r)*ldc+j : (i+r)*ldc+j+nrb]
								for x := range row {
									row[x] += tmp[r*nr+x]
								}
							}
						}
					}
				}
				packPool.Put(ap)
			})
			packPool.Put(bp)
		}
	}
}

// packB writes B[p0:p0+kcb, j0:j0+w] (w <= 16) as kcb rows of 16, zero
// padded.
func packB(trans bool, bm bmat, ldb, p0, kcb, j0, w int, dst []float32) {
	if bm.h != nil {
		packBHalf(trans, bm, ldb, p0, kcb, j0, w, dst)
		return
	}
	b := bm.f
	if !trans {
		for p := 0; p < kcb; p++ {
			d := dst[p*nr : p*nr+nr]
			src := b[(p0+p)*ldb+j0 : (p0+p)*ldb+j0+w]
			copy(d, src)
			clear(d[w:])
		}
		return
	}
	if w < nr {
		clear(dst)
	}
	for j := 0; j < w; j++ {
		src := b[(j0+j)*ldb+p0 : (j0+j)*ldb+p0+kcb]
		for p, v := range src {
			dst[p*nr+j] = v
		}
	}
}

// packA writes alpha*A[i0:i0+h, p0:p0+kcb] (h <= 6) as kcb groups of 6,
// zero padded.
func packA(trans bool, alpha float32, a []float32, lda, i0, h, p0, kcb int, dst []float32) {
	if h < mr {
		clear(dst)
	}
	if trans {
		for p := 0; p < kcb; p++ {
			src := a[(p0+p)*lda+i0 : (p0+p)*lda+i0+h]
			d := dst[p*mr : p*mr+mr]
			for i, v := range src {
				d[i] = alpha * v
			}
		}
		return
	}
	if alpha == 1 && h == mr {
		r0 := a[(i0+0)*lda+p0 : (i0+0)*lda+p0+kcb]
		r1 := a[(i0+1)*lda+p0 : (i0+1)*lda+p0+kcb]
		r2 := a[(i0+2)*lda+p0 : (i0+2)*lda+p0+kcb]
		r3 := a[(i0+3)*lda+p0 : (i0+3)*lda+p0+kcb]
		r4 := a[(i0+4)*lda+p0 : (i0+4)*lda+p0+kcb]
		r5 := a[(i0+5)*lda+p0 : (i0+5)*lda+p0+kcb]
		for p := range r0 {
			d := dst[p*mr : p*mr+mr : p*mr+mr]
			d[0], d[1], d[2], d[3], d[4], d[5] = r0[p], r1[p], r2[p], r3[p], r4[p], r5[p]
		}
		return
	}
	for i := 0; i < h; i++ {
		src := a[(i0+i)*lda+p0 : (i0+i)*lda+p0+kcb]
		for p, v := range src {
			dst[p*mr+i] = alpha * v
		}
	}
}

// packBHalf is packB for a half-precision B, widening each element
// (exactly) to float32.
func packBHalf(trans bool, bm bmat, ldb, p0, kcb, j0, w int, dst []float32) {
	b, dt := bm.h, bm.dt
	if !trans {
		for p := 0; p < kcb; p++ {
			d := dst[p*nr : p*nr+nr]
			widen(dt, d[:w], b[(p0+p)*ldb+j0:(p0+p)*ldb+j0+w])
			clear(d[w:])
		}
		return
	}
	if w < nr {
		clear(dst)
	}
	if dt == backend.BF16 {
		for j := 0; j < w; j++ {
			src := b[(j0+j)*ldb+p0 : (j0+j)*ldb+p0+kcb]
			for p, v := range src {
				dst[p*nr+j] = bf16(v)
			}
		}
		return
	}
	for j := 0; j < w; j++ {
		src := b[(j0+j)*ldb+p0 : (j0+j)*ldb+p0+kcb]
		for p, v := range src {
			dst[p*nr+j] = f16(v)
		}
	}
}
