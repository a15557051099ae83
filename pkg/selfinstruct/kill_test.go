package selfinstruct_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestResumeAfterKill builds the seedgen binary, kills it with SIGKILL at
// several points of a run against a slow, faulty simulator, resumes each
// time, and compares the result with an uninterrupted run: no record lost,
// none repeated, same bytes.
func TestResumeAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary and kills it; skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "seedgen")
	build := exec.Command("go", "build", "-o", bin, "github.com/alpaca-go/alpaca/cmd/seedgen")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := faults
	cfg.Latency = 3 * time.Millisecond
	_, url := startSim(t, cfg)
	args := func(out, cache string) []string {
		return genArgs(url, "-n", "50", "--request-batch", "1", "--concurrency", "4", "--cache", filepath.Join(dir, cache), "--quiet", "--resume", out)
	}

	want := filepath.Join(dir, "want.jsonl")
	if code, _, stderr := runMain(args(want, "cache-want")...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	wantB, _ := os.ReadFile(want)

	// A fresh cache for the killed runs, so that they really talk to the
	// teacher; the uninterrupted run's cache is left alone.
	out := filepath.Join(dir, "killed.jsonl")
	kills := 0
	for _, atLines := range []int{1, 8, 20, 35} {
		cmd := exec.Command(bin, args(out, "cache")...)
		cmd.Env = append(os.Environ(), "OPENAI_API_KEY=unused")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		killed := false
	wait:
		for {
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("run ended with %v: %s", err, stderr.String())
				}
				break wait
			case <-time.After(200 * time.Microsecond):
				b, _ := os.ReadFile(out)
				if bytes.Count(b, []byte("\n")) >= atLines {
					cmd.Process.Signal(syscall.SIGKILL)
					<-exited
					killed = true
					break wait
				}
			}
		}
		if killed {
			kills++
		}
	}
	if kills == 0 {
		t.Fatal("the run was never killed; the test proves nothing")
	}
	cmd := exec.Command(bin, args(out, "cache")...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("final resume: %v\n%s", err, b)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, wantB) {
		t.Fatalf("after %d kills the output differs from the uninterrupted run (%d vs %d bytes)", kills, len(got), len(wantB))
	}
	t.Logf("%d kills, %d bytes identical", kills, len(got))
}
