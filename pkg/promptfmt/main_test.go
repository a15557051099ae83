package promptfmt

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestMain lets the test binary act as the promptfmt command, so tests can
// run it as a real process (pipes, signals).
func TestMain(m *testing.M) {
	if os.Getenv("PROMPTFMT_AS_MAIN") == "1" {
		os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestClosedPipe: "promptfmt big.json | head -c 100" ends with exit 0 and
// nothing on stderr, not with SIGPIPE (141) or an error message.
func TestClosedPipe(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-j", "2")
	cmd.Env = append(os.Environ(), "PROMPTFMT_AS_MAIN=1")
	cmd.Stdin = bytes.NewReader(generate(20000))
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	io.ReadFull(out, make([]byte, 100))
	out.Close()
	err = cmd.Wait()
	if err != nil || errb.Len() != 0 {
		t.Fatalf("exit: %v, stderr %q", err, errb.String())
	}
}

type epipeWriter struct{}

func (epipeWriter) Write([]byte) (int, error) { return 0, syscall.EPIPE }

func TestBrokenPipeInProcess(t *testing.T) {
	var errb bytes.Buffer
	code := Main([]string{"-j", "1"}, strings.NewReader(string(generate(5000))), epipeWriter{}, &errb)
	if code != 0 || errb.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}
