package llama

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/alpaca-go/alpaca/internal/testutil"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
)

// The fixtures in testdata/parity_*.safetensors were made by
// scripts/fixtures/llama_parity.py: a plain-torch re-implementation of HF's
// LlamaForCausalLM evaluated in float64 on fp32 weights, for a packed batch
// with masked targets. They hold the weights (HF names), the batch
// (batch.*), the logits (expect.logits), the gradient of the summed loss
// for every parameter (grad.<name>) and, in the metadata, the config, the
// summed loss and the number of targets.

const parityTol = 1e-5

type fixture struct {
	f     *safetensors.File
	cfg   Config
	batch *Batch
	loss  float64
	n     int
}

func loadFixture(t *testing.T, name string) *fixture {
	t.Helper()
	fx := loadFixtureFile(t, filepath.Join("testdata", "parity_"+name+".safetensors"))
	cfg, err := ParseConfig([]byte(fx.f.Metadata()["config"]))
	if err != nil {
		t.Fatal(err)
	}
	fx.cfg = cfg
	return fx
}

// loadFixtureFile opens a fixture and reads its batch and metadata.
func loadFixtureFile(t *testing.T, path string) *fixture {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	meta := f.Metadata()
	fx := &fixture{f: f}
	fx.loss, _ = strconv.ParseFloat(meta["loss_sum"], 64)
	fx.n, _ = strconv.Atoi(meta["n_targets"])
	i32 := func(n string) ([]int32, []int64) {
		info, ok := f.Info(n)
		if !ok {
			t.Fatalf("fixture lacks %s", n)
		}
		b, err := f.Bytes(n)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]int32, len(b)/4)
		for i := range out {
			out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return out, info.Shape
	}
	tok, shape := i32("batch.tokens")
	pos, _ := i32("batch.pos")
	seg, _ := i32("batch.seg")
	tg, _ := i32("batch.target")
	fx.batch = &Batch{B: int(shape[0]), T: int(shape[1]), Tokens: tok, Pos: pos, Seg: seg, Target: tg}
	return fx
}

func (fx *fixture) f32(t *testing.T, name string) []float32 {
	t.Helper()
	v, err := fx.f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (fx *fixture) model(t *testing.T) *Model {
	m := newEmpty(fx.cfg, true, nil)
	for _, p := range m.Params() {
		copy(W(p), fx.f32(t, p.Name))
	}
	return m
}

// relErr is the normwise relative error max|got-want| / max|want|; +Inf
// when either holds a NaN or infinity (testutil.MaxRelErr), so every
// "e > tol" check below is written "!(e <= tol)".
func relErr(got, want []float32) float64 { return testutil.MaxRelErr(got, want) }

var parityFixtures = []string{"mha_untied", "gqa_tied", "mqa_untied"}

func TestParityForward(t *testing.T) {
	for _, name := range parityFixtures {
		t.Run(name, func(t *testing.T) {
			fx := loadFixture(t, name)
			m := fx.model(t)
			got := m.Forward(fx.batch)
			if e := relErr(got, fx.f32(t, "expect.logits")); !(e <= parityTol) {
				t.Errorf("logits: rel err %.3g > %g", e, parityTol)
			} else {
				t.Logf("logits: rel err %.3g", e)
			}
		})
	}
}

func TestParityBackward(t *testing.T) {
	for _, name := range parityFixtures {
		t.Run(name, func(t *testing.T) {
			fx := loadFixture(t, name)
			m := fx.model(t)
			if fx.cfg.TieWordEmbeddings != (m.Param("lm_head.weight") == nil) {
				t.Fatalf("tied=%v but lm_head param present=%v", fx.cfg.TieWordEmbeddings, m.Param("lm_head.weight") != nil)
			}
			loss, n, err := m.ForwardBackward(fx.batch, 1)
			if err != nil {
				t.Fatal(err)
			}
			if n != fx.n {
				t.Errorf("n targets %d, want %d", n, fx.n)
			}
			if e := testutil.RelErr(loss, fx.loss, 0); !(e <= parityTol) {
				t.Errorf("loss %.8f, want %.8f (rel err %.3g)", loss, fx.loss, e)
			}
			worst := 0.0
			for _, p := range m.Params() {
				e := relErr(G(p), fx.f32(t, "grad."+p.Name))
				worst = math.Max(worst, e)
				if !(e <= parityTol) {
					t.Errorf("grad %s: rel err %.3g > %g", p.Name, e, parityTol)
				}
			}
			t.Logf("loss %.6f (ref %.6f), worst grad rel err %.3g over %d tensors", loss, fx.loss, worst, len(m.Params()))

			// Accumulation: two half-scaled passes give the same gradients.
			want := make([][]float32, len(m.Params()))
			for i, p := range m.Params() {
				want[i] = append([]float32(nil), G(p)...)
			}
			m.ZeroGrad()
			for k := 0; k < 2; k++ {
				if _, _, err := m.ForwardBackward(fx.batch, 0.5); err != nil {
					t.Fatal(err)
				}
			}
			for i, p := range m.Params() {
				if e := relErr(G(p), want[i]); !(e <= 1e-6) {
					t.Errorf("accumulated grad %s: rel err %.3g", p.Name, e)
				}
			}
		})
	}
}

// formulaWeights mirrors formula_weights in scripts/fixtures/llama_parity.py.
func formulaWeights(m *Model) {
	for t, p := range m.Params() {
		for i := range W(p) {
			v := math.Sin(0.37*float64(i) + 1.3*float64(t+1))
			if len(p.Shape) == 1 {
				W(p)[i] = float32(1 + 0.1*v)
			} else {
				W(p)[i] = float32(0.05 * v)
			}
		}
	}
}

// formulaBatch mirrors formula_batch in the fixture script.
func formulaBatch(V int) *Batch {
	B, T := 2, 150
	b := &Batch{B: B, T: T, Tokens: make([]int32, B*T), Pos: make([]int32, B*T), Seg: make([]int32, B*T), Target: make([]int32, B*T)}
	for i := range b.Tokens {
		b.Tokens[i] = int32((31*i + 7) % V)
	}
	for t := 0; t < T; t++ {
		b.Seg[t], b.Pos[t] = 0, int32(t)
		if t >= 90 {
			b.Seg[t], b.Pos[t] = 1, int32(t-90)
		}
		b.Seg[T+t], b.Pos[T+t] = 0, int32(t)
		if t >= 140 {
			b.Seg[T+t], b.Pos[T+t], b.Tokens[T+t] = -1, 0, 0
		}
	}
	for r := 0; r < B; r++ {
		for t := 0; t < T; t++ {
			i := r*T + t
			b.Target[i] = -1
			if t < T-1 && b.Seg[i] >= 0 && b.Seg[i+1] == b.Seg[i] && t%5 != 0 {
				b.Target[i] = b.Tokens[i+1]
			}
		}
	}
	return b
}

// A medium config (hidden 96, MLP 300 > one SGEMM depth block, GQA 6/2,
// 90/60/140-token packed segments) with weights from a formula both sides
// compute; testdata/parity_medium.safetensors stores 512 sampled logits and,
// per gradient, 256 sampled entries, its max |g| and torch fp32's error on
// them (made by scripts/fixtures/llama_parity.py medium_fixture, float64
// torch).
func TestParityMedium(t *testing.T) {
	f, err := safetensors.Open(filepath.Join("testdata", "parity_medium.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := ParseConfig([]byte(f.Metadata()["config"]))
	if err != nil {
		t.Fatal(err)
	}
	wantLoss, _ := strconv.ParseFloat(f.Metadata()["loss_sum"], 64)
	i32 := func(n string) []int32 {
		b, err := f.Bytes(n)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]int32, len(b)/4)
		for i := range out {
			out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return out
	}
	f32 := func(n string) []float32 {
		v, err := f.Float32(n)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	m := newEmpty(cfg, true, nil)
	formulaWeights(m)
	b := formulaBatch(cfg.VocabSize)
	logits := m.Forward(b)
	idx, want := i32("logits.index"), f32("logits.value")
	got := make([]float32, len(idx))
	for k, i := range idx {
		got[k] = logits[i]
	}
	// Tolerance: 1e-5, or twice torch fp32's own error vs float64 on the
	// same entries where fp32 rounding alone exceeds that at this size.
	tol := func(torch32 string) float64 { return math.Max(parityTol, 2*float64(f32(torch32)[0])) }
	if e := relErr(got, want); !(e <= tol("logits.torch32err")) {
		t.Errorf("logits: rel err %.3g", e)
	}
	loss, _, err := m.ForwardBackward(b, 1)
	if err != nil {
		t.Fatal(err)
	}
	if e := testutil.RelErr(loss, wantLoss, 0); !(e <= parityTol) {
		t.Errorf("loss %.6f, want %.6f", loss, wantLoss)
	}
	worst := 0.0
	for _, p := range m.Params() {
		gi, gv, gmax := i32("gradidx."+p.Name), f32("gradval."+p.Name), f32("gradmax." + p.Name)[0]
		sampled := make([]float32, len(gi))
		for k, i := range gi {
			sampled[k] = G(p)[i]
		}
		e := testutil.MaxAbsErr(sampled, gv) / float64(gmax)
		worst = math.Max(worst, e)
		if tl := tol("gradtorch32err." + p.Name); !(e <= tl) {
			t.Errorf("grad %s: rel err %.3g > %.3g", p.Name, e, tl)
		}
	}
	t.Logf("loss %.6f (ref %.6f), worst sampled grad rel err %.3g", loss, wantLoss, worst)
}
