package cuda

// GPU tests: every op against the CPU backend (pkg/backend/cpu) on random
// inputs, with a tolerance per op: |got-ref| <= atol + rtol*|ref| element by
// element (a NaN or infinity fails). They skip, saying why, when the
// library or a GPU is absent. The library is looked up as Open does, plus
// $REPO/bin/libalpaca_cuda.so (make cuda).

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alpaca-go/alpaca/internal/testutil"
	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/alpaca-go/alpaca/pkg/backend/cpu"
)

func gpu(t testing.TB) *CUDA {
	t.Helper()
	if os.Getenv(EnvLib) == "" && libPath == "" {
		if p := filepath.Join(testutil.RepoRoot(), "bin", LibName); fileExists(p) {
			SetLibraryPath(p)
		}
	}
	c, err := Open(0)
	if err != nil {
		t.Skipf("CUDA backend unavailable, GPU test skipped: %v", err)
	}
	return c
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// fast reports whether MatMul runs a reduced-precision path (TF32/bf16).
func (c *CUDA) fast() bool { return c.flags != 0 }

// pair holds the same data on the CPU and the GPU.
type pair struct{ c, g backend.Buffer }

type env struct {
	t   testing.TB
	cpu *cpu.CPU
	gpu *CUDA
	rng *rand.Rand
}

func newEnv(t testing.TB) *env {
	return &env{t: t, cpu: cpu.New(2), gpu: gpu(t), rng: rand.New(rand.NewPCG(1, 2))}
}

func (e *env) rand(n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = (2*e.rng.Float32() - 1) * scale
	}
	return v
}

func (e *env) f32(v []float32) pair { return e.typed(backend.F32, v) }

func (e *env) typed(dt backend.DType, v []float32) pair {
	e.t.Helper()
	c, err := e.cpu.Alloc(dt, len(v))
	if err != nil {
		e.t.Fatal(err)
	}
	g, err := e.gpu.Alloc(dt, len(v))
	if err != nil {
		e.t.Fatal(err)
	}
	e.cpu.Upload(c, v)
	e.gpu.Upload(g, v)
	return pair{c, g}
}

func (e *env) i32(v []int32) pair {
	e.t.Helper()
	c, _ := e.cpu.Alloc(backend.I32, len(v))
	g, err := e.gpu.Alloc(backend.I32, len(v))
	if err != nil {
		e.t.Fatal(err)
	}
	e.cpu.UploadInt32(c, v)
	e.gpu.UploadInt32(g, v)
	return pair{c, g}
}

func (e *env) zeros(n int) pair { return e.f32(make([]float32, n)) }

// near compares the GPU side of p with its CPU side:
// |g-c| <= atol + rtol*|c| for every element; NaN/Inf fail.
func (e *env) near(name string, p pair, atol, rtol float64) {
	e.t.Helper()
	want := make([]float32, p.c.Len())
	got := make([]float32, p.g.Len())
	e.cpu.Download(want, p.c)
	e.gpu.Download(got, p.g)
	nearSlices(e.t, name, got, want, atol, rtol)
}

func nearSlices(t testing.TB, name string, got, want []float32, atol, rtol float64) {
	t.Helper()
	if abs := testutil.MaxAbsErr(got, want); math.IsInf(abs, 1) {
		t.Errorf("%s: NaN/Inf or length mismatch (got %d, want %d elements)", name, len(got), len(want))
		return
	}
	bad, worst := 0, 0.0
	for i := range want {
		if got[i] == want[i] { // equal, including the same infinity (NaN never is)
			continue
		}
		d := math.Abs(float64(got[i]) - float64(want[i]))
		lim := atol + rtol*math.Abs(float64(want[i]))
		if !(d <= lim) {
			if bad == 0 {
				t.Errorf("%s[%d] = %g, want %g (|diff| %.3g > %.3g = atol %g + rtol %g*|ref|)", name, i, got[i], want[i], d, lim, atol, rtol)
			}
			bad++
		}
		worst = max(worst, d/max(lim, 1e-300))
	}
	if bad > 1 {
		t.Errorf("%s: %d of %d elements outside the tolerance", name, bad, len(want))
	}
	t.Logf("%s: max |diff|/(atol+rtol|ref|) = %.3g, normwise relative error %.3g", name, worst, testutil.MaxRelErr(got, want))
}

func TestOpenWithoutLibrary(t *testing.T) {
	mu.Lock()
	o := opened
	mu.Unlock()
	if o != nil {
		t.Skip("a CUDA backend is already open in this process")
	}
	SetLibraryPath(filepath.Join(t.TempDir(), LibName))
	defer SetLibraryPath("")
	_, err := backend.Open("cuda", backend.Options{})
	if err == nil {
		t.Fatal("Open succeeded without a library")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	want := "make cuda"
	if !cgoLoaderAvailable {
		want = "CGO_ENABLED=1"
	}
	if !strings.Contains(msg, want) {
		t.Errorf("error %q does not say %q", msg, want)
	}
}

func TestTransfers(t *testing.T) {
	e := newEnv(t)
	v := e.rand(1001, 3)
	v[5] = 1e-40 // subnormal
	v[6] = float32(math.Inf(-1))
	for _, dt := range []backend.DType{backend.F32, backend.BF16, backend.F16} {
		p := e.typed(dt, v)
		want := make([]float32, len(v))
		got := make([]float32, len(v))
		e.cpu.Download(want, p.c)
		e.gpu.Download(got, p.g)
		for i := range want {
			if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
				t.Fatalf("%v round trip [%d]: %g, want %g", dt, i, got[i], want[i])
			}
		}
		// raw upload into a view
		// finite little-endian elements of dt
		raw := make([]byte, 10*dt.Size())
		for i := 0; i < 10; i++ {
			if dt == backend.F32 {
				binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(float32(i)*1.37-4))
			} else {
				binary.LittleEndian.PutUint16(raw[2*i:], uint16(0x3C00+97*i))
			}
		}
		e.cpu.UploadRaw(p.c.Slice(100, 110), raw)
		e.gpu.UploadRaw(p.g.Slice(100, 110), raw)
		e.near("raw "+dt.String(), p, 0, 0)
	}
	ix := []int32{3, -7, 1 << 30}
	p := e.i32(ix)
	got := make([]int32, 3)
	e.gpu.DownloadInt32(got, p.g)
	if fmt.Sprint(got) != fmt.Sprint(ix) {
		t.Errorf("int32 round trip %v, want %v", got, ix)
	}
}

func TestElementwise(t *testing.T) {
	e := newEnv(t)
	n := 70001
	x, y := e.f32(e.rand(n, 2)), e.f32(e.rand(n, 2))
	for _, be := range []backend.Backend{e.cpu, e.gpu} {
		pick := func(p pair) backend.Buffer {
			if be == backend.Backend(e.cpu) {
				return p.c
			}
			return p.g
		}
		be.Add(pick(x).Slice(10, 5010), pick(y).Slice(3, 5003))
		be.Scale(pick(x).Slice(1000, 60000), -0.37)
		be.Copy(pick(y).Slice(20000, 30000), pick(x).Slice(0, 10000))
		be.Zero(pick(x).Slice(65000, 66000))
		be.Mul(pick(x).Slice(40000, 45000), pick(x).Slice(40000, 45000), pick(y).Slice(100, 5100))
	}
	e.near("add/scale/zero/mul", x, 0, 0) // one rounding each: bit-identical
	e.near("copy", y, 0, 0)
	spans := []backend.Span{{Off: 0, Len: 100}, {Off: 300, Len: 50000}, {Off: 60000, Len: 1}, {Off: 61000, Len: 0}}
	sc, sg := e.cpu.SumSquares(x.c, spans), e.gpu.SumSquares(x.g, spans)
	testutil.CloseScalar(t, "SumSquares", sg, sc, 0, 1e-12)
}

func TestAdamW(t *testing.T) {
	e := newEnv(t)
	n := 50000
	w, m, v := e.f32(e.rand(n, 1)), e.zeros(n), e.zeros(n)
	spans := []backend.Span{{Off: 0, Len: 20000, Decay: true}, {Off: 20016, Len: 9000}, {Off: 30000, Len: 19999, Decay: true}}
	for step := int64(1); step <= 3; step++ {
		g := e.f32(e.rand(n, 0.1))
		p := backend.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, Step: step}
		e.cpu.AdamW(w.c, g.c, m.c, v.c, spans, p)
		e.gpu.AdamW(w.g, g.g, m.g, v.g, spans, p)
	}
	// The kernel does the CPU's float32 operations in the same order with
	// no fused multiply-adds: expected bit-identical; 1 ulp allowed.
	e.near("adamw w", w, 0, 1.2e-7)
	e.near("adamw m", m, 0, 1.2e-7)
	e.near("adamw v", v, 0, 1.2e-7)
}

func TestEmbeddingAndRows(t *testing.T) {
	e := newEnv(t)
	V, D, N := 50, 48, 300
	tok := make([]int32, N)
	for i := range tok {
		tok[i] = int32(e.rng.IntN(V))
	}
	tok[1], tok[2] = 7, 7 // repeats
	tk := e.i32(tok)
	for _, dt := range []backend.DType{backend.F32, backend.BF16, backend.F16} {
		table := e.typed(dt, e.rand(V*D, 1))
		out := e.zeros(N * D)
		e.cpu.Embedding(out.c, table.c, tk.c, D)
		e.gpu.Embedding(out.g, table.g, tk.g, D)
		e.near("embedding "+dt.String(), out, 0, 0) // exact widening
	}
	dt := e.f32(e.rand(V*D, 1))
	dout := e.f32(e.rand(N*D, 1))
	e.cpu.EmbeddingBackward(dt.c, dout.c, tk.c, D)
	e.gpu.EmbeddingBackward(dt.g, dout.g, tk.g, D)
	e.near("embedding backward", dt, 0, 0) // same additions in the same order

	rows := e.i32([]int32{4, 0, 9, 2})
	src := e.f32(e.rand(10*D, 1))
	dst := e.zeros(4 * D)
	e.cpu.GatherRows(dst.c, src.c, rows.c, D)
	e.gpu.GatherRows(dst.g, src.g, rows.g, D)
	e.near("gather rows", dst, 0, 0)
	big := e.f32(e.rand(10*D, 1))
	e.cpu.ScatterRows(big.c, dst.c, rows.c, D)
	e.gpu.ScatterRows(big.g, dst.g, rows.g, D)
	e.near("scatter rows", big, 0, 0)
}

func TestMatMul(t *testing.T) {
	e := newEnv(t)
	atol, rtol := 2e-5, 1e-5
	if e.gpu.fast() {
		atol, rtol = 3e-2, 1e-2 // TF32 / bf16 inputs
	}
	type tc struct {
		ta, tb           bool
		m, n, k          int
		alpha, beta      float32
		padA, padB, padC int
		dt               backend.DType
	}
	cases := []tc{
		{false, true, 37, 53, 129, 1, 0, 0, 0, 0, backend.F32},
		{false, false, 64, 32, 16, 0.5, 1, 3, 1, 2, backend.F32},
		{true, false, 17, 300, 70, 1, 1, 0, 5, 0, backend.F32},
		{true, true, 5, 7, 300, -2, 0.25, 1, 1, 1, backend.F32},
		{false, true, 33, 65, 96, 1, 0, 0, 0, 0, backend.BF16},
		{false, false, 9, 40, 31, 1, 1, 2, 0, 3, backend.F16},
		{false, true, 1, 1, 1, 1, 0, 0, 0, 0, backend.F32},
		{false, true, 4, 5, 0, 1, 0.5, 0, 0, 0, backend.F32},
	}
	for i, c := range cases {
		rA, cA := c.m, c.k
		if c.ta {
			rA, cA = c.k, c.m
		}
		rB, cB := c.k, c.n
		if c.tb {
			rB, cB = c.n, c.k
		}
		lda, ldb, ldc := max(cA, 1)+c.padA, max(cB, 1)+c.padB, c.n+c.padC
		a := e.f32(e.rand(max(rA*lda, 1), 1))
		b := e.typed(c.dt, e.rand(max(rB*ldb, 1), 1))
		cc := e.f32(e.rand(c.m*ldc, 1))
		e.cpu.MatMul(c.ta, c.tb, c.m, c.n, c.k, c.alpha, a.c, lda, b.c, ldb, c.beta, cc.c, ldc)
		e.gpu.MatMul(c.ta, c.tb, c.m, c.n, c.k, c.alpha, a.g, lda, b.g, ldb, c.beta, cc.g, ldc)
		tol := atol * math.Sqrt(float64(max(c.k, 1)))
		e.near(fmt.Sprintf("matmul case %d %+v", i, c), cc, tol, rtol)
	}
}

func TestRMSNorm(t *testing.T) {
	e := newEnv(t)
	for _, sh := range [][2]int{{37, 64}, {5, 1000}, {130, 4096}} {
		rows, dim := sh[0], sh[1]
		x, w := e.f32(e.rand(rows*dim, 2)), e.f32(e.rand(dim, 1))
		y, rstd := e.zeros(rows*dim), e.zeros(rows)
		e.cpu.RMSNorm(y.c, rstd.c, x.c, w.c, rows, dim, 1e-6)
		e.gpu.RMSNorm(y.g, rstd.g, x.g, w.g, rows, dim, 1e-6)
		name := fmt.Sprintf("rmsnorm %dx%d", rows, dim)
		e.near(name+" y", y, 1e-6, 1e-5)
		e.near(name+" rstd", rstd, 0, 1e-5)
		dy := e.f32(e.rand(rows*dim, 1))
		dx, dw := e.f32(e.rand(rows*dim, 1)), e.f32(e.rand(dim, 1)) // accumulate into non-zero
		e.cpu.RMSNormBackward(dx.c, dw.c, dy.c, x.c, w.c, rstd.c, rows, dim)
		e.gpu.RMSNormBackward(dx.g, dw.g, dy.g, x.g, w.g, rstd.g, rows, dim)
		e.near(name+" dx", dx, 1e-5, 1e-4)
		e.near(name+" dw", dw, 1e-5*math.Sqrt(float64(rows)), 1e-4)
	}
}

func TestRoPE(t *testing.T) {
	e := newEnv(t)
	rows, heads, hd, maxPos := 50, 3, 16, 64
	half := hd / 2
	cs, sn := make([]float32, maxPos*half), make([]float32, maxPos*half)
	for p := 0; p < maxPos; p++ {
		for i := 0; i < half; i++ {
			f := float64(p) / math.Pow(10000, float64(2*i)/float64(hd))
			cs[p*half+i], sn[p*half+i] = float32(math.Cos(f)), float32(math.Sin(f))
		}
	}
	pos := make([]int32, rows)
	for i := range pos {
		pos[i] = int32(e.rng.IntN(maxPos))
	}
	c, s, ps := e.f32(cs), e.f32(sn), e.i32(pos)
	x := e.f32(e.rand(rows*heads*hd, 2))
	for _, inv := range []bool{false, true} {
		e.cpu.RoPE(x.c, ps.c, rows, heads, hd, c.c, s.c, inv)
		e.gpu.RoPE(x.g, ps.g, rows, heads, hd, c.g, s.g, inv)
		e.near(fmt.Sprintf("rope inverse=%v", inv), x, 1e-6, 1e-6)
	}
}

func TestSwiGLU(t *testing.T) {
	e := newEnv(t)
	n := 10007
	g, u := e.f32(e.rand(n, 8)), e.f32(e.rand(n, 2))
	y := e.zeros(n)
	e.cpu.SwiGLU(y.c, g.c, u.c)
	e.gpu.SwiGLU(y.g, g.g, u.g)
	e.near("swiglu", y, 1e-6, 1e-5)
	dy := e.f32(e.rand(n, 1))
	dg, du := e.zeros(n), e.zeros(n)
	e.cpu.SwiGLUBackward(dg.c, du.c, dy.c, g.c, u.c)
	e.gpu.SwiGLUBackward(dg.g, du.g, dy.g, g.g, u.g)
	e.near("swiglu dgate", dg, 1e-6, 1e-5)
	e.near("swiglu dup", du, 1e-6, 1e-5)
}

func TestCrossEntropy(t *testing.T) {
	e := newEnv(t)
	rows, vocab := 37, 5003
	tg := make([]int32, rows)
	for i := range tg {
		tg[i] = int32(e.rng.IntN(vocab))
	}
	tg[3], tg[10] = -1, -1
	targets := e.i32(tg)
	for _, inPlace := range []bool{false, true} {
		logits := e.f32(e.rand(rows*vocab, 6))
		d := logits
		if !inPlace {
			d = e.zeros(rows * vocab)
		}
		sc, nc := e.cpu.CrossEntropy(d.c, logits.c, targets.c, rows, vocab, 0.03)
		sg, ng := e.gpu.CrossEntropy(d.g, logits.g, targets.g, rows, vocab, 0.03)
		if nc != ng {
			t.Errorf("cross-entropy count %d, want %d", ng, nc)
		}
		testutil.CloseScalar(t, "cross-entropy loss", sg, sc, 1, 1e-6)
		e.near(fmt.Sprintf("cross-entropy dlogits in-place=%v", inPlace), d, 1e-9, 1e-5)
	}
}

// attnCase makes q, k, v and seg for a batch.
func (e *env) attnCase(s backend.AttnShape, seg []int32) (q, k, v, sg pair) {
	N := s.B * s.T
	return e.f32(e.rand(N*s.NH*s.HD, 1)), e.f32(e.rand(N*s.NKV*s.HD, 1)), e.f32(e.rand(N*s.NKV*s.HD, 1)), e.i32(seg)
}

func packedSeg(B, T int, lens ...int) []int32 {
	seg := make([]int32, B*T)
	for b := 0; b < B; b++ {
		i, id := 0, int32(0)
		for _, L := range lens {
			for j := 0; j < L && i < T; j++ {
				seg[b*T+i] = id
				i++
			}
			id++
		}
		for ; i < T; i++ {
			seg[b*T+i] = -1 // padding
		}
	}
	return seg
}

func TestAttention(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		s   backend.AttnShape
		seg []int32
	}{
		{backend.AttnShape{B: 2, T: 70, NH: 4, NKV: 4, HD: 16}, packedSeg(2, 70, 30, 25, 10)},
		{backend.AttnShape{B: 1, T: 100, NH: 6, NKV: 2, HD: 32}, packedSeg(1, 100, 100)},
		{backend.AttnShape{B: 2, T: 45, NH: 3, NKV: 1, HD: 64}, packedSeg(2, 45, 1, 20, 24)},
		{backend.AttnShape{B: 1, T: 130, NH: 2, NKV: 1, HD: 128}, packedSeg(1, 130, 64, 60)},
		{backend.AttnShape{B: 1, T: 40, NH: 2, NKV: 2, HD: 24}, nil}, // non-contiguous segments
	}
	cases[4].seg = make([]int32, 40)
	for i := range cases[4].seg {
		cases[4].seg[i] = int32((i / 3) % 2)
	}
	for ci, c := range cases {
		s := c.s
		name := fmt.Sprintf("attention case %d %+v", ci, s)
		q, k, v, seg := e.attnCase(s, c.seg)
		N := s.B * s.T
		out, lse := e.zeros(N*s.NH*s.HD), e.zeros(N*s.NH)
		e.cpu.Attention(out.c, lse.c, q.c, k.c, v.c, seg.c, s)
		e.gpu.Attention(out.g, lse.g, q.g, k.g, v.g, seg.g, s)
		e.near(name+" out", out, 1e-5, 1e-4)
		e.near(name+" lse", lse, 1e-5, 1e-5)
		dout := e.f32(e.rand(N*s.NH*s.HD, 1))
		dq, dk, dv := e.f32(e.rand(N*s.NH*s.HD, 1)), e.f32(e.rand(N*s.NKV*s.HD, 1)), e.f32(e.rand(N*s.NKV*s.HD, 1))
		e.cpu.AttentionBackward(dq.c, dk.c, dv.c, dout.c, out.c, lse.c, q.c, k.c, v.c, seg.c, s)
		e.gpu.AttentionBackward(dq.g, dk.g, dv.g, dout.g, out.g, lse.g, q.g, k.g, v.g, seg.g, s)
		e.near(name+" dq", dq, 1e-4, 1e-3)
		e.near(name+" dk", dk, 1e-4, 1e-3)
		e.near(name+" dv", dv, 1e-4, 1e-3)
	}
}

func TestAttentionCached(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ past, n, NH, NKV, HD int }{{0, 9, 4, 2, 16}, {37, 1, 4, 4, 32}, {70, 5, 6, 1, 128}} {
		L := c.past + c.n
		q := e.f32(e.rand(c.n*c.NH*c.HD, 1))
		k, v := e.f32(e.rand(L*c.NKV*c.HD, 1)), e.f32(e.rand(L*c.NKV*c.HD, 1))
		out := e.zeros(c.n * c.NH * c.HD)
		e.cpu.AttentionCached(out.c, q.c, k.c, v.c, c.past, c.n, c.NH, c.NKV, c.HD)
		e.gpu.AttentionCached(out.g, q.g, k.g, v.g, c.past, c.n, c.NH, c.NKV, c.HD)
		e.near(fmt.Sprintf("cached attention %+v", c), out, 1e-5, 1e-4)
	}
}
