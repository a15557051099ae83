package weightdiff

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/alpaca-go/alpaca/pkg/safetensors"
	"github.com/alpaca-go/alpaca/pkg/torchbin"
)

// Source is a model's tensors, read lazily: safetensors (single or sharded)
// or a PyTorch .bin checkpoint (single or sharded).
type Source interface {
	Names() []string
	Info(name string) (safetensors.TensorInfo, bool)
	// Bytes is the tensor's row-major little-endian data, usually a
	// read-only slice of a memory-mapped file.
	Bytes(name string) ([]byte, error)
	// Release drops the pages under a slice returned by Bytes from the
	// resident set (the data stays readable).
	Release(b []byte)
	Close() error
}

// OpenModel opens the weights of a model directory (or a single .safetensors
// or .bin file). Safetensors are preferred when a directory has both.
func OpenModel(path string) (Source, string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, "", err
	}
	if !st.IsDir() {
		if filepath.Ext(path) == ".bin" || filepath.Ext(path) == ".pt" || filepath.Ext(path) == ".pth" {
			m, err := torchbin.OpenDir(path)
			return m, "bin", err
		}
		m, err := safetensors.OpenDir(path)
		return m, "safetensors", err
	}
	has := func(pattern string) bool {
		m, _ := filepath.Glob(filepath.Join(path, pattern))
		return len(m) > 0
	}
	switch {
	case has(safetensors.IndexName), has("*.safetensors"):
		m, err := safetensors.OpenDir(path)
		return m, "safetensors", err
	case has(torchbin.IndexName), has("*.bin"):
		m, err := torchbin.OpenDir(path)
		return m, "bin", err
	}
	return nil, "", fmt.Errorf("%s: no model weights (*.safetensors, %s, pytorch_model.bin)", path, torchbin.IndexName)
}
