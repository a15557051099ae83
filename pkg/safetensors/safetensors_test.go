package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The fixture was made by scripts/fixtures/safetensors_fixture.py with torch:
// F16/BF16 data converted by torch, expected bit patterns in expected.json.
func loadExpected(t *testing.T) (f32 []uint32, f16, bf16 []uint16) {
	b, err := os.ReadFile("../../testdata/safetensors/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		F32  []uint32 `json:"f32_bits"`
		F16  []uint16 `json:"f16_bits"`
		BF16 []uint16 `json:"bf16_bits"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e.F32, e.F16, e.BF16
}

func TestTorchFixture(t *testing.T) {
	f32, f16, bf16 := loadExpected(t)
	f, err := Open("../../testdata/safetensors/torch_dtypes.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.Names(); !reflect.DeepEqual(got, []string{"a.f32", "b.f16", "c.bf16", "d.scalar", "e.empty"}) {
		t.Fatalf("names %v", got)
	}
	if f.Metadata()["format"] != "pt" {
		t.Fatalf("metadata %v", f.Metadata())
	}
	vals := make([]float32, len(f32))
	for i, b := range f32 {
		vals[i] = math.Float32frombits(b)
	}
	a, _ := f.Float32("a.f32")
	if !reflect.DeepEqual(bitsOf(a), f32) {
		t.Fatal("F32 values differ")
	}
	// our rounding equals torch's
	for _, c := range []struct {
		dt   DType
		want []uint16
	}{{F16, f16}, {BF16, bf16}} {
		enc, err := EncodeFloat32(c.dt, vals)
		if err != nil {
			t.Fatal(err)
		}
		for i := range c.want {
			if got := binary.LittleEndian.Uint16(enc[2*i:]); got != c.want[i] {
				t.Errorf("%s(%g) = %#04x, torch %#04x", c.dt, vals[i], got, c.want[i])
			}
		}
	}
	// reading F16/BF16 gives the exact widened values
	for _, c := range []struct {
		name string
		want []uint16
		dt   DType
	}{{"b.f16", f16, F16}, {"c.bf16", bf16, BF16}} {
		got, err := f.Float32(c.name)
		if err != nil {
			t.Fatal(err)
		}
		raw := make([]byte, 2*len(c.want))
		for i, w := range c.want {
			binary.LittleEndian.PutUint16(raw[2*i:], w)
		}
		want, _ := DecodeFloat32(c.dt, raw)
		if !reflect.DeepEqual(bitsOf(got), bitsOf(want)) {
			t.Errorf("%s decode differs", c.name)
		}
	}
	info, _ := f.Info("c.bf16")
	if !reflect.DeepEqual(info.Shape, []int64{2, 32}) || info.DType != BF16 {
		t.Fatalf("info %+v", info)
	}
	if s, _ := f.Float32("d.scalar"); len(s) != 1 || s[0] != 7 {
		t.Fatalf("scalar %v", s)
	}
	if e, _ := f.Float32("e.empty"); len(e) != 0 {
		t.Fatalf("empty %v", e)
	}
}

func bitsOf(v []float32) []uint32 {
	out := make([]uint32, len(v))
	for i, x := range v {
		out[i] = math.Float32bits(x)
	}
	return out
}

func TestRoundTripAndShards(t *testing.T) {
	dir := t.TempDir()
	var ts []Tensor
	for i, name := range []string{"model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight", "lm_head.weight", "model.norm.weight"} {
		v := make([]float32, 100*(i+1))
		for j := range v {
			v[j] = float32(j) * 0.25
		}
		dt := []DType{F32, F16, BF16, F32}[i]
		data, _ := EncodeFloat32(dt, v)
		ts = append(ts, Tensor{Name: name, DType: dt, Shape: []int64{int64(i + 1), 100}, Data: data})
	}
	for _, shard := range []int64{0, 500} {
		d := filepath.Join(dir, map[int64]string{0: "single", 500: "sharded"}[shard])
		if err := WriteModel(d, ts, map[string]string{"format": "pt"}, shard); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(d, IndexName)); (err == nil) != (shard > 0) {
			t.Fatalf("index presence wrong for shard=%d", shard)
		}
		m, err := OpenDir(d)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Names()) != len(ts) {
			t.Fatalf("names %v", m.Names())
		}
		for _, want := range ts {
			got, err := m.Bytes(want.Name)
			if err != nil || string(got) != string(want.Data) {
				t.Fatalf("%s differs: %v", want.Name, err)
			}
		}
		m.Close()
	}
	// the files are aligned: data starts at a multiple of 8
	b, _ := os.ReadFile(filepath.Join(dir, "single", "model.safetensors"))
	if n := binary.LittleEndian.Uint64(b); (8+n)%8 != 0 {
		t.Fatalf("header length %d not aligned", n)
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := func() []byte {
		p := filepath.Join(dir, "g.safetensors")
		data, _ := EncodeFloat32(F32, []float32{1, 2, 3, 4})
		if err := WriteFile(p, []Tensor{{Name: "w", DType: F32, Shape: []int64{2, 2}, Data: data}}, nil); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		return b
	}()
	hdrLen := int(binary.LittleEndian.Uint64(good))
	patch := func(old, new string) []byte {
		s := strings.Replace(string(good), old, new, 1)
		return []byte(s)
	}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"tiny", []byte{1, 2}, "not a safetensors file"},
		{"huge header", append([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, good[8:]...), "not a safetensors file or truncated"},
		{"truncated", good[:len(good)-3], `tensor "w": data ends at byte 16`},
		{"bad json", append(append([]byte{}, good[:8]...), append([]byte("{x"), good[10:]...)...), "bad safetensors header"},
		{"bad dtype", patch(`"F32"`, `"Q32"`), `unsupported dtype "Q32"`},
		{"shape mismatch", patch(`[2,2]`, `[2,3]`), "16 bytes for shape [2 3]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name+".safetensors")
			os.WriteFile(p, c.b, 0o644)
			_, err := Open(p)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	_ = hdrLen
	// an index naming a tensor missing from its shard
	d := filepath.Join(dir, "idx")
	os.MkdirAll(d, 0o755)
	os.WriteFile(filepath.Join(d, "model-00001-of-00001.safetensors"), good, 0o644)
	os.WriteFile(filepath.Join(d, IndexName), []byte(`{"weight_map":{"w":"model-00001-of-00001.safetensors","v":"model-00001-of-00001.safetensors"}}`), 0o644)
	if _, err := OpenDir(d); err == nil || !strings.Contains(err.Error(), `tensor "v" is not in shard`) {
		t.Fatalf("index err = %v", err)
	}
}

func TestStreamingWriterOrder(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.safetensors")
	w, err := NewWriter(p, []TensorInfo{{Name: "a", DType: F32, Shape: []int64{1}}, {Name: "b", DType: F16, Shape: []int64{2}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("b", make([]byte, 4)); err == nil {
		t.Fatal("out of order write accepted")
	}
	w.WriteTensor("a", make([]byte, 4))
	if err := w.Commit(); err == nil {
		t.Fatal("commit with a missing tensor accepted")
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("partial file left behind")
	}
}

func FuzzParse(f *testing.F) {
	b, _ := os.ReadFile("../../testdata/safetensors/torch_dtypes.safetensors")
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		sf, err := Parse("fuzz", b)
		if err != nil {
			return
		}
		for _, n := range sf.Names() {
			info, _ := sf.Info(n)
			raw, err := sf.Bytes(n)
			if err != nil || int64(len(raw)) != info.NumBytes() {
				t.Fatalf("tensor %s: %d bytes, info %+v", n, len(raw), info)
			}
			if info.DType.IsFloat() {
				if _, err := sf.Float32(n); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
