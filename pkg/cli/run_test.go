package cli

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/alpaca-go/alpaca/internal/testutil"
)

// A panic planted in a command's Main becomes one line and exit code 1.
func TestRunWithPanic(t *testing.T) {
	t.Setenv(DebugEnv, "")
	var stdout, stderr bytes.Buffer
	boom := func(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		var s []int
		_ = s[len(args)+5] // index out of range, as a bug on hostile input would
		return 0
	}
	code := RunWith("demo", boom, []string{"x"}, strings.NewReader(""), &stdout, &stderr)
	if code != ExitFailure {
		t.Fatalf("exit code %d, want %d", code, ExitFailure)
	}
	lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
	if !strings.HasPrefix(lines[0], "demo: internal error: runtime error: index out of range") {
		t.Fatalf("first line %q", lines[0])
	}
	if strings.Contains(stderr.String(), "goroutine ") || strings.Contains(stderr.String(), ".go:") {
		t.Fatalf("a stack trace reached the user:\n%s", stderr.String())
	}
	if stdout.Len() != 0 {
		t.Fatalf("stdout %q", stdout.String())
	}
}

func TestRunWithPanicDebug(t *testing.T) {
	t.Setenv(DebugEnv, "1")
	var stderr bytes.Buffer
	code := RunWith("demo", func([]string, io.Reader, io.Writer, io.Writer) int { panic("planted") }, nil, nil, io.Discard, &stderr)
	if code != ExitFailure || !strings.HasPrefix(stderr.String(), "demo: internal error: planted\n") || !strings.Contains(stderr.String(), "goroutine ") {
		t.Fatalf("code %d, stderr:\n%s", code, stderr.String())
	}
}

func TestRunWithPassesCode(t *testing.T) {
	for _, want := range []int{0, 1, 2} {
		got := RunWith("demo", func([]string, io.Reader, io.Writer, io.Writer) int { return want }, nil, nil, io.Discard, io.Discard)
		if got != want {
			t.Fatalf("code %d, want %d", got, want)
		}
	}
}

// Every binary goes through cli.Run, so none can show a Go stack trace for
// a panic in its Main.
func TestEveryMainUsesRun(t *testing.T) {
	root := testutil.RepoRoot()
	mains, _ := filepath.Glob(filepath.Join(root, "cmd", "*", "main.go"))
	if len(mains) == 0 {
		t.Fatal("no cmd/*/main.go found")
	}
	re := regexp.MustCompile(`os\.Exit\(cli\.Run\("([a-z]+)", [a-z]+\.Main\)\)`)
	for _, m := range mains {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		sm := re.FindSubmatch(b)
		if sm == nil {
			t.Errorf("%s does not call os.Exit(cli.Run(NAME, pkg.Main))", m)
			continue
		}
		if name := filepath.Base(filepath.Dir(m)); string(sm[1]) != name {
			t.Errorf("%s: cli.Run name %q, want %q", m, sm[1], name)
		}
	}
}

// NaN and infinite float flag values are usage errors for every command.
func TestParseRefusesNonFinite(t *testing.T) {
	for _, v := range []string{"NaN", "nan", "Inf", "-Inf", "+inf", "1e400"} {
		c := NewCommand("demo", "", "", "")
		var th float64
		c.Flags.Float64Var(&th, "threshold", 0.7, "")
		_, err := c.Parse([]string{"--threshold", v})
		var ue *UsageError
		if v == "1e400" {
			// strconv: out of range is an error already (a usage error).
			if !errors.As(err, &ue) {
				t.Errorf("%s: %v", v, err)
			}
			continue
		}
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--threshold") || !strings.Contains(err.Error(), "finite") {
			t.Errorf("%s: got %v", v, err)
		}
	}
	c := NewCommand("demo", "", "", "")
	var th float64
	c.Flags.Float64Var(&th, "threshold", 0.7, "")
	if _, err := c.Parse([]string{"--threshold", "0.5"}); err != nil || th != 0.5 {
		t.Fatalf("%v %v", err, th)
	}
}

// A panic in a worker goroutine under Guard: one line, exit code 1 (the
// process is a re-run of this test binary).
func TestGuardInGoroutine(t *testing.T) {
	if os.Getenv("CLI_GUARD_CHILD") != "" {
		done := make(chan struct{})
		go func() {
			defer Guard()
			var m map[string]int
			m["x"] = 1 // assignment to entry in nil map
			close(done)
		}()
		<-done
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGuardInGoroutine$")
	cmd.Env = append(os.Environ(), "CLI_GUARD_CHILD=1", DebugEnv+"=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != ExitFailure {
		t.Fatalf("exit: %v\n%s", err, stderr.String())
	}
	s := stderr.String()
	if !strings.Contains(s, ": internal error: assignment to entry in nil map\n") || strings.Contains(s, "goroutine ") {
		t.Fatalf("stderr:\n%s", s)
	}
}

// The worker goroutines of the stream stages are guarded: a panic in one
// is one line and exit code 1 like a panic in Main.
func TestWorkersGuarded(t *testing.T) {
	root := testutil.RepoRoot()
	files := []string{"pkg/tokenize/parallel.go", "pkg/promptfmt/stream.go", "pkg/selfinstruct/generate.go", "pkg/weightdiff/pipeline.go", "pkg/rougefilter/cli.go"}
	goLine := regexp.MustCompile(`^\s*go func\(.*\) \{$`)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		n := 0
		for i, l := range lines {
			if goLine.MatchString(l) {
				n++
				if i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != "defer cli.Guard()" {
					t.Errorf("%s:%d: goroutine without defer cli.Guard()", f, i+1)
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: no goroutine found (moved? update this list)", f)
		}
	}
}
