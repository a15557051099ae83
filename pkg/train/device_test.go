package train

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/alpaca-go/alpaca/pkg/backend/cpu"
	"github.com/alpaca-go/alpaca/pkg/backend/cuda"
)

// failingDevice is the CPU backend whose cross-entropy fails the way a CUDA
// operation does (a *cuda.Error panic).
type failingDevice struct{ *cpu.CPU }

func (failingDevice) CrossEntropy(_, _, _ backend.Buffer, _, _ int, _ float32) (float64, int) {
	panic(&cuda.Error{Msg: "an illegal memory access was encountered (cudaErrorIllegalAddress)"})
}

func init() {
	backend.Register("failing-device-test", func(o backend.Options) (backend.Backend, error) {
		return failingDevice{cpu.New(o.Threads)}, nil
	})
}

// A failed device operation stops the trainer with one line and exit code
// 1, not a stack trace.
func TestDeviceErrorIsOneLine(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	fp := makeModel(t, base, testVocab)
	data := filepath.Join(dir, "d.bin")
	writeStream(t, data, testVocab, fp, 4, 1)
	code, _, stderr := runCLI("--model", base, "--data", data, "--out", filepath.Join(dir, "o"), "--max-steps", "1", "--quiet", "--device", "failing-device-test")
	if code != 1 || !strings.Contains(stderr, "illegal memory access") || !strings.Contains(stderr, "the run stopped") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if strings.Count(strings.TrimSpace(stderr), "\n") > 0 || strings.Contains(stderr, "goroutine") {
		t.Errorf("not one line: %q", stderr)
	}
}
