package train

import (
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPlot(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "m.jsonl")
	var b strings.Builder
	for i := 1; i <= 120; i++ {
		fmt.Fprintf(&b, `{"step":%d,"epoch":%g,"loss":%g,"lr":%g,"grad_norm":1}`+"\n", i, float64(i)/40, 3/float64(i), 2e-5*float64(i)/120)
	}
	os.WriteFile(m, []byte(b.String()), 0o644)
	out := filepath.Join(dir, "loss.png")
	if code, _, e := runCLI("plot", "--metrics", m, "-o", out); code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if w, h := img.Bounds().Dx(), img.Bounds().Dy(); w != 768 || h != 576 {
		t.Errorf("image %d×%d, want 768×576 (8×6 in at 96 dpi)", w, h)
	}

	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"step\":1,\"loss\":2,\"lr\":0}\nnot json\n"), 0o644)
	empty := filepath.Join(dir, "empty.jsonl")
	os.WriteFile(empty, nil, 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"plot", "--metrics", m}, 2, "-o FILE.png is required"},
		{[]string{"plot", "--metrics", bad, "-o", out}, 1, "bad.jsonl:2:"},
		{[]string{"plot", "--metrics", empty, "-o", out}, 1, "no metrics to plot"},
		{[]string{"plot", "--metrics", filepath.Join(dir, "none"), "-o", out}, 1, "no such file"},
	} {
		code, _, e := runCLI(tc.args...)
		if code != tc.code || !strings.Contains(e, tc.want) {
			t.Errorf("%v: exit %d %q, want %d %q", tc.args, code, e, tc.code, tc.want)
		}
	}
}
