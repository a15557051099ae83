package llama

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
)

func tinyConfig(tied bool, kv int) Config {
	c := DefaultConfig()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 16, 24, 2
	c.NumAttentionHeads, c.NumKeyValueHeads, c.VocabSize = 4, kv, 29
	c.MaxPositionEmbeddings = 32
	c.TieWordEmbeddings = tied
	return c
}

func TestParseConfigDefaultsAndExtra(t *testing.T) {
	// The LLaMA-7B config.json as HF publishes it (no num_key_value_heads).
	src := `{"architectures":["LlamaForCausalLM"],"bos_token_id":1,"eos_token_id":2,"hidden_act":"silu",
	"hidden_size":4096,"initializer_range":0.02,"intermediate_size":11008,"max_position_embeddings":2048,
	"model_type":"llama","num_attention_heads":32,"num_hidden_layers":32,"pad_token_id":0,"rms_norm_eps":1e-06,
	"tie_word_embeddings":false,"torch_dtype":"float16","transformers_version":"4.28.0.dev0","use_cache":true,"vocab_size":32000}`
	c, err := ParseConfig([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if c.NumKeyValueHeads != 32 || c.RopeTheta != 10000 || c.HeadDim() != 128 || c.TorchDtype != "float16" {
		t.Errorf("defaults: kv %d theta %g headdim %d dtype %q", c.NumKeyValueHeads, c.RopeTheta, c.HeadDim(), c.TorchDtype)
	}
	if id, ok := c.PadTokenID(); !ok || id != 0 {
		t.Errorf("pad_token_id = %d, %v", id, ok)
	}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back, orig map[string]any
	json.Unmarshal(out, &back)
	json.Unmarshal([]byte(src), &orig)
	orig["num_key_value_heads"] = 32.0
	orig["rope_theta"] = 10000.0
	for k, v := range orig {
		if b, _ := json.Marshal(back[k]); string(b) != func() string { a, _ := json.Marshal(v); return string(a) }() {
			t.Errorf("round trip %s: %s != %v", k, b, v)
		}
	}
	if len(back) != len(orig) {
		t.Errorf("round trip has %d keys, want %d: %s", len(back), len(orig), out)
	}
}

func TestParseConfigErrors(t *testing.T) {
	base := `"hidden_size":64,"intermediate_size":100,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100`
	cases := map[string]string{
		`{` + base + `,"num_key_value_heads":3}`:          "not a multiple of num_key_value_heads",
		`{` + base + `,"hidden_size":66}`:                 "not a multiple of num_attention_heads",
		`{` + base + `,"hidden_act":"gelu"}`:              "hidden_act",
		`{` + base + `,"rope_scaling":{"type":"linear"}}`: "rope_scaling",
		`{` + base + `,"model_type":"mistral"}`:           "model_type",
		`{` + base + `,"vocab_size":0}`:                   "vocab_size must be positive",
		`{` + base + `,"torch_dtype":"int8"}`:             "torch_dtype",
		`{` + base + `,"attention_bias":true}`:            "attention_bias",
		`{` + base + `,"hidden_size":"x"}`:                "config.json",
		`[1,2]`:                                           "config.json",
	}
	for src, want := range cases {
		if _, err := ParseConfig([]byte(src)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", src, err, want)
		}
	}
}

func TestNewInit(t *testing.T) {
	c := tinyConfig(false, 2)
	c.InitializerRange = 0.5
	c.Extra = map[string]json.RawMessage{"pad_token_id": json.RawMessage("3")}
	m := New(c, 7)
	m2 := New(c, 7)
	m3 := New(c, 8)
	var sum, sq float64
	n := 0
	for i, p := range m.Params() {
		if !equal(W(p), W(m2.Params()[i])) {
			t.Errorf("%s: same seed, different weights", p.Name)
		}
		if len(p.Shape) == 1 {
			for _, v := range W(p) {
				if v != 1 {
					t.Fatalf("%s: norm weight %g, want 1", p.Name, v)
				}
			}
			continue
		}
		if equal(W(p), W(m3.Params()[i])) {
			t.Errorf("%s: different seeds, same weights", p.Name)
		}
		for _, v := range W(p) {
			sum += float64(v)
			sq += float64(v) * float64(v)
			n++
		}
	}
	mean, std := sum/float64(n), math.Sqrt(sq/float64(n))
	if math.Abs(mean) > 0.02 || math.Abs(std-0.5) > 0.02 {
		t.Errorf("init mean %g std %g, want 0 and 0.5", mean, std)
	}
	for _, v := range W(m.embed)[3*16 : 4*16] {
		if v != 0 {
			t.Fatalf("pad_token_id row not zero")
		}
	}
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Packing must not leak between examples: an example's logits are the
// same alone in a row as packed after another example with restarted
// positions.
func TestPackingIsolation(t *testing.T) {
	m := New(tinyConfig(false, 2), 3)
	a := []int32{5, 9, 2, 7}
	bb := []int32{1, 4, 8, 8, 3, 11}
	alone := &Batch{B: 1, T: 6, Tokens: bb, Pos: []int32{0, 1, 2, 3, 4, 5}, Seg: make([]int32, 6)}
	want := m.Forward(alone)
	packed := &Batch{B: 1, T: 12, Tokens: append(append(append([]int32{}, a...), bb...), 0, 0),
		Pos: []int32{0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 0, 1}, Seg: []int32{0, 0, 0, 0, 1, 1, 1, 1, 1, 1, -1, -1}}
	got := m.Forward(packed)
	V := m.Config.VocabSize
	for i := 0; i < 6*V; i++ {
		if d := math.Abs(float64(got[4*V+i] - want[i])); !(d <= 1e-5) {
			t.Fatalf("logit %d differs by %g when packed", i, d)
		}
	}
}

func TestCheckBatch(t *testing.T) {
	m := New(tinyConfig(true, 4), 1)
	ok := func() *Batch {
		return &Batch{B: 1, T: 3, Tokens: []int32{1, 2, 3}, Pos: []int32{0, 1, 2}, Seg: []int32{0, 0, 0}, Target: []int32{2, 3, -1}}
	}
	cases := map[string]func(b *Batch){
		"outside the vocabulary [0,29)": func(b *Batch) { b.Tokens[1] = 29 },
		"target id -2":                  func(b *Batch) { b.Target[0] = -2 },
		"negative position":             func(b *Batch) { b.Pos[2] = -1 },
		"slices have lengths":           func(b *Batch) { b.Seg = b.Seg[:2] },
		"batch shape":                   func(b *Batch) { b.B = 0 },
	}
	for want, mod := range cases {
		b := ok()
		mod(b)
		if _, _, err := m.ForwardBackward(b, 1); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
	if _, n, err := m.ForwardBackward(ok(), 1); err != nil || n != 2 {
		t.Errorf("good batch: n %d err %v", n, err)
	}
	noTarget := ok()
	noTarget.Target = []int32{-1, -1, -1}
	m.ZeroGrad()
	if l, n, err := m.ForwardBackward(noTarget, 1); err != nil || n != 0 || l != 0 {
		t.Errorf("no targets: %g %d %v", l, n, err)
	}
	for _, p := range m.Params() {
		for _, g := range G(p) {
			if g != 0 {
				t.Fatalf("%s: gradient without targets", p.Name)
			}
		}
	}
}

func TestAddPadToken(t *testing.T) {
	for _, tied := range []bool{false, true} {
		m := New(tinyConfig(tied, 2), 5)
		V, D := m.Config.VocabSize, m.Config.HiddenSize
		id := m.AddPadToken()
		if id != V || m.Config.VocabSize != V+1 {
			t.Fatalf("id %d vocab %d", id, m.Config.VocabSize)
		}
		for _, p := range []*Param{m.embed, m.lmHead} {
			if len(W(p)) != (V+1)*D || len(G(p)) != len(W(p)) || p.Shape[0] != V+1 {
				t.Fatalf("%s: shape %v len %d", p.Name, p.Shape, len(W(p)))
			}
			for i := 0; i < D; i++ {
				s := 0.0
				for r := 0; r < V; r++ {
					s += float64(W(p)[r*D+i])
				}
				if d := math.Abs(float64(W(p)[V*D+i]) - s/float64(V)); !(d <= 1e-7) {
					t.Fatalf("%s: new row[%d] differs from the mean by %g", p.Name, i, d)
				}
			}
		}
		b := &Batch{B: 1, T: 2, Tokens: []int32{int32(id), 1}, Pos: []int32{0, 1}, Seg: []int32{0, 0}, Target: []int32{int32(id), -1}}
		if _, n, err := m.ForwardBackward(b, 1); err != nil || n != 1 {
			t.Fatalf("step with the new token: %v", err)
		}
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	defer func(c int) { saveChunk = c }(saveChunk)
	saveChunk = 100 // every tensor but the norms is streamed in several chunks
	dir := t.TempDir()
	tok := filepath.Join(dir, "tok.model")
	os.WriteFile(tok, []byte("\x0a\x03\x0a\x01a"), 0o644)
	for _, tc := range []struct {
		name  string
		tied  bool
		dtype string
		shard int64
		tol   float64
	}{
		{"f32-untied", false, "float32", 0, 0},
		{"f32-tied-sharded", true, "F32", 5000, 0},
		{"bf16", false, "bfloat16", 0, 1.0 / 128},
		{"f16", true, "float16", 0, 1.0 / 1024},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(tinyConfig(tc.tied, 2), 9)
			m.TokenizerPath = tok
			out := filepath.Join(dir, tc.name)
			os.MkdirAll(filepath.Join(out, "stale"), 0o755) // replaced as a whole
			if err := m.SaveSharded(out, tc.dtype, tc.shard); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(out, "stale")); err == nil {
				t.Errorf("old directory content survived")
			}
			if tc.shard > 0 {
				if _, err := os.Stat(filepath.Join(out, safetensors.IndexName)); err != nil {
					t.Errorf("no shard index: %v", err)
				}
			}
			st, err := safetensors.OpenDir(out)
			if err != nil {
				t.Fatal(err)
			}
			if _, has := st.Info("lm_head.weight"); has == tc.tied {
				t.Errorf("tied=%v but lm_head.weight stored=%v", tc.tied, has)
			}
			st.Close()
			m2, err := Load(out)
			if err != nil {
				t.Fatal(err)
			}
			if m2.TokenizerPath != filepath.Join(out, TokenizerFile) {
				t.Errorf("tokenizer not copied: %q", m2.TokenizerPath)
			}
			c2 := m2.Config
			if c2.TorchDtype == "" || c2.HiddenSize != 16 || c2.TieWordEmbeddings != tc.tied {
				t.Errorf("config after load: %+v", c2)
			}
			for i, p := range m.Params() {
				q := m2.Params()[i]
				if p.Name != q.Name {
					t.Fatalf("order: %s vs %s", p.Name, q.Name)
				}
				for j := range W(p) {
					if d := math.Abs(float64(W(p)[j] - W(q)[j])); !(d <= tc.tol*math.Abs(float64(W(p)[j]))) {
						t.Fatalf("%s[%d]: %g vs %g", p.Name, j, W(p)[j], W(q)[j])
					}
				}
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	m := New(tinyConfig(false, 2), 1)
	good := filepath.Join(dir, "good")
	if err := m.Save(good, ""); err != nil {
		t.Fatal(err)
	}
	// config says more layers than the weights have
	bad := filepath.Join(dir, "missing")
	m.Save(bad, "")
	cfg, _ := os.ReadFile(filepath.Join(bad, "config.json"))
	os.WriteFile(filepath.Join(bad, "config.json"), bytes.Replace(cfg, []byte(`"num_hidden_layers": 2`), []byte(`"num_hidden_layers": 3`), 1), 0o644)
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "model.layers.2.self_attn.q_proj.weight") {
		t.Errorf("missing tensor: %v", err)
	}
	shape := filepath.Join(dir, "shape")
	m.Save(shape, "")
	os.WriteFile(filepath.Join(shape, "config.json"), bytes.Replace(cfg, []byte(`"intermediate_size": 24`), []byte(`"intermediate_size": 25`), 1), 0o644)
	if _, err := Load(shape); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("wrong shape: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "nope")); err == nil {
		t.Errorf("missing dir loaded")
	}
}

// Buffers are reused across batch shapes: a model that ran a larger batch
// first gives bit-identical results to a fresh one on a smaller batch.
func TestBufferReuseAcrossShapes(t *testing.T) {
	big := &Batch{B: 2, T: 8, Tokens: make([]int32, 16), Pos: make([]int32, 16), Seg: make([]int32, 16), Target: make([]int32, 16)}
	for i := range big.Tokens {
		big.Tokens[i], big.Pos[i], big.Target[i] = int32(i*7%29), int32(i%8), int32(i*5%29)
		big.Seg[i] = int32(i / 8)
	}
	small := &Batch{B: 1, T: 5, Tokens: []int32{3, 1, 4, 1, 5}, Pos: []int32{0, 1, 2, 0, 1}, Seg: []int32{0, 0, 0, 1, 1}, Target: []int32{1, 4, -1, 5, 9}}
	used := New(tinyConfig(false, 2), 4)
	fresh := New(tinyConfig(false, 2), 4)
	used.ForwardBackward(big, 1)
	used.ZeroGrad()
	l1, n1, _ := used.ForwardBackward(small, 1)
	l2, n2, _ := fresh.ForwardBackward(small, 1)
	if l1 != l2 || n1 != n2 {
		t.Fatalf("loss %v/%d vs fresh %v/%d", l1, n1, l2, n2)
	}
	for i, p := range used.Params() {
		if !equal(G(p), G(fresh.Params()[i])) {
			t.Fatalf("%s: gradient differs after buffer reuse", p.Name)
		}
	}
	used.ForwardBackward(big, 1) // and back up again
}

// The whole gradient path, end to end: a tiny model trained with the
// backend's AdamW on one packed batch drives its loss to near zero.
func TestOverfitOneBatch(t *testing.T) {
	m := New(tinyConfig(false, 2), 11)
	b := &Batch{B: 2, T: 8, Tokens: make([]int32, 16), Pos: make([]int32, 16), Seg: make([]int32, 16), Target: make([]int32, 16)}
	for i := range b.Tokens {
		b.Tokens[i] = int32((i*11 + 3) % 29)
		b.Pos[i] = int32(i % 4)
		b.Seg[i] = int32(i / 4)
	}
	for i := range b.Target {
		b.Target[i] = -1
		if i%4 != 3 {
			b.Target[i] = b.Tokens[i+1]
		}
	}
	be := m.Backend()
	mom, _ := be.Alloc(backend.F32, m.ArenaLen())
	vel, _ := be.Alloc(backend.F32, m.ArenaLen())
	var spans []backend.Span
	for _, p := range m.Params() {
		spans = append(spans, p.Span(true))
	}
	var first, last float64
	for step := 1; step <= 150; step++ {
		m.ZeroGrad()
		loss, n, err := m.ForwardBackward(b, 1/float32(12))
		if err != nil {
			t.Fatal(err)
		}
		if step == 1 {
			first = loss / float64(n)
		}
		last = loss / float64(n)
		be.AdamW(m.Weights(), m.Grads(), mom, vel, spans, backend.AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: int64(step)})
	}
	if last > 0.01 {
		t.Errorf("mean loss %.4f -> %.4f after 150 steps, want < 0.01", first, last)
	}
	t.Logf("mean loss %.4f -> %.5f", first, last)
}

// LoadWeights skips the gradients until a training step needs them, and
// then behaves like Load.
func TestLoadWeightsLazyGrads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	if err := New(tinyConfig(false, 2), 2).Save(dir, ""); err != nil {
		t.Fatal(err)
	}
	lazy, err := LoadWeights(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range lazy.Params() {
		if G(p) != nil {
			t.Fatalf("%s: gradient allocated by LoadWeights", p.Name)
		}
	}
	lazy.AddPadToken()
	if G(lazy.embed) != nil {
		t.Fatalf("AddPadToken allocated gradients")
	}
	full, _ := Load(dir)
	full.AddPadToken()
	b := &Batch{B: 1, T: 3, Tokens: []int32{29, 1, 2}, Pos: []int32{0, 1, 2}, Seg: []int32{0, 0, 0}, Target: []int32{1, 2, 29}}
	l1, _, err1 := lazy.ForwardBackward(b, 1)
	l2, _, err2 := full.ForwardBackward(b, 1)
	if err1 != nil || err2 != nil || l1 != l2 {
		t.Fatalf("lazy %v %v, full %v %v", l1, err1, l2, err2)
	}
	for i, p := range lazy.Params() {
		if !equal(G(p), G(full.Params()[i])) {
			t.Fatalf("%s: gradients differ", p.Name)
		}
	}
}
