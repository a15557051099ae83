package weightdiff

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/safetensors"
	"github.com/alpaca-go/alpaca/pkg/xio"
)

// ManifestName is the manifest file in a diff directory.
const ManifestName = "weightdiff.json"

// XorName is the data file of an xor-mode diff.
const XorName = "diff.xor"

// ManifestFormat identifies our manifests.
const ManifestFormat = "alpaca-go/weightdiff"

// Manifest describes a diff (see docs/formats.md).
type Manifest struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	Mode    string `json:"mode"` // "diff" or "xor"
	// DiffDType is the stored dtype of the differences (mode diff).
	DiffDType string `json:"diff_dtype,omitempty"`
	// PadRows is the number of rows Alpaca's pad-token resize adds to the
	// raw model's Resized tensors before the difference.
	PadRows int64    `json:"pad_rows,omitempty"`
	Resized []string `json:"resized,omitempty"`
	// Sum is the sum of every float parameter of the recovered model
	// (float64 accumulation); SumTorch mimics the original's float32
	// sum(t.sum() for t in state_dict) in state-dict order.
	Sum      float64 `json:"sum"`
	SumTorch float64 `json:"sum_torch"`
	// ChunkBytes is the uncompressed size of each zstd frame (mode xor).
	ChunkBytes int64            `json:"chunk_bytes,omitempty"`
	Tensors    []ManifestTensor `json:"tensors"`
}

// ManifestTensor is one tensor of the tuned model.
type ManifestTensor struct {
	Name  string  `json:"name"`
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
	// SHA256 is the hash of the tuned tensor's bytes.
	SHA256 string `json:"sha256"`
	// RecoveredSHA256 is set when arithmetic recovery cannot give the tuned
	// bytes back exactly (float32 rounding of raw + (tuned - raw)): it is
	// the hash recover will produce, and Inexact counts the elements that
	// differ from the tuned ones.
	RecoveredSHA256 string `json:"recovered_sha256,omitempty"`
	Inexact         int64  `json:"inexact,omitempty"`
	// Offset and Frames locate the tensor's zstd frames in diff.xor.
	Offset int64   `json:"offset,omitempty"`
	Frames []int64 `json:"frames,omitempty"`
}

// Info converts a manifest entry.
func (t ManifestTensor) Info() safetensors.TensorInfo {
	return safetensors.TensorInfo{Name: t.Name, DType: safetensors.DType(t.DType), Shape: t.Shape}
}

// ParseManifest decodes and validates a manifest.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("bad manifest: %v", err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("bad manifest: format %q, want %q", m.Format, ManifestFormat)
	}
	if m.Version != 1 {
		return nil, fmt.Errorf("manifest version %d is not supported (this weightdiff reads version 1)", m.Version)
	}
	if m.Mode != "diff" && m.Mode != "xor" {
		return nil, fmt.Errorf("bad manifest: mode %q", m.Mode)
	}
	if m.Mode == "diff" {
		if dt := safetensors.DType(m.DiffDType); !dt.IsFloat() {
			return nil, fmt.Errorf("bad manifest: diff_dtype %q", m.DiffDType)
		}
	}
	if m.PadRows < 0 {
		return nil, errors.New("bad manifest: negative pad_rows")
	}
	if len(m.Tensors) == 0 {
		return nil, errors.New("bad manifest: no tensors")
	}
	if m.Mode == "xor" && (m.ChunkBytes <= 0 || m.ChunkBytes > 1<<30 || m.ChunkBytes%8 != 0) {
		return nil, fmt.Errorf("bad manifest: chunk_bytes %d", m.ChunkBytes)
	}
	seen := map[string]bool{}
	for _, t := range m.Tensors {
		if t.Name == "" || seen[t.Name] {
			return nil, fmt.Errorf("bad manifest: empty or duplicate tensor name %q", t.Name)
		}
		seen[t.Name] = true
		ti := t.Info()
		if ti.DType.Size() == 0 {
			return nil, fmt.Errorf("bad manifest: tensor %q: dtype %q", t.Name, t.DType)
		}
		n := int64(1)
		for _, d := range t.Shape {
			if d < 0 || (d > 0 && n > (1<<56)/d) {
				return nil, fmt.Errorf("bad manifest: tensor %q: shape %v", t.Name, t.Shape)
			}
			n *= d
		}
		if len(t.SHA256) != 64 || (t.RecoveredSHA256 != "" && len(t.RecoveredSHA256) != 64) {
			return nil, fmt.Errorf("bad manifest: tensor %q: sha256 must be 64 hex digits", t.Name)
		}
		if m.Mode == "xor" {
			want := (ti.NumBytes() + m.ChunkBytes - 1) / m.ChunkBytes
			if int64(len(t.Frames)) != want || t.Offset < 0 {
				return nil, fmt.Errorf("bad manifest: tensor %q: %d frames, want %d", t.Name, len(t.Frames), want)
			}
			for _, f := range t.Frames {
				if f <= 0 || f > 2*m.ChunkBytes+(1<<16) {
					return nil, fmt.Errorf("bad manifest: tensor %q: frame size %d", t.Name, f)
				}
			}
		}
	}
	for _, r := range m.Resized {
		if !seen[r] {
			return nil, fmt.Errorf("bad manifest: resized tensor %q is not listed", r)
		}
	}
	return &m, nil
}

// ReadManifest reads dir/weightdiff.json; it returns nil, nil when absent.
func ReadManifest(dir string) (*Manifest, error) {
	p := filepath.Join(dir, ManifestName)
	b, err := xio.ReadRegular(p, 64<<20)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", p, err)
	}
	return m, nil
}

func (m *Manifest) tensor(name string) *ManifestTensor {
	for i := range m.Tensors {
		if m.Tensors[i].Name == name {
			return &m.Tensors[i]
		}
	}
	return nil
}
