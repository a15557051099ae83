package cpu

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/alpaca-go/alpaca/internal/testutil"
	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
)

// Each op is checked against a float64 reference written out in the test
// (forward) and against central finite differences of that reference
// (backward). The AdamW step (the trainer's torch-exact arithmetic, the one
// implementation) is checked against torch.optim.AdamW
// (testdata/adamw.safetensors, made by scripts/fixtures/llama_parity.py).

func rnd(r *rand.Rand, n int, s float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * s)
	}
	return v
}

func f64(v []float32) []float64 {
	o := make([]float64, len(v))
	for i, x := range v {
		o[i] = float64(x)
	}
	return o
}

// relErr is max|got-want| / max|want|, +Inf on NaN/Inf (testutil).
func relErr(got []float32, want []float64) float64 { return testutil.MaxRelErr(got, want) }

// numGrad returns d f / d x by central differences (float64).
func numGrad(f func([]float64) float64, x []float64) []float64 {
	g := make([]float64, len(x))
	for i := range x {
		h := 1e-6 * math.Max(1, math.Abs(x[i]))
		old := x[i]
		x[i] = old + h
		a := f(x)
		x[i] = old - h
		b := f(x)
		x[i] = old
		g[i] = (a - b) / (2 * h)
	}
	return g
}

func dot64(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func check(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if e := relErr(got, want); !(e <= tol) {
		t.Errorf("%s: rel err %.3g > %g", what, e, tol)
	}
}

func backends() map[string]*CPU { return map[string]*CPU{"1thread": New(1), "3threads": New(3)} }

func TestMatMul(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for name, c := range backends() {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				m, n, k := 7, 5, 9
				lda, ldb, ldc := k+2, n+1, n+3
				if ta {
					lda = m + 2
				}
				if tb {
					ldb = k + 1
				}
				ra, rb := m, k
				if ta {
					ra = k
				}
				if tb {
					rb = n
				}
				a, b, cc := rnd(r, ra*lda, 1), rnd(r, rb*ldb, 1), rnd(r, m*ldc, 1)
				want := f64(cc)
				at := func(i, p int) float64 {
					if ta {
						return float64(a[p*lda+i])
					}
					return float64(a[i*lda+p])
				}
				bt := func(p, j int) float64 {
					if tb {
						return float64(b[j*ldb+p])
					}
					return float64(b[p*ldb+j])
				}
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						s := 0.0
						for p := 0; p < k; p++ {
							s += at(i, p) * bt(p, j)
						}
						want[i*ldc+j] = 0.5*s + 2*want[i*ldc+j]
					}
				}
				c.matMul(ta, tb, m, n, k, 0.5, a, lda, b, ldb, 2, cc, ldc)
				check(t, name+" matmul "+strconv.FormatBool(ta)+strconv.FormatBool(tb), cc, want, 1e-6)
			}
		}
	}
}

func rmsnorm64(x, w []float64, rows, dim int, eps float64) []float64 {
	y := make([]float64, len(x))
	for r := 0; r < rows; r++ {
		ss := 0.0
		for i := 0; i < dim; i++ {
			ss += x[r*dim+i] * x[r*dim+i]
		}
		rs := 1 / math.Sqrt(ss/float64(dim)+eps)
		for i := 0; i < dim; i++ {
			y[r*dim+i] = w[i] * x[r*dim+i] * rs
		}
	}
	return y
}

func TestRMSNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 1))
	rows, dim, eps := 5, 12, float32(1e-5)
	x, w, dy := rnd(r, rows*dim, 1), rnd(r, dim, 1), rnd(r, rows*dim, 1)
	for name, c := range backends() {
		y, rstd := make([]float32, rows*dim), make([]float32, rows)
		c.rmsNorm(y, rstd, x, w, rows, dim, eps)
		check(t, name+" forward", y, rmsnorm64(f64(x), f64(w), rows, dim, float64(eps)), 1e-6)
		dx, dw := rnd(r, rows*dim, 1), rnd(r, dim, 1) // accumulate onto these
		dx0, dw0 := f64(dx), f64(dw)
		c.rmsNormBackward(dx, dw, dy, x, w, rstd, rows, dim)
		gx := numGrad(func(v []float64) float64 { return dot64(rmsnorm64(v, f64(w), rows, dim, float64(eps)), f64(dy)) }, f64(x))
		gw := numGrad(func(v []float64) float64 { return dot64(rmsnorm64(f64(x), v, rows, dim, float64(eps)), f64(dy)) }, f64(w))
		for i := range gx {
			gx[i] += dx0[i]
		}
		for i := range gw {
			gw[i] += dw0[i]
		}
		check(t, name+" dx", dx, gx, 1e-5)
		check(t, name+" dw", dw, gw, 1e-5)
	}
}

func ropeTables(maxPos, hd int, theta float64) (cos, sin []float32) {
	half := hd / 2
	for p := 0; p < maxPos; p++ {
		for i := 0; i < half; i++ {
			a := float64(p) / math.Pow(theta, float64(2*i)/float64(hd))
			cos = append(cos, float32(math.Cos(a)))
			sin = append(sin, float32(math.Sin(a)))
		}
	}
	return
}

func TestRoPE(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 1))
	rows, heads, hd := 6, 3, 8
	cos, sin := ropeTables(20, hd, 10000)
	pos := []int32{0, 1, 2, 19, 5, 0}
	x := rnd(r, rows*heads*hd, 1)
	// reference: HF q*cos + rotate_half(q)*sin with cos/sin repeated twice
	want := make([]float64, len(x))
	half := hd / 2
	for row := 0; row < rows; row++ {
		for h := 0; h < heads; h++ {
			o := (row*heads + h) * hd
			for i := 0; i < hd; i++ {
				c, s := float64(cos[int(pos[row])*half+i%half]), float64(sin[int(pos[row])*half+i%half])
				var rot float64
				if i < half {
					rot = -float64(x[o+i+half])
				} else {
					rot = float64(x[o+i-half])
				}
				want[o+i] = float64(x[o+i])*c + rot*s
			}
		}
	}
	for name, c := range backends() {
		y := append([]float32(nil), x...)
		c.rope(y, pos, rows, heads, hd, cos, sin, false)
		check(t, name+" forward", y, want, 1e-6)
		// inverse is the transpose: <R x, g> == <x, R^T g>
		g := rnd(r, len(x), 1)
		gt := append([]float32(nil), g...)
		c.rope(gt, pos, rows, heads, hd, cos, sin, true)
		if a, b := dot64(f64(y), f64(g)), dot64(f64(x), f64(gt)); !(math.Abs(a-b) <= 1e-5*math.Abs(a)+1e-5) {
			t.Errorf("%s: <Rx,g>=%g != <x,R^T g>=%g", name, a, b)
		}
		c.rope(y, pos, rows, heads, hd, cos, sin, true)
		check(t, name+" inverse(forward)", y, f64(x), 1e-6)
	}
}

// attention64 is the float64 reference: causal, same-segment softmax
// attention with GQA (query head h uses kv head h/(NH/NKV)).
func attention64(q, k, v []float64, seg []int32, s backend.AttnShape) []float64 {
	B, T, NH, NKV, HD := s.B, s.T, s.NH, s.NKV, s.HD
	out := make([]float64, B*T*NH*HD)
	scale := 1 / math.Sqrt(float64(HD))
	for b := 0; b < B; b++ {
		for h := 0; h < NH; h++ {
			g := h / (NH / NKV)
			for i := 0; i < T; i++ {
				sc := make([]float64, T)
				mx := math.Inf(-1)
				for j := 0; j <= i; j++ {
					if seg[b*T+j] != seg[b*T+i] {
						continue
					}
					d := 0.0
					for x := 0; x < HD; x++ {
						d += q[((b*T+i)*NH+h)*HD+x] * k[((b*T+j)*NKV+g)*HD+x]
					}
					sc[j] = d * scale
					mx = math.Max(mx, sc[j])
				}
				sum := 0.0
				for j := 0; j <= i; j++ {
					if seg[b*T+j] == seg[b*T+i] {
						sc[j] = math.Exp(sc[j] - mx)
						sum += sc[j]
					}
				}
				for j := 0; j <= i; j++ {
					if seg[b*T+j] != seg[b*T+i] {
						continue
					}
					for x := 0; x < HD; x++ {
						out[((b*T+i)*NH+h)*HD+x] += sc[j] / sum * v[((b*T+j)*NKV+g)*HD+x]
					}
				}
			}
		}
	}
	return out
}

func TestAttention(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 1))
	cases := []struct {
		name string
		s    backend.AttnShape
		seg  []int32
	}{
		{"packed-gqa", backend.AttnShape{B: 2, T: 7, NH: 4, NKV: 2, HD: 4},
			[]int32{0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, -1, -1}},
		{"mha-one-example", backend.AttnShape{B: 1, T: 6, NH: 2, NKV: 2, HD: 6},
			[]int32{0, 0, 0, 0, 0, 0}},
		// segment ids that are not contiguous runs take the masked path
		{"mqa-interleaved", backend.AttnShape{B: 1, T: 6, NH: 3, NKV: 1, HD: 4},
			[]int32{0, 1, 0, 1, 0, 2}},
	}
	for _, tc := range cases {
		s := tc.s
		N := s.B * s.T
		q, k, v := rnd(r, N*s.NH*s.HD, 1), rnd(r, N*s.NKV*s.HD, 1), rnd(r, N*s.NKV*s.HD, 1)
		dout := rnd(r, N*s.NH*s.HD, 1)
		want := attention64(f64(q), f64(k), f64(v), tc.seg, s)
		gq := numGrad(func(x []float64) float64 { return dot64(attention64(x, f64(k), f64(v), tc.seg, s), f64(dout)) }, f64(q))
		gk := numGrad(func(x []float64) float64 { return dot64(attention64(f64(q), x, f64(v), tc.seg, s), f64(dout)) }, f64(k))
		gv := numGrad(func(x []float64) float64 { return dot64(attention64(f64(q), f64(k), x, tc.seg, s), f64(dout)) }, f64(v))
		for name, c := range backends() {
			for _, off := range []bool{false, true} {
				attnGemmOff = off
				name := name + map[bool]string{false: " gemm-path", true: " dot-path"}[off]
				out, lse := make([]float32, len(dout)), make([]float32, s.B*s.NH*s.T)
				c.attention(out, lse, q, k, v, tc.seg, s)
				check(t, tc.name+" "+name+" out", out, want, 1e-6)
				dq, dk, dv := rnd(r, len(q), 1), rnd(r, len(k), 1), rnd(r, len(v), 1) // overwritten
				c.attentionBackward(dq, dk, dv, dout, out, lse, q, k, v, tc.seg, s)
				check(t, tc.name+" "+name+" dq", dq, gq, 1e-5)
				check(t, tc.name+" "+name+" dk", dk, gk, 1e-5)
				check(t, tc.name+" "+name+" dv", dv, gv, 1e-5)
				attnGemmOff = false
			}
		}
	}
}

func TestSwiGLU(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 1))
	n := 10000 // large enough to be split over threads
	g, u, dy := rnd(r, n, 3), rnd(r, n, 1), rnd(r, n, 1)
	f := func(g, u []float64) []float64 {
		y := make([]float64, len(g))
		for i := range g {
			y[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
		}
		return y
	}
	for name, c := range backends() {
		y := make([]float32, n)
		c.swiGLU(y, g, u)
		check(t, name+" forward", y, f(f64(g), f64(u)), 1e-6)
		dg, du := make([]float32, n), make([]float32, n)
		c.swiGLUBackward(dg, du, dy, g, u)
		// elementwise op: the gradient is diagonal, so perturb each element alone
		wg, wu := make([]float64, n), make([]float64, n)
		for i := 0; i < n; i++ {
			gi, ui, h := float64(g[i]), float64(u[i]), 1e-6
			fy := func(a, b float64) float64 { return a / (1 + math.Exp(-a)) * b * float64(dy[i]) }
			wg[i] = (fy(gi+h, ui) - fy(gi-h, ui)) / (2 * h)
			wu[i] = (fy(gi, ui+h) - fy(gi, ui-h)) / (2 * h)
		}
		check(t, name+" dgate", dg, wg, 1e-5)
		check(t, name+" dup", du, wu, 1e-5)
	}
}

func TestCrossEntropy(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 1))
	rows, V := 6, 50
	logits := rnd(r, rows*V, 4)
	targets := []int32{3, -1, 49, 0, -1, 17}
	ce := func(l []float64) float64 {
		s := 0.0
		for i := 0; i < rows; i++ {
			if targets[i] < 0 {
				continue
			}
			mx := math.Inf(-1)
			for _, v := range l[i*V : (i+1)*V] {
				mx = math.Max(mx, v)
			}
			z := 0.0
			for _, v := range l[i*V : (i+1)*V] {
				z += math.Exp(v - mx)
			}
			s += mx + math.Log(z) - l[i*V+int(targets[i])]
		}
		return s
	}
	want := ce(f64(logits))
	g := numGrad(ce, f64(logits))
	for i := range g {
		g[i] *= 0.25
	}
	for name, c := range backends() {
		d := make([]float32, len(logits))
		loss, n := c.crossEntropy(d, logits, targets, rows, V, 0.25)
		if n != 4 || !(testutil.RelErr(loss, want, 0) <= 1e-5) {
			t.Errorf("%s: loss %g n %d, want %g 4", name, loss, n, want)
		}
		check(t, name+" dlogits", d, g, 1e-5)
		// in place
		l2 := append([]float32(nil), logits...)
		loss2, _ := c.crossEntropy(l2, l2, targets, rows, V, 0.25)
		if loss2 != loss {
			t.Errorf("%s: in-place loss %g != %g", name, loss2, loss)
		}
		check(t, name+" dlogits in place", l2, g, 1e-5)
	}
}

func TestAdamWMatchesTorch(t *testing.T) {
	f, err := safetensors.Open("testdata/adamw.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	get := func(n string) []float32 {
		v, err := f.Float32(n)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for name, c := range backends() {
		w := append([]float32(nil), get("w0")...)
		m, v := make([]float32, len(w)), make([]float32, len(w))
		spans := []backend.Span{{Off: 0, Len: len(w), Decay: true}}
		for step, g := range []string{"g1", "g2", "g3"} {
			c.AdamW(Wrap(w), Wrap(get(g)), Wrap(m), Wrap(v), spans, backend.AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, Step: int64(step + 1)})
		}
		check(t, name+" w", w, f64(get("w3")), 1e-6)
		check(t, name+" m", m, f64(get("m3")), 1e-6)
		check(t, name+" v", v, f64(get("v3")), 1e-6)
	}
}

func TestExpf(t *testing.T) {
	worst := 0.0
	for x := float32(-87); x < 88.5; x += 0.00731 {
		got, want := float64(expf(x)), math.Exp(float64(x))
		if e := testutil.RelErr(got, want, 0); !(e <= worst) {
			worst = e
		}
	}
	if !(worst <= 1.5e-7) {
		t.Errorf("expf worst rel err %.3g", worst)
	}
	if expf(-100) != 0 || !math.IsInf(float64(expf(100)), 1) || expf(0) != 1 {
		t.Errorf("expf edge cases: %v %v %v", expf(-100), expf(100), expf(0))
	}
	// the vectorised softmax exp (any length, so both the 8-lane body and
	// the scalar tail run)
	for _, n := range []int{1, 7, 8, 9, 1000} {
		x := make([]float32, n)
		for i := range x {
			x[i] = -float32(i) * 80 / float32(n)
		}
		y := append([]float32(nil), x...)
		expSub(y, 0.5)
		for i, v := range x {
			w := math.Exp(float64(v - 0.5))
			if !(math.Abs(float64(y[i])-w) <= 1.5e-7*w) {
				t.Fatalf("expSub n=%d: exp(%g) = %g, want %g", n, v-0.5, y[i], w)
			}
		}
	}
}
