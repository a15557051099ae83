package cpu

import (
	"fmt"
	"math"

	"github.com/alpaca-go/alpaca/pkg/backend"
)

// The backend.Backend methods: each takes the slices behind its buffers
// (no copies) and runs the slice kernel.

// MatMul: C = alpha*op(A)*op(B) + beta*C (row-major); B may be BF16/F16.
func (c *CPU) MatMul(transA, transB bool, m, n, k int, alpha float32, a backend.Buffer, lda int, b backend.Buffer, ldb int, beta float32, cc backend.Buffer, ldc int) {
	if transB && !transA && m > 0 && m <= gemvRows && n > 0 {
		// few rows times a weight matrix (decoding): no packing
		bm := bmat{dt: b.DType()}
		if b.DType() == backend.F32 {
			bm.f = F32(b)
		} else {
			bm.h = U16(b)
		}
		A, C := F32(a), F32(cc)
		checkGemmLen(false, true, m, n, k, len(A), lda, bm.len(), ldb, len(C), ldc)
		c.gemvT(m, n, k, alpha, A, lda, bm, ldb, beta, C, ldc)
		return
	}
	if b.DType() == backend.F32 {
		c.matMul(transA, transB, m, n, k, alpha, F32(a), lda, F32(b), ldb, beta, F32(cc), ldc)
		return
	}
	c.matMulHalf(transA, transB, m, n, k, alpha, F32(a), lda, bmat{h: U16(b), dt: b.DType()}, ldb, beta, F32(cc), ldc)
}

// RMSNorm: see backend.Backend.
func (c *CPU) RMSNorm(y, rstd, x, w backend.Buffer, rows, dim int, eps float32) {
	c.rmsNorm(F32(y), F32(rstd), F32(x), F32(w), rows, dim, eps)
}

// RMSNormBackward: see backend.Backend.
func (c *CPU) RMSNormBackward(dx, dw, dy, x, w, rstd backend.Buffer, rows, dim int) {
	c.rmsNormBackward(F32(dx), F32(dw), F32(dy), F32(x), F32(w), F32(rstd), rows, dim)
}

// RoPE: see backend.Backend.
func (c *CPU) RoPE(x, pos backend.Buffer, rows, heads, headDim int, cos, sin backend.Buffer, inverse bool) {
	c.rope(F32(x), I32(pos), rows, heads, headDim, F32(cos), F32(sin), inverse)
}

// Attention: see backend.Backend.
func (c *CPU) Attention(out, lse, q, k, v, seg backend.Buffer, s backend.AttnShape) {
	c.attention(F32(out), F32(lse), F32(q), F32(k), F32(v), I32(seg), s)
}

// AttentionBackward: see backend.Backend.
func (c *CPU) AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v, seg backend.Buffer, s backend.AttnShape) {
	c.attentionBackward(F32(dq), F32(dk), F32(dv), F32(dout), F32(out), F32(lse), F32(q), F32(k), F32(v), I32(seg), s)
}

// SwiGLU: see backend.Backend.
func (c *CPU) SwiGLU(y, gate, up backend.Buffer) { c.swiGLU(F32(y), F32(gate), F32(up)) }

// SwiGLUBackward: see backend.Backend.
func (c *CPU) SwiGLUBackward(dgate, dup, dy, gate, up backend.Buffer) {
	c.swiGLUBackward(F32(dgate), F32(dup), F32(dy), F32(gate), F32(up))
}

// CrossEntropy: see backend.Backend.
func (c *CPU) CrossEntropy(dlogits, logits, targets backend.Buffer, rows, vocab int, scale float32) (float64, int) {
	return c.crossEntropy(F32(dlogits), F32(logits), I32(targets), rows, vocab, scale)
}

// Zero sets x to zero.
func (c *CPU) Zero(x backend.Buffer) {
	if x.DType() == backend.I32 {
		clear(I32(x))
		return
	}
	v := F32(x)
	c.parallel(len(v), 1<<16, func(lo, hi int) { clear(v[lo:hi]) })
}

// Copy: dst = src.
func (c *CPU) Copy(dst, src backend.Buffer) {
	d, s := F32(dst), F32(src)
	if len(d) != len(s) {
		panic(fmt.Sprintf("cpu: copy of %d elements into %d", len(s), len(d)))
	}
	c.parallel(len(d), 1<<16, func(lo, hi int) { copy(d[lo:hi], s[lo:hi]) })
}

// Add: dst += src.
func (c *CPU) Add(dst, src backend.Buffer) {
	d, s := F32(dst), F32(src)
	if len(d) != len(s) {
		panic(fmt.Sprintf("cpu: add of %d elements to %d", len(s), len(d)))
	}
	c.parallel(len(d), 1<<15, func(lo, hi int) {
		dd, ss := d[lo:hi], s[lo:hi]
		for i, v := range ss {
			dd[i] += v
		}
	})
}

// Mul: dst = a ⊙ b.
func (c *CPU) Mul(dst, a, b backend.Buffer) {
	d, x, y := F32(dst), F32(a), F32(b)
	if len(x) != len(d) || len(y) != len(d) {
		panic(fmt.Sprintf("cpu: mul of %d and %d elements into %d", len(x), len(y), len(d)))
	}
	c.parallel(len(d), 1<<15, func(lo, hi int) {
		dd, xx, yy := d[lo:hi], x[lo:hi], y[lo:hi]
		for i := range dd {
			dd[i] = xx[i] * yy[i]
		}
	})
}

// Scale: x *= s.
func (c *CPU) Scale(x backend.Buffer, s float32) {
	v := F32(x)
	c.parallel(len(v), 1<<15, func(lo, hi int) {
		vv := v[lo:hi]
		for i := range vv {
			vv[i] *= s
		}
	})
}

// SumSquares: per span a float64 sum in order, spans added in order (so
// the result does not depend on the thread count).
func (c *CPU) SumSquares(x backend.Buffer, spans []backend.Span) float64 {
	v := F32(x)
	sums := make([]float64, len(spans))
	c.parallel(len(spans), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			s := 0.0
			for _, e := range v[spans[i].Off : spans[i].Off+spans[i].Len] {
				s += float64(e) * float64(e)
			}
			sums[i] = s
		}
	})
	t := 0.0
	for _, s := range sums {
		t += s
	}
	return t
}

// AdamW: torch.optim.AdamW's single-tensor fp32 arithmetic (see backend).
func (c *CPU) AdamW(w, g, m, v backend.Buffer, spans []backend.Span, p backend.AdamW) {
	W, G, M, V := F32(w), F32(g), F32(m), F32(v)
	t := float64(p.Step)
	bc1 := 1 - math.Pow(p.Beta1, t)
	bc2 := 1 - math.Pow(p.Beta2, t)
	stepSize := float32(p.LR / bc1)
	bc2Sqrt := float32(math.Sqrt(bc2))
	b1, b2 := float32(p.Beta1), float32(p.Beta2)
	omb1, omb2 := float32(1-p.Beta1), float32(1-p.Beta2)
	eps := float32(p.Eps)
	decay := float32(1 - p.LR*p.WeightDecay)
	// Split the elements of all spans evenly over the threads.
	total := 0
	for _, s := range spans {
		total += s.Len
	}
	c.parallel(total, 1<<14, func(lo, hi int) {
		base := 0
		for _, s := range spans {
			a, b := max(lo-base, 0), min(hi-base, s.Len)
			base += s.Len
			if a >= b {
				continue
			}
			o := s.Off
			pw, pg, pm, pv := W[o+a:o+b], G[o+a:o+b], M[o+a:o+b], V[o+a:o+b]
			applyDecay := p.WeightDecay != 0 && s.Decay
			for j := range pw {
				if applyDecay {
					pw[j] *= decay
				}
				gj := pg[j]
				pm[j] = pm[j]*b1 + gj*omb1
				pv[j] = pv[j]*b2 + omb2*(gj*gj)
				denom := float32(math.Sqrt(float64(pv[j])))/bc2Sqrt + eps
				pw[j] += -stepSize * (pm[j] / denom)
			}
		}
	})
}

// Embedding: out[i] = table[tokens[i]].
func (c *CPU) Embedding(out, table, tokens backend.Buffer, dim int) {
	o, tk := F32(out), I32(tokens)
	switch table.DType() {
	case backend.F32:
		t := F32(table)
		c.parallel(len(tk), 64, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				r := int(tk[i])
				copy(o[i*dim:(i+1)*dim], t[r*dim:(r+1)*dim])
			}
		})
	default:
		t, dt := U16(table), table.DType()
		c.parallel(len(tk), 64, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				r := int(tk[i])
				widen(dt, o[i*dim:(i+1)*dim], t[r*dim:(r+1)*dim])
			}
		})
	}
}

// EmbeddingBackward: dtable[tokens[i]] += dout[i] in position order; the
// threads split the columns, so every element sees the same additions in
// the same order whatever the thread count.
func (c *CPU) EmbeddingBackward(dtable, dout, tokens backend.Buffer, dim int) {
	dt, d, tk := F32(dtable), F32(dout), I32(tokens)
	c.parallel(dim, 64, func(lo, hi int) {
		for i, t := range tk {
			g := dt[int(t)*dim+lo : int(t)*dim+hi]
			for j, v := range d[i*dim+lo : i*dim+hi] {
				g[j] += v
			}
		}
	})
}

// GatherRows: dst[r] = src[rows[r]].
func (c *CPU) GatherRows(dst, src, rows backend.Buffer, dim int) {
	d, s, rs := F32(dst), F32(src), I32(rows)
	c.parallel(len(rs), 64, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			i := int(rs[r])
			copy(d[r*dim:(r+1)*dim], s[i*dim:(i+1)*dim])
		}
	})
}

// ScatterRows: dst[rows[r]] = src[r].
func (c *CPU) ScatterRows(dst, src, rows backend.Buffer, dim int) {
	d, s, rs := F32(dst), F32(src), I32(rows)
	c.parallel(len(rs), 64, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			i := int(rs[r])
			copy(d[i*dim:(i+1)*dim], s[r*dim:(r+1)*dim])
		}
	})
}

// AttentionCached: n new queries at positions past.. against the cache.
func (c *CPU) AttentionCached(out, q, k, v backend.Buffer, past, n, NH, NKV, HD int) {
	c.attentionCached(F32(out), F32(q), F32(k), F32(v), past, n, NH, NKV, HD)
}

func (c *CPU) attentionCached(out, q, k, v []float32, past, n, NH, NKV, HD int) {
	grp := NH / NKV
	scale := float32(1 / math.Sqrt(float64(HD)))
	qs, ks := NH*HD, NKV*HD
	total := past + n
	c.parallel(n*NH, 1, func(lo, hi int) {
		pp := getBuf(total)
		defer packPool.Put(pp)
		for task := lo; task < hi; task++ {
			i, h := task/NH, task%NH
			g := h / grp
			L := past + i + 1
			p := (*pp)[:L]
			qi := q[i*qs+h*HD : i*qs+(h+1)*HD]
			mx := float32(math.Inf(-1))
			for j := 0; j < L; j++ {
				sc := scale * dotFixed(qi, k[j*ks+g*HD:j*ks+(g+1)*HD])
				p[j] = sc
				mx = max(mx, sc)
			}
			expSub(p, mx)
			var sum float32
			for _, e := range p {
				sum += e
			}
			oi := out[i*qs+h*HD : i*qs+(h+1)*HD]
			clear(oi)
			inv := 1 / sum
			for j := 0; j < L; j++ {
				axpyCached(p[j]*inv, v[j*ks+g*HD:j*ks+(g+1)*HD], oi)
			}
		}
	})
}

// gemvRows is the most rows of A for which MatMul with a transposed B (a
// weight matrix [n, k]) takes the dot-product path instead of the blocked
// SGEMM. The packed SGEMM repacks (and widens) B at every call, so for a
// few rows the dot products, which read B once and keep its rows in cache
// while every row of A goes by, win ([m, 2048] x [4096, 2048]^T,
// BenchmarkMatMulFewRows, 2 threads): with the AVX-512 kernels up to about
// 64 rows of A for f16 weights and 48 for f32 (m=32: 10.8 vs 26.5 ms in
// f16, 15.0 vs 17.4 ms in f32), with the AVX2 ones (CPU_BENCH_AVX2=1) up to
// about 32 (m=16: 6.5 vs 23.3 ms in f16, 7.2 vs 11.6 ms in f32). So decoding
// a batch of sequences and prefilling short prompts take it too. Without
// the assembly kernels, one row. (A variable for the tests.)
var gemvRows = func() int {
	switch {
	case have512:
		return 32
	case haveKernel:
		return 16
	}
	return 1
}()

// gemvT: C = alpha*A*B^T + beta*C for m <= gemvRows rows of A. Each row of
// B is read once (widened into a per-goroutine buffer when half precision)
// and dotted with every row of A; the threads split the rows of B.
func (c *CPU) gemvT(m, n, k int, alpha float32, a []float32, lda int, b bmat, ldb int, beta float32, cc []float32, ldc int) {
	// Half-precision rows of 32 or more are widened in registers by the
	// AVX2 kernel (same bits as widening first); others into a buffer.
	inReg := b.h != nil && k >= 32 && haveKernel && (b.dt == backend.BF16 || haveF16C)
	put := func(i, j int, s float32) {
		if p := &cc[i*ldc+j]; beta == 0 {
			*p = s
		} else {
			*p = beta**p + s
		}
	}
	c.parallel(n, 64, func(lo, hi int) {
		var wb *[]float32
		if b.h != nil && !inReg {
			wb = getBuf(k)
			defer packPool.Put(wb)
		}
		j := lo
		if have512 && k >= 64 && (inReg || b.h == nil) {
			// four rows of B at a time: x read once for the four, four
			// streams from memory; per row the bits of dotHalf/dotFixed
			kk := k &^ 63
			var out [4]float32
			for ; j+4 <= hi; j += 4 {
				last := (j+3)*ldb + k // rows j..j+3 lie below last
				for i := 0; i < m; i++ {
					ai := a[i*lda : i*lda+k]
					if inReg {
						_ = b.h[last-1]
						dotHalf512x4(&ai[0], &b.h[j*ldb], ldb, kk, f16Flag(b.dt), &out)
					} else {
						_ = b.f[last-1]
						dot512x4(&ai[0], &b.f[j*ldb], ldb, kk, &out)
					}
					for r, s := range out {
						row := (j + r) * ldb
						if inReg {
							s = tailHalf(b.dt, ai, b.h[row:row+k], kk, s)
						} else {
							s = tailF32(ai, b.f[row:row+k], kk, s)
						}
						put(i, j+r, alpha*s)
					}
				}
			}
		}
		for ; j < hi; j++ {
			var row []float32
			var h []uint16
			switch {
			case inReg:
				h = b.h[j*ldb : j*ldb+k]
			case b.h != nil:
				row = (*wb)[:k]
				widen(b.dt, row, b.h[j*ldb:j*ldb+k])
			default:
				row = b.f[j*ldb : j*ldb+k]
			}
			for i := 0; i < m; i++ {
				ai := a[i*lda : i*lda+k]
				if inReg {
					put(i, j, alpha*dotHalf(b.dt, ai, h))
				} else {
					put(i, j, alpha*dotFixed(ai, row))
				}
			}
		}
	})
}

// f16Flag is the kernels' half-precision selector: 1 for IEEE half, 0 for
// bf16.
func f16Flag(dt backend.DType) int {
	if dt == backend.BF16 {
		return 0
	}
	return 1
}

// tailHalf adds a[i]*widen(h[i]) for i from `from` on to s, in order: the
// part of a half-precision dot product past the kernel's blocks.
func tailHalf(dt backend.DType, a []float32, h []uint16, from int, s float32) float32 {
	for i := from; i < len(a); i++ {
		s += a[i] * halfTo32(dt, h[i])
	}
	return s
}

// tailF32 is tailHalf for a float32 b.
func tailF32(a, b []float32, from int, s float32) float32 {
	for i := from; i < len(a); i++ {
		s += a[i] * b[i]
	}
	return s
}

// dotHalf is dotFixed(a, widen(h)) with h widened in registers (AVX2 with
// F16C for IEEE halves; len(a) >= 32): the same order of summation, so the
// same bits.
func dotHalf(dt backend.DType, a []float32, h []uint16) float32 {
	n := len(a)
	h = h[:n]
	if have512 && n >= 64 {
		m := n &^ 63
		return tailHalf(dt, a, h, m, dotHalf512(&a[0], &h[0], m, f16Flag(dt)))
	}
	m := n &^ 31
	return tailHalf(dt, a, h, m, dotHalfAVX(&a[0], &h[0], m, f16Flag(dt)))
}

// dotFixed is a dot product whose summation order depends only on the
// length (eight interleaved partial sums), not on the slices' alignment, so
// a half-precision weight row widened into a scratch buffer gives the same
// bits as the same row stored in float32.
func dotFixed(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	if have512 && n >= 64 {
		m := n &^ 63
		return tailF32(a, b, m, dot512(&a[0], &b[0], m))
	}
	if haveKernel && n >= 32 {
		m := n &^ 31
		return tailF32(a, b, m, dotAVX(&a[0], &b[0], m))
	}
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= n; i += 8 {
		x, y := a[i:i+8:i+8], b[i:i+8:i+8]
		s0 += x[0] * y[0]
		s1 += x[1] * y[1]
		s2 += x[2] * y[2]
		s3 += x[3] * y[3]
		s4 += x[4] * y[4]
		s5 += x[5] * y[5]
		s6 += x[6] * y[6]
		s7 += x[7] * y[7]
	}
	for ; i < n; i++ {
		s0 += a[i] * b[i]
	}
	return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
}

// halfTo32 widens one half-precision value of dtype dt exactly.
func halfTo32(dt backend.DType, h uint16) float32 {
	if dt == backend.BF16 {
		return bf16(h)
	}
	return f16(h)
}

// axpyCached is axpy (y += alpha*x, multiply then add) with AVX-512 for
// the multiple-of-16 part: the same bits as gonum's Saxpy.
func axpyCached(alpha float32, x, y []float32) {
	n := len(x)
	y = y[:n]
	m := 0
	if have512 {
		m = n &^ 15
		if m > 0 {
			axpy512(alpha, &x[0], &y[0], m)
		}
	}
	for i := m; i < n; i++ {
		y[i] += alpha * x[i]
	}
}
