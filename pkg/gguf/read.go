package gguf

import (
	"errors"
	"fmt"
	"math"
	"os"
)

// Limits of the reader: a GGUF file is untrusted input, and nothing it
// says is allocated before being checked against these and against the
// bytes actually present.
const (
	MaxTensors    = 1 << 16
	MaxKVs        = 1 << 16
	MaxStringLen  = 1 << 20
	MaxArrayLen   = 1 << 24
	MaxDims       = 4
	maxArrayDepth = 2
)

// File is a parsed GGUF file held in memory.
type File struct {
	Version   uint32
	KVs       []KV
	Tensors   []TensorInfo
	Alignment uint64
	DataStart uint64 // offset of the data section in the file
	data      []byte // the whole file
	byKey     map[string]int
	byName    map[string]int
}

// Open reads and parses a GGUF file.
func Open(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

type reader struct {
	b   []byte
	off int
}

var errShort = errors.New("unexpected end of file")

func (r *reader) need(n uint64) error {
	if n > uint64(len(r.b)-r.off) {
		return errShort
	}
	return nil
}

func (r *reader) u32() (uint32, error) {
	if err := r.need(4); err != nil {
		return 0, err
	}
	v := le32(r.b[r.off:])
	r.off += 4
	return v, nil
}

func (r *reader) u64() (uint64, error) {
	if err := r.need(8); err != nil {
		return 0, err
	}
	v := le64(r.b[r.off:])
	r.off += 8
	return v, nil
}

func (r *reader) str() (string, error) {
	n, err := r.u64()
	if err != nil {
		return "", err
	}
	if n > MaxStringLen {
		return "", fmt.Errorf("string of %d bytes (limit %d)", n, MaxStringLen)
	}
	if err := r.need(n); err != nil {
		return "", err
	}
	s := string(r.b[r.off : r.off+int(n)])
	r.off += int(n)
	return s, nil
}

func (r *reader) scalar(t ValueType) (any, error) {
	if t == TypeString {
		return r.str()
	}
	sz, ok := scalarSize[t]
	if !ok {
		return nil, fmt.Errorf("unknown value type %d", t)
	}
	if err := r.need(uint64(sz)); err != nil {
		return nil, err
	}
	p := r.b[r.off:]
	r.off += sz
	switch t {
	case TypeUint8:
		return p[0], nil
	case TypeInt8:
		return int8(p[0]), nil
	case TypeUint16:
		return uint16(p[0]) | uint16(p[1])<<8, nil
	case TypeInt16:
		return int16(uint16(p[0]) | uint16(p[1])<<8), nil
	case TypeUint32:
		return le32(p), nil
	case TypeInt32:
		return int32(le32(p)), nil
	case TypeFloat32:
		return math.Float32frombits(le32(p)), nil
	case TypeBool:
		if p[0] > 1 {
			return nil, fmt.Errorf("bool value %d", p[0])
		}
		return p[0] == 1, nil
	case TypeUint64:
		return le64(p), nil
	case TypeInt64:
		return int64(le64(p)), nil
	default: // TypeFloat64
		return math.Float64frombits(le64(p)), nil
	}
}

func readArray[T any](r *reader, t ValueType, n uint64) (any, error) {
	out := make([]T, 0, n)
	for i := uint64(0); i < n; i++ {
		v, err := r.scalar(t)
		if err != nil {
			return nil, err
		}
		out = append(out, v.(T))
	}
	return out, nil
}

func (r *reader) value(t ValueType, depth int) (any, error) {
	if t != TypeArray {
		return r.scalar(t)
	}
	if depth >= maxArrayDepth {
		return nil, fmt.Errorf("arrays nested too deep")
	}
	et, err := r.u32()
	if err != nil {
		return nil, err
	}
	n, err := r.u64()
	if err != nil {
		return nil, err
	}
	if n > MaxArrayLen {
		return nil, fmt.Errorf("array of %d values (limit %d)", n, MaxArrayLen)
	}
	// every element takes at least one byte (strings: 8)
	minSize := uint64(1)
	if sz, ok := scalarSize[ValueType(et)]; ok {
		minSize = uint64(sz)
	} else if ValueType(et) == TypeString {
		minSize = 8
	}
	if err := r.need(n * minSize); err != nil {
		return nil, err
	}
	switch ValueType(et) {
	case TypeUint8:
		return readArray[uint8](r, TypeUint8, n)
	case TypeInt8:
		return readArray[int8](r, TypeInt8, n)
	case TypeUint16:
		return readArray[uint16](r, TypeUint16, n)
	case TypeInt16:
		return readArray[int16](r, TypeInt16, n)
	case TypeUint32:
		return readArray[uint32](r, TypeUint32, n)
	case TypeInt32:
		return readArray[int32](r, TypeInt32, n)
	case TypeFloat32:
		return readArray[float32](r, TypeFloat32, n)
	case TypeBool:
		return readArray[bool](r, TypeBool, n)
	case TypeString:
		return readArray[string](r, TypeString, n)
	case TypeUint64:
		return readArray[uint64](r, TypeUint64, n)
	case TypeInt64:
		return readArray[int64](r, TypeInt64, n)
	case TypeFloat64:
		return readArray[float64](r, TypeFloat64, n)
	case TypeArray:
		out := make([]any, 0, min(n, 1024))
		for i := uint64(0); i < n; i++ {
			v, err := r.value(TypeArray, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown array element type %d", et)
}

// Parse parses a whole GGUF file held in b (versions 2 and 3), checking
// every count, size and offset against limits and the bytes present.
func Parse(b []byte) (*File, error) {
	if len(b) < 4 || string(b[:4]) != Magic {
		return nil, fmt.Errorf("not a GGUF file (no GGUF magic)")
	}
	r := &reader{b: b, off: 4}
	f := &File{data: b, byKey: map[string]int{}, byName: map[string]int{}, Alignment: DefaultAlignment}
	var err error
	if f.Version, err = r.u32(); err != nil {
		return nil, err
	}
	if f.Version != 2 && f.Version != 3 {
		return nil, fmt.Errorf("GGUF version %d not supported (2 or 3)", f.Version)
	}
	nt, err := r.u64()
	if err != nil {
		return nil, err
	}
	nkv, err := r.u64()
	if err != nil {
		return nil, err
	}
	if nt > MaxTensors || nkv > MaxKVs {
		return nil, fmt.Errorf("%d tensors and %d metadata pairs exceed the limits (%d, %d)", nt, nkv, MaxTensors, MaxKVs)
	}
	for i := uint64(0); i < nkv; i++ {
		k, err := r.str()
		if err != nil {
			return nil, fmt.Errorf("metadata pair %d: key: %w", i, err)
		}
		t, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("metadata %q: %w", k, err)
		}
		v, err := r.value(ValueType(t), 0)
		if err != nil {
			return nil, fmt.Errorf("metadata %q: %w", k, err)
		}
		if _, dup := f.byKey[k]; dup {
			return nil, fmt.Errorf("metadata key %q appears twice", k)
		}
		f.byKey[k] = len(f.KVs)
		f.KVs = append(f.KVs, KV{Key: k, Value: v})
	}
	if v, ok := f.Get("general.alignment"); ok {
		a, ok := v.(uint32)
		if !ok || a == 0 || a&(a-1) != 0 {
			return nil, fmt.Errorf("general.alignment %v is not a power-of-two uint32", v)
		}
		f.Alignment = uint64(a)
	}
	for i := uint64(0); i < nt; i++ {
		name, err := r.str()
		if err != nil {
			return nil, fmt.Errorf("tensor %d: name: %w", i, err)
		}
		nd, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		if nd == 0 || nd > MaxDims {
			return nil, fmt.Errorf("tensor %q has %d dimensions (1..%d)", name, nd, MaxDims)
		}
		ti := TensorInfo{Name: name}
		total := uint64(1)
		for d := uint32(0); d < nd; d++ {
			x, err := r.u64()
			if err != nil {
				return nil, fmt.Errorf("tensor %q: %w", name, err)
			}
			if x == 0 || x > 1<<40 || total > (1<<50)/x {
				return nil, fmt.Errorf("tensor %q: dimension %d of size %d is out of range", name, d, x)
			}
			total *= x
			ti.Dims = append(ti.Dims, x)
		}
		t, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		ti.Type = GGMLType(t)
		if ti.Offset, err = r.u64(); err != nil {
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		if _, dup := f.byName[name]; dup {
			return nil, fmt.Errorf("tensor %q appears twice", name)
		}
		f.byName[name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, ti)
	}
	f.DataStart = align(uint64(r.off), f.Alignment)
	if f.DataStart > uint64(len(b)) && len(f.Tensors) > 0 {
		return nil, fmt.Errorf("data section starts at %d, past the end of the file (%d bytes)", f.DataStart, len(b))
	}
	for _, ti := range f.Tensors {
		nb, err := ti.NumBytes()
		if err != nil {
			return nil, err
		}
		if ti.Offset%f.Alignment != 0 {
			return nil, fmt.Errorf("tensor %q: offset %d is not aligned to %d", ti.Name, ti.Offset, f.Alignment)
		}
		if ti.Offset > uint64(len(b)) || nb > uint64(len(b)) || f.DataStart+ti.Offset+nb > uint64(len(b)) {
			return nil, fmt.Errorf("tensor %q: data [%d, +%d) past the end of the file", ti.Name, ti.Offset, nb)
		}
	}
	return f, nil
}

// Get returns a metadata value.
func (f *File) Get(key string) (any, bool) {
	i, ok := f.byKey[key]
	if !ok {
		return nil, false
	}
	return f.KVs[i].Value, true
}

// Tensor returns a tensor's description.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// Data returns a tensor's bytes (a view of the file).
func (f *File) Data(name string) ([]byte, error) {
	ti, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("no tensor %q", name)
	}
	nb, err := ti.NumBytes()
	if err != nil {
		return nil, err
	}
	s := f.DataStart + ti.Offset
	return f.data[s : s+nb], nil
}

// Float32 decodes a tensor (F32, F16, BF16 or Q8_0) to float32.
func (f *File) Float32(name string) ([]float32, error) {
	b, err := f.Data(name)
	if err != nil {
		return nil, err
	}
	ti, _ := f.Tensor(name)
	return Dequantize(ti.Type, b, int(ti.NumElements()))
}
