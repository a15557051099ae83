package weightdiff

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/safetensors"
)

// testdata/weightdiff was made by scripts/fixtures/weightdiff_fixture.py:
// raw and tuned pytorch_model.bin (float32, tuned has one more vocab row),
// and what weight_diff.py's steps compute in torch: the diff (as a .bin, like
// the published Alpaca diff), the recovered tensors and the check value.

type torchExpected struct {
	Sum       float64           `json:"sum"`
	Diff      map[string]string `json:"diff"`
	Recovered map[string]string `json:"recovered"`
	Inexact   int64             `json:"inexact"`
}

func loadTorchExpected(t *testing.T) *torchExpected {
	b, err := os.ReadFile("../../testdata/weightdiff/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var e torchExpected
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return &e
}

func compareHex(t *testing.T, what, dir string, want map[string]string) {
	t.Helper()
	got, _ := readModel(t, dir)
	if len(got) != len(want) {
		t.Errorf("%s: %d tensors, want %d", what, len(got), len(want))
	}
	for name, w := range want {
		wb, _ := hex.DecodeString(w)
		g := got[name]
		if len(g) != len(wb) {
			t.Errorf("%s: %s has %d bytes, want %d", what, name, len(g), len(wb))
			continue
		}
		for i := 0; i < len(g); i += 4 {
			gv := math.Float32frombits(leU32(g[i:]))
			wv := math.Float32frombits(leU32(wb[i:]))
			if gv != wv {
				t.Errorf("%s: %s[%d] = %v, torch %v", what, name, i/4, gv, wv)
			}
		}
	}
}

func leU32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// make from .bin models gives torch's diff bit for bit (pad row included).
func TestMakeMatchesTorch(t *testing.T) {
	e := loadTorchExpected(t)
	tmp := t.TempDir()
	out := filepath.Join(tmp, "diff")
	s, err := Make(context.Background(), MakeOptions{Options: small, Raw: "../../testdata/weightdiff/raw", Tuned: "../../testdata/weightdiff/tuned", Out: out})
	if err != nil {
		t.Fatal(err)
	}
	compareHex(t, "diff", out, e.Diff)
	if s.Inexact != e.Inexact {
		t.Errorf("%d inexact elements, torch has %d", s.Inexact, e.Inexact)
	}
	if math.Abs(s.SumTorch-e.Sum) > 1e-6 || math.Abs(s.Sum-e.Sum) > 1e-5 {
		t.Errorf("sum %v / torch-style %v, torch %v", s.Sum, s.SumTorch, e.Sum)
	}
}

// recover applied to torch's .bin diff (no manifest, like Alpaca's) gives
// torch's recovered tensors bit for bit and passes the check value.
func TestRecoverTorchDiff(t *testing.T) {
	e := loadTorchExpected(t)
	tmp := t.TempDir()
	out := filepath.Join(tmp, "rec")
	_, err := Recover(context.Background(), RecoverOptions{Options: small, Raw: "../../testdata/weightdiff/raw", Diff: "../../testdata/weightdiff/diff", Out: out,
		ExpectSum: e.Sum, HaveExpect: true, SumTol: 1e-6})
	if err != nil {
		t.Fatal(err)
	}
	compareHex(t, "recovered", out, e.Recovered)
	m, _ := safetensors.OpenDir(out)
	defer m.Close()
	if ti, _ := m.Info("lm_head.weight"); ti.DType != safetensors.F32 || ti.Shape[0] != 41 {
		t.Errorf("lm_head %v %v", ti.DType, ti.Shape)
	}
}
