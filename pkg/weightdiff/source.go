package weightdiff

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/safetensors"
	"github.com/alpaca-go/alpaca/pkg/torchbin"
	"github.com/alpaca-go/alpaca/pkg/xio"
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

// invFreqSuffix names the rotary-embedding buffers old Hugging Face LLaMA
// checkpoints (and Alpaca's published diff) carry and newer conversions omit.
const invFreqSuffix = "rotary_emb.inv_freq"

// synthSource adds computed tensors to a Source.
type synthSource struct {
	Source
	extra map[string][]byte
	names []string
}

func (s *synthSource) Names() []string { return append(s.Source.Names(), s.names...) }

func (s *synthSource) Info(name string) (safetensors.TensorInfo, bool) {
	if b, ok := s.extra[name]; ok {
		return safetensors.TensorInfo{Name: name, DType: safetensors.F32, Shape: []int64{int64(len(b) / 4)}}, true
	}
	return s.Source.Info(name)
}

func (s *synthSource) Bytes(name string) ([]byte, error) {
	if b, ok := s.extra[name]; ok {
		return b, nil
	}
	return s.Source.Bytes(name)
}

// withRotaryBuffers returns raw plus the rotary inv_freq buffers that want
// (name → shape) lists and raw lacks, computed as transformers' LLaMA does:
// 1 / theta^(arange(0, dim, 2) / dim) in float32, theta from config.json's
// rope_theta (default 10000). It returns raw itself when nothing is missing.
func withRotaryBuffers(raw Source, want map[string][]int64, configDirs ...string) (Source, []string) {
	var missing []string
	for n, shape := range want {
		if _, ok := raw.Info(n); !ok && strings.HasSuffix(n, invFreqSuffix) && len(shape) == 1 && shape[0] > 0 && shape[0] < 1<<20 {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return raw, nil
	}
	sort.Strings(missing)
	theta := 10000.0
	for _, d := range configDirs {
		if b, err := xio.ReadRegular(filepath.Join(d, "config.json"), 1<<20); err == nil {
			var cfg struct {
				RopeTheta *float64 `json:"rope_theta"`
			}
			if json.Unmarshal(b, &cfg) == nil && cfg.RopeTheta != nil && *cfg.RopeTheta > 0 {
				theta = *cfg.RopeTheta
				break
			}
		}
	}
	s := &synthSource{Source: raw, extra: map[string][]byte{}, names: missing}
	for _, n := range missing {
		half := want[n][0]
		dim := float32(2 * half)
		v := make([]float32, half)
		for i := range v {
			e := float32(2*i) / dim
			v[i] = 1 / float32(math.Pow(theta, float64(e)))
		}
		b := make([]byte, 4*half)
		encodeInto(b, safetensors.F32, v)
		s.extra[n] = b
	}
	return s, missing
}

// Prefetch passes through to the wrapped source.
func (s *synthSource) Prefetch(b []byte) {
	if p := prefetcher(s.Source); p != nil {
		p(b)
	}
}
