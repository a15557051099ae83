package weightdiff

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/safetensors"
)

func runMain(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// fixture builds raw, tuned (one more vocab row), a diff and an xor diff.
func cliFixture(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	tinyLlama(t, filepath.Join(tmp, "raw"), 10, 8, 12, safetensors.F32, 2, 0)
	tinyLlama(t, filepath.Join(tmp, "tuned"), 11, 8, 12, safetensors.F32, 3, 0.003)
	for _, m := range []string{"diff", "xor"} {
		if code, _, e := runMain("make", "--raw", filepath.Join(tmp, "raw"), "--tuned", filepath.Join(tmp, "tuned"), "--out", filepath.Join(tmp, m), "--mode", m, "--quiet"); code != 0 {
			t.Fatal(e)
		}
	}
	return tmp
}

// writeModel writes a one-file safetensors model with the given tensors.
func writeModel(t *testing.T, dir string, tensors ...safetensors.Tensor) string {
	t.Helper()
	if err := safetensors.WriteModel(dir, tensors, nil, 0); err != nil {
		t.Fatal(err)
	}
	return dir
}

func f32(name string, shape []int64, v ...float32) safetensors.Tensor {
	b, _ := safetensors.EncodeFloat32(safetensors.F32, v)
	return safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: shape, Data: b}
}

func TestCLI(t *testing.T) {
	tmp := cliFixture(t)
	p := func(s string) string { return filepath.Join(tmp, s) }
	// odd models for the error cases
	one := writeModel(t, p("one"), f32("w", []int64{2}, 1, 2))
	two := writeModel(t, p("two"), f32("w", []int64{2}, 1, 2), f32("v", []int64{1}, 3))
	shape := writeModel(t, p("shape"), f32("w", []int64{1, 2}, 1, 2))
	nan := writeModel(t, p("nan"), f32("w", []int64{2}, 1, float32(math.NaN())))
	big := writeModel(t, p("big"), f32("w", []int64{2}, 3e38, 1))
	neg := writeModel(t, p("neg"), f32("w", []int64{2}, -3e38, 1))
	bf := p("bf")
	writeModel(t, bf, safetensors.Tensor{Name: "w", DType: safetensors.BF16, Shape: []int64{2}, Data: []byte{0, 0x3f, 0, 0x40}})
	// a truncated copy of the raw model
	trunc := p("trunc")
	os.MkdirAll(trunc, 0o755)
	b, _ := os.ReadFile(filepath.Join(one, "model.safetensors"))
	os.WriteFile(filepath.Join(trunc, "model.safetensors"), b[:len(b)-3], 0o644)
	// a diff whose manifest is damaged
	badman := p("badman")
	os.MkdirAll(badman, 0o755)
	os.WriteFile(filepath.Join(badman, ManifestName), []byte(`{"format": "alpaca-go/weightdiff", "version": 7}`), 0o644)
	// an xor diff cut short
	xcut := p("xcut")
	os.MkdirAll(xcut, 0o755)
	mb, _ := os.ReadFile(p("xor/" + ManifestName))
	os.WriteFile(filepath.Join(xcut, ManifestName), mb, 0o644)
	xb, _ := os.ReadFile(p("xor/" + XorName))
	os.WriteFile(filepath.Join(xcut, XorName), xb[:len(xb)/2], 0o644)
	// a diff file with a corrupted byte
	xbad := p("xbad")
	os.MkdirAll(xbad, 0o755)
	os.WriteFile(filepath.Join(xbad, ManifestName), mb, 0o644)
	xb2 := append([]byte(nil), xb...)
	xb2[len(xb2)/2] ^= 0xff
	os.WriteFile(filepath.Join(xbad, XorName), xb2, 0o644)
	hdr := make([]byte, 16)
	copy(hdr, "ALPWXOR\x00")
	binary.LittleEndian.PutUint32(hdr[8:], 9)
	xver := p("xver")
	os.MkdirAll(xver, 0o755)
	os.WriteFile(filepath.Join(xver, ManifestName), mb, 0o644)
	os.WriteFile(filepath.Join(xver, XorName), append(hdr, xb[16:]...), 0o644)

	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string // substring
		stdout string
	}{
		{"help", []string{"--help"}, 0, "", "Usage: weightdiff"},
		{"make help", []string{"make", "--help"}, 0, "", "Example:"},
		{"no subcommand", nil, 2, "missing subcommand", ""},
		{"bad subcommand", []string{"diff"}, 2, `unknown subcommand "diff"`, ""},
		{"make no raw", []string{"make", "--tuned", "x", "--out", "y"}, 2, "--raw is required", ""},
		{"bad mode", []string{"make", "--raw", "a", "--tuned", "b", "--out", "c", "--mode", "sub"}, 2, `--mode "sub"`, ""},
		{"bad dtype", []string{"make", "--raw", "a", "--tuned", "b", "--out", "c", "--dtype", "I8"}, 2, "not a float type", ""},
		{"bad shard size", []string{"make", "--raw", "a", "--tuned", "b", "--out", "c", "--shard-size", "lots"}, 2, "bad size", ""},
		{"verify needs", []string{"verify", "--model", "a"}, 2, "--diff DIR or --expect-sum", ""},
		{"no such raw", []string{"make", "--raw", p("nope"), "--tuned", one, "--out", p("o1")}, 1, "raw model:", ""},
		{"missing tensor", []string{"make", "--raw", one, "--tuned", two, "--out", p("o2")}, 1, `tensor "v" (and 0 more) of the tuned model is missing from the raw model`, ""},
		{"extra tensor", []string{"make", "--raw", two, "--tuned", one, "--out", p("o3")}, 1, `tensor "v" (and 0 more) of the raw model is not in the tuned model`, ""},
		{"shape mismatch", []string{"make", "--raw", one, "--tuned", shape, "--out", p("o4")}, 1, `tensor "w": shape mismatch: raw [2], tuned [1 2]`, ""},
		{"dtype mismatch xor", []string{"make", "--raw", one, "--tuned", bf, "--out", p("o5"), "--mode", "xor"}, 1, `tensor "w": dtype mismatch: raw F32, tuned BF16`, ""},
		{"nan", []string{"make", "--raw", one, "--tuned", nan, "--out", p("o6")}, 1, `tensor "w": element 1: tuned − raw is not finite`, ""},
		{"overflow", []string{"make", "--raw", neg, "--tuned", big, "--out", p("o7")}, 1, `tensor "w": element 0: tuned − raw is not finite`, ""},
		{"truncated", []string{"make", "--raw", trunc, "--tuned", one, "--out", p("o8")}, 1, "truncated", ""},
		{"bad manifest", []string{"recover", "--raw", p("raw"), "--diff", badman, "--out", p("o9")}, 1, "version 7 is not supported", ""},
		{"wrong raw", []string{"recover", "--raw", p("tuned"), "--diff", p("diff"), "--out", p("o10")}, 1, "is --raw the base model?", ""},
		{"xor truncated", []string{"recover", "--raw", p("raw"), "--diff", xcut, "--out", p("o11")}, 1, "truncated file?", ""},
		{"xor corrupted", []string{"recover", "--raw", p("raw"), "--diff", xbad, "--out", p("o12")}, 1, "tensor", ""},
		{"xor version", []string{"recover", "--raw", p("raw"), "--diff", xver, "--out", p("o13")}, 1, "version 9 is not supported", ""},
		{"out exists", []string{"recover", "--raw", p("raw"), "--diff", p("diff"), "--out", p("raw")}, 1, "exists and is not empty (use --force", ""},
		{"recover", []string{"recover", "--raw", p("raw"), "--diff", p("diff"), "--out", p("rec"), "--quiet"}, 0, "", ""},
		{"recover xor", []string{"recover", "--raw", p("raw"), "--diff", p("xor"), "--out", p("recx"), "--quiet"}, 0, "", ""},
		{"verify", []string{"verify", "--model", p("rec"), "--diff", p("diff"), "--quiet"}, 0, "", "21 tensors match"},
		{"verify xor", []string{"verify", "--model", p("recx"), "--diff", p("xor"), "--quiet"}, 0, "", "21 tensors match"},
		{"verify raw fails", []string{"verify", "--model", p("raw"), "--diff", p("diff")}, 1, "the manifest says", ""},
		{"verify sum fails", []string{"verify", "--model", p("rec"), "--expect-sum", "alpaca-7b"}, 1, "naive integrity check failed", ""},
		{"force", []string{"recover", "--raw", p("raw"), "--diff", p("diff"), "--out", p("rec"), "--force", "--quiet", "--dtype", "bf16"}, 0, "", ""},
	}
	for _, c := range cases {
		code, out, errs := runMain(c.args...)
		if code != c.code || !strings.Contains(errs, c.stderr) || !strings.Contains(out, c.stdout) {
			t.Errorf("%s: code %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", c.name, code, c.code, out, c.stdout, errs, c.stderr)
		}
		if lines := strings.Split(strings.TrimSpace(errs), "\n"); c.code == 1 && !strings.HasPrefix(lines[len(lines)-1], "weightdiff ") {
			t.Errorf("%s: error is not one line: %q", c.name, errs)
		}
		if c.code != 0 {
			for i, a := range c.args {
				if a == "--out" && !strings.Contains(c.name, "exists") {
					assertNoOutput(t, c.args[i+1])
				}
			}
		}
	}
	// --dtype bf16 rewrote the weights and the config
	m, err := safetensors.OpenDir(p("rec"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if ti, _ := m.Info("lm_head.weight"); ti.DType != safetensors.BF16 {
		t.Errorf("recovered dtype %s", ti.DType)
	}
	if cfg, _ := os.ReadFile(p("rec/config.json")); !strings.Contains(string(cfg), `"torch_dtype":"bfloat16"`) && !strings.Contains(string(cfg), `"torch_dtype": "bfloat16"`) {
		t.Errorf("config not updated: %s", cfg)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"5GB": 5e9, "2GiB": 2 << 30, "500mb": 5e8, "123": 123, "0": 0, "1.5KiB": 1536} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "x", "-1GB", "1e30GB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
