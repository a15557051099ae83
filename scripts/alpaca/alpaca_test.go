// Package alpaca holds the end-to-end test of `make alpaca`: the real
// Makefile recipe, with the same targets and tiny sizes, including a run
// killed in the training stage and continued by a second `make alpaca`.
package alpaca

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alpaca-go/alpaca/internal/testutil"
)

// tiny are the Make variables of the CI-sized run: the teacher path
// (teachersim on 127.0.0.1 with the built-in pool), a 2-layer model.
func tiny(root, run string) []string {
	return []string{
		"RUN=" + run,
		"DATA=",
		"SEEDS=testdata/seedgen/seeds.jsonl",
		"TEACHER_POOL=testdata/teachersim/pool.jsonl",
		"NUM_INSTRUCTIONS=30",
		"HELDOUT_EVERY=5",
		"VOCAB=400",
		"HIDDEN=32", "LAYERS=2", "HEADS=4", "KV_HEADS=2", "INTERMEDIATE=64",
		"SEQ_LEN=256", "BATCH=4", "MICRO=2", "LR=3e-3", "WARMUP=2",
		"MAX_STEPS=300", "SAVE_EVERY=10",
		"ASK=2", "MAX_NEW=8",
	}
}

func TestMakeAlpacaTinyWithResume(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the end-to-end make alpaca run")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed: skipping the make alpaca test")
	}
	root := testutil.RepoRoot()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	if out, err := runMake(root, nil, "build", "BIN="+bin); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	run := filepath.Join(tmp, "run")
	vars := append(tiny(root, run), "BIN="+bin)

	// First run: killed (SIGKILL, make and everything under it) as soon as
	// the training stage has written a checkpoint.
	cmd := exec.Command("make", append([]string{"--no-print-directory", "alpaca"}, vars...)...)
	cmd.Dir = root
	var first bytes.Buffer
	cmd.Stdout, cmd.Stderr = &first, &first
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(5 * time.Minute)
	killed := false
wait:
	for {
		select {
		case err := <-done:
			t.Fatalf("make alpaca ended (%v) before a checkpoint was seen; output:\n%s", err, first.String())
		case <-deadline:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Fatalf("no checkpoint after 5 minutes; output:\n%s", first.String())
		case <-time.After(5 * time.Millisecond):
			if m, _ := filepath.Glob(filepath.Join(run, "tuned", "checkpoint-*")); len(m) > 0 {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				killed = true
				<-done
				break wait
			}
		}
	}
	if !killed {
		t.Fatal("not killed")
	}
	if _, err := os.Stat(filepath.Join(run, "tuned", "config.json")); err == nil {
		t.Fatalf("training finished before the kill; the test needs a longer training stage")
	}
	for _, f := range []string{"dedup.jsonl", "train.bin", "tokenizer.model", "base/config.json"} {
		if _, err := os.Stat(filepath.Join(run, f)); err != nil {
			t.Fatalf("after the first run: %v\noutput:\n%s", err, first.String())
		}
	}

	// Second run: the finished stages are skipped, training resumes.
	out, err := runMake(root, nil, append([]string{"alpaca"}, vars...)...)
	if err != nil {
		t.Fatalf("second make alpaca: %v\n%s", err, out)
	}
	for _, stage := range []string{"==> data", "==> dedup", "==> tokenizer", "==> tokenize-train", "==> init"} {
		if strings.Contains(out, stage+"\n") {
			t.Errorf("the second run redid a finished stage (%s):\n%s", stage, out)
		}
	}
	if !strings.Contains(out, "resuming from "+filepath.Join(run, "tuned", "checkpoint-")) {
		t.Errorf("the second run did not resume from the checkpoint:\n%s", out)
	}

	// every step once in the metrics, and the loss went down
	steps := map[int]int{}
	var losses []float64
	eachJSON(t, filepath.Join(run, "metrics.jsonl"), func(m map[string]any) {
		steps[int(m["step"].(float64))]++
		losses = append(losses, m["loss"].(float64))
	})
	for s := 1; s <= 300; s++ {
		if steps[s] != 1 {
			t.Fatalf("metrics: step %d appears %d times", s, steps[s])
		}
	}
	if len(steps) != 300 {
		t.Fatalf("metrics: %d distinct steps, want 300", len(steps))
	}
	if !(mean(losses[len(losses)-20:]) < mean(losses[:5])) {
		t.Errorf("loss did not fall: first %v, last %v", losses[:5], losses[len(losses)-20:])
	}

	// the held-out loss of the tuned model is below the base's and the uniform baseline
	var evals []map[string]any
	eachJSON(t, filepath.Join(run, "eval.json"), func(m map[string]any) { evals = append(evals, m) })
	if len(evals) != 2 || evals[0]["label"] != "base" || evals[1]["label"] != "tuned" {
		t.Fatalf("eval.json: %v", evals)
	}
	base, tuned, uniform := evals[0]["loss"].(float64), evals[1]["loss"].(float64), evals[1]["uniform_loss"].(float64)
	if !(tuned < base && tuned < uniform) {
		t.Errorf("held-out loss: base %v, tuned %v, uniform %v", base, tuned, uniform)
	}

	// answers, the diff round trip and the summary
	n := 0
	eachJSON(t, filepath.Join(run, "answers.jsonl"), func(m map[string]any) {
		n++
		if _, ok := m["completion"].(string); !ok {
			t.Errorf("answer without a completion: %v", m)
		}
		if _, ok := m["output"].(string); !ok {
			t.Errorf("answer without the reference output: %v", m)
		}
	})
	if n != 2 {
		t.Errorf("answers.jsonl has %d records, want 2", n)
	}
	sum, err := os.ReadFile(filepath.Join(run, "summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| train |", "Held-out loss", "tuned", "Answers to held-out", "Weight diff"} {
		if !bytes.Contains(sum, []byte(want)) {
			t.Errorf("summary.md lacks %q:\n%s", want, sum)
		}
	}
	if _, err := os.Stat(filepath.Join(run, "recovered", "config.json")); err != nil {
		t.Errorf("weightdiff recover: %v", err)
	}

	// A third run has nothing left to do.
	out, err = runMake(root, nil, append([]string{"alpaca"}, vars...)...)
	if err != nil {
		t.Fatalf("third make alpaca: %v\n%s", err, out)
	}
	if strings.Contains(out, "==> ") {
		t.Errorf("the third run redid stages:\n%s", out)
	}
}

func runMake(dir string, env []string, args ...string) (string, error) {
	cmd := exec.Command("make", append([]string{"--no-print-directory"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func eachJSON(t *testing.T, path string, f func(map[string]any)) {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for line := 1; sc.Scan(); line++ {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(fmt.Errorf("%s:%d: %v", path, line, err))
		}
		f(m)
	}
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
