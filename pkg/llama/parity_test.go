package llama

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"strconv"
	"testing"

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
	f, err := safetensors.Open(filepath.Join("testdata", "parity_"+name+".safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	meta := f.Metadata()
	cfg, err := ParseConfig([]byte(meta["config"]))
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{f: f, cfg: cfg}
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
	m := newEmpty(fx.cfg, true)
	for _, p := range m.Params() {
		copy(p.W, fx.f32(t, p.Name))
	}
	return m
}

// relErr is the normwise relative error max|got-want| / max|want|.
func relErr(got, want []float32) float64 {
	var d, s float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i])-float64(want[i])))
		s = math.Max(s, math.Abs(float64(want[i])))
	}
	if s == 0 {
		return d
	}
	return d / s
}

var parityFixtures = []string{"mha_untied", "gqa_tied", "mqa_untied"}

func TestParityForward(t *testing.T) {
	for _, name := range parityFixtures {
		t.Run(name, func(t *testing.T) {
			fx := loadFixture(t, name)
			m := fx.model(t)
			got := m.Forward(fx.batch)
			if e := relErr(got, fx.f32(t, "expect.logits")); e > parityTol {
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
			if e := math.Abs(loss-fx.loss) / math.Abs(fx.loss); e > parityTol {
				t.Errorf("loss %.8f, want %.8f (rel err %.3g)", loss, fx.loss, e)
			}
			worst := 0.0
			for _, p := range m.Params() {
				e := relErr(p.G, fx.f32(t, "grad."+p.Name))
				worst = math.Max(worst, e)
				if e > parityTol {
					t.Errorf("grad %s: rel err %.3g > %g", p.Name, e, parityTol)
				}
			}
			t.Logf("loss %.6f (ref %.6f), worst grad rel err %.3g over %d tensors", loss, fx.loss, worst, len(m.Params()))

			// Accumulation: two half-scaled passes give the same gradients.
			want := make([][]float32, len(m.Params()))
			for i, p := range m.Params() {
				want[i] = append([]float32(nil), p.G...)
			}
			m.ZeroGrad()
			for k := 0; k < 2; k++ {
				if _, _, err := m.ForwardBackward(fx.batch, 0.5); err != nil {
					t.Fatal(err)
				}
			}
			for i, p := range m.Params() {
				if e := relErr(p.G, want[i]); e > 1e-6 {
					t.Errorf("accumulated grad %s: rel err %.3g", p.Name, e)
				}
			}
		})
	}
}
