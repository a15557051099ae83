// Package safetensors reads and writes the safetensors format used by
// Hugging Face: an 8-byte little-endian header length, a JSON header naming
// each tensor's dtype, shape and byte range, then the raw little-endian data.
// Files are memory-mapped for reading; model directories may be a single
// model.safetensors or shards listed in model.safetensors.index.json.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"unsafe"

	"github.com/alpaca-go/alpaca/pkg/xio"
	"github.com/x448/float16"
)

// DType is a safetensors dtype name.
type DType string

// The dtypes this package knows.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	Bool DType = "BOOL"
)

// Size is the byte size of one element, 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case I8, U8, Bool:
		return 1
	}
	return 0
}

// IsFloat reports whether d is a floating-point dtype.
func (d DType) IsFloat() bool { return d == F64 || d == F32 || d == F16 || d == BF16 }

// ParseDType accepts safetensors names and common aliases (float32, fp16,
// bfloat16, torch.float16 ...).
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(strings.TrimPrefix(s, "torch.")) {
	case "f32", "float32", "fp32", "float":
		return F32, nil
	case "f16", "float16", "fp16", "half":
		return F16, nil
	case "bf16", "bfloat16":
		return BF16, nil
	case "f64", "float64", "double":
		return F64, nil
	}
	d := DType(strings.ToUpper(s))
	if d.Size() == 0 {
		return "", fmt.Errorf("unknown dtype %q (want F32, F16 or BF16)", s)
	}
	return d, nil
}

// TorchName is the config.json spelling of a float dtype.
func (d DType) TorchName() string {
	switch d {
	case F32:
		return "float32"
	case F16:
		return "float16"
	case BF16:
		return "bfloat16"
	case F64:
		return "float64"
	}
	return strings.ToLower(string(d))
}

// TensorInfo describes one tensor.
type TensorInfo struct {
	Name    string
	DType   DType
	Shape   []int64
	Offsets [2]int64 // byte range within the data section
}

// NumElements is the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// NumBytes is the tensor's data size.
func (t TensorInfo) NumBytes() int64 { return t.NumElements() * int64(t.DType.Size()) }

// File is an open, memory-mapped safetensors file.
type File struct {
	Path    string
	infos   map[string]TensorInfo
	order   []string // header order sorted by offset
	meta    map[string]string
	data    []byte // the data section
	mapping []byte
}

type headerEntry struct {
	DType       DType   `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// MaxHeader bounds the JSON header (the reference implementation uses 100 MB).
const MaxHeader = 100 << 20

// Open memory-maps path and validates its header.
func Open(path string) (*File, error) {
	f, err := xio.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("%s: not a safetensors file (only %d bytes)", path, size)
	}
	var mapping []byte
	if size > 0 {
		mapping, err = syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
		if err != nil {
			return nil, fmt.Errorf("%s: mmap: %w", path, err)
		}
	}
	sf, err := parse(path, mapping)
	if err != nil {
		syscall.Munmap(mapping)
		return nil, err
	}
	sf.mapping = mapping
	return sf, nil
}

// Parse reads a safetensors image held in memory.
func Parse(name string, b []byte) (*File, error) { return parse(name, b) }

func parse(path string, b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%s: not a safetensors file (only %d bytes)", path, len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > MaxHeader || n > uint64(len(b)-8) {
		return nil, fmt.Errorf("%s: not a safetensors file or truncated (header length %d, file %d bytes)", path, n, len(b))
	}
	hdr := b[8 : 8+n]
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("%s: bad safetensors header: %v", path, err)
	}
	sf := &File{Path: path, infos: map[string]TensorInfo{}, data: b[8+n:]}
	for name, v := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(v, &sf.meta); err != nil {
				return nil, fmt.Errorf("%s: bad __metadata__ (want string values): %v", path, err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("%s: tensor %q: bad header entry: %v", path, name, err)
		}
		if e.DType.Size() == 0 {
			return nil, fmt.Errorf("%s: tensor %q: unsupported dtype %q", path, name, e.DType)
		}
		if len(e.DataOffsets) != 2 || e.DataOffsets[0] < 0 || e.DataOffsets[1] < e.DataOffsets[0] {
			return nil, fmt.Errorf("%s: tensor %q: bad data_offsets %v", path, name, e.DataOffsets)
		}
		elems := int64(1)
		for _, d := range e.Shape {
			if d < 0 {
				return nil, fmt.Errorf("%s: tensor %q: negative dimension in shape %v", path, name, e.Shape)
			}
			if d > 0 && elems > (1<<56)/d {
				return nil, fmt.Errorf("%s: tensor %q: shape %v is implausibly large", path, name, e.Shape)
			}
			elems *= d
		}
		ti := TensorInfo{Name: name, DType: e.DType, Shape: e.Shape, Offsets: [2]int64{e.DataOffsets[0], e.DataOffsets[1]}}
		if ti.Offsets[1]-ti.Offsets[0] != ti.NumBytes() {
			return nil, fmt.Errorf("%s: tensor %q: %d bytes for shape %v %s (want %d)", path, name, ti.Offsets[1]-ti.Offsets[0], ti.Shape, ti.DType, ti.NumBytes())
		}
		if ti.Offsets[1] > int64(len(sf.data)) {
			return nil, fmt.Errorf("%s: tensor %q: data ends at byte %d but the file has %d data bytes (truncated file?)", path, name, ti.Offsets[1], len(sf.data))
		}
		sf.infos[name] = ti
		sf.order = append(sf.order, name)
	}
	sort.Slice(sf.order, func(i, j int) bool {
		a, b := sf.infos[sf.order[i]], sf.infos[sf.order[j]]
		if a.Offsets[0] != b.Offsets[0] {
			return a.Offsets[0] < b.Offsets[0]
		}
		return a.Name < b.Name
	})
	// tensors must not overlap
	var end int64
	for _, name := range sf.order {
		ti := sf.infos[name]
		if ti.Offsets[0] < end && ti.NumBytes() > 0 {
			return nil, fmt.Errorf("%s: tensor %q overlaps the previous tensor", path, name)
		}
		if ti.Offsets[1] > end {
			end = ti.Offsets[1]
		}
	}
	return sf, nil
}

// Close unmaps the file. Slices returned by Bytes are invalid afterwards.
func (f *File) Close() error {
	if f.mapping == nil {
		return nil
	}
	err := syscall.Munmap(f.mapping)
	f.mapping, f.data = nil, nil
	return err
}

// Names lists the tensors in file order.
func (f *File) Names() []string { return append([]string(nil), f.order...) }

// Info describes a tensor.
func (f *File) Info(name string) (TensorInfo, bool) {
	ti, ok := f.infos[name]
	return ti, ok
}

// Metadata is the __metadata__ map (may be nil).
func (f *File) Metadata() map[string]string { return f.meta }

// Bytes returns the raw little-endian data of a tensor (memory-mapped:
// read-only, valid until Close).
func (f *File) Bytes(name string) ([]byte, error) {
	ti, ok := f.infos[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", f.Path, name)
	}
	return f.data[ti.Offsets[0]:ti.Offsets[1]:ti.Offsets[1]], nil
}

// Release tells the kernel that the mapped pages under b (a slice returned
// by Bytes) are not needed for now: they leave the process's resident set and
// are read again from the page cache if touched, so b stays valid. Streaming
// readers call it after each piece to keep memory bounded on large models.
// A no-op when b is not inside this file's mapping.
func (f *File) Release(b []byte) {
	if off, ok := f.offsetOf(b); ok {
		ReleaseMapped(f.mapping, off, len(b))
	}
}

// Prefetch asks the kernel to start reading the pages under b (a slice
// returned by Bytes) in the background (MADV_WILLNEED), so that a streaming
// reader's next pieces are in memory when it gets to them. A no-op when b is
// not inside this file's mapping.
func (f *File) Prefetch(b []byte) {
	if off, ok := f.offsetOf(b); ok {
		adviseMapped(f.mapping, off, len(b), syscall.MADV_WILLNEED)
	}
}

func (f *File) offsetOf(b []byte) (int, bool) {
	if len(b) == 0 || len(f.mapping) == 0 {
		return 0, false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(f.mapping)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if p < base || p+uintptr(len(b)) > base+uintptr(len(f.mapping)) {
		return 0, false
	}
	return int(p - base), true
}

// ReleaseMapped drops the pages of mapping[off:off+n] (widened to whole
// pages, clipped to the mapping) from the resident set with
// MADV_DONTNEED. mapping must be a read-only file mapping: for anonymous
// memory this would zero the data.
func ReleaseMapped(mapping []byte, off, n int) {
	adviseMapped(mapping, off, n, syscall.MADV_DONTNEED)
}

// PrefetchMapped starts reading mapping[off:off+n] in the background
// (MADV_WILLNEED).
func PrefetchMapped(mapping []byte, off, n int) {
	adviseMapped(mapping, off, n, syscall.MADV_WILLNEED)
}

func adviseMapped(mapping []byte, off, n, advice int) {
	page := os.Getpagesize()
	lo := off &^ (page - 1)
	hi := off + n
	if hi > len(mapping) {
		hi = len(mapping)
	}
	if lo >= hi {
		return
	}
	syscall.Madvise(mapping[lo:hi], advice)
}

// Float32 returns a tensor converted to float32 (a new slice).
func (f *File) Float32(name string) ([]float32, error) {
	ti, ok := f.infos[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", f.Path, name)
	}
	b, _ := f.Bytes(name)
	out, err := DecodeFloat32(ti.DType, b)
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %v", f.Path, name, err)
	}
	return out, nil
}

// DecodeFloat32 converts little-endian F32/F16/BF16/F64 data to float32.
func DecodeFloat32(dt DType, b []byte) ([]float32, error) {
	switch dt {
	case F32:
		out := make([]float32, len(b)/4)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), len(out)*4), b)
		if !littleEndian {
			for i := range out {
				out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		}
		return out, nil
	case F16:
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = float16.Frombits(binary.LittleEndian.Uint16(b[2*i:])).Float32()
		}
		return out, nil
	case BF16:
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
		return out, nil
	case F64:
		out := make([]float32, len(b)/8)
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
		return out, nil
	}
	return nil, fmt.Errorf("dtype %s is not a float type", dt)
}

var littleEndian = func() bool { x := uint16(1); return *(*byte)(unsafe.Pointer(&x)) == 1 }()

// Float32ToBF16 rounds to nearest even, as torch does; NaN stays NaN.
func Float32ToBF16(f float32) uint16 {
	bits := math.Float32bits(f)
	if f != f {
		return uint16(bits>>16) | 0x40
	}
	return uint16((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16)
}

// EncodeFloat32 converts float32 values to little-endian data of dtype dt.
func EncodeFloat32(dt DType, v []float32) ([]byte, error) {
	switch dt {
	case F32:
		out := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
		}
		return out, nil
	case F16:
		out := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(out[2*i:], float16.Fromfloat32(x).Bits())
		}
		return out, nil
	case BF16:
		out := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(out[2*i:], Float32ToBF16(x))
		}
		return out, nil
	case F64:
		out := make([]byte, 8*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint64(out[8*i:], math.Float64bits(float64(x)))
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot encode float32 as %s", dt)
}

// Model is a set of tensors spread over one or more safetensors files (a
// sharded checkpoint), addressed by tensor name.
type Model struct {
	*Shards[*File]
}

// IndexName is the shard index file name Hugging Face uses.
const IndexName = "model.safetensors.index.json"

// Index is the content of model.safetensors.index.json.
type Index struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// OpenDir opens a model: a directory holding model.safetensors.index.json
// (sharded), model.safetensors, or exactly one *.safetensors file; or a
// path to a single .safetensors file.
func OpenDir(path string) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	single := path
	if st.IsDir() {
		idxPath := filepath.Join(path, IndexName)
		if _, err := os.Stat(idxPath); err == nil {
			set, err := OpenIndexed(path, idxPath, Open)
			if err != nil {
				return nil, err
			}
			return &Model{set}, nil
		}
		single = filepath.Join(path, "model.safetensors")
		if _, err := os.Stat(single); err != nil {
			matches, _ := filepath.Glob(filepath.Join(path, "*.safetensors"))
			if len(matches) != 1 {
				return nil, fmt.Errorf("%s: no model.safetensors, no %s, and %d *.safetensors files", path, IndexName, len(matches))
			}
			single = matches[0]
		}
	}
	f, err := Open(single)
	if err != nil {
		return nil, err
	}
	set := NewShards[*File](path)
	if err := set.Add(f, filepath.Base(single), nil); err != nil {
		f.Close()
		return nil, err
	}
	return &Model{set}, nil
}

// Float32 returns a tensor as float32.
func (m *Model) Float32(name string) ([]float32, error) {
	f, ok := m.File(name)
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", m.Dir, name)
	}
	return f.Float32(name)
}

// Metadata returns the __metadata__ of the first file.
func (m *Model) Metadata() map[string]string {
	if files := m.Files(); len(files) > 0 {
		return files[0].Metadata()
	}
	return nil
}
