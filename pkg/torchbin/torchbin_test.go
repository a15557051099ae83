package torchbin

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures in testdata/torchbin were written by torch.save (torch 1.13)
// with scripts/fixtures/torchbin_fixture.py; expected.json holds, for each
// tensor, torch's dtype, shape and the hex of t.contiguous()'s bytes.

const dir = "../../testdata/torchbin"

type want struct {
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
	Hex   string  `json:"hex"`
}

func loadExpected(t *testing.T) map[string]map[string]want {
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp map[string]map[string]want
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	return exp
}

type source interface {
	Names() []string
	Bytes(string) ([]byte, error)
}

func check(t *testing.T, what string, src source, info func(string) (string, []int64, bool), exp map[string]want) {
	t.Helper()
	names := src.Names()
	if len(names) != len(exp) {
		t.Errorf("%s: %d tensors %v, want %d", what, len(names), names, len(exp))
	}
	for name, w := range exp {
		dt, shape, ok := info(name)
		if !ok {
			t.Errorf("%s: tensor %q missing", what, name)
			continue
		}
		if dt != w.DType || !equalShape(shape, w.Shape) {
			t.Errorf("%s: %q is %s %v, want %s %v", what, name, dt, shape, w.DType, w.Shape)
		}
		b, err := src.Bytes(name)
		if err != nil {
			t.Errorf("%s: %q: %v", what, name, err)
			continue
		}
		if got := hex.EncodeToString(b); got != w.Hex {
			t.Errorf("%s: %q bytes\n got %s\nwant %s", what, name, got, w.Hex)
		}
	}
}

func equalShape(a, b []int64) bool {
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

func TestFixtures(t *testing.T) {
	exp := loadExpected(t)
	for _, name := range []string{"dtypes.bin", "shared.bin", "legacy.bin"} {
		f, err := Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		check(t, name, f, func(n string) (string, []int64, bool) {
			ti, ok := f.Info(n)
			return string(ti.DType), ti.Shape, ok
		}, exp[name])
		f.Close()
	}
	m, err := OpenDir(filepath.Join(dir, "sharded"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	check(t, "sharded", m, func(n string) (string, []int64, bool) {
		ti, ok := m.Info(n)
		return string(ti.DType), ti.Shape, ok
	}, exp["sharded"])
}

func TestSharedStorage(t *testing.T) {
	f, err := Open(filepath.Join(dir, "shared.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	full, _ := f.Tensor("full")
	row2, _ := f.Tensor("row2")
	tr, _ := f.Tensor("transposed")
	if full.Storage.Key != row2.Storage.Key || full.Storage.Key != tr.Storage.Key {
		t.Errorf("views should share one storage: %s %s %s", full.Storage.Key, row2.Storage.Key, tr.Storage.Key)
	}
	if row2.Offset != 16 || !full.Contiguous() || tr.Contiguous() {
		t.Errorf("row2 offset %d, full contiguous %v, transposed contiguous %v", row2.Offset, full.Contiguous(), tr.Contiguous())
	}
	// a contiguous view is a slice of the file itself, not a copy
	a, _ := f.Bytes("full")
	b, _ := f.Bytes("tied")
	if &a[0] != &b[0] {
		t.Error("tied tensor was copied")
	}
	f.Release(a) // pages dropped, data still readable
	if a[4] != b[4] {
		t.Error("data changed after Release")
	}
}

func TestRefused(t *testing.T) {
	cases := []struct{ file, want string }{
		{"evil_system.bin", `"posix.system"`},
		{"evil_eval.bin", `"__builtin__.eval"`},
		{"evil_getattr.bin", `"__builtin__.getattr"`},
		{"evil_module.bin", `"torch.nn.modules.linear.Linear"`},
	}
	for _, c := range cases {
		_, err := Open(filepath.Join(dir, c.file))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %s", c.file, err, c.want)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "evil_system.pkl"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Unpickle(b)
	var rg *RefusedGlobalError
	if !errors.As(err, &rg) || rg.Name != "posix.system" {
		t.Errorf("bare pickle: %v", err)
	}
}

// Hand-made pickles: each must be refused (and nothing run).
func TestHostilePickles(t *testing.T) {
	cases := []struct {
		name, pkl, want string
	}{
		{"builtin eval", "\x80\x02c__builtin__\neval\nX\x04\x00\x00\x001+1\x85R.", `"__builtin__.eval"`},
		{"stack global", "\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R.", `"os.system"`},
		{"call a storage type", "\x80\x02ctorch\nFloatStorage\nK\x05\x85R.", "refusing to call torch.FloatStorage"},
		{"reduce on a string", "\x80\x02X\x01\x00\x00\x00a)R.", "REDUCE on a str"},
		{"NEWOBJ", "\x80\x02ccollections\nOrderedDict\n)\x81.", "NEWOBJ"},
		{"INST", "\x80\x02(ios\nsystem\n.", "INST"},
		{"BUILD on a global", "\x80\x02ccollections\nOrderedDict\n}b.", "BUILD on a global"},
		{"bad persid", "\x80\x02X\x01\x00\x00\x00aQ.", "persistent id"},
		{"truncated", "\x80\x02X\xff\x00\x00\x00ab", "truncated"},
		{"no stop", "\x80\x02K\x01", "no STOP"},
		{"memo miss", "\x80\x02h\x07.", "never stored"},
		{"protocol 9", "\x80\x09.", "protocol 9"},
		{"pop empty", "\x80\x020.", "empty"},
		{"two left", "\x80\x02K\x01K\x02.", "STOP with 2"},
	}
	for _, c := range cases {
		_, err := Unpickle([]byte(c.pkl))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

func TestBadArchives(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(dir, "dtypes.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{len(good) - 1, len(good) / 2, 100, 10} {
		if _, err := Parse("cut.bin", good[:n]); err == nil {
			t.Errorf("truncated to %d bytes: no error", n)
		}
	}
	legacy, _ := os.ReadFile(filepath.Join(dir, "legacy.bin"))
	for _, n := range []int{len(legacy) - 1, len(legacy) - 30, 200, 20} {
		if _, err := Parse("cut.bin", legacy[:n]); err == nil {
			t.Errorf("legacy truncated to %d bytes: no error", n)
		}
	}
	if _, err := Parse("x.bin", []byte("hello world")); err == nil || !strings.Contains(err.Error(), "not a PyTorch zip") {
		t.Errorf("garbage: %v", err)
	}
}

func TestBadIndex(t *testing.T) {
	src := filepath.Join(dir, "sharded")
	cases := []struct{ index, want string }{
		{`{"weight_map": {}}`, "empty"},
		{`{"weight_map": {"lm_head.weight": "../x.bin"}}`, "plain file name"},
		{`not json`, "bad index"},
		{`{"weight_map": {"model.embed_tokens.weight": "pytorch_model-00001-of-00002.bin", "lm_head.weight": "pytorch_model-00002-of-00002.bin"}}`, `"model.norm.weight" of pytorch_model-00001-of-00002.bin is missing`},
		{`{"weight_map": {"nope": "pytorch_model-00001-of-00002.bin", "model.embed_tokens.weight": "pytorch_model-00001-of-00002.bin", "model.norm.weight": "pytorch_model-00001-of-00002.bin", "lm_head.weight": "pytorch_model-00002-of-00002.bin"}}`, `tensor "nope" is not in shard`},
		{`{"weight_map": {"lm_head.weight": "pytorch_model-00003-of-00002.bin"}}`, "shard listed in the index"},
	}
	for _, c := range cases {
		d := t.TempDir()
		for _, s := range []string{"pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"} {
			b, _ := os.ReadFile(filepath.Join(src, s))
			os.WriteFile(filepath.Join(d, s), b, 0o644)
		}
		os.WriteFile(filepath.Join(d, IndexName), []byte(c.index), 0o644)
		m, err := OpenDir(d)
		if err == nil {
			m.Close()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("index %s: error %v, want %q", c.index, err, c.want)
		}
	}
}

func FuzzUnpickle(f *testing.F) {
	for _, n := range []string{"evil_system.pkl"} {
		b, _ := os.ReadFile(filepath.Join(dir, n))
		f.Add(b)
	}
	f.Add([]byte("\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01u."))
	f.Fuzz(func(t *testing.T, b []byte) {
		Unpickle(b)
	})
}

func FuzzParse(f *testing.F) {
	for _, n := range []string{"dtypes.bin", "shared.bin", "evil_system.bin", "legacy.bin"} {
		b, _ := os.ReadFile(filepath.Join(dir, n))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, err := Parse("fuzz.bin", b)
		if err != nil {
			return
		}
		for _, n := range fl.Names() {
			fl.Bytes(n)
		}
	})
}

func FuzzIndex(f *testing.F) {
	b, _ := os.ReadFile(filepath.Join(dir, "sharded", IndexName))
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		idx, err := ParseIndex(b)
		if err != nil {
			return
		}
		for k, s := range idx.WeightMap {
			if s == "" || strings.ContainsAny(s, `/\`) {
				t.Fatalf("accepted shard name %q for %q", s, k)
			}
		}
	})
}
