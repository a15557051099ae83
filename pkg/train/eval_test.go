package train

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/llama"
)

// TestEvalMatchesTrainingLoss: `trainer eval`'s loss equals the loss the
// training step computes (ForwardBackward, checked against PyTorch in
// pkg/llama's parity tests) over each example run alone, and the CLI prints
// it as one JSON line.
func TestEvalMatchesTrainingLoss(t *testing.T) {
	dir := t.TempDir()
	fp := makeModel(t, filepath.Join(dir, "base"), testVocab)
	writeStream(t, filepath.Join(dir, "h.bin"), testVocab, fp, 11, 7)
	d, err := OpenDataset(filepath.Join(dir, "h.bin"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := llama.Load(filepath.Join(dir, "base"))
	if err != nil {
		t.Fatal(err)
	}
	var alone []*llama.Batch
	for e := range d.Examples {
		alone = append(alone, BatchConfig{SeqLen: 64, MicroBatch: 1}.MicroBatches(d.Examples, []int{e})...)
	}
	refSum, refN, _ := gradsAndLoss(t, m, alone)
	want := refSum / float64(refN)

	code, out, errs := runCLI("eval", "--model", filepath.Join(dir, "base"), "--data", filepath.Join(dir, "h.bin"),
		"--seq-len", "32", "--micro-batch", "2", "--label", "base", "-j", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("want one JSON line, got %q", out)
	}
	var r EvalResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Targets != refN || r.Examples != len(d.Examples) || r.Label != "base" {
		t.Fatalf("counts: got %+v, want %d targets over %d examples", r, refN, len(d.Examples))
	}
	if e := math.Abs(r.Loss-want) / want; !(e <= 1e-6) {
		t.Fatalf("eval loss %v, training loss %v (rel err %v)", r.Loss, want, e)
	}
	if u := math.Log(testVocab); r.UniformLoss != u || !(r.Perplexity > 1) {
		t.Fatalf("uniform %v want %v; perplexity %v", r.UniformLoss, u, r.Perplexity)
	}

	// usage errors
	if code, _, _ := runCLI("eval", "--data", filepath.Join(dir, "h.bin")); code != 2 {
		t.Fatalf("no --model: exit %d, want 2", code)
	}
	if code, _, e := runCLI("eval", "--model", filepath.Join(dir, "base"), "--data", filepath.Join(dir, "h.bin"), "--seq-len", "100000"); code != 2 {
		t.Fatalf("--seq-len past the model: exit %d, want 2 (%s)", code, e)
	}
}
