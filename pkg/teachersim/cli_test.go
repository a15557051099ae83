package teachersim

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMainErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"instruction\":\"a\"}\n[1]\n"), 0o644)
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{}, 2, "--pool FILE is required"},
		{[]string{"--pool", poolPath, "--error-rate", "1.5"}, 2, "between 0 and 1"},
		{[]string{"--pool", poolPath, "--error-rate", "0.6", "--drop-rate", "0.6"}, 2, "at most 1"},
		{[]string{"--pool", bad}, 1, "bad.jsonl:2: record 2"},
		{[]string{"--pool", poolPath, "--addr", "127.0.0.1:notaport"}, 1, "teachersim: listen"},
	} {
		var o, e bytes.Buffer
		if code := Main(tc.args, nil, &o, &e); code != tc.code || !strings.Contains(e.String(), tc.stderr) {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, e.String())
		}
	}
}

const poolPath = "../../testdata/teachersim/pool.jsonl"

// TestMainServes starts the command on a free port, asks it once and stops
// it with SIGTERM (to itself; the handler is the command's).
func TestMainServes(t *testing.T) {
	addrFile := filepath.Join(t.TempDir(), "addr")
	var o, e bytes.Buffer
	done := make(chan int)
	go func() {
		done <- Main([]string{"--pool", poolPath, "--addr", "127.0.0.1:0", "--addr-file", addrFile}, nil, &o, &e)
	}()
	var addr []byte
	for i := 0; i < 200 && len(addr) == 0; i++ {
		time.Sleep(10 * time.Millisecond)
		addr, _ = os.ReadFile(addrFile)
	}
	if len(addr) == 0 {
		t.Fatal("no address written")
	}
	resp, err := http.Get("http://" + strings.TrimSpace(string(addr)) + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(e.String(), "teachersim: requests 0,") {
			t.Fatalf("exit %d: %s", code, e.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop on SIGTERM")
	}
}
