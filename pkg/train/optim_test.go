package train

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/alpaca-go/alpaca/internal/testutil"
	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/alpaca-go/alpaca/pkg/backend/cpu"
	"github.com/alpaca-go/alpaca/pkg/llama"
)

// adamwFixture is testdata/adamw_torch.json, made by
// scripts/fixtures/train_adamw.py with torch 1.13 (torch.optim.AdamW,
// LambdaLR with Hugging Face's cosine-with-warmup factor,
// clip_grad_norm_).
type adamwFixture struct {
	Names       []string    `json:"names"`
	LR          float64     `json:"lr"`
	WeightDecay float64     `json:"weight_decay"`
	Total       int         `json:"total"`
	WarmupRatio float64     `json:"warmup_ratio"`
	MaxNorm     float64     `json:"max_norm"`
	Init        [][]float32 `json:"init"`
	Steps       []struct {
		Grads    [][]float32 `json:"grads"`
		GradNorm float64     `json:"grad_norm"`
		LR       float64     `json:"lr"`
		Params   [][]float32 `json:"params"`
		ExpAvg   [][]float32 `json:"exp_avg"`
		ExpAvgSq [][]float32 `json:"exp_avg_sq"`
	} `json:"steps"`
	Schedule struct {
		LR          float64   `json:"lr"`
		Total       int       `json:"total"`
		WarmupRatio float64   `json:"warmup_ratio"`
		LRs         []float64 `json:"lrs"`
	} `json:"schedule"`
}

func loadAdamwFixture(t *testing.T) *adamwFixture {
	b, err := os.ReadFile("testdata/adamw_torch.json")
	if err != nil {
		t.Fatal(err)
	}
	var f adamwFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

// relClose is |a-b| <= tol*max(1e-6, |a|, |b|), false on NaN or infinity.
func relClose(a, b, tol float64) bool {
	return testutil.RelErr(a, b, math.Max(1e-6, math.Abs(a))) <= tol
}

// arenaOf lays host tensors out in one CPU arena (with gaps, like llama's
// aligned layout) and returns the arena, its parameters and host views.
func arenaOf(names []string, ts [][]float32) ([]float32, []*llama.Param, [][]float32) {
	n := 0
	for _, t := range ts {
		n += len(t) + 5
	}
	a := make([]float32, n)
	var ps []*llama.Param
	var views [][]float32
	off := 0
	for i, t := range ts {
		copy(a[off:], t)
		ps = append(ps, &llama.Param{Name: names[i], Shape: []int{len(t)}, Off: off, N: len(t)})
		views = append(views, a[off:off+len(t)])
		off += len(t) + 5
	}
	return a, ps, views
}

func TestAdamWTrajectoryMatchesTorch(t *testing.T) {
	f := loadAdamwFixture(t)
	be := cpu.New(2)
	wa, ps, w := arenaOf(f.Names, f.Init)
	opt, err := NewAdamW(be, ps, len(wa), 0.9, 0.999, 1e-8, f.WeightDecay)
	if err != nil {
		t.Fatal(err)
	}
	expAvg, expAvgSq := cpu.F32(opt.ExpAvg), cpu.F32(opt.ExpAvgSq)
	sch := Schedule{Kind: "cosine", LR: f.LR, Warmup: WarmupSteps(f.Total, f.WarmupRatio), Total: f.Total}
	if len(f.Steps) < 3 {
		t.Fatalf("fixture has %d steps", len(f.Steps))
	}
	for s, st := range f.Steps {
		ga, _, _ := arenaOf(f.Names, st.Grads)
		norm := ClipGrads(be, cpu.Wrap(ga), opt.Spans, f.MaxNorm)
		if !relClose(norm, st.GradNorm, 1e-6) {
			t.Errorf("step %d: grad norm %v, torch %v", s, norm, st.GradNorm)
		}
		lr := sch.At(s)
		if !relClose(lr, st.LR, 1e-12) {
			t.Errorf("step %d: lr %v, torch %v", s, lr, st.LR)
		}
		opt.Update(cpu.Wrap(wa), cpu.Wrap(ga), lr)
		// Tolerance: 1e-6 of the tensor's largest magnitude (torch's
		// vectorised kernels may fuse multiply-adds; moments near zero after
		// cancellation differ in their last bits).
		for i := range w {
			pm, mm, vm := maxAbs(st.Params[i]), maxAbs(st.ExpAvg[i]), maxAbs(st.ExpAvgSq[i])
			for j := range w[i] {
				if !absClose(w[i][j], st.Params[i][j], 1e-6*pm) {
					t.Fatalf("step %d: %s[%d] = %v, torch %v", s, f.Names[i], j, w[i][j], st.Params[i][j])
				}
				ea, eas := expAvg[ps[i].Off+j], expAvgSq[ps[i].Off+j]
				if !absClose(ea, st.ExpAvg[i][j], 1e-6*mm) ||
					!absClose(eas, st.ExpAvgSq[i][j], 1e-6*vm) {
					t.Fatalf("step %d: %s[%d] moments (%v, %v), torch (%v, %v)", s, f.Names[i], j,
						ea, eas, st.ExpAvg[i][j], st.ExpAvgSq[i][j])
				}
			}
		}
	}
}

func TestCosineScheduleMatchesTorch(t *testing.T) {
	f := loadAdamwFixture(t)
	s := f.Schedule
	sch := Schedule{Kind: "cosine", LR: s.LR, Warmup: WarmupSteps(s.Total, s.WarmupRatio), Total: s.Total}
	if sch.Warmup != 3 {
		t.Fatalf("warmup %d, want ceil(100*0.03) = 3", sch.Warmup)
	}
	for i, want := range s.LRs {
		if got := sch.At(i); !relClose(got, want, 1e-12) {
			t.Errorf("step %d: lr %v, torch %v", i, got, want)
		}
	}
}

func TestScheduleKinds(t *testing.T) {
	lin := Schedule{Kind: "linear", LR: 1, Warmup: 2, Total: 6}
	want := []float64{0, 0.5, 1, 0.75, 0.5, 0.25}
	for i, w := range want {
		if got := lin.At(i); !(math.Abs(got-w) <= 1e-15) {
			t.Errorf("linear step %d: %v, want %v", i, got, w)
		}
	}
	c := Schedule{Kind: "constant", LR: 3, Warmup: 0, Total: 6}
	if c.At(0) != 3 || c.At(5) != 3 {
		t.Errorf("constant schedule: %v %v", c.At(0), c.At(5))
	}
	if (Schedule{Kind: "exp"}).Validate() == nil {
		t.Error("unknown schedule accepted")
	}
}

func TestClipNoopBelowMax(t *testing.T) {
	be := cpu.New(1)
	spans := []backend.Span{{Off: 0, Len: 2}}
	g := []float32{0.3, 0.4}
	if n := ClipGrads(be, cpu.Wrap(g), spans, 1); !(math.Abs(n-0.5) <= 1e-7) || g[0] != 0.3 {
		t.Errorf("norm %v, grads %v", n, g)
	}
	g = []float32{3, 4}
	ClipGrads(be, cpu.Wrap(g), spans, 1)
	if !(math.Abs(float64(g[0])-0.6) <= 1e-6) || !(math.Abs(float64(g[1])-0.8) <= 1e-6) {
		t.Errorf("clipped %v", g)
	}
	// a NaN gradient gives a NaN norm and is left alone (the trainer stops)
	g = []float32{3, float32(math.NaN())}
	if n := ClipGrads(be, cpu.Wrap(g), spans, 1); !math.IsNaN(n) || g[0] != 3 {
		t.Errorf("NaN gradient: norm %v, grads %v", n, g)
	}
}

func maxAbs(v []float32) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

// absClose is |a-b| <= tol, false on NaN.
func absClose(a, b float32, tol float64) bool { return math.Abs(float64(a)-float64(b)) <= tol }
