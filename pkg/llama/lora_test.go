package llama

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/alpaca-go/alpaca/internal/testutil"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
)

// testdata/lora was made by scripts/fixtures/lora_fixture.py: a tiny GQA
// base model, an adapter in PEFT's layout on every target kind of both
// layers (r 4, alpha 12, non-zero B), and torch's float64 logits, loss,
// A/B gradients (dropout off) and merged weights.

const loraDir = "testdata/lora"

type loraFixture struct {
	f          *safetensors.File
	batch      *Batch
	loss, base float64
	n          int
}

func loadLoRAFixture(t *testing.T) *loraFixture {
	t.Helper()
	fx := loadFixtureFile(t, filepath.Join(loraDir, "expect.safetensors"))
	meta := fx.f.Metadata()
	lf := &loraFixture{f: fx.f, batch: fx.batch}
	lf.loss, _ = strconv.ParseFloat(meta["loss_sum"], 64)
	lf.base, _ = strconv.ParseFloat(meta["base_loss_sum"], 64)
	lf.n, _ = strconv.Atoi(meta["n_targets"])
	return lf
}

func (lf *loraFixture) f32(t *testing.T, name string) []float32 {
	t.Helper()
	v, err := lf.f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func loraModel(t *testing.T) (*Model, *LoRA) {
	t.Helper()
	m, err := Load(filepath.Join(loraDir, "base"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.LoadAdapter(filepath.Join(loraDir, "adapter"))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetDropout(0); err != nil {
		t.Fatal(err)
	}
	return m, l
}

func TestLoRAParity(t *testing.T) {
	lf := loadLoRAFixture(t)
	m, l := loraModel(t)
	if got := len(l.Params()); got != 2*7*2 {
		t.Fatalf("%d adapter tensors, want 28", got)
	}
	if e := relErr(m.Forward(lf.batch), lf.f32(t, "expect.logits")); !(e <= parityTol) {
		t.Errorf("logits: rel err %.3g > %g", e, parityTol)
	}
	// the base weights' gradients must not move
	baseG := append([]float32(nil), G(m.Params()[1])...)
	loss, n, err := m.ForwardBackward(lf.batch, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n != lf.n {
		t.Errorf("targets %d, want %d", n, lf.n)
	}
	if e := testutil.RelErr(loss, lf.loss, 0); !(e <= parityTol) {
		t.Errorf("loss %.8f, want %.8f (rel err %.3g)", loss, lf.loss, e)
	}
	worst := 0.0
	kinds := map[string]bool{}
	for _, p := range l.Params() {
		e := relErr(G(p), lf.f32(t, "grad."+p.Name))
		worst = math.Max(worst, e)
		if !(e <= parityTol) {
			t.Errorf("grad %s: rel err %.3g > %g", p.Name, e, parityTol)
		}
		kinds[strings.Split(p.Name, ".")[6]] = true
	}
	if len(kinds) != 7 {
		t.Errorf("gradients checked for %d target kinds, want 7: %v", len(kinds), kinds)
	}
	if e := testutil.MaxAbsErr(G(m.Params()[1]), baseG); !(e == 0) {
		t.Errorf("a frozen base gradient changed (max abs %g)", e)
	}
	t.Logf("loss %.6f (ref %.6f), worst A/B grad rel err %.3g over %d tensors", loss, lf.loss, worst, len(l.Params()))

	// accumulation: a second pass at scale 1 doubles the gradients
	want := make([][]float32, len(l.Params()))
	for i, p := range l.Params() {
		want[i] = append([]float32(nil), G(p)...)
		for j := range want[i] {
			want[i][j] *= 2
		}
	}
	if _, _, err := m.ForwardBackward(lf.batch, 1); err != nil {
		t.Fatal(err)
	}
	for i, p := range l.Params() {
		if e := relErr(G(p), want[i]); !(e <= 1e-6) {
			t.Errorf("accumulated grad %s: rel err %.3g", p.Name, e)
		}
	}
}

// A fresh adapter (B = 0) leaves the model exactly as the base: same loss
// bit for bit; A is U(-1/sqrt(in), 1/sqrt(in)); only B gets a gradient.
func TestLoRAStep0(t *testing.T) {
	lf := loadLoRAFixture(t)
	m, err := Load(filepath.Join(loraDir, "base"))
	if err != nil {
		t.Fatal(err)
	}
	baseLoss, _, err := m.ForwardBackward(lf.batch, 1)
	if err != nil {
		t.Fatal(err)
	}
	if e := testutil.RelErr(baseLoss, lf.base, 0); !(e <= parityTol) {
		t.Errorf("base loss %.8f, torch %.8f", baseLoss, lf.base)
	}
	cfg := LoRAConfig{R: 8, Alpha: 16, Targets: LoRATargets}
	l, err := m.AddLoRA(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	l.ZeroGrad()
	loss, _, err := m.ForwardBackward(lf.batch, 1)
	if err != nil {
		t.Fatal(err)
	}
	if loss != baseLoss {
		t.Errorf("step-0 loss %.17g != base loss %.17g", loss, baseLoss)
	}
	for _, p := range l.Params() {
		w, g := W(p), G(p)
		if strings.Contains(p.Name, "lora_A") {
			bound := 1 / math.Sqrt(float64(p.Shape[1]))
			var s2 float64
			for _, v := range w {
				if !(math.Abs(float64(v)) <= bound) {
					t.Fatalf("%s: %g outside ±%g", p.Name, v, bound)
				}
				s2 += float64(v) * float64(v)
			}
			// U(-b, b) has variance b²/3
			if v := s2 / float64(len(w)); math.Abs(v-bound*bound/3) > 0.35*bound*bound/3 {
				t.Errorf("%s: variance %g, want about %g", p.Name, v, bound*bound/3)
			}
			if testutil.MaxAbsErr(g, make([]float32, len(g))) != 0 {
				t.Errorf("%s: gradient not zero with B = 0", p.Name)
			}
		} else {
			if testutil.MaxAbsErr(w, make([]float32, len(w))) != 0 {
				t.Errorf("%s: B not zero", p.Name)
			}
			if !(testutil.MaxAbsErr(g, make([]float32, len(g))) > 0) {
				t.Errorf("%s: no gradient", p.Name)
			}
		}
	}
	// same seed, same init
	m2, _ := Load(filepath.Join(loraDir, "base"))
	l2, _ := m2.AddLoRA(cfg, 3)
	if e := testutil.MaxAbsErr(W(l2.Params()[0]), W(l.Params()[0])); e != 0 {
		t.Errorf("init not reproducible: %g", e)
	}
}

func TestLoRAMerge(t *testing.T) {
	lf := loadLoRAFixture(t)
	m, _ := loraModel(t)
	if err := m.MergeLoRA(); err != nil {
		t.Fatal(err)
	}
	if m.LoRA() != nil {
		t.Fatal("adapter still attached after the merge")
	}
	merged := 0
	for _, name := range lf.f.Names() {
		if hf, ok := strings.CutPrefix(name, "merged."); ok {
			if e := relErr(W(m.Param(hf)), lf.f32(t, name)); !(e <= 1e-6) {
				t.Errorf("%s: rel err %.3g", hf, e)
			}
			merged++
		}
	}
	if merged != 14 {
		t.Errorf("%d merged tensors checked, want 14", merged)
	}
	if e := relErr(m.Forward(lf.batch), lf.f32(t, "expect.logits")); !(e <= parityTol) {
		t.Errorf("merged logits: rel err %.3g", e)
	}
}

// Open with an adapter equals Open of the merged model, for fp32 and bf16
// bases; and a bf16 base stays bf16 while training an adapter on it.
func TestOpenAdapter(t *testing.T) {
	lf := loadLoRAFixture(t)
	tmp := t.TempDir()
	for _, dt := range []string{"float32", "bfloat16"} {
		base := filepath.Join(tmp, "base-"+dt)
		mb, err := Load(filepath.Join(loraDir, "base"))
		if err != nil {
			t.Fatal(err)
		}
		if err := mb.Save(base, dt); err != nil {
			t.Fatal(err)
		}
		mm, err := LoadWeights(base)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mm.LoadAdapter(filepath.Join(loraDir, "adapter")); err != nil {
			t.Fatal(err)
		}
		if err := mm.MergeLoRA(); err != nil {
			t.Fatal(err)
		}
		mergedDir := filepath.Join(tmp, "merged-"+dt)
		if err := mm.Save(mergedDir, "float32"); err != nil {
			t.Fatal(err)
		}
		want, err := Open(mergedDir, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := Open(base, OpenOptions{Adapter: filepath.Join(loraDir, "adapter")})
		if err != nil {
			t.Fatal(err)
		}
		toks := lf.batch.Tokens[:9]
		for _, m := range []*Model{want, got} {
			c, err := m.NewKVCache(16)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Feed(c, toks); err != nil {
				t.Fatal(err)
			}
		}
		cw, _ := want.NewKVCache(16)
		cg, _ := got.NewKVCache(16)
		lw, _ := want.Feed(cw, toks)
		lw = append([]float32(nil), lw...)
		lg, _ := got.Feed(cg, toks)
		if e := relErr(lg, lw); !(e <= 1e-6) {
			t.Errorf("%s: Open with the adapter vs the merged model: rel err %.3g", dt, e)
		}
		if dt == "bfloat16" {
			if s := lf.f32(t, "expect.logits"); relErr(lg, s) == 0 {
				t.Errorf("bf16 logits equal the fp32 reference exactly: the bf16 base was not used")
			}
			// training an adapter on the bf16 base as stored: the same
			// gradients as on its fp32 widening (widening is exact)
			ob, err := Open(base, OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if ob.Param("model.layers.0.self_attn.q_proj.weight").w.DType().String() == "F32" {
				t.Fatalf("bf16 base opened as F32")
			}
			lb, err := ob.LoadAdapter(filepath.Join(loraDir, "adapter"))
			if err != nil {
				t.Fatal(err)
			}
			lb.SetDropout(0)
			of, _ := Load(base)
			lf32, _ := of.LoadAdapter(filepath.Join(loraDir, "adapter"))
			lf32.SetDropout(0)
			s1, _, err := ob.ForwardBackward(lf.batch, 1)
			if err != nil {
				t.Fatal(err)
			}
			s2, _, _ := of.ForwardBackward(lf.batch, 1)
			if s1 != s2 {
				t.Errorf("bf16 base loss %.17g, fp32 widening %.17g", s1, s2)
			}
			for i, p := range lb.Params() {
				if e := testutil.MaxAbsErr(G(p), G(lf32.Params()[i])); e != 0 {
					t.Errorf("%s: bf16-base gradient differs from the fp32 one by %g", p.Name, e)
				}
			}
			ob.Close()
		}
		want.Close()
		got.Close()
	}
}

func TestLoRADropout(t *testing.T) {
	lf := loadLoRAFixture(t)
	run := func(p float64, seed int64) float64 {
		m, l := loraModel(t)
		if err := l.SetDropout(p); err != nil {
			t.Fatal(err)
		}
		l.SetDropoutSeed(seed)
		s, _, err := m.ForwardBackward(lf.batch, 1)
		if err != nil {
			t.Fatal(err)
		}
		if p > 0 && l.DropoutCalls != 1 {
			t.Errorf("DropoutCalls %d after one pass", l.DropoutCalls)
		}
		return s
	}
	off := run(0, 1)
	a, b, c := run(0.3, 1), run(0.3, 1), run(0.3, 2)
	if a != b {
		t.Errorf("dropout with the same seed: %.17g vs %.17g", a, b)
	}
	if a == off || a == c || math.IsNaN(a) || math.IsNaN(c) {
		t.Errorf("dropout did not change the loss by seed: off %.9g, seed 1 %.9g, seed 2 %.9g", off, a, c)
	}
	// the mask drops about p of the elements and scales the rest by 1/(1-p)
	m, l := loraModel(t)
	l.SetDropout(0.3)
	md := l.mods[1][tDown]
	l.drawMask(md, 500)
	zeros := 0
	for _, v := range l.maskHost {
		switch v {
		case 0:
			zeros++
		case float32(1 / 0.7):
		default:
			t.Fatalf("mask value %v", v)
		}
	}
	if f := float64(zeros) / float64(len(l.maskHost)); math.Abs(f-0.3) > 0.01 {
		t.Errorf("dropped fraction %.4f, want 0.3", f)
	}
	// Forward (evaluation) never drops
	m, l = loraModel(t)
	l.SetDropout(0.3)
	if e := relErr(m.Forward(lf.batch), lf.f32(t, "expect.logits")); !(e <= parityTol) {
		t.Errorf("Forward with dropout set: rel err %.3g", e)
	}
}

func TestAdapterRoundTrip(t *testing.T) {
	m, l := loraModel(t)
	l.BaseModel = "some/base"
	dir := t.TempDir()
	if err := m.SaveAdapter(dir); err != nil {
		t.Fatal(err)
	}
	cfg, base, err := ReadAdapterConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if base != "some/base" || cfg.R != 4 || cfg.Alpha != 12 || len(cfg.Targets) != 7 {
		t.Errorf("config %+v base %q", cfg, base)
	}
	m2, err := Load(filepath.Join(loraDir, "base"))
	if err != nil {
		t.Fatal(err)
	}
	l2, err := m2.LoadAdapter(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range l.Params() {
		q := l2.Params()[i]
		if p.Name != q.Name || testutil.MaxAbsErr(W(p), W(q)) != 0 {
			t.Errorf("%s: round trip differs", p.Name)
		}
	}
}

func TestAdapterErrors(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(loraDir, "adapter", AdapterConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		`"peft_type": "LORA"`:  `"peft_type": "IA3"`,
		`"use_rslora": false`:  `"use_rslora": true`,
		`"bias": "none"`:       `"bias": "all"`,
		`"r": 4`:               `"r": 0`,
		`"lora_dropout": 0.05`: `"lora_dropout": 1.5`,
		`"up_proj",`:           `"lm_head",`,
	}
	for from, to := range cases {
		s := strings.Replace(string(good), from, to, 1)
		if s == string(good) {
			t.Fatalf("fixture lacks %s", from)
		}
		if _, _, err := parseAdapterConfig("x", []byte(s)); err == nil {
			t.Errorf("%s accepted", to)
		}
	}
	// a config whose r disagrees with the tensors
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, AdapterConfigFile), []byte(strings.Replace(string(good), `"r": 4`, `"r": 5`, 1)), 0o644)
	b, _ := os.ReadFile(filepath.Join(loraDir, "adapter", AdapterWeightsFile))
	os.WriteFile(filepath.Join(dir, AdapterWeightsFile), b, 0o644)
	m, _ := Load(filepath.Join(loraDir, "base"))
	if _, err := m.LoadAdapter(dir); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("r mismatch: %v", err)
	}
	if m.LoRA() != nil {
		t.Errorf("a failed load left an adapter attached")
	}
}

func FuzzAdapterConfig(f *testing.F) {
	good, _ := os.ReadFile(filepath.Join(loraDir, "adapter", AdapterConfigFile))
	f.Add(good)
	f.Add([]byte(`{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":"q_proj|v_proj"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, _, err := parseAdapterConfig("fuzz", b)
		if err == nil {
			if err := cfg.Validate(); err != nil {
				t.Fatalf("accepted an invalid config: %v", err)
			}
		}
	})
}

// PEFT variants that load: keys with the adapter name (".default"), bf16
// tensors, a regular expression for target_modules, an adapter on some
// layers only.
func TestAdapterVariants(t *testing.T) {
	lf := loadLoRAFixture(t)
	src, err := safetensors.Open(filepath.Join(loraDir, "adapter", AdapterWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	good, _ := os.ReadFile(filepath.Join(loraDir, "adapter", AdapterConfigFile))
	dir := t.TempDir()
	var ts []safetensors.Tensor
	for _, name := range src.Names() {
		v, _ := src.Float32(name)
		info, _ := src.Info(name)
		b, _ := safetensors.EncodeFloat32(safetensors.BF16, v)
		ts = append(ts, safetensors.Tensor{Name: strings.Replace(name, ".weight", ".default.weight", 1), DType: safetensors.BF16, Shape: info.Shape, Data: b})
	}
	if err := safetensors.WriteFile(filepath.Join(dir, AdapterWeightsFile), ts, nil); err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(good), `"target_modules": [`)
	end := start + strings.Index(string(good)[start:], "]")
	cfg := string(good)[:start] + `"target_modules": ".*_proj"` + string(good)[end+1:]
	os.WriteFile(filepath.Join(dir, AdapterConfigFile), []byte(cfg), 0o644)
	m, err := Load(filepath.Join(loraDir, "base"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.LoadAdapter(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Config().Targets) != 7 || len(l.Params()) != 28 {
		t.Fatalf("targets %v, %d tensors", l.Config().Targets, len(l.Params()))
	}
	// bf16-rounded adapter: close to the fp32 one's logits, not equal
	e := relErr(m.Forward(lf.batch), lf.f32(t, "expect.logits"))
	if !(e > 0 && e <= 2e-2) {
		t.Errorf("bf16 adapter logits rel err %.3g", e)
	}
	// layer 1 only
	var one []safetensors.Tensor
	for _, x := range ts {
		if strings.Contains(x.Name, "layers.1.") {
			one = append(one, x)
		}
	}
	safetensors.WriteFile(filepath.Join(dir, AdapterWeightsFile), one, nil)
	m2, _ := Load(filepath.Join(loraDir, "base"))
	l2, err := m2.LoadAdapter(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(l2.Params()) != 14 || l2.mods[0][tQ] != nil || l2.mods[1][tQ] == nil {
		t.Errorf("layer-1-only adapter: %d tensors", len(l2.Params()))
	}
	l2.SetDropout(0)
	if _, _, err := m2.ForwardBackward(lf.batch, 1); err != nil {
		t.Fatal(err)
	}
}

// The older PEFT format: adapter_model.bin (torch.save) loads to the same
// tensors as the safetensors file.
func TestAdapterBin(t *testing.T) {
	m, l := loraModel(t)
	m2, err := Load(filepath.Join(loraDir, "base"))
	if err != nil {
		t.Fatal(err)
	}
	l2, err := m2.LoadAdapter(filepath.Join(loraDir, "adapter_bin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(l2.Params()) != len(l.Params()) {
		t.Fatalf("%d tensors from the .bin, %d from safetensors", len(l2.Params()), len(l.Params()))
	}
	for i, p := range l.Params() {
		if e := testutil.MaxAbsErr(W(l2.Params()[i]), W(p)); e != 0 {
			t.Errorf("%s: .bin differs by %g", p.Name, e)
		}
	}
	_ = m
}
