package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// copyDir copies a flat checkpoint directory.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
	}
}

// editState rewrites one field path of dir/trainer_state.json to v.
func editState(t *testing.T, dir string, v any, path ...string) {
	t.Helper()
	p := filepath.Join(dir, StateFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	cur := m
	for _, k := range path[:len(path)-1] {
		cur = cur[k].(map[string]any)
	}
	cur[path[len(path)-1]] = v
	b, _ = json.Marshal(m)
	os.WriteFile(p, b, 0o644)
}

// A hostile or corrupt trainer_state.json is refused with one line and
// exit code 1: no panic (index out of range), no "final" model written
// after zero steps, no optimizer file read from outside the checkpoint.
func TestResumeRejectsHostileState(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	fp := makeModel(t, base, testVocab)
	data := filepath.Join(dir, "tokens.bin")
	writeStream(t, data, testVocab, fp, 12, 1)
	run := filepath.Join(dir, "run")
	if code, _, e := runCLI("--model", base, "--data", data, "--out", run, "--max-steps", "4", "--save-every", "2", "--quiet", "-j", "1"); code != 0 {
		t.Fatalf("setup: %s", e)
	}
	ck := filepath.Join(run, "checkpoint-2")
	// An optimizer file outside the checkpoint that would load fine.
	os.WriteFile(filepath.Join(dir, "outside.safetensors"), must(os.ReadFile(filepath.Join(ck, OptimizerFile))), 0o644)
	cases := []struct {
		name string
		v    any
		path []string
		want string
	}{
		{"batch huge", 1e9, []string{"batch_in_epoch"}, "batch_in_epoch"},
		{"batch negative", -1, []string{"batch_in_epoch"}, "batch_in_epoch -1"},
		{"step huge", 1e12, []string{"step"}, "step 1000000000000"},
		{"step negative", -3, []string{"step"}, "step -3"},
		{"epoch negative", -1, []string{"epoch"}, "epoch -1"},
		{"epoch past step", 3, []string{"epoch"}, "epoch 3"},
		{"optimizer traversal", "../../outside.safetensors", []string{"optimizer", "file"}, "optimizer.file"},
		{"optimizer absolute", filepath.Join(dir, "outside.safetensors"), []string{"optimizer", "file"}, "optimizer.file"},
		{"optimizer step", 1e6, []string{"optimizer", "step"}, "optimizer.step"},
		{"threads", 1e9, []string{"threads"}, "threads"},
		{"elapsed", -1, []string{"elapsed"}, "elapsed"},
		{"micro batch", 1 << 40, []string{"config", "batch", "micro_batch"}, "micro_batch"},
		{"epochs", 1e12, []string{"config", "epochs"}, "epochs"},
		{"warmup ratio", 7, []string{"config", "warmup_ratio"}, "warmup ratio"},
		{"total steps", 0, []string{"total_steps"}, "total_steps"},
		{"finished lie", true, []string{"finished"}, "finished"},
		{"format", "x", []string{"format"}, "not a trainer state"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := filepath.Join(dir, "ck-"+strings.ReplaceAll(c.name, " ", "-"))
			copyDir(t, ck, d)
			editState(t, d, c.v, c.path...)
			out := filepath.Join(dir, "out-"+strings.ReplaceAll(c.name, " ", "-"))
			code, _, stderr := runCLI("--resume", d, "--data", data, "--out", out, "--quiet")
			if code != 1 || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
				t.Fatalf("exit %d, want 1 and a line with %q; stderr:\n%s", code, c.want, stderr)
			}
			if _, err := os.Stat(filepath.Join(out, "model.safetensors")); err == nil {
				t.Fatalf("a model was written")
			}
		})
	}
	// Not JSON, too big, a FIFO.
	d := filepath.Join(dir, "ck-junk")
	copyDir(t, ck, d)
	os.WriteFile(filepath.Join(d, StateFile), []byte(`{"format":`), 0o644)
	if code, _, e := runCLI("--resume", d, "--data", data, "--out", d+"o"); code != 1 || !strings.Contains(e, StateFile) {
		t.Fatalf("junk: %d %s", code, e)
	}
	os.WriteFile(filepath.Join(d, StateFile), make([]byte, maxStateBytes+1), 0o644)
	if code, _, e := runCLI("--resume", d, "--data", data, "--out", d+"o"); code != 1 || !strings.Contains(e, "at most") {
		t.Fatalf("big: %d %s", code, e)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A resumed run keeps writing checkpoints as --save-every said (a second
// crash must not lose everything since the first), and cleans what a
// killed run left in OUT.
func TestResumeKeepsSavingAndCleans(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	fp := makeModel(t, base, testVocab)
	data := filepath.Join(dir, "tokens.bin")
	writeStream(t, data, testVocab, fp, 12, 1)
	run := filepath.Join(dir, "run")
	if code, _, e := runCLI("--model", base, "--data", data, "--out", run, "--max-steps", "8", "--save-every", "2", "--save-limit", "3", "--quiet", "-j", "1"); code != 0 {
		t.Fatalf("setup: %s", e)
	}
	ents, _ := os.ReadDir(run)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	// checkpoints 4, 6 and the run's end, 8, are kept
	if _, err := os.Stat(filepath.Join(run, "checkpoint-2")); err == nil {
		t.Fatalf("--save-limit 3 kept checkpoint-2: %v", names)
	}
	for _, n := range names {
		if strings.HasPrefix(n, ".") {
			t.Fatalf("hidden leftover %s in %v", n, names)
		}
	}
	// The crash: everything after checkpoint-4 is gone; leftovers of a
	// killed save are there.
	for _, n := range names {
		if n != "checkpoint-4" {
			os.RemoveAll(filepath.Join(run, n))
		}
	}
	old := time.Now().Add(-time.Hour)
	for _, n := range []string{".checkpoint-6.tmp-123", ".final.tmp-456", ".checkpoint-2.tmp-pruned"} {
		p := filepath.Join(run, n)
		os.MkdirAll(filepath.Join(p, "sub"), 0o755)
		os.WriteFile(filepath.Join(p, "sub", "model.safetensors"), []byte("torn"), 0o644)
		os.Chtimes(p, old, old)
	}
	st, err := ReadState(filepath.Join(run, "checkpoint-4"))
	if err != nil || st.Saving.Every != 2 || st.Saving.Limit != 3 {
		t.Fatalf("checkpoint state saving %+v, %v", st, err)
	}
	// Stop the resumed run before its end: --max-steps cannot change, so
	// cut the final state afterwards and look at the checkpoints.
	if code, _, e := runCLI("--resume", run, "--data", data, "--quiet"); code != 0 {
		t.Fatalf("resume: %s", e)
	}
	if _, err := os.Stat(filepath.Join(run, "checkpoint-6", StateFile)); err != nil {
		t.Fatalf("the resumed run wrote no checkpoint-6 (--save-every forgotten): %v", err)
	}
	ents, _ = os.ReadDir(run)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("leftover %s not cleaned", e.Name())
		}
	}
}

// NaN and infinite flag values are usage errors, before any work.
func TestNonFiniteFlags(t *testing.T) {
	for _, fl := range []string{"--warmup-ratio", "--weight-decay", "--adam-beta1", "--adam-beta2", "--adam-eps", "--max-grad-norm", "--lr"} {
		for _, v := range []string{"NaN", "Inf", "-Inf"} {
			code, _, e := runCLI("--model", "nowhere", "--out", t.TempDir(), fl, v)
			if code != 2 {
				t.Errorf("%s %s: exit %d (%s)", fl, v, code, e)
			}
		}
	}
}

// A hostile config.json in the model directory: one line, exit 1, before
// anything is allocated from it (it crashed with "fatal error: out of
// memory" or grew without end).
func TestHostileModelConfig(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	fp := makeModel(t, base, testVocab)
	data := filepath.Join(dir, "tokens.bin")
	writeStream(t, data, testVocab, fp, 4, 1)
	for _, c := range []struct {
		key  string
		v    any
		want string
	}{
		{"vocab_size", 1 << 31, "vocab_size 2147483648 is above the limit"},
		{"num_hidden_layers", 1e9, "num_hidden_layers 1000000000 is above the limit"},
		{"num_hidden_layers", 60, "config.json implies"}, // within the limits, but not what the weights hold
	} {
		m := filepath.Join(dir, "m-"+c.key+fmt.Sprint(c.v))
		copyDir(t, base, m)
		p := filepath.Join(m, "config.json")
		b, _ := os.ReadFile(p)
		var cfg map[string]any
		json.Unmarshal(b, &cfg)
		cfg[c.key] = c.v
		b, _ = json.Marshal(cfg)
		os.WriteFile(p, b, 0o644)
		code, _, stderr := runCLI("--model", m, "--data", data, "--out", m+"-out", "--max-steps", "1", "--quiet")
		if code != 1 || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%s %v: exit %d: %s", c.key, c.v, code, stderr)
		}
	}
}

// The data position must exist in the data (checked in Restore, against
// the epochs and batches this data set has).
func TestResumeDataPosition(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	fp := makeModel(t, base, testVocab)
	data := filepath.Join(dir, "tokens.bin")
	writeStream(t, data, testVocab, fp, 12, 1)
	run := filepath.Join(dir, "run")
	// 12 examples, 4 per step: 3 batches per epoch, 6 steps.
	if code, _, e := runCLI("--model", base, "--data", data, "--out", run, "--epochs", "2", "--batch-size", "4", "--save-every", "2", "--quiet", "-j", "1"); code != 0 {
		t.Fatalf("setup: %s", e)
	}
	ck := filepath.Join(run, "checkpoint-4")
	for _, c := range []struct {
		field string
		v     any
		want  string
	}{
		{"epoch", 2, "epoch 2 is past the run's 2 epochs"},
		{"batch_in_epoch", 3, "batch_in_epoch 3, but epoch 1 has 3 batches"},
	} {
		d := filepath.Join(dir, "ck-"+c.field)
		copyDir(t, ck, d)
		editState(t, d, c.v, c.field)
		code, _, stderr := runCLI("--resume", d, "--data", data, "--out", d+"-out", "--quiet")
		if code != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d: %s", c.field, code, stderr)
		}
	}
	// The untouched checkpoint resumes.
	if code, _, e := runCLI("--resume", ck, "--data", data, "--out", filepath.Join(dir, "ok"), "--quiet"); code != 0 {
		t.Fatalf("resume: %s", e)
	}
}
