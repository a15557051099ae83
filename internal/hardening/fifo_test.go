package hardening

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/tokenize"
)

// A FIFO where a model file is expected is an error at once, not a hang
// (tokenize --model; the shard and index files are tested in
// pkg/safetensors).
func TestModelFileFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "tok.model")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip(err)
	}
	code, stderr := main(tokenize.Main, `{"prompt":"a","completion":"b"}`+"\n", "--model", fifo)
	if code != 1 || !strings.Contains(stderr, "not a regular file") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatal("the FIFO is gone")
	}
}
