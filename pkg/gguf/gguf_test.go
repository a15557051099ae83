package gguf

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	_ "github.com/alpaca-go/alpaca/pkg/backend/cpu" // llama.New needs a registered backend
	"github.com/alpaca-go/alpaca/pkg/llama"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
)

func sampleFile(t testing.TB) []byte {
	t.Helper()
	kvs := []KV{
		{"general.architecture", "llama"}, {"u8", uint8(7)}, {"i8", int8(-7)}, {"u16", uint16(65535)},
		{"i16", int16(-300)}, {"u32", uint32(1 << 31)}, {"i32", int32(-5)}, {"f32", float32(1.5)},
		{"b", true}, {"u64", uint64(1 << 40)}, {"i64", int64(-1 << 40)}, {"f64", 2.25},
		{"strs", []string{"a", "", "▁b"}}, {"fs", []float32{0.5, -1}}, {"is", []int32{1, -2, 3}},
	}
	f32 := []float32{1, -2, 3.5, 0, 1e-3, -7, 8, 9}
	q := make([]float32, 64)
	for i := range q {
		q[i] = float32(i-32) / 8
	}
	infos := []TensorInfo{
		{Name: "a", Dims: []uint64{4, 2}, Type: F32},
		{Name: "b", Dims: []uint64{8}, Type: F16},
		{Name: "c", Dims: []uint64{32, 2}, Type: Q8_0},
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, kvs, infos)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		n string
		b []byte
	}{{"a", appendF32(nil, f32)}, {"b", EncodeF16(nil, f32)}, {"c", QuantizeQ8_0(nil, q)}} {
		if err := w.WriteTensor(d.n, d.b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	b := sampleFile(t)
	if string(b[:4]) != "GGUF" || b[4] != 3 || len(b)%32 != 0 {
		t.Fatalf("header %q version %d, size %d", b[:4], b[4], len(b))
	}
	f, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"u8": uint8(7), "i8": int8(-7), "u16": uint16(65535), "i16": int16(-300), "u32": uint32(1 << 31),
		"i32": int32(-5), "f32": float32(1.5), "b": true, "u64": uint64(1 << 40), "i64": int64(-1 << 40), "f64": 2.25,
		"strs": []string{"a", "", "▁b"}, "fs": []float32{0.5, -1}, "is": []int32{1, -2, 3}, "general.architecture": "llama"}
	for k, v := range want {
		got, ok := f.Get(k)
		if !ok || !reflect.DeepEqual(got, v) {
			t.Errorf("%s: got %#v want %#v", k, got, v)
		}
	}
	a, err := f.Float32("a")
	if err != nil || !reflect.DeepEqual(a, []float32{1, -2, 3.5, 0, 1e-3, -7, 8, 9}) {
		t.Errorf("a = %v, %v", a, err)
	}
	h, _ := f.Float32("b")
	// fp16 values: 1e-3 rounds to the nearest half 0.0010004043579101562
	if h[4] != float32(0.0010004043579101562) || h[2] != 3.5 {
		t.Errorf("f16 round trip %v", h)
	}
	for _, ti := range f.Tensors {
		if (f.DataStart+ti.Offset)%32 != 0 {
			t.Errorf("tensor %s at unaligned offset", ti.Name)
		}
	}
}

// TestQ8_0 checks the quantization rule on hand-computed blocks: scale =
// max|x|/127 as fp16, quants round(x/scale) with halves away from zero.
func TestQ8_0(t *testing.T) {
	v := make([]float32, 64)
	v[0], v[1], v[2], v[3] = 127, -63.5, 0.5, -1.5 // d = 1: -63.5 -> -64, 0.5 -> 1, -1.5 -> -2
	// second block all zero
	b := QuantizeQ8_0(nil, v)
	if len(b) != 68 {
		t.Fatalf("%d bytes", len(b))
	}
	if b[0] != 0x00 || b[1] != 0x3c { // fp16 1.0
		t.Errorf("scale bytes %x %x", b[0], b[1])
	}
	if got := []int8{int8(b[2]), int8(b[3]), int8(b[4]), int8(b[5])}; !reflect.DeepEqual(got, []int8{127, -64, 1, -2}) {
		t.Errorf("quants %v", got)
	}
	for _, c := range b[34:] {
		if c != 0 {
			t.Fatalf("zero block encodes as %x", b[34:])
		}
	}
	d, err := Dequantize(Q8_0, b, 64)
	if err != nil || d[0] != 127 || d[1] != -64 || d[40] != 0 {
		t.Errorf("dequantized %v %v", d[:4], err)
	}
}

// TestPermuteRoPE compares with the definition written as a reshape:
// w.reshape(heads, 2, hd/2, cols).swapaxes(1, 2).reshape(rows, cols).
func TestPermuteRoPE(t *testing.T) {
	heads, hd, cols := 3, 6, 2
	w := make([]float32, heads*hd*cols)
	for i := range w {
		w[i] = float32(i)
	}
	got := PermuteRoPE(w, heads, cols)
	half := hd / 2
	for h := 0; h < heads; h++ {
		for i := 0; i < half; i++ { // new axis 1
			for s := 0; s < 2; s++ { // new axis 2
				for c := 0; c < cols; c++ {
					src := ((h*2+s)*half+i)*cols + c
					dst := ((h*half+i)*2+s)*cols + c
					if got[dst] != w[src] {
						t.Fatalf("h %d i %d s %d: %v want %v", h, i, s, got[dst], w[src])
					}
				}
			}
		}
	}
}

func TestParseRejects(t *testing.T) {
	good := sampleFile(t)
	cases := map[string][]byte{
		"magic":     append([]byte("GGUX"), good[4:]...),
		"version":   append(append([]byte("GGUF"), 9, 0, 0, 0), good[8:]...),
		"truncated": good[:len(good)-40],
		"short":     good[:10],
	}
	huge := append([]byte(nil), good...)
	huge[8] = 0xff // tensor count
	huge[15] = 0x7f
	cases["tensor count"] = huge
	for name, b := range cases {
		if _, err := Parse(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sampleFile(f))
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := Parse(b)
		if err != nil {
			return
		}
		for _, ti := range g.Tensors {
			v, err := g.Float32(ti.Name)
			if err == nil && uint64(len(v)) != ti.NumElements() {
				t.Fatalf("%s: %d values for %d elements", ti.Name, len(v), ti.NumElements())
			}
		}
	})
}

func TestExportCLI(t *testing.T) {
	cfg := llama.DefaultConfig()
	cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers = 32, 40, 1
	cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.VocabSize, cfg.MaxPositionEmbeddings = 4, 2, 801, 64
	m := llama.New(cfg, 1)
	m.TokenizerPath = "../sentencepiece/testdata/small_bpe.model"
	dir := filepath.Join(t.TempDir(), "m")
	if err := m.Save(dir, "bfloat16"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "m.gguf")
	var so, se bytes.Buffer
	if code := ExportMain([]string{"--model", dir, "--type", "q8_0", "-o", out}, &so, &se); code != 0 {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	f, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"general.architecture": "llama", "llama.attention.head_count_kv": uint32(2),
		"llama.rope.dimension_count": uint32(8), "general.file_type": uint32(7), "tokenizer.ggml.model": "llama",
		"tokenizer.ggml.bos_token_id": uint32(1), "llama.embedding_length": uint32(32)} {
		if got, _ := f.Get(k); !reflect.DeepEqual(got, v) {
			t.Errorf("%s = %#v, want %#v", k, got, v)
		}
	}
	toks, _ := f.Get("tokenizer.ggml.tokens")
	if ts := toks.([]string); len(ts) != 801 || ts[800] != "[PAD800]" {
		t.Errorf("%d tokens, last %q", len(ts), ts[len(ts)-1])
	}
	q, _ := f.Tensor("blk.0.attn_v.weight")
	d, _ := f.Tensor("blk.0.ffn_down.weight") // rows of 40: not a multiple of 32 -> f16
	n, _ := f.Tensor("blk.0.attn_norm.weight")
	if q.Type != Q8_0 || d.Type != F16 || n.Type != F32 || !reflect.DeepEqual(q.Dims, []uint64{32, 16}) {
		t.Errorf("types %s %s %s dims %v", q.Type, d.Type, n.Type, q.Dims)
	}
	// v is not permuted; values within the Q8_0 error of the bf16 weights
	st, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	want, err := st.Float32("model.layers.0.self_attn.v_proj.weight")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := f.Float32("blk.0.attn_v.weight")
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); !(d <= 3e-3) {
			t.Fatalf("v[%d] = %v, want ~%v", i, got[i], want[i])
		}
	}
	for _, bad := range [][]string{{"--model", dir}, {"-o", out}, {"--model", dir, "-o", out, "--type", "q4"}, {"--model", dir, "-o", out, "--format", "onnx"}} {
		se.Reset()
		if code := ExportMain(bad, &so, &se); code != 2 || !strings.Contains(se.String(), "trainer export") {
			t.Errorf("%v: exit %d %q", bad, code, se.String())
		}
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}
