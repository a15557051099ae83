package cpu

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/alpaca-go/alpaca/internal/testutil"
	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/x448/float16"
)

// Tests of the data-movement, reduction and optimizer ops against plain
// loops written out here, and of the half-precision paths against the
// float32 path on exactly widened copies.

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}

func TestRegistry(t *testing.T) {
	b, err := backend.Open("cpu", backend.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := b.(*CPU); !ok || c.Threads() != 2 {
		t.Fatalf("Open(cpu) = %T", b)
	}
	if _, err := backend.Open("cuda", backend.Options{}); err == nil {
		t.Fatal("Open(cuda) succeeded without a CUDA backend")
	}
}

func TestElementwiseOps(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 1))
	for name, c := range backends() {
		n := 100003
		x, y := rnd(r, n, 1), rnd(r, n, 1)
		// Add
		want := make([]float32, n)
		for i := range want {
			want[i] = x[i] + y[i]
		}
		d := append([]float32(nil), x...)
		c.Add(Wrap(d), Wrap(y))
		sameBits(t, name+" add", d, want)
		// Scale
		for i := range want {
			want[i] = x[i] * 0.37
		}
		d = append([]float32(nil), x...)
		c.Scale(Wrap(d), 0.37)
		sameBits(t, name+" scale", d, want)
		// Mul (in place into a)
		for i := range want {
			want[i] = x[i] * y[i]
		}
		d = append([]float32(nil), x...)
		c.Mul(Wrap(d), Wrap(d), Wrap(y))
		sameBits(t, name+" mul", d, want)
		// Copy of a view, Zero of a view
		buf, _ := c.Alloc(backend.F32, 10)
		c.Copy(buf.Slice(2, 7), Wrap(x[:5]))
		sameBits(t, name+" copy", F32(buf), append(append([]float32{0, 0}, x[:5]...), 0, 0, 0))
		c.Zero(buf.Slice(3, 5))
		got := F32(buf)
		if got[3] != 0 || got[4] != 0 || got[2] != x[0] || got[5] != x[3] {
			t.Fatalf("%s: zero of a view: %v", name, got)
		}
	}
}

func TestSumSquares(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 2))
	x := rnd(r, 5000, 2)
	spans := []backend.Span{{Off: 0, Len: 1000}, {Off: 1016, Len: 3000}, {Off: 4020, Len: 980}}
	want := 0.0
	for _, s := range spans {
		p := 0.0
		for _, v := range x[s.Off : s.Off+s.Len] {
			p += float64(v) * float64(v)
		}
		want += p
	}
	for name, c := range backends() {
		if got := c.SumSquares(Wrap(x), spans); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	x[2000] = float32(math.NaN())
	if got := New(2).SumSquares(Wrap(x), spans); !math.IsNaN(got) {
		t.Errorf("NaN gradient: sum %v", got)
	}
}

// adamRef is the torch single-tensor AdamW, written as a plain loop.
func adamRef(w, g, m, v []float32, decay bool, p backend.AdamW) {
	bc1 := 1 - math.Pow(p.Beta1, float64(p.Step))
	bc2 := 1 - math.Pow(p.Beta2, float64(p.Step))
	step := float32(p.LR / bc1)
	bc2s := float32(math.Sqrt(bc2))
	for j := range w {
		if decay && p.WeightDecay != 0 {
			w[j] *= float32(1 - p.LR*p.WeightDecay)
		}
		m[j] = m[j]*float32(p.Beta1) + g[j]*float32(1-p.Beta1)
		v[j] = v[j]*float32(p.Beta2) + float32(1-p.Beta2)*(g[j]*g[j])
		w[j] += -step * (m[j] / (float32(math.Sqrt(float64(v[j])))/bc2s + float32(p.Eps)))
	}
}

func TestAdamWArena(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	n := 70000
	spans := []backend.Span{{Off: 0, Len: 30000, Decay: true}, {Off: 30016, Len: 64}, {Off: 30080, Len: 39920, Decay: true}}
	w0 := rnd(r, n, 1)
	for name, c := range backends() {
		w, m, v := append([]float32(nil), w0...), make([]float32, n), make([]float32, n)
		rw, rm, rv := append([]float32(nil), w0...), make([]float32, n), make([]float32, n)
		for step := int64(1); step <= 3; step++ {
			g := rnd(r, n, 0.1)
			p := backend.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, Step: step}
			c.AdamW(Wrap(w), Wrap(g), Wrap(m), Wrap(v), spans, p)
			for _, s := range spans {
				o, e := s.Off, s.Off+s.Len
				adamRef(rw[o:e], g[o:e], rm[o:e], rv[o:e], s.Decay, p)
			}
		}
		sameBits(t, name+" w", w, rw)
		sameBits(t, name+" m", m, rm)
		sameBits(t, name+" v", v, rv)
		if w[30010] != w0[30010] {
			t.Errorf("%s: element outside every span changed", name)
		}
	}
}

func TestEmbeddingAndRows(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	V, D, N := 50, 24, 37
	table := rnd(r, V*D, 1)
	tok := make([]int32, N)
	for i := range tok {
		tok[i] = int32(r.IntN(V))
	}
	tok[5] = tok[9] // repeated token: accumulation
	for name, c := range backends() {
		out := make([]float32, N*D)
		c.Embedding(Wrap(out), Wrap(table), WrapInt32(tok), D)
		want := make([]float32, N*D)
		for i, tk := range tok {
			copy(want[i*D:(i+1)*D], table[int(tk)*D:(int(tk)+1)*D])
		}
		sameBits(t, name+" embedding", out, want)
		// bf16 and f16 tables: identical to widening first
		for _, dt := range []backend.DType{backend.BF16, backend.F16} {
			h, _ := c.Alloc(dt, V*D)
			c.Upload(h, table)
			wide := make([]float32, V*D)
			c.Download(wide, h)
			c.Embedding(Wrap(out), h, WrapInt32(tok), D)
			for i, tk := range tok {
				copy(want[i*D:(i+1)*D], wide[int(tk)*D:(int(tk)+1)*D])
			}
			sameBits(t, name+" embedding "+dt.String(), out, want)
		}
		// backward: dtable[tok[i]] += dout[i] in order
		dout := rnd(r, N*D, 1)
		dt0 := rnd(r, V*D, 1)
		dt := append([]float32(nil), dt0...)
		c.EmbeddingBackward(Wrap(dt), Wrap(dout), WrapInt32(tok), D)
		ref := append([]float32(nil), dt0...)
		for i, tk := range tok {
			for j := 0; j < D; j++ {
				ref[int(tk)*D+j] += dout[i*D+j]
			}
		}
		sameBits(t, name+" embedding backward", dt, ref)
		// gather / scatter
		rows := []int32{4, 0, 36, 17}
		g := make([]float32, len(rows)*D)
		c.GatherRows(Wrap(g), Wrap(dout), WrapInt32(rows), D)
		for k, i := range rows {
			sameBits(t, name+" gather", g[k*D:(k+1)*D], dout[int(i)*D:(int(i)+1)*D])
		}
		s := make([]float32, N*D)
		c.ScatterRows(Wrap(s), Wrap(g), WrapInt32(rows), D)
		for i := 0; i < N; i++ {
			wantRow := make([]float32, D)
			for k, ri := range rows {
				if int(ri) == i {
					wantRow = g[k*D : (k+1)*D]
				}
			}
			sameBits(t, name+" scatter", s[i*D:(i+1)*D], wantRow)
		}
	}
}

func TestUploadDownloadHalf(t *testing.T) {
	c := New(1)
	x := []float32{0, 1, -2.5, 3.14159265, 1e-3, 65504, 1e-8, float32(math.Inf(-1))}
	for _, dt := range []backend.DType{backend.BF16, backend.F16} {
		b, _ := c.Alloc(dt, len(x))
		c.Upload(b, x)
		got := make([]float32, len(x))
		c.Download(got, b)
		for i, v := range x {
			var want float32
			if dt == backend.BF16 {
				want = math.Float32frombits(uint32(toBF16(v)) << 16)
			} else {
				want = float16.Fromfloat32(v).Float32()
			}
			if got[i] != want {
				t.Errorf("%v: %v -> %v, want %v", dt, v, got[i], want)
			}
		}
		// raw upload and a wrapped (memory-mapped style) buffer agree
		raw := make([]byte, 2*len(x))
		for i, h := range U16(b) {
			binary.LittleEndian.PutUint16(raw[2*i:], h)
		}
		b2, _ := c.Alloc(dt, len(x))
		c.UploadRaw(b2, raw)
		got2 := make([]float32, len(x))
		c.Download(got2, b2)
		sameBits(t, dt.String()+" raw", got2, got)
		if w, ok := c.WrapHost(dt, raw); ok {
			c.Download(got2, w)
			sameBits(t, dt.String()+" wrapped", got2, got)
		}
	}
}

// MatMul with a BF16/F16 B operand equals MatMul on the widened copy,
// bit for bit (widening is exact and the same kernel runs).
func TestMatMulHalfB(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	for name, c := range backends() {
		for _, dt := range []backend.DType{backend.BF16, backend.F16} {
			for _, tb := range []bool{false, true} {
				m, n, k := 13, 37, 300
				a := rnd(r, m*k, 1)
				hb, _ := c.Alloc(dt, n*k)
				c.Upload(hb, rnd(r, n*k, 0.1))
				wide := make([]float32, n*k)
				c.Download(wide, hb)
				ldb := n
				if tb {
					ldb = k
				}
				c0 := rnd(r, m*n, 1)
				got, want := append([]float32(nil), c0...), append([]float32(nil), c0...)
				c.MatMul(false, tb, m, n, k, 0.5, Wrap(a), k, hb, ldb, 1, Wrap(got), n)
				c.MatMul(false, tb, m, n, k, 0.5, Wrap(a), k, Wrap(wide), ldb, 1, Wrap(want), n)
				if ownGemm() {
					sameBits(t, name+" "+dt.String(), got, want)
				} else {
					testutil.CloseRel(t, name+" "+dt.String(), got, want, 1e-6)
				}
			}
		}
	}
}

// AttentionCached over a whole sequence equals Attention (one row, one
// segment), and prefix + one-by-one equals it too.
func TestAttentionCached(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 6))
	for _, sh := range []struct{ NH, NKV int }{{4, 4}, {4, 2}, {4, 1}} {
		T, HD := 21, 8
		NH, NKV := sh.NH, sh.NKV
		q, k, v := rnd(r, T*NH*HD, 1), rnd(r, T*NKV*HD, 1), rnd(r, T*NKV*HD, 1)
		seg := make([]int32, T)
		c := New(2)
		want, lse := make([]float32, T*NH*HD), make([]float32, NH*T)
		c.attention(want, lse, q, k, v, seg, backend.AttnShape{B: 1, T: T, NH: NH, NKV: NKV, HD: HD})
		got := make([]float32, T*NH*HD)
		c.attentionCached(got, q, k, v, 0, T, NH, NKV, HD)
		testutil.CloseRel(t, "whole", got, want, 1e-6)
		got2 := make([]float32, T*NH*HD)
		c.attentionCached(got2[:10*NH*HD], q[:10*NH*HD], k, v, 0, 10, NH, NKV, HD)
		for i := 10; i < T; i++ {
			c.attentionCached(got2[i*NH*HD:(i+1)*NH*HD], q[i*NH*HD:(i+1)*NH*HD], k, v, i, 1, NH, NKV, HD)
		}
		testutil.CloseRel(t, "incremental", got2, want, 1e-6)
	}
}

// MatMul with few rows and a transposed B (decoding) takes the dot-product
// path: checked against a float64 loop, for f32 and half B (half equal to
// the widened f32 bit for bit), with beta 0 over NaN garbage and beta 1.
func TestMatMulFewRows(t *testing.T) {
	dotVariants(t, testMatMulFewRows)
}

// dotVariants runs fn with the AVX-512 dot products (when this CPU has
// them) and with the AVX2 ones.
func dotVariants(t *testing.T, fn func(t *testing.T)) {
	defer func(h bool) { have512 = h }(have512)
	if have512 {
		t.Run("avx512", fn)
	} else {
		t.Log("this CPU has no AVX-512: the AVX-512 dot products are not tested here")
	}
	have512 = false
	t.Run("avx2", fn)
}

func testMatMulFewRows(t *testing.T) {
	defer func(g int) { gemvRows = g }(gemvRows)
	gemvRows = 8 // exercise the dot-product path beyond its default one row
	r := rand.New(rand.NewPCG(3, 7))
	for name, c := range backends() {
		for _, m := range []int{1, 3, 8} {
			for _, k := range []int{77, 200} {
				n := 130
				lda, ldb, ldc := k+3, k+1, n+2
				a := rnd(r, m*lda, 1)
				b := rnd(r, n*ldb, 0.2)
				for _, beta := range []float32{0, 1} {
					c0 := rnd(r, m*ldc, 1)
					if beta == 0 {
						for i := range c0 {
							c0[i] = float32(math.NaN())
						}
					}
					want := f64(c0)
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							s := 0.0
							for p := 0; p < k; p++ {
								s += float64(a[i*lda+p]) * float64(b[j*ldb+p])
							}
							if beta == 0 {
								want[i*ldc+j] = 0.5 * s
							} else {
								want[i*ldc+j] = 0.5*s + want[i*ldc+j]
							}
						}
					}
					got := append([]float32(nil), c0...)
					c.MatMul(false, true, m, n, k, 0.5, Wrap(a), lda, Wrap(b), ldb, beta, Wrap(got), ldc)
					// compare the written entries only (the padding columns stay)
					var g []float32
					var w []float64
					for i := 0; i < m; i++ {
						g = append(g, got[i*ldc:i*ldc+n]...)
						w = append(w, want[i*ldc:i*ldc+n]...)
					}
					testutil.CloseRel(t, name+" few rows", g, w, 1e-6)
					for _, dt := range []backend.DType{backend.BF16, backend.F16} {
						h, _ := c.Alloc(dt, len(b))
						c.Upload(h, b)
						wide := make([]float32, len(b))
						c.Download(wide, h)
						g1, g2 := append([]float32(nil), c0...), append([]float32(nil), c0...)
						c.MatMul(false, true, m, n, k, 0.5, Wrap(a), lda, h, ldb, beta, Wrap(g1), ldc)
						c.MatMul(false, true, m, n, k, 0.5, Wrap(a), lda, Wrap(wide), ldb, beta, Wrap(g2), ldc)
						for i := 0; i < m; i++ {
							sameBits(t, name+" few rows "+dt.String(), g1[i*ldc:i*ldc+n], g2[i*ldc:i*ldc+n])
						}
					}
				}
			}
		}
	}
}

// dotFixed (the one-row MatMul's dot product, AVX2/FMA from 32 elements
// on) against a float64 sum, for lengths around the kernel's block sizes.
func TestDotFixedAgainstFloat64(t *testing.T) {
	dotVariants(t, testDotFixedAgainstFloat64)
}

func testDotFixedAgainstFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for n := 0; n <= 300; n++ {
		a, b := make([]float32, n), make([]float32, n)
		ref, mag := 0.0, 0.0
		for i := range a {
			a[i], b[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
			ref += float64(a[i]) * float64(b[i])
			mag += math.Abs(float64(a[i]) * float64(b[i]))
		}
		got := float64(dotFixed(a, b))
		if e := math.Abs(got-ref) / math.Max(mag, 1e-30); !(e <= 1e-6) {
			t.Fatalf("n=%d: dotFixed %v, float64 %v (error %v of the magnitude)", n, got, ref, e)
		}
	}
}
