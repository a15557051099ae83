package weightdiff

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/safetensors"
)

// tinyLlama writes a small LLaMA-shaped Hugging Face model directory (the
// names and layout `trainer init` produces) and returns its float32 values.
// vocab rows, hidden d, ffn f; values are base + delta*noise(seed2) so a
// "tuned" model can be derived from a "raw" one.
func tinyLlama(t testing.TB, dir string, vocab, d, f int64, dt safetensors.DType, seed int64, tweak float32) map[string][]float32 {
	t.Helper()
	shapes := map[string][]int64{
		"model.embed_tokens.weight": {vocab, d},
		"lm_head.weight":            {vocab, d},
		"model.norm.weight":         {d},
	}
	for l := 0; l < 2; l++ {
		p := "model.layers." + string(rune('0'+l)) + "."
		for _, n := range []string{"q_proj", "k_proj", "v_proj", "o_proj"} {
			shapes[p+"self_attn."+n+".weight"] = []int64{d, d}
		}
		shapes[p+"mlp.gate_proj.weight"] = []int64{f, d}
		shapes[p+"mlp.up_proj.weight"] = []int64{f, d}
		shapes[p+"mlp.down_proj.weight"] = []int64{d, f}
		shapes[p+"input_layernorm.weight"] = []int64{d}
		shapes[p+"post_attention_layernorm.weight"] = []int64{d}
	}
	base := rand.New(rand.NewSource(1))
	noise := rand.New(rand.NewSource(seed))
	vals := map[string][]float32{}
	var tensors []safetensors.Tensor
	for _, name := range sortedKeys(shapes) {
		sh := shapes[name]
		n := sh[0]
		if len(sh) == 2 {
			n *= sh[1]
		}
		v := make([]float32, n)
		for i := range v {
			if len(sh) == 1 {
				v[i] = 1 + 0.01*float32(base.NormFloat64())
			} else {
				v[i] = 0.02 * float32(base.NormFloat64())
			}
			v[i] += tweak * float32(noise.NormFloat64())
		}
		b, err := safetensors.EncodeFloat32(dt, v)
		if err != nil {
			t.Fatal(err)
		}
		vals[name], _ = safetensors.DecodeFloat32(dt, b)
		tensors = append(tensors, safetensors.Tensor{Name: name, DType: dt, Shape: sh, Data: b})
	}
	if err := safetensors.WriteModel(dir, tensors, map[string]string{"format": "pt"}, 3000); err != nil {
		t.Fatal(err)
	}
	cfg := `{"architectures": ["LlamaForCausalLM"], "hidden_size": ` + itoa(d) + `, "vocab_size": ` + itoa(vocab) + `, "torch_dtype": "` + dt.TorchName() + `"}`
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644)
	os.WriteFile(filepath.Join(dir, "tokenizer.model"), []byte("tok-"+itoa(vocab)), 0o644)
	return vals
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func readModel(t testing.TB, dir string) (map[string][]byte, map[string]safetensors.TensorInfo) {
	t.Helper()
	m, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := map[string][]byte{}
	infos := map[string]safetensors.TensorInfo{}
	for _, n := range m.Names() {
		b, _ := m.Bytes(n)
		out[n] = append([]byte(nil), b...)
		infos[n], _ = m.Info(n)
	}
	return out, infos
}

var small = Options{Workers: 3, ChunkBytes: 256, ShardBytes: 4000}

func TestDiffRoundTripWithPadResize(t *testing.T) {
	tmp := t.TempDir()
	raw, tuned, diff, rec := filepath.Join(tmp, "raw"), filepath.Join(tmp, "tuned"), filepath.Join(tmp, "diff"), filepath.Join(tmp, "rec")
	rv := tinyLlama(t, raw, 10, 8, 12, safetensors.F32, 2, 0)
	tv := tinyLlama(t, tuned, 11, 8, 12, safetensors.F32, 3, 0.003)
	// make the tuned model cross zero in places so some elements are inexact
	ctx := context.Background()
	s, err := Make(ctx, MakeOptions{Options: small, Raw: raw, Tuned: tuned, Out: diff})
	if err != nil {
		t.Fatal(err)
	}
	man, err := ReadManifest(diff)
	if err != nil || man == nil {
		t.Fatal(man, err)
	}
	if man.PadRows != 1 || len(man.Resized) != 2 {
		t.Errorf("pad rows %d resized %v", man.PadRows, man.Resized)
	}
	for _, f := range []string{"config.json", "tokenizer.model", ManifestName, safetensors.IndexName} {
		if _, err := os.Stat(filepath.Join(diff, f)); err != nil {
			t.Errorf("diff lacks %s", f)
		}
	}
	// the stored differences are tuned - raw in float32, with Alpaca's mean row
	dm, _ := safetensors.OpenDir(diff)
	defer dm.Close()
	for name, t32 := range tv {
		d, _ := dm.Float32(name)
		r32 := padded(rv[name], len(t32))
		for i := range d {
			if d[i] != t32[i]-r32[i] {
				t.Fatalf("%s[%d]: diff %v, want %v", name, i, d[i], t32[i]-r32[i])
			}
		}
	}
	rs, err := Recover(ctx, RecoverOptions{Options: small, Raw: raw, Diff: diff, Out: rec})
	if err != nil {
		t.Fatal(err)
	}
	if rs.Checked != len(tv) || rs.Inexact != s.Inexact {
		t.Errorf("checked %d of %d, inexact %d vs %d", rs.Checked, len(tv), rs.Inexact, s.Inexact)
	}
	got, _ := readModel(t, rec)
	var inexact int64
	for name, t32 := range tv {
		g, _ := safetensors.DecodeFloat32(safetensors.F32, got[name])
		r32 := padded(rv[name], len(t32))
		for i := range g {
			want := r32[i] + (t32[i] - r32[i]) // what weight_diff.py computes
			if math.Float32bits(g[i]) != math.Float32bits(want) {
				t.Fatalf("%s[%d]: recovered %v, want %v", name, i, g[i], want)
			}
			if g[i] != t32[i] {
				inexact++
				if math.Abs(float64(g[i]-t32[i])) > 1e-6*math.Max(1, math.Abs(float64(t32[i]))) {
					t.Fatalf("%s[%d]: %v vs tuned %v", name, i, g[i], t32[i])
				}
			}
		}
	}
	if inexact != s.Inexact {
		t.Errorf("%d inexact elements, manifest says %d", inexact, s.Inexact)
	}
	if b, _ := os.ReadFile(filepath.Join(rec, "tokenizer.model")); string(b) != "tok-11" {
		t.Errorf("tokenizer not copied from the diff: %q", b)
	}
	// verify accepts both the recovered and the tuned model
	for _, m := range []string{rec, tuned} {
		if _, err := Verify(ctx, VerifyOptions{Options: small, Model: m, Manifest: man}); err != nil {
			t.Errorf("verify %s: %v", m, err)
		}
	}
	if _, err := Verify(ctx, VerifyOptions{Options: small, Model: raw, Manifest: man}); err == nil {
		t.Error("verify accepted the raw model")
	}
	// the original's check value path: no manifest, --expect-sum
	os.Remove(filepath.Join(diff, ManifestName))
	rec2 := filepath.Join(tmp, "rec2")
	if _, err := Recover(ctx, RecoverOptions{Options: small, Raw: raw, Diff: diff, Out: rec2, ExpectSum: rs.Sum, HaveExpect: true}); err != nil {
		t.Fatal(err)
	}
	g2, _ := readModel(t, rec2)
	for n := range got {
		if !bytes.Equal(g2[n], got[n]) {
			t.Errorf("%s differs without the manifest", n)
		}
	}
	_, err = Recover(ctx, RecoverOptions{Options: small, Raw: raw, Diff: diff, Out: filepath.Join(tmp, "rec3"), ExpectSum: rs.Sum + 0.5, HaveExpect: true})
	if err == nil || !strings.Contains(err.Error(), "naive integrity check failed") {
		t.Errorf("wrong sum: %v", err)
	}
	assertNoOutput(t, filepath.Join(tmp, "rec3"))
}

func padded(r []float32, n int) []float32 {
	if len(r) == n {
		return r
	}
	// Alpaca's resize: new rows are the mean of the existing ones (d = 8 columns)
	const cols = 8
	rows := len(r) / cols
	out := append([]float32(nil), r...)
	for len(out) < n {
		for c := 0; c < cols; c++ {
			var s float32 // torch's float32 sum: sequential below 16 rows
			for i := 0; i < rows; i++ {
				s += r[i*cols+c]
			}
			out = append(out, s/float32(rows))
		}
	}
	return out
}

func assertNoOutput(t *testing.T, out string) {
	t.Helper()
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s exists after a failed run", out)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*"))
	if len(left) > 0 {
		t.Errorf("temporary output left behind: %v", left)
	}
}

func TestXorRoundTripBitExact(t *testing.T) {
	for _, dt := range []safetensors.DType{safetensors.BF16, safetensors.F32, safetensors.F16} {
		tmp := t.TempDir()
		raw, tuned, diff, rec := filepath.Join(tmp, "raw"), filepath.Join(tmp, "tuned"), filepath.Join(tmp, "diff"), filepath.Join(tmp, "rec")
		tinyLlama(t, raw, 10, 8, 12, dt, 2, 0)
		tinyLlama(t, tuned, 11, 8, 12, dt, 3, 0.003)
		ctx := context.Background()
		if _, err := Make(ctx, MakeOptions{Options: small, Raw: raw, Tuned: tuned, Out: diff, Mode: "xor"}); err != nil {
			t.Fatal(dt, err)
		}
		s, err := Recover(ctx, RecoverOptions{Options: small, Raw: raw, Diff: diff, Out: rec})
		if err != nil {
			t.Fatal(dt, err)
		}
		want, wi := readModel(t, tuned)
		got, gi := readModel(t, rec)
		for n := range want {
			if !bytes.Equal(want[n], got[n]) || gi[n].DType != wi[n].DType {
				t.Errorf("%s %s: recovered bytes differ", dt, n)
			}
		}
		if s.Checked != len(want) {
			t.Errorf("%s: %d checked", dt, s.Checked)
		}
	}
}

// bf16 models with a float32 diff recover bit-exactly (the difference of two
// nearby bf16 values is exact in float32), as with weight_diff.py.
func TestDiffBF16Exact(t *testing.T) {
	tmp := t.TempDir()
	raw, tuned, diff, rec := filepath.Join(tmp, "raw"), filepath.Join(tmp, "tuned"), filepath.Join(tmp, "diff"), filepath.Join(tmp, "rec")
	tinyLlama(t, raw, 10, 8, 12, safetensors.BF16, 2, 0)
	tinyLlama(t, tuned, 10, 8, 12, safetensors.BF16, 3, 0.003)
	ctx := context.Background()
	s, err := Make(ctx, MakeOptions{Options: small, Raw: raw, Tuned: tuned, Out: diff})
	if err != nil {
		t.Fatal(err)
	}
	if s.Inexact != 0 {
		t.Errorf("%d inexact elements for bf16", s.Inexact)
	}
	if _, err := Recover(ctx, RecoverOptions{Options: small, Raw: raw, Diff: diff, Out: rec}); err != nil {
		t.Fatal(err)
	}
	want, _ := readModel(t, tuned)
	got, gi := readModel(t, rec)
	for n := range want {
		if !bytes.Equal(want[n], got[n]) || gi[n].DType != safetensors.BF16 {
			t.Errorf("%s differs", n)
		}
	}
	// a lossy bf16 diff still recovers to exactly what make predicted
	if _, err := Make(ctx, MakeOptions{Options: small, Raw: raw, Tuned: tuned, Out: diff + "16", DType: safetensors.BF16}); err != nil {
		t.Fatal(err)
	}
	if _, err := Recover(ctx, RecoverOptions{Options: small, Raw: raw, Diff: diff + "16", Out: rec + "16"}); err != nil {
		t.Fatal(err)
	}
}

// The raw model may be a PyTorch .bin checkpoint (here the torch.save
// fixture of pkg/torchbin, sharded, with an F16 tensor).
func TestBinRaw(t *testing.T) {
	raw := "../../testdata/torchbin/sharded"
	tmp := t.TempDir()
	src, _, err := OpenModel(raw)
	if err != nil {
		t.Fatal(err)
	}
	var tensors []safetensors.Tensor
	for _, n := range src.Names() {
		ti, _ := src.Info(n)
		v, _ := safetensors.DecodeFloat32(ti.DType, mustBytes(t, src, n))
		for i := range v {
			v[i] += 0.25
		}
		b, _ := safetensors.EncodeFloat32(ti.DType, v)
		tensors = append(tensors, safetensors.Tensor{Name: n, DType: ti.DType, Shape: ti.Shape, Data: b})
	}
	src.Close()
	tuned := filepath.Join(tmp, "tuned")
	if err := safetensors.WriteModel(tuned, tensors, nil, 0); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, mode := range []string{"diff", "xor"} {
		diff, rec := filepath.Join(tmp, mode), filepath.Join(tmp, mode+"-rec")
		if _, err := Make(ctx, MakeOptions{Options: small, Raw: raw, Tuned: tuned, Out: diff, Mode: mode}); err != nil {
			t.Fatal(mode, err)
		}
		if _, err := Recover(ctx, RecoverOptions{Options: small, Raw: raw, Diff: diff, Out: rec}); err != nil {
			t.Fatal(mode, err)
		}
		if _, err := Verify(ctx, VerifyOptions{Options: small, Model: tuned, Manifest: mustManifest(t, diff)}); err != nil {
			t.Error(mode, err)
		}
	}
}

func mustBytes(t *testing.T, s Source, n string) []byte {
	b, err := s.Bytes(n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustManifest(t *testing.T, dir string) *Manifest {
	m, err := ReadManifest(dir)
	if err != nil || m == nil {
		t.Fatal(dir, err)
	}
	return m
}

func TestInterruptedLeavesNothing(t *testing.T) {
	tmp := t.TempDir()
	raw, tuned := filepath.Join(tmp, "raw"), filepath.Join(tmp, "tuned")
	tinyLlama(t, raw, 10, 8, 12, safetensors.F32, 2, 0)
	tinyLlama(t, tuned, 10, 8, 12, safetensors.F32, 3, 0.003)
	ctx, cancel := context.WithCancel(context.Background())
	opt := small
	n := 0
	opt.Progress = func(done, total int64) {
		if n++; n == 5 {
			cancel()
		}
	}
	out := filepath.Join(tmp, "diff")
	if _, err := Make(ctx, MakeOptions{Options: opt, Raw: raw, Tuned: tuned, Out: out}); err == nil {
		t.Fatal("cancelled make succeeded")
	}
	assertNoOutput(t, out)
}

func FuzzManifest(f *testing.F) {
	h := strings.Repeat("ab", 32)
	f.Add([]byte(`{"format": "alpaca-go/weightdiff", "version": 1, "mode": "diff", "diff_dtype": "F32", "pad_rows": 1,
 "resized": ["lm_head.weight"], "sum": 1.5, "sum_torch": 1.5,
 "tensors": [{"name": "lm_head.weight", "dtype": "F32", "shape": [3, 2], "sha256": "` + h + `", "recovered_sha256": "` + h + `", "inexact": 2}]}`))
	f.Add([]byte(`{"format": "alpaca-go/weightdiff", "version": 1, "mode": "xor", "chunk_bytes": 8, "sum": 0, "sum_torch": 0,
 "tensors": [{"name": "w", "dtype": "BF16", "shape": [5], "sha256": "` + h + `", "offset": 16, "frames": [20, 12]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		for _, mt := range m.Tensors {
			if mt.Info().NumBytes() < 0 {
				t.Fatalf("negative size for %q", mt.Name)
			}
			if m.Mode == "xor" && int64(len(mt.Frames)) != (mt.Info().NumBytes()+m.ChunkBytes-1)/m.ChunkBytes {
				t.Fatalf("frame count not checked for %q", mt.Name)
			}
		}
	})
}

// Alpaca's published diff carries rotary_emb.inv_freq buffers that newer
// LLaMA conversions do not have; recover computes them. The reference values
// are torch's 1.0 / (10000 ** (torch.arange(0, 128, 2).float() / 128)):
// element 1 = 0.8659643530845642, sum = 7.459954261779785.
func TestRotaryBuffersComputed(t *testing.T) {
	tmp := t.TempDir()
	raw, tuned := filepath.Join(tmp, "raw"), filepath.Join(tmp, "tuned")
	tinyLlama(t, raw, 10, 8, 12, safetensors.F32, 2, 0)
	tinyLlama(t, tuned, 10, 8, 12, safetensors.F32, 3, 0.003)
	const name = "model.layers.0.self_attn.rotary_emb.inv_freq"
	src, _, _ := OpenModel(raw)
	s, added := withRotaryBuffers(src, map[string][]int64{name: {64}})
	if len(added) != 1 {
		t.Fatal(added)
	}
	b, _ := s.Bytes(name)
	inv, _ := safetensors.DecodeFloat32(safetensors.F32, b)
	var sum float32
	for _, v := range inv {
		sum += v
	}
	if inv[1] != float32(0.8659643530845642) || math.Abs(float64(sum)-7.459954261779785) > 1e-6 {
		t.Errorf("inv_freq[1] = %v, sum %v", inv[1], sum)
	}
	src.Close()
	// raw and tuned with the buffer -> diff; recover from raw without it
	withBuf := func(dir, out string) {
		m, _ := safetensors.OpenDir(dir)
		var ts []safetensors.Tensor
		for _, n := range m.Names() {
			ti, _ := m.Info(n)
			d, _ := m.Bytes(n)
			ts = append(ts, safetensors.Tensor{Name: n, DType: ti.DType, Shape: ti.Shape, Data: append([]byte(nil), d...)})
		}
		m.Close()
		ts = append(ts, safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: []int64{64}, Data: b})
		if err := safetensors.WriteModel(out, ts, nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	withBuf(raw, raw+"b")
	withBuf(tuned, tuned+"b")
	ctx := context.Background()
	diff := filepath.Join(tmp, "diff")
	if _, err := Make(ctx, MakeOptions{Options: small, Raw: raw + "b", Tuned: tuned + "b", Out: diff}); err != nil {
		t.Fatal(err)
	}
	rec := filepath.Join(tmp, "rec")
	if _, err := Recover(ctx, RecoverOptions{Options: small, Raw: raw, Diff: diff, Out: rec}); err != nil {
		t.Fatal(err)
	}
	got, _ := readModel(t, rec)
	if !bytes.Equal(got[name], b) {
		t.Error("inv_freq not recovered")
	}
}

func TestShuffle(t *testing.T) {
	b := make([]byte, 48)
	for i := range b {
		b[i] = byte(i)
	}
	for _, es := range []int{1, 2, 4, 8} {
		s := shuffle(b, es)
		n := len(b) / es
		for i := 0; i < n; i++ {
			for k := 0; k < es; k++ {
				if s[k*n+i] != b[i*es+k] {
					t.Fatalf("es %d: plane %d element %d", es, k, i)
				}
			}
		}
		if !bytes.Equal(unshuffle(s, es), b) {
			t.Errorf("es %d: unshuffle does not invert shuffle", es)
		}
	}
}
