package train

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/llama"
)

// The final model directory holds only the model; a run stopped early
// names its newest checkpoint when used as a model, and `trainer finalize`
// turns that checkpoint into the model (bit-identical weights), after which
// the run can still be resumed.
func TestFinalDirAndFinalize(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	fp := makeModel(t, base, testVocab)
	data := filepath.Join(dir, "tokens.bin")
	writeStream(t, data, testVocab, fp, 24, 3)
	run := filepath.Join(dir, "run")
	args := []string{"--model", base, "--data", data, "--out", run, "--max-steps", "6", "--batch-size", "4",
		"--micro-batch", "2", "--seq-len", "24", "--save-every", "2", "--quiet", "-j", "1"}
	if code, _, e := runCLI(args...); code != 0 {
		t.Fatalf("train: %s", e)
	}
	for _, want := range []string{"config.json", "model.safetensors", "tokenizer.model", "generation_config.json", "checkpoint-6"} {
		if _, err := os.Stat(filepath.Join(run, want)); err != nil {
			t.Errorf("final dir: %v", err)
		}
	}
	for _, not := range []string{OptimizerFile, StateFile} {
		if _, err := os.Stat(filepath.Join(run, not)); err == nil {
			t.Errorf("the final model directory holds %s", not)
		}
	}
	// the run's end is a finished checkpoint: resuming does nothing
	if st, err := ReadState(filepath.Join(run, "checkpoint-6")); err != nil || !st.Finished {
		t.Fatalf("end checkpoint: %+v %v", st, err)
	}
	if code, _, e := runCLI("--resume", run, "--data", data, "--quiet"); code != 0 {
		t.Fatalf("resume of a finished run: %d %s", code, e)
	}

	// A run killed after checkpoint-4: no final model.
	for _, n := range []string{"config.json", "model.safetensors", "tokenizer.model", "generation_config.json", "checkpoint-6"} {
		os.RemoveAll(filepath.Join(run, n))
	}
	_, err := llama.LoadWeights(run)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(run, "checkpoint-4")) || !strings.Contains(err.Error(), "trainer finalize") {
		t.Fatalf("loading a run without a final model: %v", err)
	}
	if code, _, e := runCLI("eval", "--model", run, "--data", data); code != 1 || !strings.Contains(e, "checkpoint-4") {
		t.Fatalf("trainer eval on the run dir: %d %s", code, e)
	}
	if code, _, e := runCLI("finalize", run, "--quiet"); code != 0 {
		t.Fatalf("finalize: %s", e)
	}
	a, _ := os.ReadFile(filepath.Join(run, "model.safetensors"))
	b, _ := os.ReadFile(filepath.Join(run, "checkpoint-4", "model.safetensors"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("finalized weights differ from checkpoint-4's (%d, %d bytes)", len(a), len(b))
	}
	if _, err := llama.LoadWeights(run); err != nil {
		t.Fatal(err)
	}
	if code, _, e := runCLI("finalize", run); code != 2 || !strings.Contains(e, "already holds a final model") {
		t.Fatalf("finalize twice: %d %s", code, e)
	}
	if code, _, e := runCLI("finalize", filepath.Join(run, "checkpoint-4")); code != 2 || !strings.Contains(e, "--out") {
		t.Fatalf("finalize of a checkpoint without --out: %d %s", code, e)
	}
	// bf16 into another directory
	half := filepath.Join(dir, "half")
	if code, _, e := runCLI("finalize", filepath.Join(run, "checkpoint-4"), "--out", half, "--dtype", "bf16", "--quiet"); code != 0 {
		t.Fatalf("finalize --dtype bf16: %s", e)
	}
	if m, err := llama.LoadWeights(half); err != nil || m.Config.VocabSize != testVocab {
		t.Fatalf("bf16 model: %v", err)
	}
	// the run still continues from checkpoint-4 and ends with its own model
	if code, _, e := runCLI("--resume", run, "--data", data, "--quiet"); code != 0 {
		t.Fatalf("resume after finalize: %s", e)
	}
	if st, err := ReadState(filepath.Join(run, "checkpoint-6")); err != nil || !st.Finished {
		t.Fatalf("resumed end checkpoint: %v", err)
	}
}
